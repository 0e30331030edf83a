"""Checks that a volume can be a brain MRI before any work is done on it (docs/PREPROCESSING.md, bad input).

Each failed check raises :class:`InputError` with one line; doubtful but usable inputs return warnings. A warning
is a :class:`~contrastive_anomaly.runtime.events.CodedMessage` (a ``str`` with a stable ``code``), so the progress
reporter can tag its warning event and a program can pick out, e.g., a contrast mismatch.
"""

from __future__ import annotations

import re

import numpy as np
import SimpleITK as sitk

from ..config import ModelConfig
from ..errors import InputError
from ..runtime.events import CodedMessage
from ..storage.dicom import CONTRAST_AGENT_KEY, SERIES_DESCRIPTION_KEY

MIB = 2**20
# Header fields that describe the acquisition: NIfTI ``descrip`` (ITK's name), NRRD ``content``, and the DICOM
# SeriesDescription the DICOM reader stores on the image.
DESCRIPTION_KEYS = ("descrip", "content", SERIES_DESCRIPTION_KEY)
# A DICOM Contrast/Bolus Agent (stored under CONTRAST_AGENT_KEY) other than a stated "none" means an agent was given.
NO_AGENT_VALUES = frozenset({"", "none", "no", "n/a", "na"})
# Words that mark a post-contrast (gadolinium-enhanced) acquisition in series descriptions: "post", "post-gad",
# "gad"/"gado"/"gadolinium", "Gd", "+C"/"C+", "T1c"/"T1ce"/"CE-T1", "contrast", "enhanced".
_NOT_LETTER_BEFORE, _NOT_LETTER_AFTER = r"(?<![a-z])", r"(?![a-z])"  # "_post" counts, "posterior" does not
POST_CONTRAST_PATTERN = re.compile("|".join((
    rf"{_NOT_LETTER_BEFORE}post{_NOT_LETTER_AFTER}", rf"{_NOT_LETTER_BEFORE}gad", rf"{_NOT_LETTER_BEFORE}gd"
    rf"{_NOT_LETTER_AFTER}", rf"\+ ?c{_NOT_LETTER_AFTER}", rf"{_NOT_LETTER_BEFORE}c ?\+",
    rf"t1[-_ ]?ce?{_NOT_LETTER_AFTER}", rf"{_NOT_LETTER_BEFORE}ce[-_ ]?t1", "contrast", "enhanc")), re.IGNORECASE)


def max_input_voxels(cfg: ModelConfig) -> int:
    """The largest scan accepted: ``inference.memory_budget_mb`` MiB over ``preprocess.working_bytes_per_voxel``.

    The working set of preprocessing is a few float32 copies of the scan (input, bias-corrected copy, resampling
    buffers), so the budget is divided by a per-voxel cost rather than by the 4 bytes of one copy.
    """
    return int(cfg.inference.memory_budget_mb * MIB // cfg.preprocess.working_bytes_per_voxel)


def check_geometry(image: sitk.Image, cfg: ModelConfig) -> list[str]:
    """Dimension, components, size and spacing checks (no pixel access). Returns warnings."""
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise InputError(f"image has {image.GetNumberOfComponentsPerPixel()} components per voxel (RGB/vector); "
                         "a single-channel MRI volume is needed")
    dim = image.GetDimension()
    if dim != 3:
        raise InputError(f"image is {dim}D; a 3D MRI volume is needed (for a 4D series, extract one volume)")
    size = np.array(image.GetSize())
    if (size < 2).any():
        raise InputError(f"image is a single slice (size {tuple(int(s) for s in size)}); a 3D volume is needed")
    limit = max_input_voxels(cfg)
    if int(size.prod()) > limit:
        raise InputError(f"image has {int(size.prod()) / 1e6:.0f} M voxels, more than the {limit / 1e6:.0f} M that fit "
                         f"the {cfg.inference.memory_budget_mb} MB memory budget; resample it first")
    spacing = np.array(image.GetSpacing())
    if (spacing <= 0).any() or not np.isfinite(spacing).all():
        raise InputError(f"image has invalid voxel spacing {tuple(spacing.round(3))}")
    extent = size * spacing
    if extent.min() < cfg.preprocess.min_extent_mm:
        raise InputError(f"image covers only {extent.min():.0f} mm along one axis (extent "
                         f"{' x '.join(f'{e:.0f}' for e in extent)} mm), too small to hold a brain")
    warnings = []
    limit = cfg.preprocess.thick_slice_warning_mm
    if spacing.max() > limit:
        warnings.append(CodedMessage(
            f"slices are {spacing.max():.1f} mm thick, more than the {limit:g} mm the model was made for; small "
            "lesions can be missed and partial-volume edges flagged (use a thinner acquisition if there is one)",
            "thick_slices"))
    return warnings


def header_descriptions(image: sitk.Image) -> list[str]:
    """The non-empty acquisition descriptions found in the image's header (:data:`DESCRIPTION_KEYS`)."""
    keys = set(image.GetMetaDataKeys())
    return [image.GetMetaData(key).strip() for key in DESCRIPTION_KEYS
            if key in keys and image.GetMetaData(key).strip()]


def check_acquisition(image: sitk.Image, cfg: ModelConfig, contrast: str | None) -> list[str]:
    """Warnings for a scan the model was not made for: another contrast, or a post-contrast T1 for a T1 model.

    ``contrast``: what the user says the scan is (``None`` = not stated). A header description that reads as
    post-contrast (:data:`POST_CONTRAST_PATTERN`), or a DICOM Contrast/Bolus Agent, on a scan scored by a plain T1
    model gives a warning.
    """
    warnings: list[str] = []
    if contrast is not None and contrast.upper() != cfg.contrast.upper():
        warnings.append(CodedMessage(
            f"CONTRAST MISMATCH: the scan is {contrast} but the model was trained on {cfg.contrast} scans; its "
            f"anomaly map on this scan is not meaningful (use a {contrast} model)", "contrast_mismatch"))
    if cfg.contrast.upper() == "T1" and (contrast is None or contrast.upper() == "T1"):
        agent = image.GetMetaData(CONTRAST_AGENT_KEY).strip() if image.HasMetaDataKey(CONTRAST_AGENT_KEY) else ""
        if agent.lower() not in NO_AGENT_VALUES:
            warnings.append(CodedMessage(
                f"the DICOM header names a contrast agent ({agent[:40]!r}); the model was trained on plain "
                "(pre-contrast) T1 scans, so enhancing vessels, dura and lesions will be flagged", "post_contrast"))
            return warnings
        for text in header_descriptions(image):
            if POST_CONTRAST_PATTERN.search(text):
                warnings.append(CodedMessage(
                    f"the header describes this scan as post-contrast ({text[:60]!r}); the model was trained on "
                    "plain (pre-contrast) T1 scans, so enhancing vessels, dura and lesions will be flagged",
                    "post_contrast"))
                break
    return warnings


def check_intensities(array: np.ndarray, cfg: ModelConfig) -> None:
    """NaN/Inf, constant and CT-like intensity checks on the voxel array (any order)."""
    finite = np.isfinite(array)
    if not finite.all():
        raise InputError(f"image has {int((~finite).sum())} NaN/Inf voxels")
    low, high = float(array.min()), float(array.max())
    if high - low <= 0:
        raise InputError(f"image is constant (every voxel is {low:g}); nothing to analyse")
    air_fraction = float((array < cfg.preprocess.ct_air_threshold).mean())
    if air_fraction > cfg.preprocess.ct_air_fraction:
        raise InputError(f"image looks like CT (Hounsfield units: {100 * air_fraction:.0f}% of voxels below "
                         f"{cfg.preprocess.ct_air_threshold:g}); an MRI volume is needed")


def validate_image(image: sitk.Image, cfg: ModelConfig, contrast: str | None = None) -> list[str]:
    """Run every check on ``image``; raise :class:`InputError` on the first failure, return the warnings.

    ``contrast``: the scan's contrast as the user gave it (checked against the model's), or ``None``.
    """
    warnings = check_geometry(image, cfg)
    check_intensities(sitk.GetArrayViewFromImage(image), cfg)
    return warnings + check_acquisition(image, cfg, contrast)


def check_mask_matches(mask: sitk.Image, image: sitk.Image) -> None:
    """A user-supplied brain mask must be 3D, single-channel, non-empty and on the image's grid (or resampleable)."""
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("brain mask must be a single-channel 3D image")
    if not (sitk.GetArrayViewFromImage(mask) > 0).any():
        raise InputError("brain mask is empty (no voxel > 0)")

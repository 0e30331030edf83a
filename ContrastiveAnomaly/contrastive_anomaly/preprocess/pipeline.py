"""From a brain MRI on any grid to the model grid, and back (docs/METHOD.md §2; docs/PREPROCESSING.md).

``prepare_volume`` runs: validate -> brain extraction (or the user's mask) -> N4 bias correction -> affine
registration to ICBM152 2009a -> QC -> percentile normalisation -> resampling to the model grid (KJI arrays).
``to_native`` maps any model-grid array back onto exactly the input grid (same size, spacing, origin, direction).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk

from ..config import ModelConfig
from ..errors import InputError
from ..runtime.progress import ProgressReporter
from ..storage.files import read_image
from . import intensity, native_space, quality, registration, templates, validate
from .brain_extraction import extract_brain

# One progress event per this many registration iterations (a few hundred per scan: one each would flood the stream).
REGISTRATION_REPORT_EVERY = 10


@dataclass
class PreparedVolume:
    """A scan on the model grid plus what is needed to bring results back to the scan's own grid.

    ``image_kji``: float32 (K, J, I) = ``cfg.grid.shape`` reversed, values in [0, 1], 0 outside the brain.
    ``brain_mask_kji``: uint8 0/1, same shape. ``native_reference``: the input image (its grid defines every native
    output). ``native_brain_mask``: uint8 0/1 on the input grid. ``qc``: registration metrics, mask volume (mL),
    template Dice and ``flags``. ``timings_s``: seconds per stage. ``warnings``: human-readable lines.
    """

    image_kji: np.ndarray
    brain_mask_kji: np.ndarray
    native_reference: sitk.Image
    native_brain_mask: sitk.Image
    qc: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    model_grid: sitk.Image | None = field(default=None, repr=False)
    model_to_native_transform: sitk.Transform | None = field(default=None, repr=False)

    def physical_to_model_index(self, point_lps: tuple[float, float, float]) -> tuple[int, int, int]:
        """The model-grid voxel (IJK) containing a scan point given in LPS mm."""
        model_point = self.model_to_native_transform.GetInverse().TransformPoint(tuple(float(v) for v in point_lps))
        return tuple(int(v) for v in self.model_grid.TransformPhysicalPointToIndex(model_point))

    def model_index_to_physical(self, index_ijk: tuple[int, int, int]) -> tuple[float, float, float]:
        """The scan point (LPS mm) of a model-grid voxel centre (IJK)."""
        model_point = self.model_grid.TransformIndexToPhysicalPoint([int(v) for v in index_ijk])
        return tuple(self.model_to_native_transform.TransformPoint(model_point))


@contextmanager
def _stage(progress: ProgressReporter, timings: dict[str, float], name: str, total: int = 1) -> Iterator[None]:
    start = time.perf_counter()
    with progress.stage(name, total=total):
        yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _iteration_counter(progress: ProgressReporter, planned: int) -> Callable[[], None]:
    """A callback for the optimiser's iteration event that advances the current stage every
    ``REGISTRATION_REPORT_EVERY`` iterations (levels may stop before their cap; the stage's end completes it)."""
    count = 0

    def on_iteration() -> None:
        nonlocal count
        count += 1
        if count % REGISTRATION_REPORT_EVERY == 0:
            progress.advance(min(count, planned))

    return on_iteration


def _mask_on_grid(mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """A user mask as uint8 0/1 on ``reference``'s grid (nearest neighbour in physical space if grids differ)."""
    validate.check_mask_matches(mask, reference)
    binary = sitk.Cast(sitk.Cast(mask, sitk.sitkFloat32) > 0, sitk.sitkUInt8)
    same_grid = (binary.GetSize() == reference.GetSize()
                 and np.allclose(binary.GetSpacing(), reference.GetSpacing(), atol=1e-4)
                 and np.allclose(binary.GetOrigin(), reference.GetOrigin(), atol=1e-3)
                 and np.allclose(binary.GetDirection(), reference.GetDirection(), atol=1e-5))
    if same_grid:
        binary.CopyInformation(reference)
        return binary
    resampled = sitk.Resample(binary, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(resampled).any():
        raise InputError("brain mask does not overlap the image")
    return resampled


def _prepare_on_model_grid(image: sitk.Image, cfg: ModelConfig, brain_mask: sitk.Image | None,
                           progress: ProgressReporter, timings: dict[str, float], warnings: list[str]
                           ) -> PreparedVolume:
    expected = tuple(cfg.grid.shape)
    if tuple(image.GetSize()) != expected:
        raise InputError(f"image size {image.GetSize()} is not the model grid {expected} (IJK); "
                         "drop the on-model-grid option to register it")
    with _stage(progress, timings, "normalisation"):
        mask = _mask_on_grid(brain_mask, image) if brain_mask is not None else sitk.Cast(image > 0, sitk.sitkUInt8)
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        mask_kji = sitk.GetArrayFromImage(mask).astype(np.uint8)
        normalised = intensity.percentile_normalise(array, mask_kji, cfg.intensity.lower_percentile,
                                                    cfg.intensity.upper_percentile)
    grid = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    grid.CopyInformation(image)
    volume_ml = float(mask_kji.sum() * np.prod(image.GetSpacing()) / 1000.0)
    return PreparedVolume(image_kji=normalised, brain_mask_kji=mask_kji, native_reference=image,
                          native_brain_mask=mask, qc={"on_model_grid": True, "brain_volume_ml": volume_ml,
                                                      "flags": []},
                          timings_s=timings, warnings=warnings, model_grid=grid,
                          model_to_native_transform=sitk.AffineTransform(3))


def prepare_volume(image: sitk.Image, cfg: ModelConfig, brain_mask: sitk.Image | None = None,
                   contrast: str | None = None, progress: ProgressReporter | None = None,
                   on_model_grid: bool = False) -> PreparedVolume:
    """Bring ``image`` (any 3D MRI, any grid/orientation) onto ``cfg.grid``; see the module docstring.

    ``brain_mask``: the user's mask (any grid; non-zero = brain) instead of template-based extraction.
    ``contrast``: the scan's contrast; a mismatch with ``cfg.contrast`` adds a warning. ``on_model_grid``: the input
    is already skull-stripped and on the model grid (size == ``cfg.grid.shape``); only normalisation runs.
    Raises :class:`InputError` for unusable input and :class:`RegistrationError` when alignment plainly failed.
    """
    progress = progress or ProgressReporter("none")
    timings: dict[str, float] = {}
    pp = cfg.preprocess
    with _stage(progress, timings, "validate"):
        warnings = validate.validate_image(image, cfg, contrast)
        image = sitk.Cast(image, sitk.sitkFloat32)
    if on_model_grid:
        prepared = _prepare_on_model_grid(image, cfg, brain_mask, progress, timings, warnings)
        for message in prepared.warnings:
            progress.warn(message)
        return prepared

    with _stage(progress, timings, "brain_extraction"):
        working = registration.working_copy(image, pp.registration_spacing_mm)
        head_to_scan = None
        head_metric = None
        if brain_mask is not None:
            mask = _mask_on_grid(brain_mask, image)
        else:
            extraction = extract_brain(image, working, pp)
            mask, head_to_scan, head_metric = extraction.mask, extraction.template_to_scan, extraction.metric
            quality.check_head_alignment(head_metric, pp)

    with _stage(progress, timings, "bias_correction"):
        crop, crop_mask = intensity.crop_to_mask(image, mask, pp.crop_margin_mm)
        if cfg.intensity.n4_bias_correction:
            crop = intensity.n4_correct(crop, crop_mask, cfg.intensity)
        crop = intensity.curvature_flow(crop, cfg.intensity)

    coarse_similarity = head_to_scan is None
    planned = registration.planned_iterations(pp, coarse_similarity=coarse_similarity)
    with _stage(progress, timings, "registration", total=planned):
        model_t1, model_mask = templates.model_template()
        brain_only = sitk.Mask(crop, crop_mask)
        moving = registration.working_copy(brain_only, pp.registration_spacing_mm)
        initial = head_to_scan if head_to_scan is not None else registration.initial_alignment(model_t1, moving)
        model_to_scan = registration.register_affine(model_t1, moving, initial, pp,
                                                     coarse_similarity=coarse_similarity,
                                                     on_iteration=_iteration_counter(progress, planned))
        qc = quality.assess(model_t1, model_mask, moving, crop_mask, model_to_scan, pp)
        qc["brain_extraction_metric"] = head_metric
        warnings += quality.raise_or_warn(qc, pp)

    with _stage(progress, timings, "normalisation"):
        crop_array = sitk.GetArrayFromImage(crop)
        crop_mask_array = sitk.GetArrayFromImage(crop_mask)
        normalised = intensity.percentile_normalise(crop_array, crop_mask_array, cfg.intensity.lower_percentile,
                                                    cfg.intensity.upper_percentile)
        normalised_image = sitk.GetImageFromArray(normalised)
        normalised_image.CopyInformation(crop)
        grid = templates.model_grid(cfg.grid)
        mask_kji = native_space.resample_to_model(crop_mask, grid, model_to_scan, "nearest")
        image_kji = native_space.resample_to_model(normalised_image, grid, model_to_scan, "bspline")
        image_kji = (np.clip(image_kji, 0.0, 1.0) * mask_kji).astype(np.float32)

    for message in warnings:
        progress.warn(message)
    return PreparedVolume(image_kji=image_kji, brain_mask_kji=mask_kji.astype(np.uint8), native_reference=image,
                          native_brain_mask=mask, qc=qc, timings_s=timings, warnings=warnings, model_grid=grid,
                          model_to_native_transform=model_to_scan)


def to_native(prepared: PreparedVolume, array_kji: np.ndarray, kind: Literal["linear", "nearest"]) -> sitk.Image:
    """``array_kji`` (model grid) on exactly the input grid: float32 for ``linear``, uint8 for ``nearest``."""
    return native_space.model_to_native(array_kji, prepared.model_grid, prepared.native_reference,
                                        prepared.model_to_native_transform, kind)


def prepare_file(path: str | Path, cfg: ModelConfig, brain_mask_path: str | Path | None = None,
                 series_uid: str | None = None, contrast: str | None = None,
                 progress: ProgressReporter | None = None, on_model_grid: bool = False) -> PreparedVolume:
    """Read a scan (and optional mask) from disk under the ``read`` stage, then :func:`prepare_volume`."""
    progress = progress or ProgressReporter("none")
    timings: dict[str, float] = {}
    with _stage(progress, timings, "read"):
        image = read_image(path, series_uid, warn=lambda message: progress.warn(message, code="dicom_series_choice"))
        mask = read_image(brain_mask_path) if brain_mask_path is not None else None
    prepared = prepare_volume(image, cfg, mask, contrast, progress, on_model_grid)
    prepared.timings_s = {**timings, **prepared.timings_s}
    return prepared

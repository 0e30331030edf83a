"""Run the extracted corpus T1 volumes through the engine's own preprocessing (the path ``detect`` uses).

Each subject's T1 and brain mask (DATA.md §4 step 2: the shipped mask, the ITK skull-strip label ``!= 0``, or
``T1 > 0`` for the already stripped templates; none for the pydeface mean, which then gets the engine's own brain
extraction) go to ``prepare_volume``; the model-grid image and brain mask are saved as NIfTI. The model grid is
written with ``cfg.grid.spacing_mm`` spacing, identity direction and zero origin (LPS): only the voxel array
matters for training, and the preprocessing does not expose the atlas-space origin.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..io import write_image_atomic
from .corpus import SUBJECTS, CorpusFile

PrepareFn = Callable[..., Any]
PREPROCESSED_DIR = "preprocessed"
# Volumes finer than this (mm) are resampled to 1 mm before preprocessing: the CAT12 template is 0.5 mm
# (47 M voxels), which costs memory and time and adds nothing at the 2 mm model grid.
FINEST_INPUT_SPACING_MM = 0.9
INPUT_SPACING_MM = 1.0


def read_3d(path: Path) -> sitk.Image:
    """Read a volume as a 3D float32 image (LPS); a trailing 4th axis of length 1 (ROBEX) is dropped."""
    image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    if image.GetDimension() == 4:
        if image.GetSize()[3] != 1:
            raise ValueError(f"{path.name} is 4-D with {image.GetSize()[3]} volumes; expected one")
        image = image[:, :, :, 0]
    return image


def _resample_to_1mm(image: sitk.Image, interpolator: int) -> sitk.Image:
    size = [max(1, round(n * s / INPUT_SPACING_MM)) for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), [INPUT_SPACING_MM] * 3,
                         image.GetDirection(), 0.0, image.GetPixelID())


def subject_inputs(out_dir: Path, files: dict[str, CorpusFile], subject: str) -> tuple[sitk.Image, sitk.Image | None]:
    """The T1 (float32) and brain mask (uint8 or ``None``) of one subject, on the T1's own grid (LPS)."""
    image = read_3d(out_dir / files["t1"].dest)
    mask: sitk.Image | None = None
    if "brain_mask" in files:
        mask = read_3d(out_dir / files["brain_mask"].dest) > 0.5
    elif "brain_label" in files:
        mask = read_3d(out_dir / files["brain_label"].dest) != 0
    elif SUBJECTS[subject].skull_stripped:
        mask = image > 0
    if mask is not None:
        mask = sitk.Cast(mask, sitk.sitkUInt8)
        mask.CopyInformation(image)
    if min(image.GetSpacing()) < FINEST_INPUT_SPACING_MM:
        image = _resample_to_1mm(image, sitk.sitkLinear)
        mask = None if mask is None else _resample_to_1mm(mask, sitk.sitkNearestNeighbor)
    return image, mask


def model_grid_image(array_kji: np.ndarray, spacing_mm: float) -> sitk.Image:
    """Wrap a model-grid KJI array with ``spacing_mm`` isotropic spacing, zero origin and identity direction."""
    image = sitk.GetImageFromArray(array_kji)
    image.SetSpacing([float(spacing_mm)] * 3)
    return image


def _default_prepare() -> PrepareFn | None:
    try:
        from ..preprocess import prepare_volume
    except ImportError as exc:
        warnings.warn(f"preprocessing skipped: contrastive_anomaly.preprocess is not available ({exc})", stacklevel=3)
        return None
    return prepare_volume


def preprocess_corpus(out_dir: Path, present: list[CorpusFile], *, prepare: PrepareFn | None, cfg: Any | None,
                      force: bool) -> dict[str, Any]:
    """Preprocess every subject that has a T1; returns ``{subject: {image, brain_mask, role} or {error}}``.

    Existing outputs are kept unless ``force``. A subject whose preprocessing raises is reported in the result
    (``error``) and skipped; the others still run.
    """
    if prepare is None:
        prepare = _default_prepare()
        if prepare is None:
            return {}
    if cfg is None:
        from ..config import preset

        cfg = preset("compact")
    results: dict[str, Any] = {}
    subjects = sorted({f.subject for f in present if f.kind == "t1"})
    for subject in subjects:
        files = {f.kind: f for f in present if f.subject == subject}
        folder = out_dir / PREPROCESSED_DIR / subject
        image_path, mask_path = folder / "image.nii.gz", folder / "brain_mask.nii.gz"
        record = {"image": str(image_path.relative_to(out_dir)), "brain_mask": str(mask_path.relative_to(out_dir)),
                  "role": SUBJECTS[subject].role, "contrast": "T1"}
        if image_path.is_file() and mask_path.is_file() and not force:
            results[subject] = record
            continue
        image, mask = subject_inputs(out_dir, files, subject)
        try:
            prepared = prepare(image, cfg, brain_mask=mask, contrast="T1")
        except Exception as exc:  # noqa: BLE001 - one failing subject must not stop the corpus; it is reported
            warnings.warn(f"preprocessing {subject} failed: {exc}", stacklevel=2)
            results[subject] = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                                "role": SUBJECTS[subject].role}
            continue
        spacing = cfg.grid.spacing_mm
        write_image_atomic(model_grid_image(np.asarray(prepared.image_kji, dtype=np.float32), spacing), image_path)
        write_image_atomic(model_grid_image(np.asarray(prepared.brain_mask_kji, dtype=np.uint8), spacing), mask_path)
        record["warnings"] = list(getattr(prepared, "warnings", []) or [])
        results[subject] = record
    return results


def load_preprocessed(out_dir: Path, manifest: dict[str, Any], roles: tuple[str, ...] = ("train", "val", "test"),
                      rotation: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{subject: (image_kji float32, brain_mask_kji uint8)}`` of the preprocessed subjects with one of ``roles``.

    Roles follow DATA.md §6.1; ``rotation=1`` swaps the validation and test subjects (:func:`.splits.corpus_roles`).
    """
    from .splits import corpus_roles

    role_of = corpus_roles(rotation)
    volumes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for subject, record in sorted(manifest.get("preprocessed", {}).items()):
        if "error" in record or role_of.get(subject, record["role"]) not in roles:
            continue
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(out_dir) / record["image"]), sitk.sitkFloat32))
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(out_dir) / record["brain_mask"]), sitk.sitkUInt8))
        volumes[subject] = (image, mask)
    return volumes

"""Collections of model-grid volumes used for training, validation and evaluation.

A *volume folder* holds one sub-folder per subject, each with an image (``image.nii.gz``, or the first NIfTI/NRRD
file whose name does not mention a mask or label), an optional brain mask (``*mask*``) and an optional lesion
label (``*label*`` / ``*seg*``). Images must already be on the model grid (``contrastive-anomaly data fetch`` and
``prepare`` write such folders). Arrays are KJI, intensities in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..storage.files import VOLUME_SUFFIXES
from .phantoms import brain_phantom


@dataclass
class Subject:
    """One subject on the model grid. ``label`` is None for healthy volumes."""

    name: str
    image: np.ndarray
    brain_mask: np.ndarray
    label: np.ndarray | None = None
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0)
    metadata: dict = field(default_factory=dict)


def _is_volume(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(VOLUME_SUFFIXES)


def _pick(files: list[Path], words: tuple[str, ...]) -> Path | None:
    matches = [f for f in files if any(w in f.name.lower() for w in words)]
    return matches[0] if matches else None


def read_subject_folder(folder: Path) -> Subject:
    """Read one subject folder (see the module docstring)."""
    files = sorted(f for f in folder.iterdir() if _is_volume(f))
    mask_path = _pick(files, ("mask",))
    label_path = _pick(files, ("label", "seg", "lesion"))
    image_candidates = [f for f in files if f not in (mask_path, label_path)]
    preferred = [f for f in image_candidates if f.name.lower().startswith("image")]
    if not image_candidates:
        raise InputError(f"no image found in subject folder {folder}")
    image_path = (preferred or image_candidates)[0]
    image_itk = sitk.ReadImage(str(image_path), sitk.sitkFloat32)
    image = sitk.GetArrayFromImage(image_itk)
    if not np.isfinite(image).all():
        raise InputError(f"{image_path} contains NaN or Inf voxels")
    mask = (sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path))) > 0).astype(np.uint8) if mask_path else \
        (image > 0).astype(np.uint8)
    label = (sitk.GetArrayFromImage(sitk.ReadImage(str(label_path))) > 0).astype(np.uint8) if label_path else None
    return Subject(name=folder.name, image=image, brain_mask=mask, label=label,
                   spacing_mm=tuple(float(s) for s in image_itk.GetSpacing()))


def read_volume_folder(folder: str | Path) -> list[Subject]:
    """Read every subject sub-folder of ``folder`` (sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"data folder not found: {folder}")
    subjects = [read_subject_folder(sub) for sub in sorted(folder.iterdir()) if sub.is_dir()]
    if not subjects:
        raise InputError(f"no subject folders in {folder}")
    return subjects


def phantom_subjects(count: int, shape_ijk: tuple[int, int, int], first_seed: int = 0,
                     contrast: str = "T1") -> list[Subject]:
    """Synthetic healthy subjects (:func:`contrastive_anomaly.data.phantoms.brain_phantom`, seeds ``first_seed`` …),
    for smoke runs and tests without data."""
    subjects = []
    for seed in range(first_seed, first_seed + count):
        phantom = brain_phantom(shape_ijk, seed=seed, contrast=contrast)
        subjects.append(Subject(name=f"phantom-{seed:03d}", image=phantom.image, brain_mask=phantom.brain_mask,
                                metadata={"synthetic": True}))
    return subjects


def write_subject(subject: Subject, folder: str | Path) -> Path:
    """Write a subject folder readable by :func:`read_subject_folder` (2 mm spacing unless the subject says)."""
    from ..storage.files import write_image_atomic

    folder = Path(folder) / subject.name
    arrays = {"image.nii.gz": subject.image.astype(np.float32), "brain_mask.nii.gz": subject.brain_mask}
    if subject.label is not None:
        arrays["label.nii.gz"] = subject.label.astype(np.uint8)
    for name, array in arrays.items():
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(subject.spacing_mm)
        write_image_atomic(image, folder / name)
    return folder

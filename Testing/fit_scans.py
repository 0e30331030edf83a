"""Raw phantom head scans for the ``fit`` tests: NIfTI files and DICOM series on their own (non-model) grids.

The heads come from :mod:`contrastive_anomaly.data.phantoms` (skull, scalp, folded cortex, ventricles), sampled
at 4 mm so that the real ``detect`` preprocessing (brain extraction, N4, registration) runs in seconds per scan.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from contrastive_anomaly.config import ModelConfig
from contrastive_anomaly.data.phantoms import head_phantom
from engine_fixtures import small_config

SCAN_SIZE = (48, 56, 48)
SCAN_SPACING_MM = (4.0, 4.0, 4.0)
UID_ROOT = "1.2.826.0.1.3680043.2.1125.77"


def phantom_scan(seed: int, contrast: str = "T1") -> sitk.Image:
    """A head phantom that differs per seed in size, bias field and noise (float32, LPS, 4 mm)."""
    return head_phantom(size=SCAN_SIZE, spacing=SCAN_SPACING_MM, contrast=contrast, seed=seed,
                        scale=0.95 + 0.03 * (seed % 4), bias_amplitude=0.1, noise_sigma=0.02).image


def write_nifti(path: Path, seed: int, contrast: str = "T1") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(phantom_scan(seed, contrast), str(path))
    return path


def write_dicom_series(folder: Path, seed: int, *, patient: str, description: str = "T1 MPRAGE",
                       extra_tags: tuple[tuple[str, str], ...] = ()) -> Path:
    """One axial DICOM series (int16 slices with position, orientation, spacing, PatientID, description and any
    ``extra_tags`` as ``("gggg|eeee", value)``)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = phantom_scan(seed)
    array = sitk.GetArrayFromImage(image)
    scaled = np.clip(array, 0, 32000).astype(np.int16)
    series_uid, study_uid = f"{UID_ROOT}.{seed}.1", f"{UID_ROOT}.{seed}"
    direction = image.GetDirection()
    orientation = "\\".join(f"{v:g}" for v in (direction[0], direction[3], direction[6], direction[1], direction[4],
                                                direction[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(scaled.shape[0]):
        plane = sitk.GetImageFromArray(scaled[k])
        plane.SetSpacing(SCAN_SPACING_MM[:2])
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (("0010|0020", patient), ("0010|0010", patient), ("0020|000e", series_uid),
                           ("0020|000d", study_uid), ("0008|0060", "MR"), ("0008|103e", description),
                           ("0020|0013", str(k + 1)), ("0020|0032", "\\".join(f"{v:.4f}" for v in position)),
                           ("0020|0037", orientation),
                           ("0028|0030", f"{SCAN_SPACING_MM[1]:g}\\{SCAN_SPACING_MM[0]:g}"),
                           ("0018|0050", f"{SCAN_SPACING_MM[2]:g}"), ("0008|0018", f"{series_uid}.{k + 1}"),
                           *extra_tags):
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(plane)
    return folder


def fit_config(path: Path) -> Path:
    """The small test config (tiny model, 32 x 32 x 16 grid) written as ``config.json`` for ``fit --config``."""
    cfg: ModelConfig = small_config()
    cfg.save(path)
    return path

"""Writing the "Anomaly" segmentation as a Slicer ``.seg.nrrd`` with slicerio (no Slicer needed).

The segment's name, colour, terminology and DICOM algorithm tags come from :mod:`.segment_appearance`, shared with
the Slicer panel. Geometry: slicerio works in IJK voxel order with an IJK-to-LPS matrix, built here
from the SimpleITK reference image (origin, spacing, direction are LPS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicerio

from .files import atomic_write
from .segment_appearance import slicerio_segment


def ijk_to_lps_matrix(reference: sitk.Image) -> np.ndarray:
    """4x4 matrix mapping voxel (i, j, k, 1) to LPS millimetres for a SimpleITK image."""
    direction = np.array(reference.GetDirection(), dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = direction @ np.diag(reference.GetSpacing())
    matrix[:3, 3] = reference.GetOrigin()
    return matrix


def write_anomaly_segmentation(mask_kji: np.ndarray, reference: sitk.Image, path: str | Path) -> Path:
    """Write ``mask_kji`` (KJI, nonzero = anomaly, on ``reference``'s grid) as a one-segment ``.seg.nrrd``."""
    path = Path(path)
    shape_ijk = tuple(reference.GetSize())
    mask_ijk = np.asarray(mask_kji > 0).transpose(2, 1, 0)
    if mask_ijk.shape != shape_ijk:
        raise ValueError(f"mask shape {mask_ijk.shape} (IJK) does not match the reference grid {shape_ijk}")
    segmentation = slicerio.create_segmentation(shape_ijk, ijk_to_lps_matrix(reference))
    slicerio.add_segment(segmentation, mask_ijk, slicerio_segment())
    with atomic_write(path) as tmp:
        slicerio.write_segmentation(str(tmp), segmentation)
    return path

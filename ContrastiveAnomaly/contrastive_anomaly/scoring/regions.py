"""The findings table: one row per connected anomaly region (shared by the CLI and the Slicer module).

Input arrays are **KJI** ``(slices, rows, cols)`` as ``SimpleITK.GetArrayFromImage`` returns them; geometry is
SimpleITK's: ``spacing`` in mm and ``origin`` in **LPS** mm, both in **IJK** order, ``direction`` the 3x3 matrix
(row-major, 9 numbers as ``Image.GetDirection()`` gives) whose columns are the I, J, K axes in LPS. The physical point
of a (continuous) index is ``origin + direction @ (spacing * ijk)``; RAS is LPS with x and y negated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .postprocess import neighbourhood

Vector3 = tuple[float, float, float]
LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
MM3_PER_ML = 1000.0


def voxel_volume_ml(spacing_mm: Sequence[float]) -> float:
    """Volume of one voxel in mL from its three spacings in mm (any axis order: only the product matters)."""
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if spacing.shape != (3,) or not np.all(spacing > 0):
        raise InputError(f"spacing must be three positive numbers in mm, got {tuple(np.ravel(spacing_mm))}")
    return float(np.prod(spacing)) / MM3_PER_ML


@dataclass
class Region:
    """One connected anomaly region.

    ``label`` is its value in the label map of :func:`label_regions` (1 = largest). Scores are in the map's units
    (intensity units for residual maps). ``centroid_ijk`` is the mean voxel index (I, J, K), continuous, 0-based;
    ``centroid_lps_mm`` / ``centroid_ras_mm`` the same point in physical space (mm).
    """

    label: int
    voxel_count: int
    volume_ml: float
    peak_score: float
    mean_score: float
    centroid_ijk: Vector3
    centroid_lps_mm: Vector3
    centroid_ras_mm: Vector3

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        row = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in row.items()}


def _direction_matrix(direction_lps: Sequence[float] | np.ndarray) -> np.ndarray:
    matrix = np.asarray(direction_lps, dtype=np.float64)
    if matrix.size != 9:
        raise InputError(f"direction must have 9 numbers (3x3, row-major), got {matrix.size}")
    return matrix.reshape(3, 3)


def index_to_lps(
    ijk: np.ndarray, spacing_ijk_mm: Sequence[float], origin_lps_mm: Sequence[float], direction_lps: Sequence[float]
) -> np.ndarray:
    """LPS points (mm) of continuous IJK indices, shape ``(..., 3)`` in and out."""
    spacing = np.asarray(spacing_ijk_mm, dtype=np.float64)
    origin = np.asarray(origin_lps_mm, dtype=np.float64)
    scaled = np.asarray(ijk, dtype=np.float64) * spacing
    return origin + scaled @ _direction_matrix(direction_lps).T


def label_regions(mask_kji: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Label the connected components of a KJI mask, renumbered so that 1 is the largest (ties: first in raster order).

    Returns ``(labels_kji int32, count)``; 0 is background.
    """
    mask = np.asarray(mask_kji) > 0
    if mask.ndim != 3:
        raise InputError(f"the anomaly mask must be 3D (KJI), got shape {mask.shape}")
    labels, count = ndimage.label(mask, structure=neighbourhood(connectivity))
    if count == 0:
        return labels.astype(np.int32), 0
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = np.argsort(-sizes, kind="stable")  # order[new - 1] = old - 1
    renumber = np.zeros(count + 1, dtype=np.int32)
    renumber[order + 1] = np.arange(1, count + 1, dtype=np.int32)
    return renumber[labels], int(count)


def find_regions(
    mask_kji: np.ndarray,
    score_kji: np.ndarray,
    spacing_ijk_mm: Sequence[float],
    origin_lps_mm: Sequence[float],
    direction_lps: Sequence[float],
    connectivity: int = 26,
) -> list[Region]:
    """One :class:`Region` per connected component of ``mask_kji``, largest volume first.

    ``score_kji`` gives the peak (max) and mean score of each region; it must have the mask's shape.
    """
    _direction_matrix(direction_lps)  # validate the geometry even when there is nothing to report
    mask = np.asarray(mask_kji) > 0
    scores = np.asarray(score_kji, dtype=np.float64)
    if scores.shape != mask.shape:
        raise InputError(f"score map shape {scores.shape} differs from mask shape {mask.shape}")
    labels, count = label_regions(mask, connectivity)
    if count == 0:
        return []
    # Statistics from the foreground voxels only (scipy's labelled maximum sorts the whole volume, ~15x slower).
    foreground_kji = np.nonzero(labels)
    slot = labels[foreground_kji] - 1  # 0-based region index of each foreground voxel
    fg_scores = scores[foreground_kji]
    voxel_counts = np.bincount(slot, minlength=count)
    peaks = np.full(count, -np.inf)
    np.maximum.at(peaks, slot, fg_scores)
    means = np.bincount(slot, weights=fg_scores, minlength=count) / voxel_counts
    centroids_kji = np.stack(
        [np.bincount(slot, weights=axis, minlength=count) / voxel_counts for axis in foreground_kji], axis=1
    )
    centroids_ijk = centroids_kji[:, ::-1]
    index = np.arange(1, count + 1)
    centroids_lps = index_to_lps(centroids_ijk, spacing_ijk_mm, origin_lps_mm, direction_lps)
    centroids_ras = centroids_lps * LPS_TO_RAS
    ml_per_voxel = voxel_volume_ml(spacing_ijk_mm)
    return [
        Region(
            label=int(label),
            voxel_count=int(voxel_counts[n]),
            volume_ml=float(voxel_counts[n] * ml_per_voxel),
            peak_score=float(peaks[n]),
            mean_score=float(means[n]),
            centroid_ijk=tuple(float(v) for v in centroids_ijk[n]),
            centroid_lps_mm=tuple(float(v) for v in centroids_lps[n]),
            centroid_ras_mm=tuple(float(v) for v in centroids_ras[n]),
        )
        for n, label in enumerate(index)
    ]


def regions_summary(regions: Sequence[Region]) -> dict[str, float | int]:
    """``{"total_volume_ml", "region_count", "peak_score"}``; the peak is 0.0 when there are no regions."""
    return {
        "total_volume_ml": float(sum(region.volume_ml for region in regions)),
        "region_count": len(regions),
        "peak_score": float(max((region.peak_score for region in regions), default=0.0)),
    }

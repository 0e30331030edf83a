"""The findings table, recomputed in the Slicer process whenever the threshold moves.

It calls the engine's own post-processing and region code (``contrastive_anomaly.scoring.postprocess`` and
``contrastive_anomaly.scoring.regions``: numpy and scipy only, no torch), so the panel and ``detect`` count and measure
regions the same way.

Arrays are **KJI** ``(slices, rows, cols)`` as ``slicer.util.arrayFromVolume`` returns them. ``ijk_to_ras`` is the
volume node's 4x4 IJK-to-RAS matrix (mm), so centroids come out in **RAS** mm, the space of Slicer's views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contrastive_anomaly.errors import InputError
from contrastive_anomaly.scoring.postprocess import neighbourhood, remove_small_components
from contrastive_anomaly.scoring.regions import MM3_PER_ML, Region, find_regions

Finding = Region  # one connected anomaly region; label 1 is the largest


@dataclass(frozen=True)
class FindingsSummary:
    """What the panel shows under the slider."""

    total_volume_ml: float
    region_count: int


def structure_for(connectivity: int) -> np.ndarray:
    """3x3x3 neighbourhood for 6-, 18- or 26-connectivity (``ValueError`` otherwise)."""
    try:
        return neighbourhood(connectivity)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def voxel_volume_ml(ijk_to_ras: np.ndarray) -> float:
    """Volume of one voxel in mL: |det| of the 3x3 part of the IJK-to-RAS matrix (mm^3) / 1000."""
    return float(abs(np.linalg.det(np.asarray(ijk_to_ras, dtype=np.float64)[:3, :3]))) / MM3_PER_ML


def native_component_limit(max_removed_model_voxels: int, model_spacing_mm: float, native_voxel_ml: float) -> int:
    """The engine removes components of at most N voxels on its model grid (``model_spacing_mm`` isotropic); on the
    scan's own grid the same physical size is ``N * model voxel volume / native voxel volume`` voxels (rounded down)."""
    if max_removed_model_voxels <= 0 or native_voxel_ml <= 0:
        return max(int(max_removed_model_voxels), 0)
    model_voxel_ml = float(model_spacing_mm) ** 3 / MM3_PER_ML
    return int(np.floor(max_removed_model_voxels * model_voxel_ml / native_voxel_ml + 1e-9))


def anomaly_mask(map_kji: np.ndarray, threshold: float, max_removed_component_voxels: int,
                 connectivity: int = 26) -> np.ndarray:
    """Boolean KJI mask ``map > threshold`` without the components of at most ``max_removed_component_voxels``.

    Raising the threshold never adds voxels: every component of the smaller raw mask lies inside one component of
    the larger one, which is at least as big, so it cannot survive the size filter alone.
    """
    raw = np.asarray(map_kji) > threshold
    if max_removed_component_voxels <= 0 or not raw.any():
        return raw
    return remove_small_components(raw, max_removed_component_voxels, connectivity)


def find_findings(map_kji: np.ndarray, mask_kji: np.ndarray, ijk_to_ras: np.ndarray,
                  connectivity: int = 26) -> list[Finding]:
    """One :class:`Finding` per connected component of ``mask_kji``, largest first."""
    if np.shape(map_kji) != np.shape(mask_kji):
        raise ValueError(f"map shape {np.shape(map_kji)} differs from mask shape {np.shape(mask_kji)}")
    ijk_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(ijk_to_ras, dtype=np.float64)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    direction = ijk_to_lps[:3, :3] / spacing
    return find_regions(mask_kji, map_kji, spacing, ijk_to_lps[:3, 3], direction.ravel(), connectivity)


def summarize(findings: list[Finding]) -> FindingsSummary:
    """Total volume (mL) and number of regions."""
    return FindingsSummary(total_volume_ml=float(sum(f.volume_ml for f in findings)), region_count=len(findings))

"""The findings table, recomputed in the Slicer process whenever the threshold moves (numpy + scipy only).

This mirrors the engine's post-processing (``contrastive_anomaly.postprocess.binarize`` and
``contrastive_anomaly.regions``) without importing it, because the engine's package may pull in heavy dependencies
that are not installed yet when a scene is reopened. ``Testing/test_slicer_findings.py`` checks that both agree.

Arrays are **KJI** ``(slices, rows, cols)`` as ``slicer.util.arrayFromVolume`` returns them. ``ijk_to_ras`` is the
volume node's 4x4 IJK-to-RAS matrix (mm), so centroids come out in **RAS** mm, the space of Slicer's views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CONNECTIVITY_TO_RANK = {6: 1, 18: 2, 26: 3}
MM3_PER_ML = 1000.0


@dataclass(frozen=True)
class Finding:
    """One connected anomaly region. ``label`` 1 is the largest; scores are in the map's units."""

    label: int
    voxel_count: int
    volume_ml: float
    peak_score: float
    mean_score: float
    centroid_ras_mm: tuple[float, float, float]


@dataclass(frozen=True)
class FindingsSummary:
    """What the panel shows under the slider."""

    total_volume_ml: float
    region_count: int


def structure_for(connectivity: int) -> np.ndarray:
    """3x3x3 neighbourhood for 6-, 18- or 26-connectivity."""
    if connectivity not in CONNECTIVITY_TO_RANK:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    return ndimage.generate_binary_structure(3, CONNECTIVITY_TO_RANK[connectivity])


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
    labels, count = ndimage.label(raw, structure=structure_for(connectivity))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes > max_removed_component_voxels
    keep[0] = False
    return keep[labels]


def find_findings(map_kji: np.ndarray, mask_kji: np.ndarray, ijk_to_ras: np.ndarray,
                  connectivity: int = 26) -> list[Finding]:
    """One :class:`Finding` per connected component of ``mask_kji``, largest first (ties: raster order)."""
    scores = np.asarray(map_kji, dtype=np.float64)
    mask = np.asarray(mask_kji) > 0
    if scores.shape != mask.shape:
        raise ValueError(f"map shape {scores.shape} differs from mask shape {mask.shape}")
    labels, count = ndimage.label(mask, structure=structure_for(connectivity))
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    peaks = np.asarray(ndimage.maximum(scores, labels, index), dtype=np.float64).reshape(count)
    means = np.asarray(ndimage.mean(scores, labels, index), dtype=np.float64).reshape(count)
    centroids_kji = np.asarray(ndimage.center_of_mass(mask, labels, index), dtype=np.float64).reshape(count, 3)
    centroids_ijk1 = np.column_stack([centroids_kji[:, ::-1], np.ones(count)])
    centroids_ras = (np.asarray(ijk_to_ras, dtype=np.float64) @ centroids_ijk1.T).T[:, :3]
    ml_per_voxel = voxel_volume_ml(ijk_to_ras)
    order = np.argsort(-sizes, kind="stable")
    return [
        Finding(
            label=rank + 1,
            voxel_count=int(sizes[n]),
            volume_ml=float(sizes[n] * ml_per_voxel),
            peak_score=float(peaks[n]),
            mean_score=float(means[n]),
            centroid_ras_mm=(float(centroids_ras[n, 0]), float(centroids_ras[n, 1]), float(centroids_ras[n, 2])),
        )
        for rank, n in enumerate(order)
    ]


def summarize(findings: list[Finding]) -> FindingsSummary:
    """Total volume (mL) and number of regions."""
    return FindingsSummary(total_volume_ml=float(sum(f.volume_ml for f in findings)), region_count=len(findings))

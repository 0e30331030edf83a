"""Stroke-like lesion: a wedge of 10–80 mL between the lateral ventricle and the lateral cortical surface.

Arrays are KJI; ``spacing_mm`` is (K, J, I) in mm. The wedge is a cone with its apex at the centroid V of one
hemisphere's ventricle (or of its deep brain when no ventricle is found) and its axis towards a point P on the
lateral brain surface of that hemisphere, so it is narrow in depth and wide at the cortex, like an arterial
territory. It runs to |VP| + 10 mm and is intersected with parenchyma ((GM + WM) probability > 0.5) and with the
hemisphere. The cone half-angle is found by bisection so that the wedge volume is as close as possible to
the sampled volume; the achieved volume is recorded. Optional atrophy is not implemented.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from .common import (
    LR_AXIS,
    LesionConfig,
    choose_voxel,
    coordinates_mm,
    distance_to_outside_mm,
    erf_alpha,
    midline_index,
    relative_change,
    signed_distance_mm,
    ventricles,
    voxel_volume_ml,
)

BISECTION_STEPS = 24
LATERAL_FRACTION = 0.6  # the apex lies on the outer 40 % of the hemisphere's left-right extent
AXIAL_BAND_MM = 15.0  # and within this distance (along K) of the ventricle centroid, when possible
SURFACE_MARGIN_MM = 10.0  # the wedge runs this far past the surface point so the cortex is fully included


def stroke_alpha_and_change(image: np.ndarray, brain: np.ndarray, tissue: np.ndarray, contrast: str,
                            spacing: tuple[float, float, float], rng: np.random.Generator, cfg: LesionConfig
                            ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Blending weights and relative change of one wedge lesion, with its parameters."""
    side = 1 if rng.random() < 0.5 else -1
    lr = (np.arange(brain.shape[LR_AXIS]) - midline_index(brain)) * side
    hemisphere = np.broadcast_to((lr > 0)[None, None, :], brain.shape) & brain
    ventricle = ventricles(tissue, brain, spacing, cfg) & hemisphere
    deep = (distance_to_outside_mm(brain, spacing) >= cfg.ventricle_edge_mm) & hemisphere
    target_region = ventricle if ventricle.any() else (deep if deep.any() else hemisphere)
    deep_point = np.array(ndimage.center_of_mass(target_region), dtype=np.float32)
    surface = hemisphere & ~ndimage.binary_erosion(brain)
    lateral = surface & (lr >= LATERAL_FRACTION * lr[hemisphere.any(axis=(0, 1))].max())[None, None, :]
    k_mm = np.arange(brain.shape[0]) * spacing[0]
    band = lateral & (np.abs(k_mm - deep_point[0] * spacing[0]) <= AXIAL_BAND_MM)[:, None, None]
    surface_point = choose_voxel(band if band.any() else (lateral if lateral.any() else surface), rng)
    if surface_point is None:
        raise ValueError("the brain mask has no surface voxels in the chosen hemisphere")

    spacing_arr = np.asarray(spacing, dtype=np.float32)
    surface_mm, apex_mm = np.array(surface_point, dtype=np.float32) * spacing_arr, deep_point * spacing_arr
    axis = surface_mm - apex_mm
    length = float(np.linalg.norm(axis))
    axis /= max(length, 1e-6)
    offset = coordinates_mm(brain.shape, spacing) - apex_mm[:, None, None, None]
    along = np.einsum("i,iklm->klm", axis, offset)
    dist = np.sqrt((offset**2).sum(0))
    angle = np.arccos(np.clip(np.divide(along, dist, out=np.ones_like(dist), where=dist > 0), -1.0, 1.0))
    parenchyma = (tissue[1] + tissue[2]) > cfg.stroke_tissue_probability
    allowed = (along >= 0) & (along <= length + SURFACE_MARGIN_MM) & parenchyma & hemisphere

    target_ml = float(rng.uniform(*cfg.stroke_volume_ml))
    ml_per_voxel = voxel_volume_ml(spacing)
    low, high = 0.0, math.radians(cfg.stroke_max_half_angle_deg)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (low + high)
        if (allowed & (angle <= mid)).sum() * ml_per_voxel < target_ml:
            low = mid
        else:
            high = mid
    region = allowed & (angle <= high)
    alpha = erf_alpha(signed_distance_mm(region, spacing) - 0.5 * min(spacing) * np.where(region, -1, 1),
                      cfg.edge_mm, cfg.min_alpha)
    delta = relative_change(contrast, cfg.stroke_change_hyper, cfg.stroke_change_t1, rng)
    change = np.full(brain.shape, delta, dtype=np.float32)
    params = {"hemisphere": "plus_i" if side > 0 else "minus_i", "surface_point_kji": list(surface_point),
              "apex_kji": deep_point.tolist(), "length_mm": length,
              "half_angle_deg": math.degrees(high), "target_volume_ml": target_ml,
              "wedge_volume_ml": float(region.sum() * ml_per_voxel), "relative_change": delta,
              "atrophy": False}
    return alpha, change, params

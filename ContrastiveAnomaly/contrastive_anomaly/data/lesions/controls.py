"""Control anomalies (docs/DATA_PIPELINE.md §4): an intensity-only sphere and a shape-only local deformation.

Arrays are KJI; ``spacing_mm`` is (K, J, I) in mm.

* Intensity only: a sphere (erf edge) in deep WM or cortex whose intensities are scaled by (1 + x) (brighter) or
  (1 - x) (darker); no shape change. ``x`` is sampled from the configured range unless given
  (``options["intensity_change"]``, signed, for sweeps). Images live in [0, 1] and bright tissue (WM on T1 sits
  near 0.8-1.0) would be clipped at 1 by a brightening, leaving almost nothing visible; so the direction is
  darker whenever the median brightened value inside the sphere would exceed :data:`CLIP_SAFE_MAXIMUM`.
* Shape only: a smooth, compactly supported displacement ``u(x) = A·(1 - (ρ/R)²)²·d`` (fixed random direction d,
  zero outside the sphere of radius R), applied by backward mapping; no intensity change. The mask is the support
  (ρ < R) inside the brain; the image is unchanged outside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .common import (
    LesionConfig,
    choose_voxel,
    coordinates_mm,
    distance_to_outside_mm,
    erf_alpha,
)

CORTEX_GM_PROBABILITY = 0.5
CLIP_SAFE_MAXIMUM = 1.0  # the top of the model-grid intensity range
MAX_AMPLITUDE_FRACTION = 0.5  # A <= R/2 keeps the deformation invertible (|du/dρ| < 1)


def _centre_mm(centre: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    return np.array(centre, dtype=np.float32) * np.asarray(spacing, dtype=np.float32)


def intensity_control(image: np.ndarray, brain: np.ndarray, tissue: np.ndarray, spacing: tuple[float, float, float],
                      rng: np.random.Generator, cfg: LesionConfig, options: dict[str, Any]
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Blending weights and the per-voxel target (image scaled by 1 + x) of one sphere."""
    radius = float(rng.uniform(*cfg.control_radius_mm))
    change = float(options.get("intensity_change", rng.uniform(*cfg.control_intensity_change)))
    edge = distance_to_outside_mm(brain, spacing)
    location = "deep_wm" if rng.random() < 0.5 else "cortex"
    candidates = ((tissue[2] > cfg.ms_deep_wm_probability) & (edge >= radius) if location == "deep_wm"
                  else (tissue[1] > CORTEX_GM_PROBABILITY)) & brain
    centre = choose_voxel(candidates, rng)
    if centre is None:
        centre, location = choose_voxel(brain, rng), f"{location}_fallback"
    offset = coordinates_mm(image.shape, spacing) - _centre_mm(centre, spacing)[:, None, None, None]
    alpha = erf_alpha(np.sqrt((offset**2).sum(0)) - radius, cfg.edge_mm, cfg.min_alpha)
    inside = (alpha > 0) & brain
    if "intensity_change" not in options and inside.any() and \
            float(np.median(image[inside])) * (1.0 + change) > CLIP_SAFE_MAXIMUM:
        change = -change  # brightening would be clipped at the top of the range: darken instead
    target = (image * (1.0 + change)).astype(np.float32)
    return alpha, target, {"centre_kji": list(centre), "location": location, "radius_mm": radius,
                           "relative_change": change, "direction": "brighter" if change > 0 else "darker"}


def shape_control(image: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                  rng: np.random.Generator, cfg: LesionConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Returns (deformed image, support mask uint8 inside the brain, params)."""
    radius = float(rng.uniform(*cfg.control_shape_radius_mm))
    amplitude = min(float(rng.uniform(*cfg.control_shape_amplitude_mm)), MAX_AMPLITUDE_FRACTION * radius)
    edge = distance_to_outside_mm(brain, spacing)
    centre = choose_voxel(brain & (edge >= 0.5 * radius), rng) or choose_voxel(brain, rng)
    if centre is None:
        raise ValueError("the brain mask is empty")
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    offset = coordinates_mm(image.shape, spacing) - _centre_mm(centre, spacing)[:, None, None, None]
    s2 = (offset**2).sum(0) / radius**2
    support = s2 < 1.0
    weight = np.where(support, (1.0 - s2) ** 2, 0.0) * amplitude
    spacing_arr = np.asarray(spacing, dtype=np.float32)[:, None, None, None]
    source = np.indices(image.shape, dtype=np.float32) - weight[None] * direction[:, None, None, None] / spacing_arr
    warped = ndimage.map_coordinates(image.astype(np.float32), source, order=1, mode="nearest")
    region = support & brain
    deformed = np.where(region, warped, image).astype(np.float32)
    return deformed, region.astype(np.uint8), {"centre_kji": list(centre), "radius_mm": radius,
                                               "amplitude_mm": amplitude, "direction_kji": direction.tolist()}

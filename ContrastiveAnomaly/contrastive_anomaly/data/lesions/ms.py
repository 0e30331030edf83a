"""MS-like lesions: 5–15 small perturbed ellipsoids, 60 % periventricular, the rest in deep white matter
(docs/DATA_PIPELINE.md §4).

Arrays are KJI; ``spacing_mm`` is (K, J, I) in mm. Volumes are log-uniform in the configured range (nominal
ellipsoid volume before the boundary perturbation, which is capped at half the smallest semi-axis so that small
lesions keep their size).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .common import (
    LesionConfig,
    choose_voxel,
    coordinates_mm,
    distance_to_outside_mm,
    erf_alpha,
    random_rotation,
    relative_change,
    smooth_noise,
    ventricles,
)

NOISE_CORRELATION_MM = 4.0


def _placement_regions(tissue: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                       cfg: LesionConfig) -> tuple[np.ndarray, np.ndarray]:
    """(periventricular candidates, deep-WM candidates) as boolean KJI arrays."""
    ventricle = ventricles(tissue, brain, spacing, cfg)
    edge_mm = distance_to_outside_mm(brain, spacing)
    not_csf = tissue[0] <= cfg.ventricle_csf_probability
    if ventricle.any():
        near = distance_to_outside_mm(~ventricle, spacing) <= cfg.ms_periventricular_mm
    else:
        near = np.zeros_like(brain)
    periventricular = near & ~ventricle & not_csf & brain
    deep_wm = (tissue[2] > cfg.ms_deep_wm_probability) & (edge_mm >= cfg.ms_deep_wm_edge_mm) & brain
    return periventricular, deep_wm


def ms_alpha_and_change(image: np.ndarray, brain: np.ndarray, tissue: np.ndarray, contrast: str,
                        spacing: tuple[float, float, float], rng: np.random.Generator, cfg: LesionConfig
                        ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Blending weights and per-voxel relative changes of all lesions (the lesion with the largest weight wins)."""
    periventricular, deep_wm = _placement_regions(tissue, brain, spacing, cfg)
    fallback = (distance_to_outside_mm(brain, spacing) >= cfg.ms_deep_wm_edge_mm) & brain
    coords = coordinates_mm(image.shape, spacing)
    noise = smooth_noise(image.shape, NOISE_CORRELATION_MM / min(spacing), rng)
    alpha = np.zeros(image.shape, dtype=np.float32)
    change = np.zeros(image.shape, dtype=np.float32)
    count = int(rng.integers(cfg.ms_count[0], cfg.ms_count[1] + 1))
    lesions: list[dict[str, Any]] = []
    for _ in range(count):
        location = "periventricular" if rng.random() < cfg.ms_periventricular_fraction else "deep_wm"
        region = periventricular if location == "periventricular" else deep_wm
        centre = choose_voxel(region, rng)
        if centre is None:
            centre, location = choose_voxel(fallback if fallback.any() else brain, rng), f"{location}_fallback"
        volume_ml = float(math.exp(rng.uniform(math.log(cfg.ms_volume_ml[0]), math.log(cfg.ms_volume_ml[1]))))
        ratio = float(rng.uniform(*cfg.ms_axis_ratio))
        radius = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi * ratio)) ** (1.0 / 3.0)
        semi_axes = np.array([radius, radius, radius * ratio], dtype=np.float32)
        rotation = random_rotation(rng)
        noise_mm = min(float(rng.uniform(*cfg.ms_boundary_noise_mm)), 0.5 * radius)
        if contrast == "T1" and rng.random() < cfg.ms_black_hole_probability:
            delta = float(rng.uniform(*cfg.ms_black_hole_t1))
        else:
            delta = relative_change(contrast, cfg.ms_change_hyper, cfg.ms_change_t1, rng)
        centre_mm = np.array(centre, dtype=np.float32) * np.asarray(spacing, dtype=np.float32)
        local = np.einsum("ji,jkls->ikls", rotation, coords - centre_mm[:, None, None, None])
        rho = np.sqrt((local**2).sum(0))
        r = np.sqrt(((local / semi_axes[:, None, None, None]) ** 2).sum(0))
        # radial distance to the ellipsoid surface along the ray from the centre (negative inside)
        distance = rho - np.divide(rho, r, out=np.full_like(rho, radius), where=r > 0)
        lesion_alpha = erf_alpha(distance - noise_mm * noise, cfg.edge_mm, cfg.min_alpha)
        wins = lesion_alpha > alpha
        alpha[wins], change[wins] = lesion_alpha[wins], delta
        lesions.append({"centre_kji": list(centre), "location": location, "volume_ml": volume_ml,
                        "semi_axes_mm": semi_axes.tolist(), "rotation": rotation.tolist(),
                        "boundary_noise_mm": noise_mm, "relative_change": delta})
    return alpha, change, {"count": count, "lesions": lesions}

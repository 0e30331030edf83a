"""Tumour-like lesion: necrotic core, rim and oedema shell, with mass effect (docs/DATA_PIPELINE.md §4).

Arrays are KJI; ``spacing_mm`` is (K, J, I) in mm. The tumour (core + rim) is an irregular blob of the sampled
volume; the oedema is a shell of the sampled thickness around it, restricted to white matter (WM probability
> 0.5). Mass effect is a radial displacement from the tumour centre, ``u(ρ) = A·ρ/R`` inside the tumour radius R
and ``A·exp(-(ρ-R)/λ)`` outside, applied (backward mapping, linear interpolation) to the image, the tissue maps
and the brain mask before painting, so ventricles and sulci are pushed away. The displaced voxels outside the
lesion are not in the
mask: the mask marks the lesion only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .common import (
    HYPERINTENSE_CONTRASTS,
    LR_AXIS,
    LesionConfig,
    choose_voxel,
    coordinates_mm,
    distance_to_outside_mm,
    erf_alpha,
    midline_index,
    smooth_noise,
    sphere_radius_mm,
)

SHAPE_NOISE_CORRELATION_MM = 8.0
MASK_THRESHOLD = 0.5


def displace_radially(arrays: list[np.ndarray], centre_mm: np.ndarray, radius_mm: float, amplitude_mm: float,
                      decay_mm: float, spacing: tuple[float, float, float], orders: list[int]) -> list[np.ndarray]:
    """Push every array away from ``centre_mm`` by the mass-effect field (backward mapping; KJI arrays)."""
    shape = arrays[0].shape
    coords = coordinates_mm(shape, spacing) - centre_mm[:, None, None, None]
    rho = np.sqrt((coords**2).sum(0))
    push = np.where(rho < radius_mm, amplitude_mm * rho / radius_mm,
                    amplitude_mm * np.exp(-(rho - radius_mm) / decay_mm))
    unit = np.divide(coords, rho, out=np.zeros_like(coords), where=rho > 0)
    source_vox = (coords - push * unit + centre_mm[:, None, None, None]) / np.asarray(spacing)[:, None, None, None]
    return [ndimage.map_coordinates(a.astype(np.float32), source_vox, order=o, mode="nearest").astype(np.float32)
            for a, o in zip(arrays, orders, strict=True)]


def tumour_lesion(image: np.ndarray, brain: np.ndarray, tissue: np.ndarray, contrast: str,
                  spacing: tuple[float, float, float], rng: np.random.Generator, cfg: LesionConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Returns (displaced image, displaced brain, displaced tissue, alpha, relative change, zones, params)."""
    volume_ml = float(rng.uniform(*cfg.tumour_volume_ml))
    radius = sphere_radius_mm(volume_ml)
    lr_mm = np.abs(np.arange(brain.shape[LR_AXIS]) - midline_index(brain)) * spacing[LR_AXIS]
    lateral = (lr_mm >= 0.5 * radius)[None, None, :]
    edge = distance_to_outside_mm(brain, spacing)
    parenchyma = (tissue[1] + tissue[2]) > 0.5
    centre = choose_voxel(parenchyma & lateral & (edge >= 0.6 * radius) & brain, rng)
    placement = "hemisphere"
    if centre is None:
        centre = tuple(int(v) for v in np.unravel_index(int(np.argmax(edge * lateral)), edge.shape))
        placement = "deepest_lateral_fallback"
    centre_mm = np.array(centre, dtype=np.float32) * np.asarray(spacing, dtype=np.float32)
    amplitude = float(rng.uniform(*cfg.tumour_mass_effect_mm))
    displaced = displace_radially([image, brain.astype(np.float32), *tissue], centre_mm, radius, amplitude,
                                  cfg.tumour_mass_effect_decay_mm, spacing, [1, 1, 1, 1, 1])
    image_d, brain_d, tissue_d = displaced[0], displaced[1] > MASK_THRESHOLD, np.stack(displaced[2:])

    irregularity = float(rng.uniform(*cfg.tumour_irregularity))
    rim_mm, oedema_mm = float(rng.uniform(*cfg.tumour_rim_mm)), float(rng.uniform(*cfg.tumour_oedema_mm))
    coords = coordinates_mm(image.shape, spacing) - centre_mm[:, None, None, None]
    rho = np.sqrt((coords**2).sum(0))
    shape_noise = smooth_noise(image.shape, SHAPE_NOISE_CORRELATION_MM / min(spacing), rng)
    signed = rho - radius * (1.0 + irregularity * shape_noise)  # mm, negative inside the tumour
    core_fraction = float(rng.uniform(*cfg.tumour_core_fraction))
    core_edge = -max(rim_mm, (1.0 - core_fraction ** (1.0 / 3.0)) * radius)
    oedema_allowed = (tissue_d[2] > MASK_THRESHOLD) | (signed < 0)  # vasogenic oedema spreads in white matter
    alpha = erf_alpha(signed - oedema_mm, cfg.edge_mm, cfg.min_alpha) * oedema_allowed
    zones = np.zeros(image.shape, dtype=np.uint8)
    zones[alpha > 0] = 3
    zones[(signed < 0) & (alpha > 0)] = 2
    zones[(signed < core_edge) & (alpha > 0)] = 1

    hyper = contrast in HYPERINTENSE_CONTRASTS
    enhancing = bool(rng.random() < cfg.tumour_rim_enhancing_probability)
    changes = {
        "core": cfg.tumour_core_hyper if hyper else cfg.tumour_core_t1,
        "rim": float(rng.uniform(*cfg.tumour_rim_hyper)) if hyper else
        (cfg.tumour_rim_enhancing_t1 if enhancing else float(rng.uniform(*cfg.tumour_rim_t1))),
        "oedema": float(rng.uniform(*(cfg.tumour_oedema_hyper if hyper else cfg.tumour_oedema_t1))),
    }
    change = np.zeros(image.shape, dtype=np.float32)
    for code, name in ((1, "core"), (2, "rim"), (3, "oedema")):
        change[zones == code] = changes[name]
    params = {"centre_kji": list(centre), "placement": placement, "volume_ml": volume_ml, "radius_mm": radius,
              "irregularity": irregularity, "rim_mm": rim_mm, "oedema_mm": oedema_mm, "core_fraction": core_fraction,
              "mass_effect_mm": amplitude, "mass_effect_decay_mm": cfg.tumour_mass_effect_decay_mm,
              "rim_enhancing": enhancing if not hyper else None, "relative_change": changes,
              "zones": {"1": "core", "2": "rim", "3": "oedema"}}
    return image_d, brain_d, tissue_d, alpha, change, zones, params

"""Shared pieces of the lesion generators: the case record, saving, painting with exact masks, placement helpers.

Arrays are KJI ``(slices, rows, cols)``; ``spacing_mm`` is given in the same (K, J, I) order. Physical
coordinates used here are mm along the array axes from the array origin (not LPS/RAS). The left-right axis is
taken to be I (columns), as on the atlas-aligned model grid; the midline is the brain mask's centroid along it.

**Mask rule.** A generator builds a blending weight ``alpha`` in [0, 1] (an erf edge on a signed distance) and a
target intensity (WM median + unit·change, see :func:`intensity_scale`), and paints
``new = (1 - alpha) * old + alpha * target``. Weights below ``min_alpha`` and voxels outside the brain are not
painted. The mask is exactly the set of voxels whose value the paint changed
(``new != old``); a voxel already equal to its target is therefore not in the mask.
For mass effect (tumour) and the shape-only control the image is also displaced, which moves voxels outside the
mask: the mask marks the lesion (tumour) or the deformation support (shape control), not every moved voxel; the
displaced image before painting is kept in ``LesionCase.background_kji`` so that the rule above can be checked
against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.special import erfc

from ...storage.files import write_image_atomic, write_json_atomic

HYPERINTENSE_CONTRASTS = ("T2", "FLAIR", "PD")
LR_AXIS = 2  # I (columns) is left-right on the atlas-aligned model grid
MIN_CLASS_VOXELS = 10
NOISE_CLIP_SD = 2.0
TUMOUR_CORE_ZONE, TUMOUR_RIM_ZONE, TUMOUR_OEDEMA_ZONE = 1, 2, 3


@dataclass
class LesionConfig:
    """Ranges of docs/DATA_PIPELINE.md §4 (volumes in mL, lengths in mm, contrasts relative to the WM median)."""

    edge_mm: float = 1.0
    min_alpha: float = 0.1
    texture_fraction: float = 0.03  # multiplicative Gaussian texture of painted lesion intensities
    wm_reference_probability: float = 0.9
    # expected raw CSF/WM intensity ratio per contrast (docs/DATA_PIPELINE.md §3 midpoints; T1: typical T1 images)
    csf_wm_ratio: dict[str, float] = field(default_factory=lambda: {"T1": 0.225, "T2": 3.0, "PD": 1.45,
                                                                     "FLAIR": 0.2})
    # MS-like
    ms_count: tuple[int, int] = (5, 15)
    ms_volume_ml: tuple[float, float] = (0.03, 1.5)
    ms_axis_ratio: tuple[float, float] = (1.0, 2.5)
    ms_boundary_noise_mm: tuple[float, float] = (1.5, 3.0)
    ms_periventricular_fraction: float = 0.6
    ms_periventricular_mm: float = 6.0
    ms_deep_wm_probability: float = 0.9
    ms_deep_wm_edge_mm: float = 6.0
    ventricle_csf_probability: float = 0.5
    ventricle_midline_mm: float = 25.0
    ventricle_edge_mm: float = 10.0
    ms_change_hyper: tuple[float, float] = (0.40, 0.90)
    ms_change_t1: tuple[float, float] = (-0.35, -0.10)
    ms_black_hole_probability: float = 0.2
    ms_black_hole_t1: tuple[float, float] = (-0.50, -0.35)
    # tumour-like
    tumour_volume_ml: tuple[float, float] = (5.0, 60.0)
    tumour_irregularity: tuple[float, float] = (0.10, 0.30)
    tumour_rim_mm: tuple[float, float] = (2.0, 4.0)
    tumour_oedema_mm: tuple[float, float] = (5.0, 20.0)
    tumour_mass_effect_mm: tuple[float, float] = (2.0, 8.0)
    tumour_mass_effect_decay_mm: float = 15.0
    tumour_core_fraction: tuple[float, float] = (0.2, 0.6)
    tumour_core_t1: float = -0.40
    tumour_core_hyper: float = 1.00
    tumour_rim_t1: tuple[float, float] = (-0.10, 0.10)
    tumour_rim_enhancing_t1: float = 0.30
    tumour_rim_enhancing_probability: float = 0.5
    tumour_rim_hyper: tuple[float, float] = (0.30, 0.60)
    tumour_oedema_hyper: tuple[float, float] = (0.40, 0.70)
    tumour_oedema_t1: tuple[float, float] = (-0.20, -0.10)
    # stroke-like
    stroke_volume_ml: tuple[float, float] = (10.0, 80.0)
    stroke_tissue_probability: float = 0.5
    stroke_max_half_angle_deg: float = 70.0
    stroke_change_hyper: tuple[float, float] = (0.50, 1.00)
    stroke_change_t1: tuple[float, float] = (-0.40, -0.20)
    # controls
    control_radius_mm: tuple[float, float] = (4.0, 10.0)
    control_intensity_change: tuple[float, float] = (0.1, 0.6)
    control_shape_radius_mm: tuple[float, float] = (8.0, 16.0)
    control_shape_amplitude_mm: tuple[float, float] = (2.0, 5.0)


@dataclass
class LesionCase:
    """One synthetic case on the input grid (KJI).

    ``image_kji``: the image with the lesion (float32); ``mask_kji``: uint8 lesion mask (see the mask rule above);
    ``background_kji``: the image the lesion was painted on (the input, or the displaced input for mass effect);
    ``zones_kji``: optional uint8 zone labels (tumour: 1 core, 2 rim, 3 oedema); ``core_mask_kji``: the lesion
    without its faint surround (tumour: core + rim, the "tumour core" of BraTS, without the oedema; other kinds:
    the whole mask); ``brain_mask_kji``: the brain
    mask after any displacement; ``tissue``: the (CSF, GM, WM) maps after any displacement; ``params``: every
    sampled parameter and the seed (JSON-serialisable).
    """

    image_kji: np.ndarray
    mask_kji: np.ndarray
    params: dict[str, Any]
    background_kji: np.ndarray
    brain_mask_kji: np.ndarray
    tissue: np.ndarray | None = None
    zones_kji: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    core_mask_kji: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.core_mask_kji is None:
            if self.zones_kji is not None:
                core = (self.zones_kji == TUMOUR_CORE_ZONE) | (self.zones_kji == TUMOUR_RIM_ZONE)
                self.core_mask_kji = (core & (self.mask_kji > 0)).astype(np.uint8)
            else:
                self.core_mask_kji = np.asarray(self.mask_kji, dtype=np.uint8)


def save_case(case: LesionCase, folder: Path, reference_geometry: sitk.Image | None = None,
              name: str = "case") -> dict[str, Path]:
    """Write ``<name>_image.nii.gz``, ``<name>_mask.nii.gz`` and ``<name>_params.json`` into ``folder``.

    ``reference_geometry`` gives origin, spacing and direction (LPS); without it the spacing recorded in the
    params is used with zero origin and identity direction. Files are written atomically.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"image": folder / f"{name}_image.nii.gz", "mask": folder / f"{name}_mask.nii.gz",
             "params": folder / f"{name}_params.json"}
    for key, array in (("image", case.image_kji.astype(np.float32)), ("mask", case.mask_kji.astype(np.uint8))):
        image = sitk.GetImageFromArray(array)
        if reference_geometry is not None:
            image.CopyInformation(reference_geometry)
        else:
            image.SetSpacing([float(s) for s in reversed(case.params["spacing_mm_kji"])])
        write_image_atomic(image, paths[key])
    write_json_atomic(case.params, paths["params"], sort_keys=True)
    return paths


def voxel_volume_ml(spacing_mm: tuple[float, float, float]) -> float:
    return float(np.prod(spacing_mm)) / 1000.0


def coordinates_mm(shape: tuple[int, ...], spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """``[3, K, J, I]`` voxel-centre coordinates in mm along the array axes (origin at voxel 0)."""
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing_mm, strict=True)],
                                indexing="ij"))


def distance_to_outside_mm(region: np.ndarray, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) of each voxel inside ``region`` to the nearest voxel outside it (0 outside)."""
    return ndimage.distance_transform_edt(region, sampling=spacing_mm).astype(np.float32)


def signed_distance_mm(region: np.ndarray, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Signed distance (mm) to the boundary of a binary region: negative inside, positive outside."""
    inside = ndimage.distance_transform_edt(region, sampling=spacing_mm)
    outside = ndimage.distance_transform_edt(~region, sampling=spacing_mm)
    return (outside - inside).astype(np.float32)


def erf_alpha(signed_mm: np.ndarray, edge_mm: float, min_alpha: float) -> np.ndarray:
    """Blending weight 0.5·erfc(d / edge) of a signed distance (mm, negative inside); weights < min_alpha -> 0."""
    alpha = 0.5 * erfc(signed_mm / edge_mm)
    alpha[alpha < min_alpha] = 0.0
    return alpha.astype(np.float32)


def paint(image: np.ndarray, alpha: np.ndarray, target: np.ndarray | float, brain: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Blend ``target`` into ``image`` with weight ``alpha`` inside the brain; returns (new image, exact mask).

    The target is clipped to [0, 1], the intensity range of the model grid.
    """
    weight = np.where(brain, alpha, 0.0).astype(np.float32)
    new = ((1.0 - weight) * image + weight * np.clip(target, 0.0, 1.0)).astype(np.float32)
    new = np.where(weight > 0, new, image).astype(np.float32)
    return new, (new != image).astype(np.uint8)


def relative_change(contrast: str, hyper: tuple[float, float], t1: tuple[float, float],
                    rng: np.random.Generator) -> float:
    """A signed relative intensity change: from ``hyper`` on T2/FLAIR/PD, from ``t1`` on T1."""
    return float(rng.uniform(*(hyper if contrast in HYPERINTENSE_CONTRASTS else t1)))


def intensity_scale(image: np.ndarray, brain: np.ndarray, tissue: np.ndarray, contrast: str, cfg: LesionConfig
                    ) -> tuple[float, float]:
    """(WM median, intensity of one "raw WM unit") of a percentile-normalised image.

    docs/DATA.md states lesion contrasts relative to the WM median of the raw image. After percentile normalisation
    the raw zero is no longer at 0 (on T2, WM sits near the bottom of [0, 1]), so a relative change ``c`` is
    painted as ``WM + unit·c``, where ``unit`` is the normalised size of the raw WM intensity. It is estimated from
    the WM and CSF medians and the expected raw CSF/WM ratio of the contrast (``cfg.csf_wm_ratio``): with
    raw → normalised ``n = n0 + unit·raw`` and raw WM = 1, CSF = ratio, ``unit = (n_csf − n_wm) / (ratio − 1)``.
    Falls back to ``unit = WM median`` (raw zero at 0) when too few confident CSF/WM voxels exist or the
    estimate is not positive.
    """
    wm = (tissue[2] > cfg.wm_reference_probability) & brain
    csf = (tissue[0] > cfg.wm_reference_probability) & brain
    wm_median = float(np.median(image[wm] if wm.sum() >= MIN_CLASS_VOXELS else image[brain]))
    if csf.sum() < MIN_CLASS_VOXELS or wm.sum() < MIN_CLASS_VOXELS:
        return wm_median, wm_median
    unit = (float(np.median(image[csf])) - wm_median) / (cfg.csf_wm_ratio[contrast] - 1.0)
    return wm_median, unit if unit > 0 else wm_median


def midline_index(brain: np.ndarray) -> float:
    """Centroid of the brain along the left-right axis (I), in voxels."""
    return float(ndimage.center_of_mass(brain)[LR_AXIS])


def ventricles(tissue: np.ndarray, brain: np.ndarray, spacing_mm: tuple[float, float, float],
               cfg: LesionConfig) -> np.ndarray:
    """Ventricle voxels: CSF probability > threshold, near the midline and far from the brain edge."""
    lr_mm = np.abs(np.arange(brain.shape[LR_AXIS]) - midline_index(brain)) * spacing_mm[LR_AXIS]
    near_midline = (lr_mm < cfg.ventricle_midline_mm)[None, None, :]
    deep = distance_to_outside_mm(brain, spacing_mm) >= cfg.ventricle_edge_mm
    return (tissue[0] > cfg.ventricle_csf_probability) & near_midline & deep & brain


def choose_voxel(candidates: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int] | None:
    """A uniformly random voxel index (k, j, i) of a boolean array, or ``None`` if it is empty."""
    indices = np.flatnonzero(candidates)
    if indices.size == 0:
        return None
    k, j, i = np.unravel_index(int(rng.choice(indices)), candidates.shape)
    return int(k), int(j), int(i)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3×3 rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def smooth_noise(shape: tuple[int, ...], sigma_vox: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed white noise with unit standard deviation, clipped at ±2 (for boundary perturbations)."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma=max(sigma_vox, 0.5))
    sd = float(noise.std())
    return np.clip(noise / sd, -NOISE_CLIP_SD, NOISE_CLIP_SD) if sd > 0 else noise


def sphere_radius_mm(volume_ml: float) -> float:
    return (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)

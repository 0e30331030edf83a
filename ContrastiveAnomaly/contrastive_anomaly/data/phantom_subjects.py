"""Synthetic brain-like volumes on the model grid, for tests, smoke training and demos without data.

Each "subject" is an ellipsoidal brain with a cortical grey-matter shell, white matter, two lateral ventricles
and smooth texture, varied per seed. Arrays are KJI ``(slices, rows, cols)`` float32 in ``[0, 1]``, on a grid of
``GridConfig.shape`` (IJK order) voxels; contrast follows a T1 ordering (WM > GM > CSF) unless ``contrast`` says
otherwise. These volumes are not anatomy; they only exercise the code path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Relative tissue intensities (WM, GM, CSF) per contrast, in [0, 1] after normalisation.
TISSUE_INTENSITY = {
    "T1": (0.85, 0.55, 0.15),
    "T2": (0.35, 0.55, 0.95),
    "FLAIR": (0.55, 0.7, 0.1),
    "PD": (0.6, 0.75, 0.85),
}


@dataclass
class PhantomSubject:
    """One synthetic subject: ``image`` and ``brain_mask`` are KJI arrays on the model grid."""

    image: np.ndarray
    brain_mask: np.ndarray
    seed: int


def _ellipsoid(shape_kji: tuple[int, int, int], center_kji: np.ndarray, radii_kji: np.ndarray) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape_kji)]
    distance = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center_kji, radii_kji, strict=True))
    return distance


def make_phantom(shape_ijk: tuple[int, int, int] = (96, 96, 50), seed: int = 0, contrast: str = "T1",
                 texture: float = 0.03) -> PhantomSubject:
    """A healthy synthetic brain on a grid of ``shape_ijk`` voxels (returned as KJI arrays)."""
    rng = np.random.default_rng(seed)
    shape_kji = (shape_ijk[2], shape_ijk[1], shape_ijk[0])
    size = np.array(shape_kji, dtype=float)
    center = size / 2 + rng.uniform(-0.03, 0.03, 3) * size
    radii = size * np.array([0.46, 0.40, 0.33]) * rng.uniform(0.92, 1.05, 3)
    brain_distance = _ellipsoid(shape_kji, center, radii)
    brain = brain_distance <= 1.0
    wm = brain_distance <= rng.uniform(0.55, 0.65)
    ventricle = np.zeros(shape_kji, dtype=bool)
    for side in (-1, 1):
        v_center = center + np.array([0.0, -0.05 * size[1], side * 0.07 * size[2]])
        v_radii = size * np.array([0.12, 0.14, 0.035]) * rng.uniform(0.85, 1.15, 3)
        ventricle |= _ellipsoid(shape_kji, v_center, v_radii) <= 1.0
    folds = ndimage.gaussian_filter(rng.standard_normal(shape_kji), sigma=2.0)
    sulci = brain & ~wm & (folds > 0.12)
    wm_value, gm_value, csf_value = TISSUE_INTENSITY[contrast]
    image = np.zeros(shape_kji, dtype=np.float32)
    image[brain] = gm_value
    image[wm] = wm_value
    image[ventricle | sulci] = csf_value
    image = ndimage.gaussian_filter(image, sigma=0.7)
    image += texture * ndimage.gaussian_filter(rng.standard_normal(shape_kji), sigma=1.0) * brain
    image = np.clip(image * brain, 0.0, 1.0).astype(np.float32)
    return PhantomSubject(image=image, brain_mask=brain.astype(np.uint8), seed=seed)


def plant_sphere_lesion(image_kji: np.ndarray, brain_mask_kji: np.ndarray, radius_vox: float, intensity: float,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paint a sphere of constant ``intensity`` inside the brain (centre drawn at least ``radius`` from its edge).

    Returns ``(image_with_lesion, lesion_mask)`` as KJI arrays; the mask is exactly the painted voxels.
    """
    rng = np.random.default_rng(seed)
    inner = ndimage.binary_erosion(brain_mask_kji > 0, iterations=int(np.ceil(radius_vox)) + 2)
    candidates = np.argwhere(inner)
    if len(candidates) == 0:
        raise ValueError("brain too small for a lesion of this radius")
    center = candidates[rng.integers(len(candidates))]
    lesion = _ellipsoid(image_kji.shape, center.astype(float), np.full(3, float(radius_vox))) <= 1.0
    out = image_kji.copy()
    out[lesion] = intensity
    return out, lesion.astype(np.uint8)

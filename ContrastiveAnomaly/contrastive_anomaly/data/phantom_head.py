"""A synthetic head phantom on any grid: brain (WM, folded GM, CSF, ventricles), skull shell, scalp.

The anatomy is defined in physical **LPS** millimetres relative to ``centre_lps`` (a head about the size of an adult's:
brain ~1.4 L), so the same head can be sampled on any size, spacing, origin and direction (LPS, RAS, oblique,
anisotropic). Used by the preprocessing tests and benchmarks; others may reuse it.

Tissue labels (``HeadPhantom.labels``): 0 background, 1 scalp, 2 skull, 3 CSF, 4 GM, 5 WM, 6 ventricles.
The brain mask is everything inside the inner skull surface (labels 3-6), like the usual brain-extraction masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

# Mean intensities per label (background, scalp, skull, CSF, GM, WM, ventricles), relative units.
TISSUE_INTENSITIES: dict[str, tuple[float, ...]] = {
    "T1": (0.0, 0.75, 0.08, 0.18, 0.55, 0.85, 0.15),
    "T2": (0.0, 0.55, 0.05, 1.00, 0.55, 0.35, 1.00),
    "FLAIR": (0.0, 0.50, 0.05, 0.10, 0.65, 0.50, 0.08),
    "PD": (0.0, 0.70, 0.05, 0.90, 0.75, 0.60, 0.90),
}
# Semi-axes (mm) of the inner skull surface along L, P, S (the brain-mask ellipsoid).
BRAIN_SEMI_AXES_MM = (68.0, 86.0, 62.0)
CSF_THICKNESS_MM = 3.0
CORTEX_THICKNESS_MM = 6.0
SKULL_THICKNESS_MM = 7.0
SCALP_THICKNESS_MM = 6.0
FOLD_DEPTH_MM = 4.0
FOLD_PERIOD_MM = 18.0


@dataclass
class HeadPhantom:
    """A phantom head: ``image`` float32, ``brain_mask`` uint8 (0/1) and ``labels`` uint8, all on the same grid."""

    image: sitk.Image
    brain_mask: sitk.Image
    labels: sitk.Image


def make_grid(size: tuple[int, int, int], spacing: tuple[float, float, float],
              direction: np.ndarray | None = None, centre_lps: tuple[float, float, float] = (0.0, 0.0, 0.0)
              ) -> sitk.Image:
    """An empty float32 image of ``size`` (IJK voxels) and ``spacing`` (mm) whose centre is at ``centre_lps`` (mm).

    ``direction``: 3x3 matrix whose columns are the LPS directions of the I, J, K axes (identity = LPS storage,
    diag(-1, -1, 1) = RAS storage, any rotation = oblique).
    """
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection(direction.ravel().tolist())
    half_extent = direction @ ((np.array(size) - 1) / 2.0 * np.array(spacing))
    image.SetOrigin((np.asarray(centre_lps, dtype=float) - half_extent).tolist())
    return image


def rotation_matrix(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """Rotation about the L, P and S axes (degrees, applied in that order); a helper for oblique directions."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _physical_coordinates(image: sitk.Image, centre_lps: np.ndarray) -> np.ndarray:
    """LPS coordinates (mm) of every voxel centre relative to ``centre_lps``, shape (3, K, J, I), float32."""
    size = image.GetSize()
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in size[::-1]), indexing="ij")
    scaled = np.stack([i, j, k]) * np.asarray(image.GetSpacing(), dtype=np.float32)[:, None, None, None]
    direction = np.asarray(image.GetDirection(), dtype=np.float32).reshape(3, 3)
    points = np.tensordot(direction, scaled, axes=1)
    offset = (np.asarray(image.GetOrigin()) - centre_lps).astype(np.float32)
    return points + offset[:, None, None, None]


def _ellipsoid_radius(xyz: np.ndarray, semi_axes: np.ndarray) -> np.ndarray:
    """Normalised ellipsoidal radius: < 1 inside the ellipsoid with ``semi_axes`` (mm)."""
    return np.sqrt(sum((xyz[a] / semi_axes[a]) ** 2 for a in range(3)))


def make_head_phantom(reference: sitk.Image, contrast: str = "T1", centre_lps: tuple[float, float, float] = (0, 0, 0),
                      scale: float = 1.0, bias_amplitude: float = 0.0, noise_sigma: float = 0.0, seed: int = 0,
                      intensity_scale: float = 1000.0) -> HeadPhantom:
    """Sample the phantom head on ``reference``'s grid (its size, spacing, origin and direction; LPS mm).

    ``scale`` multiplies every anatomical length; ``bias_amplitude`` adds a smooth multiplicative field
    (1 +- amplitude); ``noise_sigma`` adds Gaussian noise (relative to the WM/CSF intensity scale before
    ``intensity_scale``); intensities are finally multiplied by ``intensity_scale``.
    """
    if contrast not in TISSUE_INTENSITIES:
        raise ValueError(f"unknown phantom contrast {contrast!r}; choose one of {sorted(TISSUE_INTENSITIES)}")
    xyz = _physical_coordinates(reference, np.asarray(centre_lps, dtype=float))
    semi = np.asarray(BRAIN_SEMI_AXES_MM) * scale
    mean_semi = float(np.mean(semi))
    radius = _ellipsoid_radius(xyz, semi)
    # depth below the inner skull surface in mm (approximate: normalised radius times the mean semi-axis)
    depth = (1.0 - radius) * mean_semi
    folds = FOLD_DEPTH_MM * scale * (np.sin(xyz[0] * 2 * np.pi / (FOLD_PERIOD_MM * scale))
                                     * np.sin(xyz[1] * 2 * np.pi / (FOLD_PERIOD_MM * scale))
                                     * np.sin(xyz[2] * 2 * np.pi / (FOLD_PERIOD_MM * scale) + 0.7))
    labels = np.zeros(radius.shape, dtype=np.uint8)
    labels[depth > -(SKULL_THICKNESS_MM + SCALP_THICKNESS_MM) * scale] = 1
    labels[depth > -SKULL_THICKNESS_MM * scale] = 2
    labels[depth > 0] = 3
    labels[depth > CSF_THICKNESS_MM * scale + folds.clip(max=0)] = 4
    labels[depth > (CSF_THICKNESS_MM + CORTEX_THICKNESS_MM) * scale + folds] = 5
    # two lateral ventricles: small ellipsoids either side of the midline
    for side in (-1.0, 1.0):
        centre = np.array([side * 9.0, -5.0, 8.0])[:, None, None, None] * scale
        ventricle = _ellipsoid_radius(xyz - centre, np.array([6.0, 22.0, 9.0]) * scale) < 1.0
        labels[ventricle & (labels >= 4)] = 6
    # the head is cut below: no tissue more than 1.2 semi-axes below the centre (a rough neck cut)
    labels[xyz[2] < -1.25 * semi[2]] = 0
    lut = np.asarray(TISSUE_INTENSITIES[contrast], dtype=np.float32)
    values = lut[labels]
    rng = np.random.default_rng(seed)
    if bias_amplitude:
        extent = float(np.max(semi)) * 2.0
        phase = rng.uniform(0, 2 * np.pi, size=3)
        field = sum(np.sin(xyz[a] * np.pi / extent + phase[a]) for a in range(3)) / 3.0
        values *= (1.0 + bias_amplitude * field).astype(np.float32)
    if noise_sigma:
        values += rng.normal(0.0, noise_sigma, size=values.shape).astype(np.float32)
        values = np.abs(values)  # magnitude images are non-negative (Rician-like floor)
    image = sitk.GetImageFromArray((values * intensity_scale).astype(np.float32))
    image.CopyInformation(reference)
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(reference)
    mask = sitk.GetImageFromArray((labels >= 3).astype(np.uint8))
    mask.CopyInformation(reference)
    return HeadPhantom(image=image, brain_mask=mask, labels=label_image)


def head_phantom(size: tuple[int, int, int] = (96, 96, 72), spacing: tuple[float, float, float] = (2.5, 2.5, 2.5),
                 direction: np.ndarray | None = None, centre_lps: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 **kwargs) -> HeadPhantom:
    """Convenience: :func:`make_grid` then :func:`make_head_phantom` (``kwargs`` go to the latter).

    The grid centre is the head centre plus 15 mm inferior so the field of view holds the whole skull.
    """
    grid_centre = np.asarray(centre_lps, dtype=float) + np.array([0.0, 0.0, -15.0])
    reference = make_grid(size, spacing, direction, tuple(grid_centre.tolist()))
    return make_head_phantom(reference, centre_lps=centre_lps, **kwargs)

"""The project's one synthetic brain: a head (scalp, skull, CSF, folded cortex, white matter, two ventricles) sampled
on any grid. Not anatomy and not real data; it only exercises the code paths (tests, the Slicer self-test, smoke
training with ``--phantoms``, benchmarks).

The anatomy (:func:`head_labels`) is defined in physical **LPS** millimetres relative to a centre, with the inner
skull surface an ellipsoid of semi-axes ``BRAIN_SEMI_AXES_MM`` (an adult-sized brain, ~1.4 L). Two ways to sample it:

* :func:`head_phantom` / :func:`make_head_phantom`: the whole head as SimpleITK images on any size, spacing, origin
  and direction (LPS, RAS, oblique, anisotropic), for preprocessing and geometry tests;
* :func:`brain_phantom`: a skull-stripped brain fitted to a model grid (KJI numpy arrays, intensities in [0, 1]) with
  tissue probability maps, varied per seed (size, position, fold phase, texture), for training, lesions and synthetic
  contrasts.

Tissue labels: 0 background, 1 scalp, 2 skull, 3 CSF, 4 GM, 5 WM, 6 ventricles. The brain mask is everything inside
the inner skull surface (labels 3-6), like the usual brain-extraction masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

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
FOLD_PHASE = (0.0, 0.0, 0.7)  # radians, per L/P/S axis, of the head phantom's cortical folds
VENTRICLE_CENTRE_MM = (9.0, -5.0, 8.0)  # one ventricle at +-L, relative to the brain centre
VENTRICLE_SEMI_AXES_MM = (6.0, 22.0, 9.0)
NECK_CUT_SEMI_AXES = 1.25  # no tissue further below the centre than this many S semi-axes
LABEL_CSF, LABEL_GM, LABEL_WM, LABEL_VENTRICLE = 3, 4, 5, 6
# brain_phantom: the brain's semi-axes as fractions of the grid's extent (I/L, J/P, K/S), each jittered per seed by
# a factor in SIZE_JITTER; the centre moves by up to CENTRE_JITTER of the extent. TISSUE_SMOOTHING_VOX softens the
# label edges into partial-volume tissue maps.
GRID_FILL = (0.34, 0.41, 0.44)
SIZE_JITTER = (0.92, 1.05)
CENTRE_JITTER = 0.03
TISSUE_SMOOTHING_VOX = 0.7
MIN_LAYER_VOXELS = 1.5
TEXTURE_SMOOTHING_VOX = 1.0
TISSUE_CLASSES = ("CSF", "GM", "WM")


@dataclass
class HeadPhantom:
    """A phantom head: ``image`` float32, ``brain_mask`` uint8 (0/1) and ``labels`` uint8, all on the same grid."""

    image: sitk.Image
    brain_mask: sitk.Image
    labels: sitk.Image


@dataclass
class BrainPhantom:
    """A skull-stripped phantom brain on a model grid; arrays are KJI ``(slices, rows, cols)``.

    ``image`` float32 in [0, 1]; ``brain_mask`` uint8 0/1; ``tissue`` float32 ``[3, K, J, I]`` (CSF, GM, WM)
    probabilities summing to 1 inside the brain; ``labels`` uint8 (see the module docstring); ``seed`` made it.
    """

    image: np.ndarray
    brain_mask: np.ndarray
    tissue: np.ndarray
    labels: np.ndarray
    seed: int


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


def head_labels(xyz: np.ndarray, semi_axes_mm: np.ndarray, fold_phase: tuple[float, float, float] = FOLD_PHASE,
                detail_scale: float | None = None) -> np.ndarray:
    """The one phantom anatomy: tissue labels (uint8, shape of ``xyz[0]``) at LPS offsets ``xyz`` (3, ...) in mm
    from the brain centre, for a brain whose inner skull surface has ``semi_axes_mm`` (L, P, S).

    Lengths (CSF, cortex, skull, scalp, folds, ventricles) scale with the semi-axes relative to
    ``BRAIN_SEMI_AXES_MM``: per axis for positions and sizes, by their mean for thicknesses and folds, unless
    ``detail_scale`` gives that factor (so that a small brain on a coarse grid keeps layers a voxel thick).
    """
    semi = np.asarray(semi_axes_mm, dtype=np.float32)
    axis_scale = semi / np.asarray(BRAIN_SEMI_AXES_MM, dtype=np.float32)
    scale = float(np.mean(axis_scale)) if detail_scale is None else float(detail_scale)
    radius = _ellipsoid_radius(xyz, semi)
    # depth below the inner skull surface in mm (approximate: normalised radius times the mean semi-axis)
    depth = (1.0 - radius) * float(np.mean(semi))
    period = FOLD_PERIOD_MM * scale
    folds = FOLD_DEPTH_MM * scale * np.prod([np.sin(xyz[a] * 2 * np.pi / period + fold_phase[a]) for a in range(3)],
                                           axis=0)
    labels = np.zeros(radius.shape, dtype=np.uint8)
    labels[depth > -(SKULL_THICKNESS_MM + SCALP_THICKNESS_MM) * scale] = 1
    labels[depth > -SKULL_THICKNESS_MM * scale] = 2
    labels[depth > 0] = LABEL_CSF
    labels[depth > CSF_THICKNESS_MM * scale + folds.clip(max=0)] = LABEL_GM
    labels[depth > (CSF_THICKNESS_MM + CORTEX_THICKNESS_MM) * scale + folds] = LABEL_WM
    for side in (-1.0, 1.0):  # two lateral ventricles, either side of the midline
        centre = (np.array(VENTRICLE_CENTRE_MM) * np.array([side, 1.0, 1.0]) * axis_scale)[:, None, None, None]
        ventricle = _ellipsoid_radius(xyz - centre, np.asarray(VENTRICLE_SEMI_AXES_MM) * axis_scale) < 1.0
        labels[ventricle & (labels >= LABEL_GM)] = LABEL_VENTRICLE
    labels[xyz[2] < -NECK_CUT_SEMI_AXES * semi[2]] = 0  # a rough neck cut
    return labels


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
    labels = head_labels(xyz, semi)
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
    mask = sitk.GetImageFromArray((labels >= LABEL_CSF).astype(np.uint8))
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


def brain_phantom(shape_ijk: tuple[int, int, int] = (96, 96, 88), seed: int = 0, contrast: str = "T1",
                  spacing_mm: float = 2.0, texture: float = 0.03) -> BrainPhantom:
    """A skull-stripped phantom brain filling a model grid of ``shape_ijk`` voxels (IJK = L, P, S; ``spacing_mm``).

    The head of :func:`head_labels` is fitted to the grid (semi-axes ``GRID_FILL`` of the extent), then varied by
    ``seed``: size and centre jitter, fold phase and a smooth ``texture`` (intensity units) inside the brain. Tissue
    intensities follow ``TISSUE_INTENSITIES[contrast]``. Same seed, same phantom.
    """
    if contrast not in TISSUE_INTENSITIES:
        raise ValueError(f"unknown phantom contrast {contrast!r}; choose one of {sorted(TISSUE_INTENSITIES)}")
    rng = np.random.default_rng(seed)
    extent = np.asarray(shape_ijk, dtype=float) * spacing_mm
    semi = extent * np.asarray(GRID_FILL) * rng.uniform(*SIZE_JITTER, 3)
    grid = make_grid(shape_ijk, (spacing_mm,) * 3, centre_lps=(0.0, 0.0, 0.0))
    centre = rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 3) * extent
    # layers stay at least MIN_LAYER_VOXELS thick on small grids (partial volume would swallow them otherwise)
    detail = max(float(np.mean(semi / np.asarray(BRAIN_SEMI_AXES_MM))),
                 MIN_LAYER_VOXELS * spacing_mm / CSF_THICKNESS_MM)
    labels = head_labels(_physical_coordinates(grid, centre), semi,
                         fold_phase=tuple(rng.uniform(0, 2 * np.pi, 3).tolist()), detail_scale=detail)
    labels[labels < LABEL_CSF] = 0  # skull-stripped: scalp and skull removed
    brain = labels >= LABEL_CSF
    classes = (np.isin(labels, (LABEL_CSF, LABEL_VENTRICLE)), labels == LABEL_GM, labels == LABEL_WM)
    tissue = np.stack([ndimage.gaussian_filter(c.astype(np.float32), TISSUE_SMOOTHING_VOX) for c in classes])
    tissue *= brain
    tissue /= np.maximum(tissue.sum(0, keepdims=True), 1e-6)
    tissue *= brain
    lut = np.asarray(TISSUE_INTENSITIES[contrast], dtype=np.float32)
    image = ndimage.gaussian_filter(lut[labels], TISSUE_SMOOTHING_VOX)
    image += texture * ndimage.gaussian_filter(rng.standard_normal(labels.shape), TEXTURE_SMOOTHING_VOX) * brain
    image = np.clip(image * brain, 0.0, 1.0).astype(np.float32)
    return BrainPhantom(image=image, brain_mask=brain.astype(np.uint8), tissue=tissue.astype(np.float32),
                        labels=labels, seed=seed)


def plant_sphere_lesion(image_kji: np.ndarray, brain_mask_kji: np.ndarray, radius_vox: float, intensity: float,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paint a sphere of constant ``intensity`` inside the brain (centre at least ``radius`` + 2 voxels from its edge).

    Returns ``(image_with_lesion, lesion_mask)`` as KJI arrays; the mask is exactly the painted voxels. (For realistic
    lesions with exact masks use :func:`contrastive_anomaly.data.lesions.plant_lesion`.)
    """
    rng = np.random.default_rng(seed)
    inner = ndimage.binary_erosion(brain_mask_kji > 0, iterations=int(np.ceil(radius_vox)) + 2)
    candidates = np.argwhere(inner)
    if len(candidates) == 0:
        raise ValueError("brain too small for a lesion of this radius")
    centre = candidates[rng.integers(len(candidates))]
    grids = np.ogrid[tuple(slice(0, n) for n in image_kji.shape)]
    lesion = sum(((g - c) / float(radius_vox)) ** 2 for g, c in zip(grids, centre, strict=True)) <= 1.0
    out = image_kji.copy()
    out[lesion] = intensity
    return out, lesion.astype(np.uint8)

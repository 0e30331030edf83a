"""Residual-map post-processing (docs/METHOD.md §6): residual, brain-mask erosion, median filter, binarisation.

All arrays are on the model grid in **KJI** order ``(slices, rows, cols)``; axial slices are ``array[k]``. Image
intensities are in ``[0, 1]``, so residuals and thresholds are in the same intensity units (a residual of 0.1 is a
tenth of the normalised intensity range). Voxel counts are in voxels of the grid, not in mm³.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..config import PostprocessConfig
from ..errors import InputError

# scipy's ``generate_binary_structure(3, rank)`` gives the 6-, 18- or 26-neighbourhood for rank 1, 2, 3.
_CONNECTIVITY_RANK = {6: 1, 18: 2, 26: 3}


def _require_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise InputError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; they must match")


def _require_3d(name: str, array: np.ndarray) -> None:
    if array.ndim != 3:
        raise InputError(f"{name} must be a 3D KJI array, got {array.ndim}D with shape {array.shape}")


def neighbourhood(connectivity: int) -> np.ndarray:
    """3x3x3 boolean structuring element for 6-, 18- or 26-connectivity (face, +edge, +corner neighbours)."""
    try:
        rank = _CONNECTIVITY_RANK[int(connectivity)]
    except KeyError:
        raise InputError(f"connectivity must be 6, 18 or 26, got {connectivity}") from None
    return ndimage.generate_binary_structure(3, rank)


def residual_map(image_kji: np.ndarray, reconstruction_kji: np.ndarray) -> np.ndarray:
    """L1 residual ``|x - x_hat|`` (float32, KJI, intensity units on [0, 1] images). Any matching shape works."""
    image = np.asarray(image_kji, dtype=np.float32)
    reconstruction = np.asarray(reconstruction_kji, dtype=np.float32)
    _require_same_shape("image", image, "reconstruction", reconstruction)
    return np.abs(image - reconstruction)


def erode_brain_mask(mask_kji: np.ndarray, iterations: int) -> np.ndarray:
    """Erode a KJI brain mask slice by slice (in-plane only) with a 3x3 cross, ``iterations`` times.

    Each axial slice ``mask[k]`` is eroded on its own; nothing propagates between slices (docs/METHOD.md §6). Voxels
    outside the array count as background, so the brain is also eroded where it touches the array border.
    ``iterations = 0`` returns the mask unchanged (as bool).
    """
    mask = np.asarray(mask_kji) > 0
    _require_3d("brain mask", mask)
    if iterations < 0:
        raise InputError(f"erosion iterations must be >= 0, got {iterations}")
    if iterations == 0:  # scipy treats iterations < 1 as "until nothing changes", which is not what we want.
        return mask
    # A (1, 3, 3) element with the cross in the (rows, cols) plane erodes every slice independently, which is
    # the per-slice 2D erosion in one vectorised call.
    cross = ndimage.generate_binary_structure(2, 1)[np.newaxis]
    return ndimage.binary_erosion(mask, structure=cross, iterations=int(iterations), border_value=0)


def filter_map(residual_kji: np.ndarray, brain_mask_kji: np.ndarray, cfg: PostprocessConfig) -> np.ndarray:
    """Residual × eroded brain mask, then a 3D median filter of ``cfg.median_size`` voxels per side.

    Returns float32 KJI in residual (intensity) units. ``median_size <= 1`` skips the median filter. The filter
    uses scipy's default ``reflect`` border mode.
    """
    residual = np.asarray(residual_kji, dtype=np.float32)
    _require_3d("residual map", residual)
    _require_same_shape("residual map", residual, "brain mask", np.asarray(brain_mask_kji))
    eroded = erode_brain_mask(brain_mask_kji, cfg.erosion_iterations)
    masked = residual * eroded
    if cfg.median_size <= 1:
        return masked.astype(np.float32, copy=False)
    return ndimage.median_filter(masked, size=int(cfg.median_size)).astype(np.float32, copy=False)


def remove_small_components(mask_kji: np.ndarray, max_removed_voxels: int, connectivity: int = 26) -> np.ndarray:
    """Drop 3D connected components with at most ``max_removed_voxels`` voxels; returns a new bool KJI mask.

    Sizes are plain voxel counts. The official code tests the *filled* area (holes included); the two differ only for
    a component of at most ``max_removed_voxels`` voxels that encloses a hole, which this function removes.
    """
    mask = np.asarray(mask_kji) > 0
    if max_removed_voxels <= 0 or not mask.any():
        return mask
    labels, _ = ndimage.label(mask, structure=neighbourhood(connectivity))
    sizes = np.bincount(labels.ravel())
    keep = sizes > max_removed_voxels
    keep[0] = False  # label 0 is the background
    return keep[labels]


def binarize(filtered_kji: np.ndarray, threshold: float, cfg: PostprocessConfig) -> np.ndarray:
    """Anomaly mask: ``filtered > threshold`` (intensity units), minus the components of at most
    ``cfg.max_removed_component_voxels`` voxels under ``cfg.connectivity`` (6, 18 or 26). Returns bool KJI.

    Raising ``threshold`` never adds voxels: the raw mask shrinks, and a component of the smaller mask is a subset of
    a component of the larger one, so it is at most as big and is removed whenever its parent was.
    """
    filtered = np.asarray(filtered_kji)
    _require_3d("filtered map", filtered)
    if not np.isfinite(threshold):
        raise InputError(f"threshold must be a finite number, got {threshold}")
    raw = filtered > threshold
    return remove_small_components(raw, cfg.max_removed_component_voxels, cfg.connectivity)


def effective_threshold(cfg: PostprocessConfig) -> float:
    """The threshold to apply (intensity units): the calibrated ``cfg.threshold``, else ``cfg.default_threshold``."""
    return float(cfg.threshold) if cfg.threshold is not None else float(cfg.default_threshold)


def postprocess_residual(
    residual_kji: np.ndarray, brain_mask_kji: np.ndarray, cfg: PostprocessConfig, threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The whole of docs/METHOD.md §6 in one call: ``(filtered map float32, anomaly mask bool)``, both KJI.

    ``threshold`` (intensity units) defaults to :func:`effective_threshold` of ``cfg``.
    """
    filtered = filter_map(residual_kji, brain_mask_kji, cfg)
    chosen = effective_threshold(cfg) if threshold is None else float(threshold)
    return filtered, binarize(filtered, chosen, cfg)

"""Intensity steps inside the brain: N4 bias correction (shrunk), curvature flow, percentile normalisation.

Images are SimpleITK images on the scan grid (LPS); arrays are KJI float32.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..config import IntensityConfig
from ..errors import InputError


def crop_to_mask(image: sitk.Image, mask: sitk.Image, margin_mm: float) -> tuple[sitk.Image, sitk.Image]:
    """Crop ``image`` and ``mask`` (same grid) to the mask's bounding box plus ``margin_mm`` (voxel-exact sub-grid)."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    if not stats.HasLabel(1):
        raise InputError("brain mask is empty; cannot locate the brain")
    box = stats.GetBoundingBox(1)  # (i0, j0, k0, size_i, size_j, size_k)
    start = np.array(box[:3])
    stop = start + np.array(box[3:])
    margin = np.ceil(margin_mm / np.array(image.GetSpacing())).astype(int)
    start = np.maximum(start - margin, 0)
    stop = np.minimum(stop + margin, np.array(image.GetSize()))
    size = (stop - start).tolist()
    return (sitk.RegionOfInterest(image, size, start.tolist()), sitk.RegionOfInterest(mask, size, start.tolist()))


def n4_correct(image: sitk.Image, mask: sitk.Image, cfg: IntensityConfig) -> sitk.Image:
    """N4 bias-field correction fitted on a ``cfg.n4_shrink_factor``-times shrunk copy inside ``mask``.

    The fitted log bias field is evaluated on the full grid and divided out. Negative voxels are clamped to 0 first
    (N4 works on a log scale). Returns float32 on ``image``'s grid.
    """
    image = sitk.Clamp(sitk.Cast(image, sitk.sitkFloat32), lowerBound=0.0)
    factors = [max(1, min(cfg.n4_shrink_factor, s // 8)) for s in image.GetSize()]
    small = sitk.Shrink(image, factors)
    small_mask = sitk.Shrink(mask, factors)
    if not sitk.GetArrayViewFromImage(small_mask).any():
        return image
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(cfg.n4_iterations))
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(image)
    return sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)


def curvature_flow(image: sitk.Image, cfg: IntensityConfig) -> sitk.Image:
    """Edge-preserving smoothing of METHOD §2 step 0 (``CurvatureFlow``; skipped when iterations = 0)."""
    if cfg.curvature_flow_iterations <= 0:
        return image
    return sitk.CurvatureFlow(sitk.Cast(image, sitk.sitkFloat32), timeStep=cfg.curvature_flow_time_step,
                              numberOfIterations=cfg.curvature_flow_iterations)


def percentile_normalise(array: np.ndarray, mask: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Clip to the [lower, upper] percentiles of the voxels inside ``mask``, min-max to [0, 1], 0 outside the mask.

    ``array`` and ``mask`` have the same shape (any axis order); returns float32.
    """
    inside = mask > 0
    if not inside.any():
        raise InputError("brain mask is empty; cannot normalise intensities")
    low, high = np.percentile(array[inside], [lower, upper])
    if high <= low:
        raise InputError("brain intensities are constant inside the mask; cannot normalise")
    scaled = (np.clip(array, low, high) - low) / (high - low)
    return np.where(inside, scaled, 0.0).astype(np.float32)

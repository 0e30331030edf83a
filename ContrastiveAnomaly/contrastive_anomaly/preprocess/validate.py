"""Checks that a volume can be a brain MRI before any work is done on it (docs/PREPROCESSING.md, bad input).

Each failed check raises :class:`InputError` with one line; doubtful but usable inputs return warnings.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..config import ModelConfig
from ..errors import InputError

MIB = 2**20


def max_input_voxels(cfg: ModelConfig) -> int:
    """The largest scan accepted: ``inference.memory_budget_mb`` MiB over ``preprocess.working_bytes_per_voxel``.

    The working set of preprocessing is a few float32 copies of the scan (input, bias-corrected copy, resampling
    buffers), so the budget is divided by a per-voxel cost rather than by the 4 bytes of one copy.
    """
    return int(cfg.inference.memory_budget_mb * MIB // cfg.preprocess.working_bytes_per_voxel)


def check_geometry(image: sitk.Image, cfg: ModelConfig) -> list[str]:
    """Dimension, components, size and spacing checks (no pixel access). Returns warnings."""
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise InputError(f"image has {image.GetNumberOfComponentsPerPixel()} components per voxel (RGB/vector); "
                         "a single-channel MRI volume is needed")
    dim = image.GetDimension()
    if dim != 3:
        raise InputError(f"image is {dim}D; a 3D MRI volume is needed (for a 4D series, extract one volume)")
    size = np.array(image.GetSize())
    if (size < 2).any():
        raise InputError(f"image is a single slice (size {tuple(int(s) for s in size)}); a 3D volume is needed")
    limit = max_input_voxels(cfg)
    if int(size.prod()) > limit:
        raise InputError(f"image has {int(size.prod()) / 1e6:.0f} M voxels, more than the {limit / 1e6:.0f} M that fit "
                         f"the {cfg.inference.memory_budget_mb} MB memory budget; resample it first")
    spacing = np.array(image.GetSpacing())
    if (spacing <= 0).any() or not np.isfinite(spacing).all():
        raise InputError(f"image has invalid voxel spacing {tuple(spacing.round(3))}")
    extent = size * spacing
    if extent.min() < cfg.preprocess.min_extent_mm:
        raise InputError(f"image covers only {extent.min():.0f} mm along one axis (extent "
                         f"{' x '.join(f'{e:.0f}' for e in extent)} mm), too small to hold a brain")
    warnings = []
    if spacing.max() > cfg.preprocess.max_slice_thickness_mm:
        warnings.append(f"slices are {spacing.max():.1f} mm thick (more than "
                        f"{cfg.preprocess.max_slice_thickness_mm:.0f} mm); results will be coarse")
    return warnings


def check_intensities(array: np.ndarray, cfg: ModelConfig) -> None:
    """NaN/Inf, constant and CT-like intensity checks on the voxel array (any order)."""
    finite = np.isfinite(array)
    if not finite.all():
        raise InputError(f"image has {int((~finite).sum())} NaN/Inf voxels")
    low, high = float(array.min()), float(array.max())
    if high - low <= 0:
        raise InputError(f"image is constant (every voxel is {low:g}); nothing to analyse")
    air_fraction = float((array < cfg.preprocess.ct_air_threshold).mean())
    if air_fraction > cfg.preprocess.ct_air_fraction:
        raise InputError(f"image looks like CT (Hounsfield units: {100 * air_fraction:.0f}% of voxels below "
                         f"{cfg.preprocess.ct_air_threshold:g}); an MRI volume is needed")


def validate_image(image: sitk.Image, cfg: ModelConfig) -> list[str]:
    """Run every check on ``image``; raise :class:`InputError` on the first failure, return the warnings."""
    warnings = check_geometry(image, cfg)
    check_intensities(sitk.GetArrayViewFromImage(image), cfg)
    return warnings


def check_mask_matches(mask: sitk.Image, image: sitk.Image) -> None:
    """A user-supplied brain mask must be 3D, single-channel, non-empty and on the image's grid (or resampleable)."""
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("brain mask must be a single-channel 3D image")
    if not (sitk.GetArrayViewFromImage(mask) > 0).any():
        raise InputError("brain mask is empty (no voxel > 0)")

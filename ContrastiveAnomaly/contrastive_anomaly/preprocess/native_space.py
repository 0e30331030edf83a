"""Moving arrays between the model grid and the scan's own grid.

The model-grid array is KJI on ``model_grid`` (an image carrying the grid's LPS geometry). ``model_to_scan`` maps a
model-space point to the scan point (LPS mm), so resampling the scan onto the model grid uses it directly and
resampling model data onto the scan grid uses its inverse.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}


def resample_to_model(image: sitk.Image, model_grid: sitk.Image, model_to_scan: sitk.Transform,
                      kind: Literal["linear", "nearest", "bspline"]) -> np.ndarray:
    """``image`` (scan grid or any sub-grid of it) on the model grid, as a KJI array (float32; uint8 if nearest)."""
    pixel = sitk.sitkUInt8 if kind == "nearest" else sitk.sitkFloat32
    resampled = sitk.Resample(image, model_grid, model_to_scan, INTERPOLATORS[kind], 0.0, pixel)
    return sitk.GetArrayFromImage(resampled)


def model_to_native(array_kji: np.ndarray, model_grid: sitk.Image, native_reference: sitk.Image,
                    model_to_scan: sitk.Transform, kind: Literal["linear", "nearest"]) -> sitk.Image:
    """A model-grid KJI array on exactly ``native_reference``'s grid (size, spacing, origin, direction copied).

    ``kind="linear"`` returns float32, ``"nearest"`` uint8; voxels outside the model grid are 0.
    """
    if kind not in ("linear", "nearest"):
        raise ValueError(f"kind must be 'linear' or 'nearest', not {kind!r}")
    expected = tuple(model_grid.GetSize()[::-1])
    if tuple(array_kji.shape) != expected:
        raise InputError(f"array shape {tuple(array_kji.shape)} is not the model grid {expected} (KJI)")
    pixel = sitk.sitkUInt8 if kind == "nearest" else sitk.sitkFloat32
    source = sitk.GetImageFromArray(np.ascontiguousarray(array_kji, dtype=np.float32))
    source.CopyInformation(model_grid)
    scan_to_model = model_to_scan.GetInverse()
    out = sitk.Resample(source, native_reference, scan_to_model, INTERPOLATORS[kind], 0.0, pixel)
    out.CopyInformation(native_reference)
    return out


def model_index_to_native(model_grid: sitk.Image, native_reference: sitk.Image,
                          model_to_scan: sitk.Transform) -> np.ndarray:
    """For every native voxel, the 1-based flat (C-order, KJI) index of the model voxel it samples by nearest
    neighbour, 0 outside the model grid: int32 KJI on ``native_reference``'s grid.

    Uses exactly the resampling of ``model_to_native(..., "nearest")``, so a model-grid mask looked up through this
    index equals that mask resampled with ``"nearest"``.
    """
    size = int(np.prod(model_grid.GetSize()))
    index = sitk.GetImageFromArray(np.arange(1, size + 1, dtype=np.uint32).reshape(model_grid.GetSize()[::-1]))
    index.CopyInformation(model_grid)
    out = sitk.Resample(index, native_reference, model_to_scan.GetInverse(), INTERPOLATORS["nearest"], 0,
                        sitk.sitkUInt32)
    return sitk.GetArrayFromImage(out).astype(np.int32)

"""The shipped templates and the model grid they define.

All images are SimpleITK images in **LPS** physical space (mm). The files live in
``contrastive_anomaly/resources/templates`` (see its README for provenance, licences and md5s); nothing is fetched.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..config import GridConfig
from ..errors import InputError

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "resources" / "templates"
HEAD_T1 = "mni152nlin6asym_res-02_T1w.nii.gz"
HEAD_BRAIN_MASK = "mni152nlin6asym_res-02_desc-brain_mask.nii.gz"
MODEL_T1 = "icbm152_2009a_T1_2mm.nii.gz"
MODEL_BRAIN_MASK_1MM = "icbm152_2009a_brain_mask_1mm.nii.gz"
MODEL_BRAIN_MASK_2MM = "icbm152_2009a_brain_mask_2mm.nii.gz"
SUPPORTED_MODEL_TEMPLATES = ("icbm152_2009a",)


@lru_cache(maxsize=8)
def _read(name: str, pixel_type: int) -> sitk.Image:
    path = TEMPLATE_DIR / name
    if not path.exists():
        raise InputError(f"shipped template {name} is missing from {TEMPLATE_DIR}; reinstall the package")
    return sitk.Cast(sitk.ReadImage(str(path)), pixel_type)


@lru_cache(maxsize=4)
def _filled_mask(name: str) -> sitk.Image:
    """A shipped mask with its interior holes filled (the MNI152NLin6Asym mask has ~10 mL of holes at the
    ventricles, which would otherwise cut dark CSF out of the brain)."""
    return sitk.BinaryFillhole(_read(name, sitk.sitkUInt8), fullyConnected=False)


def head_template() -> tuple[sitk.Image, sitk.Image]:
    """MNI152NLin6Asym 2 mm head T1 (float32, arbitrary units) and its hole-filled brain mask (uint8), 91x109x91."""
    return sitk.Image(_read(HEAD_T1, sitk.sitkFloat32)), sitk.Image(_filled_mask(HEAD_BRAIN_MASK))


def model_template() -> tuple[sitk.Image, sitk.Image]:
    """ICBM152 2009a skull-stripped T1 (float32, 0-255) and hole-filled brain mask (uint8) at 2 mm, 98x116x94."""
    return sitk.Image(_read(MODEL_T1, sitk.sitkFloat32)), sitk.Image(_filled_mask(MODEL_BRAIN_MASK_2MM))


def _check_template(grid: GridConfig) -> None:
    if grid.template not in SUPPORTED_MODEL_TEMPLATES:
        shipped = ", ".join(SUPPORTED_MODEL_TEMPLATES)
        raise InputError(f"unknown model-space template {grid.template!r}; shipped: {shipped}")


@lru_cache(maxsize=8)
def _model_grid_geometry(grid_key: tuple) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    crop_shape, spacing_mm, shape, offset_mm = grid_key
    mask = _read(MODEL_BRAIN_MASK_1MM, sitk.sitkUInt8)
    mask_kji = sitk.GetArrayViewFromImage(mask)
    nonzero = np.argwhere(mask_kji > 0)
    centre_ijk = (nonzero.min(0) + nonzero.max(0))[::-1] / 2.0  # IJK, continuous voxel index of the bbox centre
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    # crop start: whole 1 mm voxels so the crop is a sub-grid of the template (as the method's crop/pad is)
    start_ijk = np.round(centre_ijk - (np.array(crop_shape) - 1) / 2.0)
    crop_origin = np.array(mask.TransformContinuousIndexToPhysicalPoint(start_ijk.tolist()))
    crop_origin = crop_origin + np.asarray(offset_mm, dtype=float)
    # the first 2 mm voxel covers 1 mm voxels 0..f-1 of the crop, so its centre sits (f-1)/2 mm further on each axis
    factor = spacing_mm / np.array(mask.GetSpacing())
    origin = crop_origin + direction @ ((factor - 1.0) / 2.0 * np.array(mask.GetSpacing()))
    return tuple(origin.tolist()), (float(spacing_mm),) * 3, tuple(direction.ravel().tolist())


def model_grid(grid: GridConfig) -> sitk.Image:
    """An empty uint8 image with the model grid's geometry: ``grid.shape`` voxels (IJK) of ``grid.spacing_mm``.

    The grid is the 1 mm crop ``grid.crop_shape_1mm`` centred on the ICBM152 2009a brain bounding box (plus
    ``grid.crop_center_offset_mm``, LPS mm), resampled to ``grid.spacing_mm``. Direction: the template's (RAS-stored,
    so LPS direction diag(-1, -1, 1)); axial slices are along K.
    """
    _check_template(grid)
    key = (tuple(grid.crop_shape_1mm), float(grid.spacing_mm), tuple(grid.shape), tuple(grid.crop_center_offset_mm))
    origin, spacing, direction = _model_grid_geometry(key)
    image = sitk.Image([int(s) for s in grid.shape], sitk.sitkUInt8)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image

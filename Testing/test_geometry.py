"""Geometry round trips: scan grid -> model grid -> scan grid is exact for LPS, RAS, oblique and anisotropic scans."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.config import preset
from contrastive_anomaly.data.phantoms import make_grid, make_head_phantom, rotation_matrix
from contrastive_anomaly.preprocess import prepare_volume, to_native

GEOMETRIES = {
    "LPS": dict(size=(64, 76, 64), spacing=(3.0, 3.0, 3.0), direction=np.eye(3)),
    "RAS": dict(size=(64, 76, 64), spacing=(3.0, 3.0, 3.0), direction=np.diag([-1.0, -1.0, 1.0])),
    "oblique": dict(size=(64, 76, 64), spacing=(3.0, 3.0, 3.0), direction=rotation_matrix((12.0, -8.0, 20.0))),
    "anisotropic": dict(size=(240, 280, 34), spacing=(0.8, 0.8, 6.0), direction=np.diag([-1.0, 1.0, 1.0])),
}


@pytest.fixture(scope="module")
def prepared():
    """Each geometry prepared once, with the phantom's own brain mask (the geometry, not the masking, is tested)."""
    cfg = preset("tiny")
    cfg.intensity.curvature_flow_iterations = 0
    results = {}
    for name, geometry in GEOMETRIES.items():
        grid = make_grid(geometry["size"], geometry["spacing"], geometry["direction"], centre_lps=(3.0, -4.0, -12.0))
        phantom = make_head_phantom(grid, centre_lps=(3.0, -4.0, 0.0))
        results[name] = prepare_volume(phantom.image, cfg, brain_mask=phantom.brain_mask)
    return results


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin()
            and a.GetDirection() == b.GetDirection())


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_marked_voxel_comes_back_at_same_index(prepared, name):
    pv = prepared[name]
    native = pv.native_reference
    size = np.array(native.GetSize())
    for fraction in ((0.5, 0.5, 0.5), (0.4, 0.6, 0.45), (0.62, 0.35, 0.55)):
        voxel = tuple(int(v) for v in (size * np.array(fraction)).astype(int))
        point = native.TransformIndexToPhysicalPoint(voxel)
        model_index = pv.physical_to_model_index(point)
        marked = np.zeros_like(pv.image_kji)
        marked[model_index[::-1]] = 1.0
        back = to_native(pv, marked, "nearest")
        assert _same_grid(back, native) and back.GetPixelID() == sitk.sitkUInt8
        assert back.GetPixel(voxel) == 1  # the exact native index carries the mark
        assert back.TransformIndexToPhysicalPoint(voxel) == point  # and it is the same physical point
        # the mark's centre in the scan is within one model voxel of the marked scan point
        marked_points = np.array([back.TransformIndexToPhysicalPoint([int(i) for i in idx[::-1]])
                                  for idx in np.argwhere(sitk.GetArrayViewFromImage(back) > 0)])
        scale = np.linalg.svd(np.array(pv.model_to_native_transform.GetMatrix()).reshape(3, 3), compute_uv=False)
        assert np.linalg.norm(marked_points.mean(0) - np.array(point)) <= 2.0 * np.sqrt(3) * scale.max() + max(
            native.GetSpacing())


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_linear_output_is_float32_on_input_grid(prepared, name):
    pv = prepared[name]
    back = to_native(pv, pv.image_kji, "linear")
    assert _same_grid(back, pv.native_reference) and back.GetPixelID() == sitk.sitkFloat32
    mask_back = sitk.GetArrayViewFromImage(to_native(pv, pv.brain_mask_kji, "nearest")) > 0
    native_mask = sitk.GetArrayViewFromImage(pv.native_brain_mask) > 0
    # the model grid crops the top and bottom of the brain: compare inside the returned region only
    overlap = (mask_back & native_mask).sum() / mask_back.sum()
    assert overlap > 0.95


def test_same_head_gives_same_model_image_in_every_orientation(prepared):
    reference = prepared["LPS"].image_kji
    for name in ("RAS", "oblique", "anisotropic"):
        other = prepared[name].image_kji
        correlation = np.corrcoef(reference.ravel(), other.ravel())[0, 1]
        assert correlation > 0.85, name


def test_on_model_grid_is_identity_with_geometry():
    cfg = preset("tiny")
    grid = make_grid(cfg.grid.shape, (2.0, 2.0, 2.0), rotation_matrix((0.0, 0.0, 30.0)))
    image = make_head_phantom(grid, centre_lps=(0.0, 0.0, 0.0)).image
    image = sitk.Mask(image, make_head_phantom(grid).brain_mask)
    pv = prepare_volume(image, cfg, on_model_grid=True)
    assert pv.image_kji.shape == tuple(cfg.grid.shape[::-1]) and 0.0 <= pv.image_kji.min() and pv.image_kji.max() == 1
    back = to_native(pv, pv.image_kji, "linear")
    assert _same_grid(back, image)
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(back), pv.image_kji, atol=1e-6)

"""Realism augmentation (MONAI transforms): determinism, ranges, and each degradation doing what it says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from monai.networks.layers import GaussianFilter
from monai.transforms import Rand3DElastic

from contrastive_anomaly.data.augment import AugmentationConfig, RealismAugmentation, _smoothed_uniform_noise_rms
from engine_fixtures import phantom_arrays

SHAPE_IJK = (32, 32, 20)
SHAPE = SHAPE_IJK[::-1]  # KJI


@pytest.fixture(scope="module")
def phantom():
    return phantom_arrays(SHAPE_IJK, seed=0)


def test_deterministic_per_seed_in_range_and_masked(phantom):
    image, brain, _ = phantom
    augment = RealismAugmentation()
    a, warped_brain, _ = augment.augment_with(image, 7, brain)
    b = augment(image, 7, brain)
    c = augment(image, 8, brain)
    assert a.shape == image.shape and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0 and a.max() > 0.9
    assert np.all(a[warped_brain == 0] == 0)
    assert 0.8 < warped_brain.sum() / brain.sum() < 1.25


def test_tissue_maps_follow_the_same_warp(phantom):
    image, brain, tissue = phantom
    cfg = AugmentationConfig(affine_probability=1.0, elastic_probability=1.0, bias_probability=0,
                             gamma_probability=0, resolution_probability=0, noise_probability=0)
    out, warped_brain, warped_tissue = RealismAugmentation(cfg).augment_with(image, 3, brain, tissue)
    assert warped_tissue.shape == tissue.shape
    wm = warped_tissue[2] > 0.9
    gm = warped_tissue[1] > 0.6
    assert wm.any() and gm.any()
    assert out[wm].mean() > out[gm].mean() + 0.2, "warped WM map must still sit on bright T1 voxels"


@pytest.mark.parametrize("sigma_mm", [8.0, 16.0])
def test_elastic_magnitude_calibration_gives_the_requested_rms(sigma_mm):
    sigma_vox, spacing = sigma_mm / 2.0, 2.0
    magnitude = 1.0 / _smoothed_uniform_noise_rms(sigma_vox)
    elastic = Rand3DElastic(sigma_range=(sigma_vox, sigma_vox), magnitude_range=(magnitude, magnitude), prob=1.0)
    elastic.set_random_state(seed=0)
    elastic.randomize(grid_size=(40, 64, 64))
    field = GaussianFilter(3, sigma_vox, 3.0)(torch.as_tensor(elastic.rand_offset)[None])[0] * magnitude
    rms_mm = float(field.pow(2).mean().sqrt()) * spacing
    assert 1.5 < rms_mm < 2.5, rms_mm


def test_bias_field_amplitude_within_range():
    augment = RealismAugmentation(AugmentationConfig(bias_amplitude=(0.25, 0.25)))
    field = augment.bias_field(SHAPE, np.random.default_rng(0))
    log = np.log(field)
    assert np.isclose(np.abs(log - log.mean()).max(), np.log1p(0.25), rtol=1e-4)


def test_thick_slices_correlate_neighbours_along_one_axis_only():
    noise = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    cfg = AugmentationConfig(thick_slice_fraction=1.0, slice_thickness_mm=(6.0, 6.0))
    out = RealismAugmentation(cfg).resolution(noise, np.random.default_rng(1))

    def lag1(a: np.ndarray, axis: int) -> float:
        x, y = np.moveaxis(a, axis, 0)[:-1].ravel(), np.moveaxis(a, axis, 0)[1:].ravel()
        return float(np.corrcoef(x, y)[0, 1])

    correlations = sorted(lag1(out, a) for a in range(3))
    assert correlations[2] > 0.5 and correlations[1] < 0.2, correlations


def test_noise_matches_the_requested_snr():
    flat = np.full(SHAPE, 0.5, dtype=np.float32)
    brain = np.ones(SHAPE, dtype=bool)
    cfg = dataclasses.replace(AugmentationConfig(), bias_probability=0, gamma_probability=0,
                              resolution_probability=0, noise_probability=1.0, snr_range=(20.0, 20.0))
    out = RealismAugmentation(cfg).intensity(flat, brain, np.random.default_rng(0))
    assert 0.8 < (0.5 / 20.0) / out.std() < 1.25

"""Tests for contrastive_anomaly.method.noise: bit-exact OpenSimplex, the fractal field's axis order and statistics, and
the NoiseSampler's batch sharing, determinism and Gaussian option.

opensimplex (pure Python here, ≈ 6 µs per point) is only called on a few small grids to keep the file fast.
"""

from __future__ import annotations

import numpy as np
import opensimplex
import pytest
import torch

from contrastive_anomaly.config import NoiseConfig
from contrastive_anomaly.method.noise import NoiseSampler, OpenSimplex2D, permutation_table, simplex_field

OCTAVES = 6
PERSISTENCE = 0.8
FEATURE_SIZE = 64.0


def reference_octaves(height: int, width: int, seed: int) -> list[np.ndarray]:
    """opensimplex's noise2array for each octave on a (height, width) = (rows, cols) pixel grid (float64)."""
    opensimplex.seed(seed)
    octaves = []
    frequency = FEATURE_SIZE
    for _ in range(OCTAVES):
        octaves.append(opensimplex.noise2array(np.arange(width) / frequency, np.arange(height) / frequency))
        frequency /= 2
    return octaves


@pytest.mark.parametrize("seed", [0, -17, 2**61 + 5, 12345678901234567890123])
def test_permutation_table_matches_opensimplex(seed: int) -> None:
    np.testing.assert_array_equal(permutation_table(seed), opensimplex.OpenSimplex(seed)._perm)


def test_noise2array_matches_opensimplex_on_arbitrary_coordinates() -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(-300.0, 300.0, size=29)  # negative coordinates exercise the & 0xFF wrap-around
    y = rng.uniform(-300.0, 300.0, size=13)
    opensimplex.seed(99)
    expected = opensimplex.noise2array(x, y)
    actual = OpenSimplex2D(99).noise2array(x, y)
    assert actual.shape == expected.shape == (13, 29)
    assert np.max(np.abs(actual - expected)) < 1e-12


def test_noise2_is_elementwise_like_opensimplex_noise2() -> None:
    points = np.array([[0.0, 0.0], [0.5, 0.5], [-3.25, 7.5], [1e3, -2e3], [0.3, 0.3]])
    opensimplex.seed(5)
    expected = np.array([opensimplex.noise2(px, py) for px, py in points])
    actual = OpenSimplex2D(5).noise2(points[:, 0], points[:, 1])
    assert np.max(np.abs(actual - expected)) < 1e-12
    assert np.abs(expected).max() > 0  # the points are not all on zero crossings


@pytest.mark.parametrize("seed", [0, 987654321])
@pytest.mark.parametrize(("height", "width"), [(96, 96), (40, 70)])
def test_simplex_field_matches_opensimplex_octave_sum(height: int, width: int, seed: int) -> None:
    reference = reference_octaves(height, width, seed)
    generator = OpenSimplex2D(seed)
    frequency = FEATURE_SIZE
    for expected in reference:
        actual = generator.noise2array(np.arange(width) / frequency, np.arange(height) / frequency)
        assert np.max(np.abs(actual - expected)) < 1e-12
        frequency /= 2

    expected_field = np.zeros((height, width))
    amplitude = 1.0
    for octave in reference:
        expected_field += amplitude * octave
        amplitude *= PERSISTENCE
    field = simplex_field(height, width, seed, OCTAVES, PERSISTENCE, FEATURE_SIZE)
    assert field.dtype == np.float32
    assert field.shape == (height, width)
    assert np.max(np.abs(field.astype(np.float64) - expected_field.astype(np.float32))) < 1e-12


def test_simplex_field_axis_order_is_rows_y_cols_x() -> None:
    """field[y, x] = sum_o p^o S(x 2^o / f, y 2^o / f): check single pixels of a non-square map with noise2(x, y)."""
    height, width, seed = 20, 45, 3
    field = simplex_field(height, width, seed)
    opensimplex.seed(seed)
    for row, col in [(3, 41), (17, 8), (0, 44)]:
        expected = sum(
            PERSISTENCE**octave * opensimplex.noise2(col * 2**octave / FEATURE_SIZE, row * 2**octave / FEATURE_SIZE)
            for octave in range(OCTAVES)
        )
        assert field[row, col] == pytest.approx(expected, abs=1e-6)
    swapped = sum(
        PERSISTENCE**octave * opensimplex.noise2(3 * 2**octave / FEATURE_SIZE, 41 * 2**octave / FEATURE_SIZE)
        for octave in range(OCTAVES)
    )
    assert abs(field[3, 41] - swapped) > 1e-3  # the transposed convention gives a different value


def test_simplex_field_statistics_match_method() -> None:
    """docs/METHOD.md §4.5: unnormalised, mean ≈ 0.03, std ≈ 0.6 (0.5–0.65 per map), range ≈ ±2.2 on 96² maps."""
    fields = np.stack([simplex_field(96, 96, seed) for seed in range(1000, 1020)])
    assert abs(fields.mean(axis=(1, 2)).mean()) < 0.2
    assert 0.4 <= fields.std(axis=(1, 2)).mean() <= 0.8
    assert np.all(fields.std(axis=(1, 2)) > 0.3)
    assert np.abs(fields).max() <= 3.0
    assert np.abs(fields).max() > 1.0  # unnormalised but not squashed


def test_simplex_field_differs_between_seeds_and_rejects_bad_sizes() -> None:
    assert not np.allclose(simplex_field(32, 32, 1), simplex_field(32, 32, 2))
    np.testing.assert_array_equal(simplex_field(32, 32, 1), simplex_field(32, 32, 1))
    with pytest.raises(ValueError):
        simplex_field(0, 32, 1)
    with pytest.raises(ValueError):
        simplex_field(32, 32, 1, octaves=0)


def test_sampler_shares_one_field_across_the_batch_without_copying() -> None:
    cfg = NoiseConfig(kind="simplex", shared_across_batch=True)
    noise = NoiseSampler(cfg, 11).sample(5, 24, 40)
    assert noise.shape == (5, 1, 24, 40)
    assert noise.dtype == torch.float32
    assert noise.stride(0) == 0  # an expand-ed view, not five copies
    for index in range(1, 5):
        assert torch.equal(noise[index], noise[0])
    seed = NoiseSampler(cfg, 11).next_seed()  # the same generator state draws the same field seed
    np.testing.assert_array_equal(noise[0, 0].numpy(), simplex_field(24, 40, seed))


def test_sampler_draws_one_field_per_sample_when_not_shared() -> None:
    noise = NoiseSampler(NoiseConfig(kind="simplex", shared_across_batch=False), 11).sample(3, 24, 40)
    assert noise.shape == (3, 1, 24, 40)
    assert not torch.equal(noise[0], noise[1])
    assert not torch.equal(noise[1], noise[2])


@pytest.mark.parametrize("kind", ["simplex", "gaussian"])
def test_sampler_is_deterministic_per_seed_and_fresh_per_call(kind: str) -> None:
    cfg = NoiseConfig(kind=kind)
    first, second = NoiseSampler(cfg, 42), NoiseSampler(cfg, np.random.default_rng(42))
    a1, a2 = first.sample(2, 16, 16), first.sample(2, 16, 16)
    b1, b2 = second.sample(2, 16, 16), second.sample(2, 16, 16)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)  # a fresh draw on every call
    other = NoiseSampler(cfg, 43).sample(2, 16, 16)
    assert not torch.equal(a1, other)


def test_gaussian_sampler_is_standard_normal_per_sample() -> None:
    noise = NoiseSampler(NoiseConfig(kind="gaussian"), 0).sample(8, 32, 32, dtype=torch.float64)
    assert noise.shape == (8, 1, 32, 32)
    assert noise.dtype == torch.float64
    assert abs(noise.mean().item()) < 0.05
    assert abs(noise.std().item() - 1.0) < 0.05
    assert not torch.equal(noise[0], noise[1])


def test_sampler_casts_dtype_and_rejects_bad_arguments() -> None:
    half = NoiseSampler(NoiseConfig(), 0).sample(2, 8, 8, device="cpu", dtype=torch.float16)
    assert half.dtype == torch.float16
    assert half.device.type == "cpu"
    with pytest.raises(ValueError):
        NoiseSampler(NoiseConfig(kind="uniform"), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        NoiseSampler(NoiseConfig(), 0).sample(0, 8, 8)

"""Median time per fractal simplex field: contrastive_anomaly.method.noise vs the PyPI ``opensimplex`` package.

Both compute the same field (6 octaves, persistence 0.8, feature size 64 px; bit-identical, see Testing/test_noise.py).
opensimplex runs its pure-Python per-point loop here because numba is not installed.

    python benchmarks/bench_noise.py [--size 96] [--repeats 15] [--reference-repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import opensimplex
import torch

from contrastive_anomaly.config import NoiseConfig
from contrastive_anomaly.method import noise
from contrastive_anomaly.method.noise import NoiseSampler, simplex_field


def opensimplex_field(height: int, width: int, seed: int, cfg: NoiseConfig) -> np.ndarray:
    """The reference computation: one ``noise2array`` call per octave on a (rows, cols) pixel grid."""
    opensimplex.seed(seed)
    field = np.zeros((height, width))
    frequency, amplitude = cfg.feature_size, 1.0
    for _ in range(cfg.octaves):
        field += amplitude * opensimplex.noise2array(np.arange(width) / frequency, np.arange(height) / frequency)
        frequency /= 2
        amplitude *= cfg.persistence
    return field.astype(np.float32)


def median_ms(function: Callable[[int], object], repeats: int) -> float:
    """Median wall-clock milliseconds of ``function(seed)`` over ``repeats`` calls with different seeds."""
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        function(seed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="field height and width in pixels")
    parser.add_argument("--repeats", type=int, default=15, help="calls timed for the vectorised implementation")
    parser.add_argument("--reference-repeats", type=int, default=3, help="calls timed for opensimplex (slow)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = NoiseConfig()
    size = args.size

    def cold_field(seed: int) -> None:
        noise._field_geometry.cache_clear()
        simplex_field(size, size, seed, cfg.octaves, cfg.persistence, cfg.feature_size)

    cold = median_ms(cold_field, args.repeats)
    ours = median_ms(lambda seed: simplex_field(size, size, seed, cfg.octaves, cfg.persistence, cfg.feature_size),
                     args.repeats)
    sampler = NoiseSampler(cfg, 0)
    batch = median_ms(lambda _seed: sampler.sample(32, size, size), args.repeats)
    reference = median_ms(lambda seed: opensimplex_field(size, size, seed, cfg), args.reference_repeats)

    print(f"simplex field {size}x{size}, {cfg.octaves} octaves (median ms per call)")
    print(f"{'implementation':<44}{'ms':>10}{'x faster':>10}")
    print(f"{'opensimplex 0.4.5.1 (no numba)':<44}{reference:>10.2f}{1.0:>10.1f}")
    print(f"{'simplex_field, first field of a new size':<44}{cold:>10.2f}{reference / cold:>10.1f}")
    print(f"{'simplex_field, repeated size (cached grid)':<44}{ours:>10.2f}{reference / ours:>10.1f}")
    print(f"{'NoiseSampler.sample(32, shared field)':<44}{batch:>10.2f}{reference / batch:>10.1f}")


if __name__ == "__main__":
    main()

"""Time the post-processing, threshold calibration, metrics and findings steps on the model grid (50 x 96 x 96 KJI).

Synthetic smooth residual maps with a few blob lesions stand in for real model output. Each step: 2 warm-up calls,
then the median and min-max of ``--repeats`` timed calls (``time.perf_counter``). Everything here is numpy/scipy/
sklearn on one thread.

    python benchmarks/bench_postprocess.py [--volumes 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from contrastive_anomaly.config import PostprocessConfig
from contrastive_anomaly.scoring.metrics import auprc, auroc, lesion_detection
from contrastive_anomaly.scoring.postprocess import binarize, erode_brain_mask, filter_map, residual_map
from contrastive_anomaly.scoring.regions import find_regions
from contrastive_anomaly.scoring.thresholds import best_dice_threshold, fpr_threshold

SHAPE_KJI = (50, 96, 96)


def synthetic_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, reconstruction, brain mask, lesion label) on the model grid, float32 / bool."""
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(SHAPE_KJI)
    brain = ((k - 25) / 24.0) ** 2 + ((j - 48) / 40.0) ** 2 + ((i - 48) / 34.0) ** 2 <= 1.0
    image = ndimage.gaussian_filter(rng.random(SHAPE_KJI).astype(np.float32), 2.0) * brain
    label = np.zeros(SHAPE_KJI, dtype=bool)
    for _ in range(3):
        centre = rng.integers((15, 30, 30), (35, 66, 66))
        radius = rng.uniform(2.0, 5.0)
        label |= ((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2) <= radius**2
    label &= brain
    image = np.where(label, image + 0.4, image).astype(np.float32)
    reconstruction = (image - 0.4 * label + rng.normal(0, 0.05, SHAPE_KJI)).astype(np.float32)
    return image, reconstruction, brain, label


def timed(name: str, call: Callable[[], object], repeats: int) -> float:
    for _ in range(2):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    median = statistics.median(samples)
    print(f"{name:<44} median {median * 1000:9.1f} ms   (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=10, help="validation volumes for the threshold search")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.processor() or platform.machine()}")
    cfg = PostprocessConfig()
    cases = [synthetic_case(seed) for seed in range(args.volumes)]
    image, reconstruction, brain, label = cases[0]
    residual = residual_map(image, reconstruction)
    filtered = filter_map(residual, brain, cfg)
    threshold = 0.2
    mask = binarize(filtered, threshold, cfg)

    timed("residual_map", lambda: residual_map(image, reconstruction), args.repeats)
    timed("erode_brain_mask (3 iterations)", lambda: erode_brain_mask(brain, 3), args.repeats)
    timed("filter_map (erode + median 5^3)", lambda: filter_map(residual, brain, cfg), args.repeats)
    timed("binarize (threshold + components)", lambda: binarize(filtered, threshold, cfg), args.repeats)
    timed("find_regions", lambda: find_regions(mask, filtered, (2, 2, 2), (0, 0, 0), np.eye(3).ravel()), args.repeats)
    timed("auprc (all voxels)", lambda: auprc(filtered, label), args.repeats)
    timed("auroc (all voxels)", lambda: auroc(filtered, label), args.repeats)
    timed("lesion_detection", lambda: lesion_detection(mask, label, (2, 2, 2)), args.repeats)

    maps = [filter_map(residual_map(c[0], c[1]), c[2], cfg) for c in cases]
    labels = [c[3] for c in cases]
    brains = [c[2] for c in cases]
    search_repeats = max(1, args.repeats // 2)
    timed(f"rule A search, {args.volumes} volumes, 10 rounds", lambda: best_dice_threshold(maps, labels, cfg),
          search_repeats)
    timed(f"rule B threshold, {args.volumes} volumes", lambda: fpr_threshold(maps, brains, 0.01), args.repeats)
    print(f"rule A threshold on the synthetic set: {best_dice_threshold(maps, labels, cfg):.4f}")


if __name__ == "__main__":
    main()

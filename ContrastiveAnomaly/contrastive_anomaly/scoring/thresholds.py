"""Threshold calibration on validation volumes (docs/METHOD.md §6; docs/DATA.md §5).

* Rule A, :func:`best_dice_threshold`: the threshold that maximises the pooled Dice on labelled validation volumes,
  found by a dense sweep (:func:`dice_sweep`). The paper's interval search on ``[0, max]`` (:func:`dice_search`)
  is kept for reproductions only: on a weak map whose maximum is an outlier both of its probes flag nothing, ties
  send it to the lower half every round, and it ends near 0, i.e. flagging the whole brain.
* Rule B, :func:`fpr_threshold`: the threshold whose voxel false-positive rate on healthy validation volumes is a
  target rate.

Maps are post-processed residual maps (:func:`~contrastive_anomaly.scoring.postprocess.filter_map`), KJI float arrays in
intensity units on ``[0, 1]`` images; thresholds are in the same units. Never calibrate on test volumes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import PostprocessConfig
from ..errors import InputError
from .metrics import dice_from_counts
from .postprocess import binarize

# Rule A: each round evaluates Dice at these fractions of the current interval and keeps the half around the better.
_LOWER_PROBE, _UPPER_PROBE = 0.25, 0.75
# Dense rule A sweep: the SWEEP_REFINE best thresholds by Dice without the component filter are re-scored with it.
SWEEP_REFINE = 8


def _check_pairs(maps: Sequence[np.ndarray], others: Sequence[np.ndarray], what: str) -> None:
    if len(maps) == 0:
        raise InputError("no validation maps were given")
    if len(maps) != len(others):
        raise InputError(f"{len(maps)} maps but {len(others)} {what}; give one per map")
    for index, (score, other) in enumerate(zip(maps, others, strict=True)):
        if np.shape(score) != np.shape(other):
            raise InputError(f"volume {index}: map shape {np.shape(score)} differs from {what} shape {np.shape(other)}")


def pooled_dice(
    maps: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    threshold: float,
    cfg: PostprocessConfig,
    component_filter: bool = True,
) -> float:
    """Dice of ``binarize(map, threshold)`` against ``label > 0``, with the counts summed over all volumes.

    The component filter is applied to each volume separately (components never span volumes). With
    ``component_filter=False`` the mask is the bare ``map > threshold``, as in the official search. Empty masks follow
    :func:`~contrastive_anomaly.scoring.metrics.dice_from_counts` (both empty: 1.0).
    """
    intersection = predicted = truth = 0
    for score, label in zip(maps, labels, strict=True):
        pred = binarize(score, threshold, cfg) if component_filter else np.asarray(score) > threshold
        true = np.asarray(label) > 0
        intersection += int(np.count_nonzero(pred & true))
        predicted += int(np.count_nonzero(pred))
        truth += int(np.count_nonzero(true))
    return dice_from_counts(intersection, predicted, truth)


def dice_search(
    maps: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    cfg: PostprocessConfig,
    rounds: int = 10,
    component_filter: bool = True,
) -> tuple[float, float]:
    """Rule A interval search; returns ``(threshold, pooled Dice at that threshold)``.

    Start with ``[0, max over all maps]``. Each round evaluates the pooled Dice (:func:`pooled_dice`) at the 25 % and
    75 % points of the interval and keeps the lower half if the 25 % point is at least as good, else the upper half.
    The result is the best point evaluated over all rounds (a later point wins ties), as in the official search.
    ``2 * rounds`` Dice evaluations in total.
    """
    _check_pairs(maps, labels, "label volumes")
    if rounds < 1:
        raise InputError(f"the threshold search needs at least one round, got {rounds}")
    if not any(np.any(np.asarray(label) > 0) for label in labels):
        raise InputError("the validation labels contain no lesion voxels; rule A needs labelled lesions")
    upper = max(float(np.max(score)) for score in maps)
    if not np.isfinite(upper) or upper <= 0.0:
        raise InputError("the validation maps are all zero (or not finite); cannot calibrate a threshold on them")

    low, high = 0.0, upper
    best_dice, best_threshold = 0.0, 0.0
    for _ in range(rounds):
        width = high - low
        probe_low, probe_high = low + _LOWER_PROBE * width, low + _UPPER_PROBE * width
        dice_low = pooled_dice(maps, labels, probe_low, cfg, component_filter)
        dice_high = pooled_dice(maps, labels, probe_high, cfg, component_filter)
        middle = low + 0.5 * width
        if dice_low >= dice_high:
            candidate, candidate_dice, high = probe_low, dice_low, middle
        else:
            candidate, candidate_dice, low = probe_high, dice_high, middle
        if candidate_dice >= best_dice:
            best_dice, best_threshold = candidate_dice, candidate
    return best_threshold, best_dice


def dice_sweep(
    maps: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    cfg: PostprocessConfig,
    component_filter: bool = True,
) -> tuple[float, float]:
    """Rule A dense sweep; returns ``(threshold, pooled Dice at that threshold)``.

    Every distinct map value ``v`` is a candidate (flag ``map > v``), plus 0. The pooled Dice without the
    component filter is computed exactly for all of them from one sort of the map values; the best
    :data:`SWEEP_REFINE` are then scored with :func:`pooled_dice` (component filter on, unless
    ``component_filter=False``). Ties go to the higher threshold (fewer flagged voxels).
    """
    _check_pairs(maps, labels, "label volumes")
    if not any(np.any(np.asarray(label) > 0) for label in labels):
        raise InputError("the validation labels contain no lesion voxels; rule A needs labelled lesions")
    values = np.concatenate([np.asarray(score, dtype=np.float64).ravel() for score in maps])
    truth = np.concatenate([np.asarray(label).ravel() > 0 for label in labels])
    if not np.all(np.isfinite(values)):
        raise InputError("the validation maps contain NaN or infinite values")
    if not np.any(values > 0):
        raise InputError("the validation maps are all zero; cannot calibrate a threshold on them")
    order = np.argsort(values, kind="stable")
    sorted_values, sorted_truth = values[order], truth[order]
    lesion_at_or_above = np.concatenate([np.cumsum(sorted_truth[::-1])[::-1], [0]])
    last_of_value = np.flatnonzero(np.diff(sorted_values, append=np.inf))  # last position of each distinct value
    candidates = sorted_values[last_of_value]
    keep = candidates >= 0.0
    candidates, last_of_value = candidates[keep], last_of_value[keep]
    predicted = sorted_values.size - last_of_value - 1
    hits = lesion_at_or_above[last_of_value + 1]
    raw_dice = 2.0 * hits / np.maximum(predicted + int(truth.sum()), 1)
    best = np.lexsort((-candidates, -raw_dice))[:SWEEP_REFINE]
    if not component_filter:
        return float(candidates[best[0]]), float(raw_dice[best[0]])
    scored = [(pooled_dice(maps, labels, float(candidates[i]), cfg), float(candidates[i])) for i in best]
    dice_value, threshold = max(scored)
    return threshold, dice_value


def best_dice_threshold(
    maps: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    cfg: PostprocessConfig,
    component_filter: bool = True,
) -> float:
    """Rule A: the threshold (intensity units) with the best pooled validation Dice; see :func:`dice_sweep`."""
    threshold, _ = dice_sweep(maps, labels, cfg, component_filter)
    return threshold


def _healthy_voxels(healthy_maps: Sequence[np.ndarray], brain_masks: Sequence[np.ndarray] | None) -> np.ndarray:
    """All healthy voxel scores in one float64 vector (only voxels inside the brain masks when masks are given)."""
    if len(healthy_maps) == 0:
        raise InputError("no healthy validation maps were given")
    if brain_masks is None:
        parts = [np.asarray(score, dtype=np.float64).ravel() for score in healthy_maps]
    else:
        _check_pairs(healthy_maps, brain_masks, "brain masks")
        parts = [
            np.asarray(score, dtype=np.float64)[np.asarray(mask) > 0]
            for score, mask in zip(healthy_maps, brain_masks, strict=True)
        ]
    voxels = np.concatenate(parts)
    if voxels.size == 0:
        raise InputError("the healthy validation volumes have no voxels inside their brain masks")
    if not np.all(np.isfinite(voxels)):
        raise InputError("the healthy validation maps contain NaN or infinite values")
    return voxels


def fpr_thresholds(
    healthy_maps: Sequence[np.ndarray],
    brain_masks: Sequence[np.ndarray] | None,
    target_fprs: Sequence[float],
) -> dict[float, float]:
    """Rule B for several rates at once: ``{target_fpr: threshold}`` (see :func:`fpr_threshold`)."""
    targets = [float(rate) for rate in target_fprs]
    for rate in targets:
        if not 0.0 < rate < 1.0:
            raise InputError(f"a target false-positive rate must be between 0 and 1 (exclusive), got {rate}")
    voxels = _healthy_voxels(healthy_maps, brain_masks)
    # method="higher" returns an observed voxel value, so strictly fewer than target_fpr of the voxels exceed it.
    quantiles = np.quantile(voxels, [1.0 - rate for rate in targets], method="higher")
    return {rate: float(value) for rate, value in zip(targets, quantiles, strict=True)}


def fpr_threshold(
    healthy_maps: Sequence[np.ndarray],
    brain_masks: Sequence[np.ndarray] | None,
    target_fpr: float,
) -> float:
    """Rule B: the ``1 - target_fpr`` quantile of the healthy voxel scores (inside the brain masks if given).

    Flagging voxels ``> threshold`` then marks at most ``target_fpr`` of the healthy validation voxels (the voxel
    false-positive rate before the component filter; ties at the quantile make it lower). Intensity units.
    """
    return fpr_thresholds(healthy_maps, brain_masks, [target_fpr])[float(target_fpr)]


def voxel_false_positive_rate(
    healthy_maps: Sequence[np.ndarray],
    brain_masks: Sequence[np.ndarray] | None,
    threshold: float,
) -> float:
    """Fraction of the healthy voxels (inside the brain masks if given) whose score is ``> threshold``."""
    voxels = _healthy_voxels(healthy_maps, brain_masks)
    return float(np.count_nonzero(voxels > threshold)) / voxels.size

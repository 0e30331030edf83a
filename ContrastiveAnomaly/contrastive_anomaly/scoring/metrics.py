"""Evaluation metrics (docs/METHOD.md §7, docs/DATA.md §5): Dice, voxel AUPRC/AUROC, detection by size, FP volume.

Arrays are KJI volumes on one grid (any shape works as long as a map, its prediction and its label match). Score maps
are post-processed residual maps in intensity units; predictions and labels are masks (``> 0`` counts as set).
Voxel spacing is in mm, volumes in mL (1 mL = 1000 mm³). AUPRC and AUROC use **all** voxels, background included
(docs/METHOD.md §7). A metric that is undefined on a volume (AUROC of a volume without lesion voxels) is ``nan`` and is
left out of means (``nanmean``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from sklearn.metrics import auc, average_precision_score, roc_curve

from ..config import BenchmarkConfig
from ..errors import InputError
from .postprocess import neighbourhood
from .regions import voxel_volume_ml

MM3_PER_ML = 1000.0
METRIC_NAMES = ("dice", "auprc", "auroc")
DETECTION_BINS_ML = BenchmarkConfig.detection_bins_ml  # lesion-size bucket edges (mL); defined once, in the config


def _mask(array: np.ndarray) -> np.ndarray:
    return np.asarray(array) > 0


def _require_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if np.shape(a) != np.shape(b):
        raise InputError(f"{what}: shapes {np.shape(a)} and {np.shape(b)} differ")


def dice_from_counts(intersection: int, predicted: int, truth: int) -> float:
    """The project's one Dice: ``2 |P ∩ G| / (|P| + |G|)`` from voxel counts.

    Empty-mask convention: both masks empty gives **1.0** (nothing to find, nothing found: a healthy scan scored
    correctly); exactly one empty gives 0.0 (the formula). Every Dice in the engine (per volume, pooled over volumes,
    threshold search, registration QC) goes through this function.
    """
    total = int(predicted) + int(truth)
    if total == 0:
        return 1.0
    return 2.0 * int(intersection) / total


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two masks of the same shape (``> 0`` counts as set); see :func:`dice_from_counts` for the
    empty-mask convention (both empty: 1.0)."""
    _require_same_shape(pred, truth, "dice")
    p, g = _mask(pred), _mask(truth)
    return dice_from_counts(np.count_nonzero(p & g), np.count_nonzero(p), np.count_nonzero(g))


def _flat_scores_labels(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _require_same_shape(scores, labels, "scores and labels")
    return np.asarray(scores, dtype=np.float64).ravel(), _mask(labels).ravel()


def auprc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision (sklearn ``average_precision_score``) of voxel scores against ``labels > 0``.

    ``nan`` when the labels hold only one class (undefined)."""
    flat_scores, flat_labels = _flat_scores_labels(scores, labels)
    if flat_labels.all() or not flat_labels.any():
        return float("nan")
    return float(average_precision_score(flat_labels, flat_scores))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (sklearn ``roc_curve`` + ``auc``); ``nan`` when the labels hold only one class."""
    flat_scores, flat_labels = _flat_scores_labels(scores, labels)
    if flat_labels.all() or not flat_labels.any():
        return float("nan")
    false_positive_rate, true_positive_rate, _ = roc_curve(flat_labels, flat_scores)
    return float(auc(false_positive_rate, true_positive_rate))


def volume_metrics(score_map: np.ndarray, pred_mask: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``{"dice", "auprc", "auroc"}`` for one volume: Dice of the binarised mask, AUPRC/AUROC of the continuous map."""
    _require_same_shape(score_map, truth, "score map and truth")
    return {"dice": dice(pred_mask, truth), "auprc": auprc(score_map, truth), "auroc": auroc(score_map, truth)}


def pooled_metrics(
    score_maps: Sequence[np.ndarray], pred_masks: Sequence[np.ndarray], truths: Sequence[np.ndarray]
) -> dict[str, float]:
    """Metrics over all volumes at once: voxels of every volume concatenated (one Dice, one AUPRC, one AUROC)."""
    if not (len(score_maps) == len(pred_masks) == len(truths)) or len(truths) == 0:
        raise InputError("give the same, non-zero number of score maps, predicted masks and truth masks")
    for score, pred, truth in zip(score_maps, pred_masks, truths, strict=True):
        _require_same_shape(score, truth, "score map and truth")
        _require_same_shape(pred, truth, "predicted mask and truth")
    scores = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in score_maps])
    preds = np.concatenate([_mask(p).ravel() for p in pred_masks])
    labels = np.concatenate([_mask(t).ravel() for t in truths])
    return {"dice": dice(preds, labels), "auprc": auprc(scores, labels), "auroc": auroc(scores, labels)}


def mean_metrics(per_volume: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean (``nanmean``) and standard deviation over volumes of each metric: keys ``<name>`` and ``<name>_std``."""
    summary: dict[str, float] = {}
    for name in METRIC_NAMES:
        values = np.array([row[name] for row in per_volume], dtype=np.float64)
        finite = values[np.isfinite(values)]
        summary[name] = float(finite.mean()) if finite.size else float("nan")
        summary[f"{name}_std"] = float(finite.std()) if finite.size else float("nan")
    return summary


def evaluate_volumes(
    score_maps: Sequence[np.ndarray], pred_masks: Sequence[np.ndarray], truths: Sequence[np.ndarray]
) -> dict[str, Any]:
    """``{"per_volume": [metrics per volume], "mean": mean over volumes, "pooled": pooled over voxels}``."""
    per_volume = [
        volume_metrics(score, pred, truth) for score, pred, truth in zip(score_maps, pred_masks, truths, strict=True)
    ]
    return {
        "per_volume": per_volume,
        "mean": mean_metrics(per_volume),
        "pooled": pooled_metrics(score_maps, pred_masks, truths),
    }


def healthy_reconstruction_error(image: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean ``|x - x_hat|`` over the whole volume, before masking and filtering (the IXI metric; intensity units)."""
    _require_same_shape(image, reconstruction, "image and reconstruction")
    return float(np.mean(np.abs(np.asarray(image, np.float64) - np.asarray(reconstruction, np.float64))))


def slice_auroc(score_kji: np.ndarray, brain_mask_kji: np.ndarray, truth_kji: np.ndarray) -> float:
    """Slice-level AUROC: slice score = mean map value inside the brain mask (0 without brain), slice label = any
    lesion voxel in the axial slice ``[k]``. ``nan`` if all slices have the same label."""
    _require_same_shape(score_kji, truth_kji, "score map and truth")
    _require_same_shape(brain_mask_kji, truth_kji, "brain mask and truth")
    scores = np.asarray(score_kji, dtype=np.float64)
    brain = _mask(brain_mask_kji)
    brain_voxels = brain.reshape(brain.shape[0], -1).sum(axis=1)
    brain_sums = (scores * brain).reshape(scores.shape[0], -1).sum(axis=1)
    slice_scores = np.divide(brain_sums, brain_voxels, out=np.zeros_like(brain_sums), where=brain_voxels > 0)
    slice_labels = _mask(truth_kji).reshape(scores.shape[0], -1).any(axis=1)
    return auroc(slice_scores, slice_labels)


def false_positive_volume_ml(
    pred_mask: np.ndarray, spacing_mm: Sequence[float], truth_mask: np.ndarray | None = None
) -> float:
    """Volume in mL of predicted voxels outside ``truth_mask`` (all predicted voxels when no truth: healthy scans)."""
    pred = _mask(pred_mask)
    if truth_mask is not None:
        _require_same_shape(pred_mask, truth_mask, "predicted mask and truth")
        pred = pred & ~_mask(truth_mask)
    return int(np.count_nonzero(pred)) * voxel_volume_ml(spacing_mm)


def _size_buckets(volumes_ml: np.ndarray, detected: np.ndarray, bins_ml: Sequence[float]) -> list[dict[str, Any]]:
    """Group lesions into ``[0, b0), [b0, b1), …, [b_last, ∞)`` mL; ``upper_ml`` is ``None`` for the open bucket."""
    edges = [0.0, *[float(b) for b in bins_ml], None]
    bucket_of = np.digitize(volumes_ml, np.asarray(bins_ml, dtype=np.float64), right=False)
    buckets = []
    for index in range(len(edges) - 1):
        in_bucket = bucket_of == index
        lesions = int(np.count_nonzero(in_bucket))
        hits = int(np.count_nonzero(detected[in_bucket]))
        buckets.append({
            "lower_ml": edges[index],
            "upper_ml": edges[index + 1],
            "lesions": lesions,
            "detected": hits,
            "detection_rate": hits / lesions if lesions else float("nan"),
        })
    return buckets


def lesion_detection(
    pred_mask: np.ndarray,
    truth_mask: np.ndarray,
    spacing_mm: Sequence[float],
    bins_ml: Sequence[float] = DETECTION_BINS_ML,
    connectivity: int = 26,
) -> dict[str, Any]:
    """Per-lesion detection, grouped by lesion volume.

    Each connected component of ``truth_mask`` (``connectivity`` 6/18/26) is one lesion; it is *detected* if at least
    one of its voxels is predicted. ``bins_ml`` are increasing bucket edges in mL. Returns
    ``{"bins_ml": [...], "components": [{"volume_ml", "detected"}], "buckets": [{"lower_ml", "upper_ml", "lesions",
    "detected", "detection_rate"}]}``; the rate of an empty bucket is ``nan``.
    """
    _require_same_shape(pred_mask, truth_mask, "predicted mask and truth")
    bins = [float(b) for b in bins_ml]
    if any(later <= earlier for earlier, later in zip(bins, bins[1:], strict=False)) or any(b <= 0 for b in bins):
        raise InputError(f"lesion size bins must be positive and increasing, got {bins}")
    labels, count = ndimage.label(_mask(truth_mask), structure=neighbourhood(connectivity))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    hit_voxels = np.bincount(labels[_mask(pred_mask)], minlength=count + 1)[1:]
    volumes_ml = sizes * voxel_volume_ml(spacing_mm)
    detected = hit_voxels > 0
    return {
        "bins_ml": bins,
        "components": [
            {"volume_ml": float(v), "detected": bool(d)} for v, d in zip(volumes_ml, detected, strict=True)
        ],
        "buckets": _size_buckets(volumes_ml, detected, bins),
    }


def merge_lesion_detection(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine :func:`lesion_detection` results of several volumes (same bins) into one table."""
    if len(results) == 0:
        raise InputError("no lesion detection results to merge")
    bins = list(results[0]["bins_ml"])
    if any(list(result["bins_ml"]) != bins for result in results):
        raise InputError("lesion detection results use different size bins; they cannot be merged")
    components = [component for result in results for component in result["components"]]
    volumes_ml = np.array([c["volume_ml"] for c in components], dtype=np.float64)
    detected = np.array([c["detected"] for c in components], dtype=bool)
    return {"bins_ml": bins, "components": components, "buckets": _size_buckets(volumes_ml, detected, bins)}

"""NOVA box evaluation (docs/METHOD.md §7 "NOVA protocol") and, separately, a standard COCO-style AP.

Boxes are ``(x, y, width, height)`` in pixels of the 2D image: ``x`` is the first column, ``y`` the first row, and
``width``/``height`` count columns/rows, so the box covers columns ``x … x + width - 1``. Maps are 2D ``(rows, cols)``
arrays in intensity units on ``[0, 1]`` images.

The NOVA protocol is reproduced as the official scripts define it (facts taken from them, code our own):

* boxes are the bounding boxes of 4-connected components of ``median5(map) > 0.5``, largest box area first, top 5;
* IoU uses the "+1 pixel" convention on corners ``(x, y)`` and ``(x + width, y + height)``, i.e. each box is counted
  one pixel wider and taller than it is;
* a prediction (in descending-area order) is a TP if its best-IoU ground-truth box reaches the threshold and is still
  unmatched (no fallback to the second-best box); AP per image = mean precision at the TP ranks (0 without TP);
  mAP = mean over images. The official code adds 1e-6 to two denominators; we do not (differences < 1e-5).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from contrastive_anomaly.errors import InputError

Box = tuple[float, float, float, float]
ImageBoxes = tuple[Sequence[Box], Sequence[Box]]  # (predicted boxes, ground-truth boxes) of one image

# Protocol constants of the official NOVA evaluation.
NOVA_THRESHOLD = 0.5
NOVA_MEDIAN_SIZE = 5
NOVA_KEEP_BOXES = 5
NOVA_CAPTION_SUBSTRING = "T2"
NOVA_LOOSE_IOU = 0.3
NOVA_STRICT_IOU = 0.5
# 0.50, 0.55, …, 0.95: the ten COCO IoU thresholds, built as the official script does (arange, float steps).
IOU_THRESHOLDS_50_95 = tuple(float(t) for t in np.arange(0.5, 1.0, 0.05))


def box_area(box: Box) -> float:
    """``width * height`` in pixels (the area the protocol ranks boxes by)."""
    return float(box[2]) * float(box[3])


def sort_by_area(boxes: Sequence[Box]) -> list[Box]:
    """Boxes by descending area; equal areas keep their input order."""
    return sorted(boxes, key=box_area, reverse=True)


def boxes_from_map(
    map2d: np.ndarray,
    threshold: float = NOVA_THRESHOLD,
    median_size: int = NOVA_MEDIAN_SIZE,
    keep: int | None = NOVA_KEEP_BOXES,
) -> list[Box]:
    """Bounding boxes ``(x, y, width, height)`` of the 4-connected components of ``median(map) > threshold``.

    ``median_size <= 1`` skips the 2D median filter; ``keep=None`` keeps every box. Largest box area first, ties in
    raster order of the components' first pixels. Integer pixel coordinates.
    """
    image = np.asarray(map2d, dtype=np.float32)
    if image.ndim != 2:
        raise InputError(f"a NOVA map must be 2D (rows, cols), got shape {image.shape}")
    if median_size > 1:
        image = ndimage.median_filter(image, size=int(median_size))
    labels, _ = ndimage.label(image > threshold, structure=ndimage.generate_binary_structure(2, 1))
    boxes: list[Box] = []
    for rows, cols in ndimage.find_objects(labels):
        boxes.append((int(cols.start), int(rows.start), int(cols.stop - cols.start), int(rows.stop - rows.start)))
    ordered = sort_by_area(boxes)
    return ordered if keep is None else ordered[:keep]


def iou_plus_one(box_a: Box, box_b: Box) -> float:
    """IoU with the +1-pixel convention of the NOVA scripts: corners ``(x, y)``, ``(x + w, y + h)``, both inclusive."""
    ax1, ay1, ax2, ay2 = box_a[0], box_a[1], box_a[0] + box_a[2], box_a[1] + box_a[3]
    bx1, by1, bx2, by2 = box_b[0], box_b[1], box_b[0] + box_b[2], box_b[1] + box_b[3]
    inter_w = max(0.0, min(ax2, bx2) - max(ax1, bx1) + 1)
    inter_h = max(0.0, min(ay2, by2) - max(ay1, by1) + 1)
    intersection = inter_w * inter_h
    union = (ax2 - ax1 + 1) * (ay2 - ay1 + 1) + (bx2 - bx1 + 1) * (by2 - by1 + 1) - intersection
    return float(intersection / union) if union > 0 else 0.0


def iou(box_a: Box, box_b: Box) -> float:
    """Standard IoU of two ``(x, y, width, height)`` boxes (continuous areas, no +1)."""
    inter_w = max(0.0, min(box_a[0] + box_a[2], box_b[0] + box_b[2]) - max(box_a[0], box_b[0]))
    inter_h = max(0.0, min(box_a[1] + box_a[3], box_b[1] + box_b[3]) - max(box_a[1], box_b[1]))
    intersection = inter_w * inter_h
    union = box_area(box_a) + box_area(box_b) - intersection
    return float(intersection / union) if union > 0 else 0.0


def nova_image_ap(pred_boxes: Sequence[Box], gt_boxes: Sequence[Box], iou_threshold: float) -> tuple[float, int, int]:
    """NOVA AP of one image: ``(ap, tp, fp)``.

    Predictions are taken in descending-area order (sorted here). Each is a TP if the ground-truth box with its
    highest IoU (+1 convention; first such box on ties) has IoU >= ``iou_threshold`` and is still unmatched, else an
    FP. AP is the mean of the cumulative precision at the TP ranks, 0 without TP.
    """
    matched: set[int] = set()
    precisions_at_tp: list[float] = []
    tp = fp = 0
    for pred in sort_by_area(pred_boxes):
        overlaps = [iou_plus_one(pred, gt) for gt in gt_boxes]
        best = int(np.argmax(overlaps)) if overlaps else -1
        if best >= 0 and overlaps[best] >= iou_threshold and best not in matched:
            matched.add(best)
            tp += 1
            precisions_at_tp.append(tp / (tp + fp))
        else:
            fp += 1
    ap = float(np.mean(precisions_at_tp)) if precisions_at_tp else 0.0
    return ap, tp, fp


def _nova_at(images: Sequence[ImageBoxes], iou_threshold: float) -> tuple[float, int, int]:
    """(mAP over images, total TP, total FP) at one IoU threshold."""
    results = [nova_image_ap(pred, gt, iou_threshold) for pred, gt in images]
    return float(np.mean([r[0] for r in results])), sum(r[1] for r in results), sum(r[2] for r in results)


def nova_map(images: Sequence[ImageBoxes], thresholds: Sequence[float] = IOU_THRESHOLDS_50_95) -> dict[str, Any]:
    """The NOVA summary over images given as ``(pred_boxes, gt_boxes)`` pairs.

    Keys: ``mAP@0.3``, ``mAP@0.5``, ``mAP@[0.5:0.95]`` (mean of the mAP at each of ``thresholds``), ``ACC@0.5``
    (ΣTP / ΣGT at IoU 0.5), ``TP@0.3``, ``FP@0.3``, ``GT`` (total ground-truth boxes) and ``images``.
    """
    if len(images) == 0:
        raise InputError("no NOVA images to evaluate")
    map_loose, tp_loose, fp_loose = _nova_at(images, NOVA_LOOSE_IOU)
    map_strict, tp_strict, _ = _nova_at(images, NOVA_STRICT_IOU)
    map_range = float(np.mean([_nova_at(images, float(t))[0] for t in thresholds]))
    total_gt = sum(len(gt) for _, gt in images)
    return {
        "mAP@0.3": map_loose,
        "mAP@0.5": map_strict,
        "mAP@[0.5:0.95]": map_range,
        "ACC@0.5": tp_strict / total_gt if total_gt else 0.0,
        "TP@0.3": tp_loose,
        "FP@0.3": fp_loose,
        "GT": total_gt,
        "images": len(images),
    }


def _match_greedy(pred_boxes: Sequence[Box], scores: Sequence[float], gt_boxes: Sequence[Box], thr: float) -> list:
    """COCO matching in one image: detections by descending score, each takes the unmatched GT of highest IoU >= thr.

    Returns ``[(score, is_tp)]``."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    taken = np.zeros(len(gt_boxes), dtype=bool)
    outcomes = []
    for index in order:
        overlaps = np.array([iou(pred_boxes[index], gt) for gt in gt_boxes], dtype=np.float64)
        overlaps[taken] = -1.0
        best = int(np.argmax(overlaps)) if overlaps.size else -1
        hit = best >= 0 and overlaps[best] >= thr
        if hit:
            taken[best] = True
        outcomes.append((float(scores[index]), hit))
    return outcomes


def coco_ap(
    images: Sequence[ImageBoxes],
    iou_threshold: float = NOVA_STRICT_IOU,
    scores: Sequence[Sequence[float]] | None = None,
) -> float:
    """Standard AP over the detections of all images pooled, with all-point interpolation.

    ``scores[i][j]`` is the confidence of prediction ``j`` of image ``i``; without scores the box area is the
    confidence (so each image's boxes rank by area, and larger boxes rank first across images). IoU is the standard
    one (:func:`iou`). Precision is made monotone (running max from the right) and integrated over recall.
    0.0 if there is no ground-truth box.
    """
    outcomes: list[tuple[float, bool]] = []
    total_gt = 0
    for index, (preds, gts) in enumerate(images):
        image_scores = [box_area(b) for b in preds] if scores is None else list(scores[index])
        if len(image_scores) != len(preds):
            raise InputError(f"image {index}: {len(preds)} boxes but {len(image_scores)} scores")
        outcomes.extend(_match_greedy(preds, image_scores, gts, iou_threshold))
        total_gt += len(gts)
    if total_gt == 0 or not outcomes:
        return 0.0
    ranked = np.argsort(-np.array([s for s, _ in outcomes]), kind="stable")
    hits = np.array([outcomes[i][1] for i in ranked], dtype=np.float64)
    cum_tp = np.cumsum(hits)
    precision = cum_tp / np.arange(1, hits.size + 1)
    recall = cum_tp / total_gt
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    recall_steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(recall_steps * envelope))


def coco_map(
    images: Sequence[ImageBoxes],
    thresholds: Sequence[float] = IOU_THRESHOLDS_50_95,
    scores: Sequence[Sequence[float]] | None = None,
) -> float:
    """Mean of :func:`coco_ap` over ``thresholds`` (COCO's AP@[0.5:0.95] with all-point interpolation)."""
    return float(np.mean([coco_ap(images, float(t), scores) for t in thresholds]))


def parse_bbox_gold(text: str) -> list[Box]:
    """Parse a NOVA ``bbox_gold`` cell, a dict of lists ``{'x': [...], 'y': [...], 'width': [...], 'height': [...]}``.

    An empty cell (``""``/``nan``) means no box. Raises :class:`InputError` on anything else.
    """
    stripped = str(text).strip()
    if stripped in ("", "nan", "None"):
        return []
    try:
        data = ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
        raise InputError(f"bbox_gold is not a Python literal: {stripped[:80]!r}") from None
    keys = ("x", "y", "width", "height")
    if not isinstance(data, dict) or any(key not in data for key in keys):
        raise InputError(f"bbox_gold must be a dict with keys {keys}, got {stripped[:80]!r}")
    columns = [data[key] if isinstance(data[key], list | tuple) else [data[key]] for key in keys]
    if len({len(column) for column in columns}) != 1:
        raise InputError(f"bbox_gold lists have different lengths: {stripped[:80]!r}")
    return [tuple(float(v) for v in values) for values in zip(*columns, strict=True)]


def keep_for_nova(caption: object) -> bool:
    """The protocol's image filter: keep images whose caption contains ``"T2"`` (this also admits FLAIR and T2*)."""
    return NOVA_CAPTION_SUBSTRING in str(caption)

"""NOVA box protocol (docs/METHOD.md §7) and the standard COCO-style AP, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from contrastive_anomaly.errors import InputError
from paper_protocols.nova_boxes import (
    IOU_THRESHOLDS_50_95,
    boxes_from_map,
    coco_ap,
    coco_map,
    iou,
    iou_plus_one,
    keep_for_nova,
    nova_image_ap,
    nova_map,
    parse_bbox_gold,
)

GT_1, GT_2 = (0, 0, 10, 10), (20, 20, 5, 5)
# Three predictions for an image with GT_1 and GT_2 (descending area 100, 64, 25):
#   P1 = GT_1 exactly -> TP; P2 far from both -> FP; P3 = GT_2 exactly -> TP.
THREE_PREDICTIONS = [(0, 0, 10, 10), (50, 50, 8, 8), (20, 20, 5, 5)]


def test_boxes_from_map_without_median():
    heat = np.zeros((20, 30), dtype=np.float32)
    heat[2:6, 3:11] = 0.9  # rows 2..5, cols 3..10 -> x=3, y=2, width 8, height 4 (area 32)
    heat[10:13, 20:22] = 0.6  # x=20, y=10, width 2, height 3 (area 6)
    heat[15, 0] = 0.5  # exactly at the threshold: not above it
    heat[17, 5] = heat[18, 6] = 0.9  # diagonal neighbours: two 1x1 boxes under 4-connectivity
    boxes = boxes_from_map(heat, threshold=0.5, median_size=1, keep=None)
    assert boxes == [(3, 2, 8, 4), (20, 10, 2, 3), (5, 17, 1, 1), (6, 18, 1, 1)]
    assert boxes_from_map(heat, median_size=1, keep=2) == boxes[:2]


def test_boxes_from_map_median_removes_specks():
    heat = np.zeros((24, 24), dtype=np.float32)
    # A 10x10 block: the 5x5 median rounds its corners (a corner pixel sees 9 of 25 block pixels) but keeps the
    # middle of every edge (15 of 25), so the bounding box is unchanged. A single-pixel speck disappears.
    heat[4:14, 4:14] = 1.0
    heat[20, 20] = 1.0
    boxes = boxes_from_map(heat)  # protocol defaults: median 5, threshold 0.5, top 5
    assert boxes == [(4, 4, 10, 10)]


def test_boxes_from_map_rejects_3d():
    with pytest.raises(InputError, match="2D"):
        boxes_from_map(np.zeros((2, 3, 4)))


def test_iou_plus_one_hand_values():
    # A covers x,y in 0..2 (inclusive corners x and x+w), B covers 1..3: intersection 2x2 = 4, each 3x3 = 9
    # -> 4 / (9 + 9 - 4) = 2/7.
    assert iou_plus_one((0, 0, 2, 2), (1, 1, 2, 2)) == pytest.approx(4 / 14)
    assert iou_plus_one((5, 5, 3, 4), (5, 5, 3, 4)) == 1.0
    # Boxes that merely touch overlap by one pixel column under this convention: 1x3 of 3x3 each -> 3/15.
    assert iou_plus_one((0, 0, 2, 2), (2, 0, 2, 2)) == pytest.approx(0.2)
    assert iou_plus_one((0, 0, 2, 2), (10, 10, 2, 2)) == 0.0
    # The standard IoU of the first pair: 1x1 intersection of two 2x2 boxes -> 1/7; touching boxes -> 0.
    assert iou((0, 0, 2, 2), (1, 1, 2, 2)) == pytest.approx(1 / 7)
    assert iou((0, 0, 2, 2), (2, 0, 2, 2)) == 0.0


def test_nova_image_ap_three_predictions_two_gt():
    # Ranks: TP, FP, TP -> precision at the TP ranks 1/1 and 2/3 -> AP = (1 + 2/3) / 2 = 5/6.
    assert nova_image_ap(THREE_PREDICTIONS, [GT_1, GT_2], 0.5) == pytest.approx((5 / 6, 2, 1))
    # The order given does not matter: predictions are ranked by area inside.
    assert nova_image_ap(THREE_PREDICTIONS[::-1], [GT_1, GT_2], 0.5) == pytest.approx((5 / 6, 2, 1))


def test_nova_image_ap_duplicates_and_no_fallback():
    # A second prediction whose best GT is already matched is an FP: rank 2 = (1, 1, 9, 9) overlaps GT_1 with
    # IoU+1 = 100/121.  Ranks TP, FP, TP -> 5/6 again.
    preds = [(0, 0, 10, 10), (1, 1, 9, 9), (20, 20, 5, 5)]
    assert nova_image_ap(preds, [GT_1, GT_2], 0.5) == pytest.approx((5 / 6, 2, 1))
    # No fallback to the second-best GT: two identical predictions, GT_a = the prediction, GT_b shifted by 2 px
    # (IoU+1 with the prediction = 9*9 / (121 + 121 - 81) = 0.503 >= 0.3). The second prediction's best GT is
    # GT_a (taken) -> FP, even though GT_b is free. Ranks TP, FP -> AP = 1/1 = 1.0, tp 1, fp 1.
    gt_a, gt_b = (0, 0, 10, 10), (2, 2, 10, 10)
    assert nova_image_ap([gt_a, gt_a], [gt_a, gt_b], 0.3) == pytest.approx((1.0, 1, 1))
    # COCO matching takes the free GT_b instead (standard IoU 64/136 = 0.47 >= 0.3): TP, TP -> AP 1 over 2 GT.
    assert coco_ap([([gt_a, gt_a], [gt_a, gt_b])], iou_threshold=0.3) == pytest.approx(1.0)


def test_nova_image_ap_edge_cases():
    assert nova_image_ap([], [GT_1], 0.5) == (0.0, 0, 0)
    assert nova_image_ap([GT_1], [], 0.5) == (0.0, 0, 1)
    # A first FP then a TP: precision at the TP rank is 1/2.
    assert nova_image_ap([(50, 50, 20, 20), GT_2], [GT_2], 0.5) == pytest.approx((0.5, 1, 1))


def test_nova_map_summary():
    # Image 1: AP 5/6 at every threshold (its IoUs are 1 or 0).
    # Image 2: GT (0,0,10,10) -> 11x11 = 121 px under +1; prediction (0,0,10,7) -> 11x8 = 88 px inside it:
    #          IoU+1 = 88/121 = 0.727 -> TP at 0.3, 0.5, 0.55, 0.6, 0.65, 0.7 and FP from 0.75 on.
    # Image 3: one GT, no prediction -> AP 0.
    images = [
        (THREE_PREDICTIONS, [GT_1, GT_2]),
        ([(0, 0, 10, 7)], [(0, 0, 10, 10)]),
        ([], [(5, 5, 3, 3)]),
    ]
    result = nova_map(images)
    assert len(IOU_THRESHOLDS_50_95) == 10
    assert result["mAP@0.3"] == pytest.approx((5 / 6 + 1 + 0) / 3)
    assert result["mAP@0.5"] == pytest.approx((5 / 6 + 1 + 0) / 3)
    # Over the 10 thresholds image 2 scores 1 five times and 0 five times -> mean 0.5.
    assert result["mAP@[0.5:0.95]"] == pytest.approx((5 / 6 + 0.5 + 0) / 3)
    assert result["ACC@0.5"] == pytest.approx(3 / 4)  # TP 2 + 1 of 4 GT boxes
    assert (result["TP@0.3"], result["FP@0.3"], result["GT"], result["images"]) == (3, 1, 4, 3)
    with pytest.raises(InputError):
        nova_map([])


def test_coco_ap_pooled_all_point():
    images = [(THREE_PREDICTIONS, [GT_1, GT_2]), ([], [(5, 5, 3, 3)])]
    # Scores = areas 100, 64, 25 -> TP, FP, TP over 3 GT: precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3.
    # All-point AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    assert coco_ap(images, 0.5) == pytest.approx(5 / 9)
    # Given scores rank P2 (FP) first, then P3, P1: precision 0, 1/2, 2/3 at recall 0, 1/3, 2/3; the interpolated
    # precision is 2/3 for both recall steps -> 2/3 * 2/3 = 4/9.
    assert coco_ap(images, 0.5, scores=[[0.1, 0.9, 0.5], []]) == pytest.approx(4 / 9)
    # All IoUs are exactly 1 or 0, so every threshold gives 5/9.
    assert coco_map(images) == pytest.approx(5 / 9)
    assert coco_ap([([GT_1], [])], 0.5) == 0.0
    with pytest.raises(InputError, match="scores"):
        coco_ap(images, 0.5, scores=[[0.1], []])


def test_parse_bbox_gold():
    text = "{'x': [10, 20.5], 'y': [5, 6], 'width': [3, 4], 'height': [7, 8]}"
    assert parse_bbox_gold(text) == [(10.0, 5.0, 3.0, 7.0), (20.5, 6.0, 4.0, 8.0)]
    assert parse_bbox_gold("") == [] and parse_bbox_gold("nan") == []
    with pytest.raises(InputError, match="keys"):
        parse_bbox_gold("{'x': [1], 'y': [2], 'width': [3]}")
    with pytest.raises(InputError, match="lengths"):
        parse_bbox_gold("{'x': [1, 2], 'y': [2], 'width': [3], 'height': [4]}")
    with pytest.raises(InputError, match="literal"):
        parse_bbox_gold("{'x': [1,")


def test_caption_filter_and_end_to_end():
    assert keep_for_nova("Axial T2-weighted image") and keep_for_nova("T2* GRE")
    assert not keep_for_nova("Axial FLAIR") and not keep_for_nova(float("nan"))
    heat = np.zeros((32, 32), dtype=np.float32)
    heat[8:20, 6:16] = 1.0  # x 6, y 8, width 10, height 12
    gt = parse_bbox_gold("{'x': [6], 'y': [8], 'width': [10], 'height': [12]}")
    assert nova_image_ap(boxes_from_map(heat), gt, 0.95) == pytest.approx((1.0, 1, 0))

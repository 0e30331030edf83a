"""Metrics (docs/METHOD.md §7, docs/DATA.md §5) against hand-computed values on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contrastive_anomaly.errors import InputError
from contrastive_anomaly.scoring.metrics import (
    auprc,
    auroc,
    dice,
    evaluate_volumes,
    false_positive_volume_ml,
    healthy_reconstruction_error,
    lesion_detection,
    mean_metrics,
    merge_lesion_detection,
    pooled_metrics,
    slice_auroc,
    volume_metrics,
    voxel_volume_ml,
)


def test_dice_hand_cases():
    # P = {0, 1}, G = {0, 2}: |P∩G| = 1 -> 2*1 / (2 + 2) = 0.5
    assert dice(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(0.5)
    # P = {0}, G = {0, 1, 2}: 2*1 / (1 + 3) = 0.5 ; P empty -> 0
    assert dice(np.array([1, 0, 0]), np.array([1, 1, 1])) == pytest.approx(0.5)
    assert dice(np.zeros(3), np.array([0, 1, 0])) == 0.0
    assert dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    with pytest.raises(InputError):
        dice(np.zeros(3), np.zeros(4))


def test_one_empty_mask_convention_everywhere():
    """Both masks empty -> 1.0, exactly one empty -> 0.0, in every Dice the engine computes."""
    from contrastive_anomaly.config import PostprocessConfig
    from contrastive_anomaly.scoring.metrics import dice_from_counts, pooled_metrics
    from contrastive_anomaly.scoring.thresholds import pooled_dice

    empty, lesion = np.zeros((3, 4, 4)), np.zeros((3, 4, 4))
    lesion[1, 1:3, 1:3] = 1
    assert dice_from_counts(0, 0, 0) == 1.0 and dice_from_counts(0, 4, 0) == 0.0 and dice_from_counts(0, 0, 4) == 0.0
    assert dice(empty, empty) == 1.0
    assert dice(lesion, empty) == 0.0 and dice(empty, lesion) == 0.0
    cfg = PostprocessConfig(max_removed_component_voxels=0)
    assert pooled_dice([empty], [empty], 0.5, cfg) == 1.0
    assert pooled_dice([lesion], [empty], 0.5, cfg) == 0.0 and pooled_dice([empty], [lesion], 0.5, cfg) == 0.0
    assert pooled_metrics([empty], [empty], [empty])["dice"] == 1.0
    assert pooled_metrics([lesion], [lesion], [empty])["dice"] == 0.0


def test_auroc_and_ap_hand_case():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    # AUROC = fraction of (positive, negative) pairs ranked correctly: positives 0.35, 0.8 vs negatives 0.1, 0.4:
    # 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4.
    assert auroc(scores, labels) == pytest.approx(0.75)
    # AP: ranked 0.8(+) 0.4(-) 0.35(+): precision at the two hits 1/1 and 2/3, each a recall step of 1/2
    # -> 0.5*1 + 0.5*2/3 = 0.8333.
    assert auprc(scores, labels) == pytest.approx(0.5 + 1 / 3)


def test_auroc_counts_ties_as_half_and_reshaping_is_irrelevant():
    # scores 0.5(-), 0.5(+), 0.9(+), 0.2(-): pairs (0.5+,0.5-)=1/2, (0.5+,0.2-)=1, (0.9+,·)=1, 1 -> 3.5/4
    scores = np.array([[0.5, 0.5], [0.9, 0.2]])
    labels = np.array([[0, 1], [1, 0]])
    assert auroc(scores, labels) == pytest.approx(0.875)


def test_single_class_metrics_are_nan_and_skipped_in_means():
    assert math.isnan(auroc(np.array([0.1, 0.2]), np.array([0, 0])))
    assert math.isnan(auprc(np.array([0.1, 0.2]), np.array([1, 1])))
    summary = mean_metrics([
        {"dice": 0.2, "auprc": float("nan"), "auroc": 0.6},
        {"dice": 0.4, "auprc": 0.5, "auroc": 0.8},
    ])
    assert summary["dice"] == pytest.approx(0.3)
    assert summary["auprc"] == pytest.approx(0.5)
    assert summary["auroc"] == pytest.approx(0.7)
    assert summary["dice_std"] == pytest.approx(0.1)


def test_volume_mean_and_pooled_metrics_differ_as_expected():
    # Volume A: scores [0.9, 0.1, 0.2, 0.3], label [1, 0, 0, 0], prediction [1, 1, 0, 0] -> Dice 2/3, AUROC 1, AP 1.
    # Volume B: scores [0.4, 0.6, 0.0, 0.0], label [1, 0, 0, 0], prediction [0, 0, 0, 0] -> Dice 0,
    #   AUROC: positive 0.4 beats 0, 0 but not 0.6 -> 2/3; AP: ranked 0.6(-) 0.4(+) -> precision 1/2 -> 0.5.
    score_a = np.array([0.9, 0.1, 0.2, 0.3]).reshape(1, 2, 2)
    score_b = np.array([0.4, 0.6, 0.0, 0.0]).reshape(1, 2, 2)
    label = np.array([1, 0, 0, 0]).reshape(1, 2, 2)
    pred_a = np.array([1, 1, 0, 0]).reshape(1, 2, 2)
    pred_b = np.zeros((1, 2, 2))
    metrics_a = volume_metrics(score_a, pred_a, label)
    assert metrics_a == pytest.approx({"dice": 2 / 3, "auprc": 1.0, "auroc": 1.0})
    result = evaluate_volumes([score_a, score_b], [pred_a, pred_b], [label, label])
    assert result["per_volume"][1] == pytest.approx({"dice": 0.0, "auprc": 0.5, "auroc": 2 / 3})
    assert result["mean"]["dice"] == pytest.approx(1 / 3)
    assert result["mean"]["auroc"] == pytest.approx(5 / 6)
    # Pooled over 8 voxels: P = 2 voxels, G = 2, |P∩G| = 1 -> Dice 0.5.
    # Scores of positives 0.9, 0.4; negatives 0.1 0.2 0.3 0.6 0 0: pairs won 6 + 5 = 11 of 12.
    # AP: ranked 0.9(+) 0.6(-) 0.4(+) -> 0.5*1 + 0.5*2/3.
    pooled = pooled_metrics([score_a, score_b], [pred_a, pred_b], [label, label])
    assert pooled == pytest.approx({"dice": 0.5, "auprc": 0.5 + 1 / 3, "auroc": 11 / 12})


def test_voxel_volume_and_false_positive_volume():
    assert voxel_volume_ml((2.0, 2.0, 2.0)) == pytest.approx(0.008)
    pred = np.zeros((4, 4, 4), dtype=bool)
    pred[0, 0, :] = True  # 4 voxels
    truth = np.zeros_like(pred)
    truth[0, 0, 0] = True
    # 4 predicted voxels of 1 x 1 x 2.5 mm = 10 mm³ = 0.01 mL; 3 of them outside the truth -> 0.0075 mL.
    assert false_positive_volume_ml(pred, (1.0, 1.0, 2.5)) == pytest.approx(0.01)
    assert false_positive_volume_ml(pred, (1.0, 1.0, 2.5), truth) == pytest.approx(0.0075)
    with pytest.raises(InputError, match="spacing"):
        voxel_volume_ml((1.0, 0.0, 1.0))


def _three_lesions() -> tuple[np.ndarray, np.ndarray]:
    """Lesions of 10, 100 and 1000 voxels (0.02, 0.2 and 2 mL at 1 x 1 x 2 mm); only the 100-voxel one is hit."""
    truth = np.zeros((24, 30, 30), dtype=bool)
    truth[0, 0, 0:10] = True  # 10 voxels
    truth[3:7, 0:5, 20:25] = True  # 4*5*5 = 100 voxels
    truth[12:22, 15:25, 15:25] = True  # 1000 voxels
    pred = np.zeros_like(truth)
    pred[5, 2, 22] = True  # one voxel inside the 100-voxel lesion
    pred[0, 29, 0] = True  # a false positive elsewhere
    return pred, truth


def test_lesion_detection_by_size():
    pred, truth = _three_lesions()
    result = lesion_detection(pred, truth, spacing_mm=(1.0, 1.0, 2.0), bins_ml=(0.1, 1.0, 10.0))
    volumes = sorted(c["volume_ml"] for c in result["components"])
    assert volumes == pytest.approx([0.02, 0.2, 2.0])
    buckets = result["buckets"]
    assert [(b["lower_ml"], b["upper_ml"]) for b in buckets] == [(0.0, 0.1), (0.1, 1.0), (1.0, 10.0), (10.0, None)]
    assert [b["lesions"] for b in buckets] == [1, 1, 1, 0]
    assert [b["detected"] for b in buckets] == [0, 1, 0, 0]
    assert buckets[1]["detection_rate"] == 1.0 and buckets[0]["detection_rate"] == 0.0
    assert math.isnan(buckets[3]["detection_rate"])


def test_lesion_detection_merges_volumes():
    pred, truth = _three_lesions()
    one = lesion_detection(pred, truth, (1.0, 1.0, 2.0))
    hit_all = lesion_detection(truth, truth, (1.0, 1.0, 2.0))
    merged = merge_lesion_detection([one, hit_all])
    assert [b["lesions"] for b in merged["buckets"]] == [2, 2, 2, 0]
    assert [b["detected"] for b in merged["buckets"]] == [1, 2, 1, 0]
    other_bins = lesion_detection(pred, truth, (1.0, 1.0, 2.0), bins_ml=(0.5,))
    with pytest.raises(InputError, match="bins"):
        merge_lesion_detection([one, other_bins])


def test_lesion_connectivity_changes_the_lesion_count():
    truth = np.zeros((3, 3, 3), dtype=bool)
    truth[0, 0, 0] = truth[1, 1, 1] = True  # corner neighbours
    assert len(lesion_detection(truth, truth, (1, 1, 1), connectivity=26)["components"]) == 1
    assert len(lesion_detection(truth, truth, (1, 1, 1), connectivity=6)["components"]) == 2


def test_slice_auroc_and_healthy_error():
    score = np.zeros((3, 2, 2))
    score[0] = 0.1
    score[1] = 0.5  # lesion slice, highest mean inside the brain
    score[2] = 0.3
    brain = np.ones_like(score, dtype=bool)
    truth = np.zeros_like(brain)
    truth[1, 0, 0] = True
    assert slice_auroc(score, brain, truth) == pytest.approx(1.0)
    truth[1, 0, 0] = False
    truth[0, 0, 0] = True  # now the lowest-scored slice is the lesion slice
    assert slice_auroc(score, brain, truth) == pytest.approx(0.0)
    image = np.full((2, 2, 2), 0.5)
    reconstruction = image.copy()
    reconstruction[0] = 0.1  # 4 of 8 voxels off by 0.4
    assert healthy_reconstruction_error(image, reconstruction) == pytest.approx(0.2)

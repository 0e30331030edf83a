"""Post-processing (docs/METHOD.md §6) and the threshold rules A and B, on tiny synthetic KJI volumes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from contrastive_anomaly.config import PostprocessConfig
from contrastive_anomaly.errors import InputError
from contrastive_anomaly.scoring.postprocess import (
    binarize,
    effective_threshold,
    erode_brain_mask,
    filter_map,
    postprocess_residual,
    remove_small_components,
    residual_map,
)
from contrastive_anomaly.scoring.thresholds import (
    best_dice_threshold,
    dice_search,
    dice_sweep,
    fpr_threshold,
    fpr_thresholds,
    pooled_dice,
    voxel_false_positive_rate,
)


def test_residual_map_is_absolute_difference_in_float32():
    image = np.array([[[0.2, 0.9]]], dtype=np.float64)
    reconstruction = np.array([[[0.5, 0.4]]], dtype=np.float64)
    residual = residual_map(image, reconstruction)
    assert residual.dtype == np.float32
    np.testing.assert_allclose(residual, [[[0.3, 0.5]]], atol=1e-7)


def test_residual_map_rejects_shape_mismatch():
    with pytest.raises(InputError, match="shape"):
        residual_map(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))


def test_erosion_is_per_slice_with_a_cross():
    mask = np.zeros((3, 7, 7), dtype=bool)
    mask[:, 1:6, 1:6] = True  # a 5x5 square in every slice
    mask[0] = False  # slice 0 empty: must not erode slice 1 through the K axis
    eroded = erode_brain_mask(mask, iterations=1)
    # One cross erosion of a 5x5 square leaves its 3x3 core; corners of the core survive because a cross,
    # unlike a full 3x3 square, does not look diagonally.
    expected = np.zeros((7, 7), dtype=bool)
    expected[2:5, 2:5] = True
    assert not eroded[0].any()
    np.testing.assert_array_equal(eroded[1], expected)
    np.testing.assert_array_equal(eroded[2], expected)
    # Two iterations leave the centre voxel only.
    twice = erode_brain_mask(mask, iterations=2)
    assert twice[1].sum() == 1 and twice[1, 3, 3]


def test_cross_differs_from_square_on_a_plus_shape():
    mask = np.zeros((1, 5, 5), dtype=bool)
    mask[0, 2, 1:4] = True
    mask[0, 1:4, 2] = True  # a plus of 5 pixels
    eroded = erode_brain_mask(mask, iterations=1)
    # The centre's 4 cross-neighbours are all set, so it survives the cross (a 3x3 square would remove it).
    assert eroded[0].sum() == 1 and eroded[0, 2, 2]


def test_zero_iterations_keeps_the_mask():
    mask = np.zeros((2, 4, 4), dtype=np.uint8)
    mask[:, 1:3, 1:3] = 1
    np.testing.assert_array_equal(erode_brain_mask(mask, 0), mask > 0)


def test_filter_map_masks_then_median_filters():
    cfg = PostprocessConfig(erosion_iterations=1, median_size=3)
    residual = np.zeros((5, 9, 9), dtype=np.float32)
    residual[2, 4, 4] = 1.0  # a single hot voxel: the 3x3x3 median removes it
    residual[:, 0, :] = 0.8  # outside the eroded brain: masked away
    block = np.zeros_like(residual)
    block[1:4, 3:6, 3:6] = 0.5
    brain = np.zeros(residual.shape, dtype=bool)
    brain[:, 1:8, 1:8] = True
    filtered = filter_map(residual + block, brain, cfg)
    assert filtered.dtype == np.float32
    # Same as doing it by hand with scipy.
    eroded = ndimage.binary_erosion(brain, structure=ndimage.generate_binary_structure(2, 1)[None])
    np.testing.assert_allclose(filtered, ndimage.median_filter((residual + block) * eroded, size=3))
    assert filtered[:, 0, :].max() == 0.0
    assert filtered[2, 4, 4] == pytest.approx(0.5)  # the spike is gone, the block survives


def test_binarize_removes_components_up_to_the_size_limit():
    cfg = PostprocessConfig(max_removed_component_voxels=7, connectivity=26)
    filtered = np.zeros((6, 10, 10), dtype=np.float32)
    filtered[0, 0, 0:7] = 0.9  # 7 voxels: removed (<= 7)
    filtered[3:5, 3:5, 3:5] = 0.9  # 8 voxels: kept
    filtered[5, 9, 9] = 0.9  # single voxel: removed
    mask = binarize(filtered, 0.5, cfg)
    assert mask.dtype == bool
    assert mask.sum() == 8 and mask[3:5, 3:5, 3:5].all()


def test_connectivity_decides_what_is_one_component():
    # Two parallel 4-voxel bars that touch only along an edge diagonal: one 8-voxel component with 26- (and 18-)
    # connectivity, two components of 4 with 6-connectivity.
    diagonal = np.zeros((4, 4, 4), dtype=np.float32)
    diagonal[0, 0, 0:4] = 1.0
    diagonal[1, 1, 0:4] = 1.0
    kept_26 = binarize(diagonal, 0.5, PostprocessConfig(max_removed_component_voxels=7, connectivity=26))
    kept_6 = binarize(diagonal, 0.5, PostprocessConfig(max_removed_component_voxels=7, connectivity=6))
    assert kept_26.sum() == 8
    assert kept_6.sum() == 0
    with pytest.raises(InputError, match="connectivity"):
        remove_small_components(diagonal > 0, 3, connectivity=4)


def test_raising_the_threshold_never_adds_voxels():
    rng = np.random.default_rng(0)
    filtered = ndimage.gaussian_filter(rng.random((8, 16, 16)).astype(np.float32), 1.0)
    cfg = PostprocessConfig(max_removed_component_voxels=7)
    thresholds = np.linspace(filtered.min(), filtered.max(), 25)
    counts = [int(binarize(filtered, t, cfg).sum()) for t in thresholds]
    assert counts[0] > 0 and counts[-1] == 0
    assert all(later <= earlier for earlier, later in zip(counts, counts[1:], strict=False))
    # Nested too, not only smaller.
    masks = [binarize(filtered, t, cfg) for t in thresholds]
    assert all(not (later & ~earlier).any() for earlier, later in zip(masks, masks[1:], strict=False))


def test_effective_threshold_prefers_the_calibrated_value():
    assert effective_threshold(PostprocessConfig(default_threshold=0.1)) == 0.1
    assert effective_threshold(PostprocessConfig(threshold=0.07, default_threshold=0.1)) == 0.07


def test_postprocess_residual_chains_filter_and_binarize():
    residual = np.zeros((6, 12, 12), dtype=np.float32)
    residual[1:5, 3:8, 3:8] = 0.3  # 4*5*5 = 100 voxels; the 3^3 median shaves its edges and corners
    brain = np.ones(residual.shape, dtype=bool)
    cfg = PostprocessConfig(erosion_iterations=1, median_size=3, default_threshold=0.1)
    filtered, mask = postprocess_residual(residual, brain, cfg)
    np.testing.assert_array_equal(filtered, filter_map(residual, brain, cfg))
    np.testing.assert_array_equal(mask, binarize(filtered, 0.1, cfg))
    assert 0 < mask.sum() <= 100
    _, nothing = postprocess_residual(residual, brain, cfg, threshold=0.3)  # nothing is strictly above 0.3
    assert not nothing.any()


# ---------------------------------------------------------------- rule A


def _lesion_case(seed: int, lesion_value: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """A volume with a 4x4x4 lesion of score ``lesion_value`` on a noisy background in [0, noise]."""
    rng = np.random.default_rng(seed)
    score = (rng.random((8, 12, 12)) * noise).astype(np.float32)
    label = np.zeros(score.shape, dtype=np.uint8)
    label[2:6, 4:8, 4:8] = 1
    score[label > 0] = lesion_value
    return score, label


def test_rule_a_finds_a_threshold_that_separates_lesion_from_background():
    cfg = PostprocessConfig(max_removed_component_voxels=7)
    cases = [_lesion_case(seed, lesion_value=0.6, noise=0.2) for seed in range(3)]
    maps, labels = [c[0] for c in cases], [c[1] for c in cases]
    threshold, best = dice_search(maps, labels, cfg)
    assert 0.2 <= threshold < 0.6
    assert best == pytest.approx(1.0)
    swept, swept_dice = dice_sweep(maps, labels, cfg)
    assert best_dice_threshold(maps, labels, cfg) == swept and swept < 0.6
    assert swept_dice == pytest.approx(1.0) and pooled_dice(maps, labels, swept, cfg) == pytest.approx(1.0)
    assert pooled_dice(maps, labels, threshold, cfg) == pytest.approx(1.0)


def test_rule_a_sweep_does_not_flag_everything_on_a_weak_map_with_an_outlier():
    # A weak, smooth healthy map, a lesion only 0.01 above it, and three hot outlier voxels (a bright rim). The
    # interval search's probes land on Dice ties and it walks down to a threshold flagging most of the volume.
    from scipy import ndimage

    rng = np.random.default_rng(2)
    cfg = PostprocessConfig(max_removed_component_voxels=0)
    score = (ndimage.gaussian_filter(rng.gamma(2.0, 0.01, size=(16, 32, 32)), 1) * 3).astype(np.float32)
    label = np.zeros(score.shape, dtype=np.uint8)
    label[6:10, 10:18, 10:18] = 1
    score[label > 0] += 0.01
    score[0, 0, :3] = rng.uniform(0.3, 1.0, 3)
    old_threshold, old_dice = dice_search([score], [label], cfg)
    assert np.mean(score > old_threshold) > 0.5, "the paper's search collapses to flagging most of the volume"
    threshold, dice_value = dice_sweep([score], [label], cfg)
    assert np.mean(score > threshold) < 0.2 and dice_value > 2 * old_dice
    assert pooled_dice([score], [label], threshold, cfg) == pytest.approx(dice_value)


def test_rule_a_interval_search_follows_the_better_quarter():
    # Four voxels scored 0, 0.3, 0.4, 1.0; only the last is lesion. Component filter off. Search range [0, 1]:
    #   round 1: probe 0.25 -> P = 3 voxels, Dice 2*1/(3+1) = 0.5; probe 0.75 -> Dice 1 -> keep [0.5, 1], best 0.75
    #   round 2: probes 0.625 and 0.875 both Dice 1 -> a tie keeps the lower half [0.5, 0.75]; best 0.625 (a later
    #            point wins ties)
    #   round 3: probes 0.5625 and 0.6875 both Dice 1 -> best 0.5625.
    cfg = PostprocessConfig(max_removed_component_voxels=0)
    scores = np.array([0.0, 0.3, 0.4, 1.0], dtype=np.float32).reshape(1, 1, 4)
    label = np.array([0, 0, 0, 1], dtype=np.uint8).reshape(1, 1, 4)
    threshold, dice_value = dice_search([scores], [label], cfg, rounds=3, component_filter=False)
    assert threshold == pytest.approx(0.5625)
    assert dice_value == pytest.approx(1.0)
    threshold_1, _ = dice_search([scores], [label], cfg, rounds=1, component_filter=False)
    assert threshold_1 == pytest.approx(0.75)


def test_rule_a_pools_counts_over_volumes():
    cfg = PostprocessConfig(max_removed_component_voxels=0)
    pred_a = np.zeros((1, 1, 4), dtype=np.float32)
    pred_a[0, 0, :2] = 1.0
    label_a = np.zeros((1, 1, 4), dtype=np.uint8)
    label_a[0, 0, 0] = 1
    pred_b = np.zeros((1, 1, 4), dtype=np.float32)
    label_b = np.zeros((1, 1, 4), dtype=np.uint8)
    label_b[0, 0, 3] = 1
    # Pooled: |P∩G| = 1, |P| = 2, |G| = 2 -> 2*1/4 = 0.5 (the mean of per-volume Dice would be (2/3 + 0)/2).
    assert pooled_dice([pred_a, pred_b], [label_a, label_b], 0.5, cfg) == pytest.approx(0.5)


def test_rule_a_rejects_unusable_validation_data():
    cfg = PostprocessConfig()
    score, label = _lesion_case(0, 0.6, 0.2)
    with pytest.raises(InputError, match="no lesion"):
        best_dice_threshold([score], [np.zeros_like(label)], cfg)
    with pytest.raises(InputError, match="all zero"):
        best_dice_threshold([np.zeros_like(score)], [label], cfg)
    with pytest.raises(InputError, match="label volumes"):
        best_dice_threshold([score, score], [label], cfg)


# ---------------------------------------------------------------- rule B


def test_rule_b_gives_the_target_voxel_false_positive_rate():
    rng = np.random.default_rng(1)
    maps = [rng.random((10, 20, 20)).astype(np.float32) for _ in range(3)]  # 12000 distinct values
    for target in (0.01, 0.05, 0.10):
        threshold = fpr_threshold(maps, None, target)
        rate = voxel_false_positive_rate(maps, None, threshold)
        assert rate <= target
        assert rate == pytest.approx(target, abs=1.0 / 12000 + 1e-12)
    table = fpr_thresholds(maps, None, [0.01, 0.05])
    assert table[0.01] > table[0.05]


def test_rule_b_only_counts_voxels_inside_the_brain():
    healthy = np.zeros((2, 10, 10), dtype=np.float32)
    healthy[:, :5, :] = np.linspace(0.0, 1.0, 100).reshape(2, 5, 10)  # brain voxels: 0 … 1
    healthy[:, 5:, :] = 5.0  # outside the brain: huge values that would dominate without the mask
    brain = np.zeros(healthy.shape, dtype=bool)
    brain[:, :5, :] = True
    with_mask = fpr_threshold([healthy], [brain], 0.1)
    without_mask = fpr_threshold([healthy], None, 0.1)
    assert with_mask < 1.0
    assert without_mask == 5.0
    # The "higher" 0.9 quantile of 100 sorted brain values is the one at index ceil(0.9 * 99) = 90; the 9 values at
    # indices 91..99 lie above it -> a voxel FPR of 0.09 (<= 0.1).
    assert voxel_false_positive_rate([healthy], [brain], with_mask) == pytest.approx(0.09)


def test_rule_b_rejects_bad_rates_and_empty_masks():
    maps = [np.ones((2, 2, 2), dtype=np.float32)]
    with pytest.raises(InputError, match="between 0 and 1"):
        fpr_threshold(maps, None, 1.5)
    with pytest.raises(InputError, match="no voxels"):
        fpr_threshold(maps, [np.zeros((2, 2, 2), dtype=bool)], 0.01)

"""The findings table on a hand-made phantom with non-unit spacing and a non-identity direction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.errors import InputError
from contrastive_anomaly.scoring.regions import find_regions, label_regions, regions_summary

SPACING_IJK = (0.5, 2.0, 3.0)  # mm; one voxel = 3 mm³ = 0.003 mL
ORIGIN_LPS = (10.0, -20.0, 5.0)
# Row-major; columns are the I, J, K axes in LPS: I -> +P, J -> -L (i.e. +R), K -> +S.
DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def _phantom() -> tuple[np.ndarray, np.ndarray]:
    """KJI (6, 8, 10): cube A = K 1..2, J 2..4, I 3..6 (24 voxels), cube B = K 4, J 6..7, I 0..1 (4 voxels)."""
    mask = np.zeros((6, 8, 10), dtype=bool)
    score = np.zeros(mask.shape, dtype=np.float32)
    mask[1:3, 2:5, 3:7] = True
    score[1:3, 2:5, 3:7] = 0.7
    score[2, 4, 6] = 0.9  # the peak of A
    mask[4, 6:8, 0:2] = True
    score[4, 6:8, 0:2] = 0.3
    score[0, 0, 9] = 5.0  # outside every region: must not leak into any statistic
    return mask, score


def _sitk_point(ijk: tuple[float, float, float], direction=DIRECTION) -> tuple[float, ...]:
    image = sitk.Image(10, 8, 6, sitk.sitkUInt8)  # size is in IJK order
    image.SetSpacing(SPACING_IJK)
    image.SetOrigin(ORIGIN_LPS)
    image.SetDirection(direction)
    return image.TransformContinuousIndexToPhysicalPoint(ijk)


def test_regions_match_hand_values():
    mask, score = _phantom()
    regions = find_regions(mask, score, SPACING_IJK, ORIGIN_LPS, DIRECTION)
    assert len(regions) == 2
    big, small = regions
    assert (big.label, small.label) == (1, 2)
    assert (big.voxel_count, small.voxel_count) == (24, 4)
    assert big.volume_ml == pytest.approx(24 * 0.003)
    assert small.volume_ml == pytest.approx(4 * 0.003)
    assert big.peak_score == pytest.approx(0.9)
    assert big.mean_score == pytest.approx((23 * 0.7 + 0.9) / 24)
    assert small.peak_score == pytest.approx(0.3) and small.mean_score == pytest.approx(0.3)
    # A: mean index I = 4.5, J = 3, K = 1.5 -> spacing-scaled (2.25, 6, 4.5) mm; the direction maps (a, b, c) to
    # (-b, a, c) -> (-6, 2.25, 4.5); + origin -> LPS (4, -17.75, 9.5) -> RAS (-4, 17.75, 9.5).
    assert big.centroid_ijk == pytest.approx((4.5, 3.0, 1.5))
    assert big.centroid_lps_mm == pytest.approx((4.0, -17.75, 9.5))
    assert big.centroid_ras_mm == pytest.approx((-4.0, 17.75, 9.5))
    # B: index (0.5, 6.5, 4) -> scaled (0.25, 13, 12) -> (-13, 0.25, 12) -> LPS (-3, -19.75, 17) -> RAS (3, 19.75, 17).
    assert small.centroid_ijk == pytest.approx((0.5, 6.5, 4.0))
    assert small.centroid_lps_mm == pytest.approx((-3.0, -19.75, 17.0))
    assert small.centroid_ras_mm == pytest.approx((3.0, 19.75, 17.0))


@pytest.mark.parametrize("direction", [
    DIRECTION,
    # An oblique rotation: 30 degrees about S, then 20 degrees about L.
    tuple((
        np.array([[1, 0, 0], [0, math.cos(0.349), -math.sin(0.349)], [0, math.sin(0.349), math.cos(0.349)]])
        @ np.array([[math.cos(0.524), -math.sin(0.524), 0], [math.sin(0.524), math.cos(0.524), 0], [0, 0, 1]])
    ).ravel()),
])
def test_centroids_agree_with_simpleitk(direction):
    mask, score = _phantom()
    for region in find_regions(mask, score, SPACING_IJK, ORIGIN_LPS, direction):
        expected_lps = _sitk_point(region.centroid_ijk, direction)
        assert region.centroid_lps_mm == pytest.approx(expected_lps, abs=1e-9)
        assert region.centroid_ras_mm == pytest.approx((-expected_lps[0], -expected_lps[1], expected_lps[2]), abs=1e-9)


def test_label_map_numbers_regions_by_size():
    mask, _ = _phantom()
    labels, count = label_regions(mask)
    assert count == 2
    assert (labels == 1).sum() == 24 and (labels == 2).sum() == 4
    assert labels[4, 6, 0] == 2 and labels[1, 2, 3] == 1
    assert (labels > 0).sum() == mask.sum()


def test_connectivity_splits_corner_touching_voxels():
    mask = np.zeros((2, 2, 2), dtype=bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True
    score = mask.astype(np.float32)
    assert len(find_regions(mask, score, (1, 1, 1), (0, 0, 0), np.eye(3).ravel(), connectivity=26)) == 1
    assert len(find_regions(mask, score, (1, 1, 1), (0, 0, 0), np.eye(3).ravel(), connectivity=6)) == 2


def test_summary_and_serialisation():
    mask, score = _phantom()
    regions = find_regions(mask, score, SPACING_IJK, ORIGIN_LPS, DIRECTION)
    summary = regions_summary(regions)
    assert summary == pytest.approx({"total_volume_ml": 28 * 0.003, "region_count": 2, "peak_score": 0.9})
    row = json.loads(json.dumps(regions[0].to_dict()))
    assert row["voxel_count"] == 24 and row["centroid_ras_mm"] == pytest.approx([-4.0, 17.75, 9.5])
    assert regions_summary([]) == {"total_volume_ml": 0.0, "region_count": 0, "peak_score": 0.0}


def test_empty_mask_and_bad_input():
    empty = np.zeros((3, 4, 5), dtype=bool)
    assert find_regions(empty, empty.astype(float), (1, 1, 1), (0, 0, 0), np.eye(3).ravel()) == []
    with pytest.raises(InputError, match="shape"):
        find_regions(empty, np.zeros((3, 4, 4)), (1, 1, 1), (0, 0, 0), np.eye(3).ravel())
    with pytest.raises(InputError, match="direction"):
        find_regions(empty, empty.astype(float), (1, 1, 1), (0, 0, 0), (1, 0, 0, 1))

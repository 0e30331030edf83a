"""Re-thresholding on the model grid, reported on the native grid (scoring/threshold_index.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from contrastive_anomaly.config import PostprocessConfig
from contrastive_anomaly.scoring.postprocess import binarize, neighbourhood
from contrastive_anomaly.scoring.threshold_index import ThresholdIndex, native_mask

MODEL_SHAPE = (6, 8, 10)  # KJI


def make_case(seed: int = 0):
    """A smooth random model-grid map; the native grid is the model grid upsampled 2x (each model voxel -> 8 native
    voxels), shifted by one native slice so that the first native slice samples nothing (index 0). ``native_map`` is
    the brute-force native score: the model-grid value each native voxel samples."""
    rng = np.random.default_rng(seed)
    filtered = ndimage.gaussian_filter(rng.random(MODEL_SHAPE), 0.8).astype(np.float32)
    flat = np.arange(1, filtered.size + 1).reshape(MODEL_SHAPE)
    index = np.zeros((MODEL_SHAPE[0] * 2 + 1, MODEL_SHAPE[1] * 2, MODEL_SHAPE[2] * 2), dtype=np.int32)
    index[1:] = flat.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    # what each native voxel scores: the model-grid value it samples (0 where it samples none)
    native_map = np.concatenate([[0.0], filtered.ravel()])[index]
    ijk_to_lps = np.diag([0.5, 0.6, 0.7, 1.0])
    ijk_to_lps[:3, 3] = [10.0, -4.0, 2.0]
    return filtered, index, native_map, ijk_to_lps


@pytest.mark.parametrize("threshold", [0.3, 0.45, 0.5, 0.55])
def test_mask_and_regions_match_a_brute_force_native_computation(threshold):
    filtered, index, native_map, ijk_to_lps = make_case()
    cfg = PostprocessConfig(max_removed_component_voxels=3, connectivity=6)
    built = ThresholdIndex.build(filtered, index, ijk_to_lps, max_removed_component_voxels=3,
                                 connectivity=6)
    model_mask = built.model_mask(threshold)
    assert np.array_equal(model_mask, binarize(filtered, threshold, cfg))
    mask = native_mask(model_mask, index)
    assert not mask[0].any() and np.array_equal(mask[1:], model_mask.repeat(2, 0).repeat(2, 1).repeat(2, 2))
    regions = built.regions(threshold)
    one_pass_mask, one_pass = built.mask_and_regions(threshold)
    assert np.array_equal(one_pass_mask, model_mask) and one_pass == regions
    labels, count = ndimage.label(model_mask, structure=neighbourhood(6))
    assert len(regions) == count
    native_labels = np.concatenate([[0], labels.ravel()])[index]
    voxel_ml = 0.5 * 0.6 * 0.7 / 1000.0
    expected = []
    for label in range(1, count + 1):
        inside = native_labels == label
        kji = np.argwhere(inside).mean(axis=0)
        expected.append((inside.sum(), native_map[inside].max(), native_map[inside].mean(), kji[::-1]))
    expected.sort(key=lambda row: -row[0])
    assert [r.voxel_count for r in regions] == [row[0] for row in expected]
    for region, (voxels, peak, mean, ijk) in zip(regions, expected, strict=True):
        assert region.volume_ml == pytest.approx(voxels * voxel_ml)
        assert region.peak_score == pytest.approx(peak) and region.mean_score == pytest.approx(mean)
        np.testing.assert_allclose(region.centroid_ijk, ijk)
        lps = ijk_to_lps[:3, :3] @ ijk + ijk_to_lps[:3, 3]
        np.testing.assert_allclose(region.centroid_ras_mm, lps * [-1, -1, 1])
    assert sum(r.volume_ml for r in regions) == pytest.approx(mask.sum() * voxel_ml)


def test_save_load_round_trip_and_monotone(tmp_path):
    filtered, index, native_map, ijk_to_lps = make_case(1)
    built = ThresholdIndex.build(filtered, index, ijk_to_lps, max_removed_component_voxels=2,
                                 connectivity=26)
    loaded = ThresholdIndex.load(built.save(tmp_path / "index.npz"))
    volumes = []
    for threshold in np.linspace(0.2, 0.8, 7):
        assert np.array_equal(loaded.model_mask(threshold), built.model_mask(threshold))
        volumes.append(sum(r.volume_ml for r in loaded.regions(threshold)))
    assert volumes == sorted(volumes, reverse=True) and volumes[0] > 0 == volumes[-1]
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not a threshold index"):
        ThresholdIndex.load(tmp_path / "other.npz")


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_detect_measures_without_native_sums_the_same_regions(threshold, tmp_path):
    """detect's path (model-grid part only, regions from the native voxels in the mask) equals the panel's path
    (native sums added at load), and the file detect writes is the model-grid part only."""
    filtered, index, native_map, ijk_to_lps = make_case(2)
    light = ThresholdIndex.on_model_grid(filtered, ijk_to_lps, max_removed_component_voxels=3, connectivity=26)
    assert light.native is None
    mask = light.model_mask(threshold)
    direct = light.regions_from_native(mask, index)
    loaded = ThresholdIndex.load(light.save(tmp_path / "index.npz"))
    assert loaded.native is None
    with pytest.raises(ValueError, match="no native sums"):
        loaded.regions(threshold)
    panel = loaded.with_native(index).regions(threshold)
    assert len(direct) == len(panel) > 0
    for a, b in zip(direct, panel, strict=True):
        assert a.voxel_count == b.voxel_count and a.peak_score == b.peak_score
        assert a.mean_score == pytest.approx(b.mean_score, rel=1e-12)
        np.testing.assert_allclose(a.centroid_ras_mm, b.centroid_ras_mm, rtol=1e-12)


def test_native_sums_do_not_depend_on_the_chunking(monkeypatch):
    from contrastive_anomaly.scoring import threshold_index

    filtered, index, native_map, ijk_to_lps = make_case(3)
    whole = ThresholdIndex.build(filtered, index, ijk_to_lps, max_removed_component_voxels=2,
                                 connectivity=6).native
    monkeypatch.setattr(threshold_index, "CHUNK_SLICES", 3)
    chunked = ThresholdIndex.build(filtered, index, ijk_to_lps, max_removed_component_voxels=2,
                                   connectivity=6).native
    assert np.array_equal(whole.count, chunked.count) and np.array_equal(whole.map_max, chunked.map_max)
    np.testing.assert_allclose(whole.map_sum, chunked.map_sum, rtol=1e-12)
    np.testing.assert_allclose(whole.ijk_sum, chunked.ijk_sum, rtol=1e-12)
    assert whole.count.sum() == (index > 0).sum()

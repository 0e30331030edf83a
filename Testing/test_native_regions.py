"""Region scores in summary.json come from the values that decided the mask, so no listed region can have a peak
below the threshold (the linearly resampled map used to give thin regions a sub-threshold peak)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.config import preset
from contrastive_anomaly.jobs.native_outputs import native_outputs
from contrastive_anomaly.preprocess import PreparedVolume
from contrastive_anomaly.scoring.postprocess import binarize
from contrastive_anomaly.scoring.threshold_index import ThresholdIndex
from contrastive_anomaly.scoring.volume_score import VolumeScore

THRESHOLD = 0.25


def _case():
    """A 2 mm model grid holding a one-voxel-thick line at 0.30 (9 voxels, kept by the component filter) and a
    1 mm native grid whose voxel centres sit a quarter model voxel off the line in J and K."""
    cfg = preset("tiny")
    shape_kji = (12, 12, 16)
    filtered = np.zeros(shape_kji, np.float32)
    filtered[6, 6, 3:12] = 0.30
    model_grid = sitk.Image(shape_kji[::-1], sitk.sitkUInt8)
    model_grid.SetSpacing((2.0, 2.0, 2.0))
    native = sitk.Image((32, 24, 24), sitk.sitkFloat32)
    native.SetSpacing((1.0, 1.0, 1.0))
    native.SetOrigin((-0.5, -0.5, -0.5))
    brain = np.ones(shape_kji, np.uint8)
    prepared = PreparedVolume(image_kji=filtered, brain_mask_kji=brain, native_reference=native,
                              native_brain_mask=sitk.Cast(native > -1, sitk.sitkUInt8), model_grid=model_grid,
                              model_to_native_transform=sitk.AffineTransform(3))
    mask = binarize(filtered, THRESHOLD, cfg.postprocess)
    scored = VolumeScore(reconstruction=np.zeros_like(filtered), residual=filtered, filtered=filtered, mask=mask,
                         threshold=THRESHOLD, processed_slices=shape_kji[0], batch_size=1, dtype="float32")
    return prepared, scored, cfg


def test_every_region_peaks_at_or_above_its_threshold():
    prepared, scored, cfg = _case()
    assert scored.mask.sum() == 9
    outputs = native_outputs(prepared, scored, cfg)
    assert len(outputs.regions) == 1 and outputs.mask_kji.any()
    region = outputs.regions[0]
    assert region.peak_score >= THRESHOLD and region.mean_score >= THRESHOLD
    assert region.peak_score == np.float32(0.30)
    # the linearly resampled map, drawn for viewing, is lower everywhere on this thin line
    linear = sitk.GetArrayFromImage(outputs.anomaly_map)
    assert linear[outputs.mask_kji].max() < THRESHOLD


def test_panel_findings_use_the_same_scores_as_detect(tmp_path):
    """The panel adds native sums to the saved index (its slider path): its regions on the thin line must report
    the same volume, peak and mean as summary.json, not the lower linearly resampled values."""
    prepared, scored, cfg = _case()
    outputs = native_outputs(prepared, scored, cfg)
    panel = ThresholdIndex.load(outputs.index.save(tmp_path / "index.npz")).with_native(outputs.model_index_kji)
    regions = panel.regions(THRESHOLD)
    assert len(regions) == len(outputs.regions) == 1
    assert regions[0].peak_score == outputs.regions[0].peak_score == np.float32(0.30)
    assert regions[0].mean_score == pytest.approx(outputs.regions[0].mean_score, rel=1e-12)
    assert regions[0].voxel_count == outputs.regions[0].voxel_count

"""The scored fraction of the brain is computed from the slices the model processed, on the scan's own grid."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.jobs.coverage import coverage_warning, scored_coverage
from contrastive_anomaly.preprocess import PreparedVolume


def _prepared() -> PreparedVolume:
    """Model grid 10 slices of 2 mm; native grid 1 mm covering 24 mm in K, so 4 mm of brain lie outside the grid."""
    model_grid = sitk.Image((8, 8, 10), sitk.sitkUInt8)
    model_grid.SetSpacing((2.0, 2.0, 2.0))
    native = sitk.Image((16, 16, 24), sitk.sitkFloat32)
    native.SetOrigin((-0.5, -0.5, -0.5))
    brain = sitk.Image((16, 16, 24), sitk.sitkUInt8) + 1
    brain.CopyInformation(native)
    return PreparedVolume(image_kji=np.zeros((10, 8, 8), np.float32), brain_mask_kji=np.ones((10, 8, 8), np.uint8),
                          native_reference=native, native_brain_mask=brain, model_grid=model_grid,
                          model_to_native_transform=sitk.AffineTransform(3))


def test_all_slices_scored_leaves_only_the_brain_outside_the_grid():
    coverage = scored_coverage(_prepared(), np.arange(10))
    assert coverage["brain_ml"] == pytest.approx(16 * 16 * 24 / 1000, abs=0.01)
    # native K 0..19 fall in the grid's 20 mm (voxels exactly on a grid border may go either way: 1 %)
    assert coverage["scored_ml"] == pytest.approx(16 * 16 * 20 / 1000, rel=0.01)
    assert coverage["unscored_percent"] == pytest.approx(100 * 4 / 24, abs=1.0)
    assert "not scored" in coverage_warning(coverage)


def test_skipped_slices_count_as_unscored():
    coverage = scored_coverage(_prepared(), np.arange(2, 10))  # two model slices = 4 mm skipped
    assert coverage["scored_ml"] == pytest.approx(16 * 16 * 16 / 1000, rel=0.01)
    assert coverage["fraction"] == pytest.approx(16 / 24, abs=0.01)


def test_a_fully_scored_brain_gives_no_warning():
    prepared = _prepared()
    brain = sitk.GetArrayFromImage(prepared.native_brain_mask)
    brain[19:] = 0  # clear of the grid border
    mask = sitk.GetImageFromArray(brain)
    mask.CopyInformation(prepared.native_reference)
    prepared.native_brain_mask = mask
    coverage = scored_coverage(prepared, np.arange(10))
    assert coverage["fraction"] == 1.0 and coverage_warning(coverage) is None

"""The Detector carries one config; per-request overrides live on a copy and never reach the next scan."""

from __future__ import annotations

import copy

import pytest
import torch

from contrastive_anomaly.jobs.detect import DetectRequest, detect
from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.runtime.progress import ProgressReporter
from contrastive_anomaly.scoring.detector import Detector, fast_levels, load_detector
from contrastive_anomaly.scoring.volume_score import score_volume
from engine_fixtures import small_config, small_subjects, write_model_grid_image

CPU = torch.device("cpu")


@pytest.fixture
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector.from_model(AnomalyDiffusionModel(small_config()), CPU)


def test_fast_mode_is_the_middle_of_the_model_levels():
    assert fast_levels((249, 499, 749)) == (499,)
    assert fast_levels((749, 249)) == (749,)
    assert fast_levels((5,)) == (5,)
    with pytest.raises(ValueError):
        fast_levels(())


def test_overrides_change_a_copy_only(detector):
    before = copy.deepcopy(detector.cfg)
    model_cfg_before = copy.deepcopy(detector.model.cfg)
    changed = detector.with_overrides(seed=99, precision="fp32", threshold=0.37, fast=True, noise_seeds=3)
    assert changed.cfg.inference.seed == 99 and changed.cfg.inference.precision == "fp32"
    assert changed.cfg.inference.noise_seeds == 3 and before.inference.noise_seeds == 1
    assert changed.cfg.postprocess.threshold == pytest.approx(0.37)
    assert changed.cfg.inference.timestep_indices == fast_levels(before.inference.timestep_indices)
    assert changed.dtype == torch.float32 and changed.model is detector.model
    assert detector.cfg == before and detector.model.cfg == model_cfg_before
    # no nested object is shared, so even mutating the copy in place cannot leak back
    changed.cfg.grid.spacing_mm = 123.0
    changed.cfg.preprocess.seed = -1
    assert detector.cfg == before


def test_no_overrides_still_gives_an_independent_config(detector):
    same = detector.with_overrides()
    assert same.cfg == detector.cfg and same.cfg is not detector.cfg
    assert same.cfg.inference is not detector.cfg.inference


def test_score_volume_uses_the_detector_threshold(detector):
    subject = small_subjects(1, first_seed=7)[0]
    low = score_volume(detector.with_overrides(threshold=0.0), subject.image, subject.brain_mask)
    high = score_volume(detector.with_overrides(threshold=10.0), subject.image, subject.brain_mask)
    assert low.threshold == 0.0 and high.threshold == 10.0
    assert low.mask.sum() > 0 and high.mask.sum() == 0


def test_request_overrides_do_not_leak_into_the_next_scan(trained_tiny_model, tmp_path):
    """Two scans through one loaded detector, as detect-batch does: the first asks for its own threshold, seed
    and fast mode; the second asks for nothing and must get the model's own settings."""
    shared = load_detector(trained_tiny_model, CPU)
    calibrated = shared.cfg.postprocess.threshold
    assert calibrated is not None
    loaded_cfg = copy.deepcopy(shared.cfg)
    override = (calibrated + 1.0) / 2  # inside the plain map's (0, 1) and never the calibrated value
    scan = write_model_grid_image(small_subjects(1, first_seed=50)[0].image, tmp_path / "scan.nii.gz")
    first = detect(DetectRequest(input=scan, out_dir=tmp_path / "a", threshold=override, seed=5,
                                 fast=True, precision="fp32", noise_seeds=2), ProgressReporter("none"),
                   detector=shared)
    second = detect(DetectRequest(input=scan, out_dir=tmp_path / "b"), ProgressReporter("none"), detector=shared)
    assert first["threshold"] == pytest.approx(override) and first["inference"]["seed"] == 5
    assert first["inference"]["noise_seeds"] == 2 and second["inference"]["noise_seeds"] == 1
    assert second["threshold"] == pytest.approx(calibrated)
    assert second["inference"]["seed"] == shared.cfg.inference.seed != 5
    assert shared.cfg == loaded_cfg

"""The method's claim in miniature: trained only on healthy phantoms, it scores a planted lesion higher than
healthy tissue, and it is the training that makes healthy tissue reconstruct well (the control at the end)."""

from __future__ import annotations

import pytest
import torch

from contrastive_anomaly.data.phantoms import plant_sphere_lesion
from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.scoring.detector import Detector
from contrastive_anomaly.scoring.metrics import auroc
from contrastive_anomaly.scoring.volume_score import score_volume
from contrastive_anomaly.training.loops import train_diffusion
from engine_fixtures import small_config, small_subjects

pytestmark = pytest.mark.slow  # trains a model for 60 steps

# Required ratio of the mean filtered score inside the lesion to the mean over healthy brain voxels.
MIN_LESION_TO_HEALTHY_RATIO = 2.0
MIN_VOXEL_AUROC = 0.8


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(2)
    cfg = small_config()
    cfg.diffusion_training.steps = 60
    cfg.diffusion_training.validate_every = 60
    cfg.diffusion_training.intensity_augmentation = False
    folder = tmp_path_factory.mktemp("method")
    train_diffusion(cfg, small_subjects(8), small_subjects(2, first_seed=20), folder)
    from contrastive_anomaly.scoring.detector import load_detector

    return load_detector(folder / "last", torch.device("cpu"))


def lesion_cases():
    for seed, intensity in ((0, 1.0), (1, 0.05), (2, 1.0)):
        subject = small_subjects(1, first_seed=200 + seed)[0]  # subjects never seen in training
        image, label = plant_sphere_lesion(subject.image, subject.brain_mask, 2.5, intensity, seed=seed)
        yield image, subject.brain_mask, label


def scores(detector, image, brain, label):
    scored = score_volume(detector, image, brain)
    healthy = (brain > 0) & (label == 0)
    ratio = scored.filtered[label > 0].mean() / scored.filtered[healthy].mean()
    return ratio, auroc(scored.filtered, label)


def test_planted_lesion_scores_clearly_higher_than_healthy_tissue(trained):
    for image, brain, label in lesion_cases():
        ratio, voxel_auroc = scores(trained, image, brain, label)
        assert ratio > MIN_LESION_TO_HEALTHY_RATIO, ratio
        assert voxel_auroc > MIN_VOXEL_AUROC, voxel_auroc


def test_training_is_what_makes_healthy_tissue_quiet(trained):
    """Control: an untrained model (constant reconstruction) leaves far larger residuals on healthy tissue."""
    torch.manual_seed(0)
    untrained = Detector.from_model(AnomalyDiffusionModel(trained.cfg), trained.device)
    subject = small_subjects(1, first_seed=300)[0]
    brain = subject.brain_mask > 0
    trained_noise = score_volume(trained, subject.image, subject.brain_mask).residual[brain].mean()
    untrained_noise = score_volume(untrained, subject.image, subject.brain_mask).residual[brain].mean()
    assert untrained_noise > 2 * trained_noise, (untrained_noise, trained_noise)

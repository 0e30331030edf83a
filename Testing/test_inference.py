"""Volume reconstruction: determinism, batch-size invariance, empty-slice skipping, precision tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.scoring.inference import activation_bytes_per_input, inputs_per_batch, reconstruct_volume
from engine_fixtures import small_config, small_subjects

# bf16 autocast vs fp32 on the same input: largest allowed |difference| of the reconstruction, in intensity units.
BF16_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def model_and_subject():
    torch.manual_seed(0)
    cfg = small_config()
    model = AnomalyDiffusionModel(cfg)
    with torch.no_grad():  # the output conv is zero-initialised; give it weights so outputs depend on the input
        model.unet.out[-1].conv.weight.normal_(0, 0.05)
    return model, cfg, small_subjects(1)[0]


def run(model, cfg, subject, **kwargs):
    return reconstruct_volume(model, subject.image, subject.brain_mask, cfg, torch.device("cpu"),
                              precision=kwargs.pop("precision", torch.float32), **kwargs)


def test_same_seed_same_result_and_other_seed_differs(model_and_subject):
    model, cfg, subject = model_and_subject
    first = run(model, cfg, subject).reconstruction
    assert np.array_equal(first, run(model, cfg, subject).reconstruction)
    cfg.inference.seed = 1
    other = run(model, cfg, subject).reconstruction
    cfg.inference.seed = 0
    assert not np.allclose(first, other)


def test_noise_seeds_average_the_draws_of_consecutive_seeds(model_and_subject):
    """noise_seeds=N is the mean of N one-draw reconstructions with seeds seed .. seed+N-1 (at equal level count)."""
    model, cfg, subject = model_and_subject
    cfg.inference.seed = 3
    single = [run(model, cfg, subject).reconstruction]
    cfg.inference.seed = 4
    single.append(run(model, cfg, subject).reconstruction)
    cfg.inference.seed, cfg.inference.noise_seeds = 3, 2
    averaged = run(model, cfg, subject).reconstruction
    cfg.inference.seed, cfg.inference.noise_seeds = 0, 1
    assert not np.allclose(single[0], single[1])
    np.testing.assert_allclose(averaged, (single[0] + single[1]) / 2, atol=1e-5)


def test_batch_size_does_not_change_the_result(model_and_subject):
    model, cfg, subject = model_and_subject
    big = run(model, cfg, subject)
    budget = cfg.inference.memory_budget_mb
    cfg.inference.memory_budget_mb = max(1, activation_bytes_per_input(cfg, torch.float32) * 3 // 2**20)
    small = run(model, cfg, subject)
    cfg.inference.memory_budget_mb = budget
    assert small.batch_size < big.batch_size
    np.testing.assert_allclose(small.reconstruction, big.reconstruction, atol=1e-5)


def test_slices_without_brain_are_skipped_and_returned_unchanged(model_and_subject):
    model, cfg, subject = model_and_subject
    result = run(model, cfg, subject)
    empty = np.flatnonzero(subject.brain_mask.reshape(subject.brain_mask.shape[0], -1).sum(1) < 4)
    assert len(empty) > 0
    assert not set(empty) & set(result.processed_slices.tolist())
    assert np.array_equal(result.reconstruction[empty], subject.image[empty])


def test_bf16_stays_within_tolerance_of_fp32(model_and_subject):
    model, cfg, subject = model_and_subject
    fp32 = run(model, cfg, subject).reconstruction
    bf16 = run(model, cfg, subject, precision=torch.bfloat16).reconstruction
    assert np.abs(fp32 - bf16).max() < BF16_TOLERANCE


def test_memory_budget_sets_batch_size():
    cfg = small_config()
    per_input = activation_bytes_per_input(cfg, torch.float32)
    assert inputs_per_batch(cfg, torch.float32, budget_mb=1) == max(1, 2**20 // per_input)
    assert inputs_per_batch(cfg, torch.float32, budget_mb=100) > inputs_per_batch(cfg, torch.float32, budget_mb=10)
    assert inputs_per_batch(cfg, torch.bfloat16, budget_mb=100) > inputs_per_batch(cfg, torch.float32, budget_mb=100)

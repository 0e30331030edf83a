"""Cosine schedule buffers and the forward noising step (docs/METHOD.md §4.4, D6)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from contrastive_anomaly.config import DiffusionConfig
from contrastive_anomaly.method.schedule import CosineSchedule


def closed_form_alpha_bar(k: int, num_timesteps: int = 1000, s: float = 0.008) -> float:
    """ᾱ_k = f(k+1)/f(0) (valid while no β is clipped), written independently with ``math``."""

    def f(t: float) -> float:
        return math.cos((t / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2

    return f(k + 1) / f(0)


@pytest.fixture(scope="module")
def schedule() -> CosineSchedule:
    return CosineSchedule(DiffusionConfig())


@pytest.mark.parametrize(
    ("k", "signal", "spread"), [(249, 0.920, 0.391), (499, 0.703, 0.711), (749, 0.380, 0.925)]
)
def test_test_level_values(schedule: CosineSchedule, k: int, signal: float, spread: float) -> None:
    assert schedule.sqrt_alphas_cumprod[k].item() == pytest.approx(signal, abs=1e-3)
    assert schedule.sqrt_one_minus_alphas_cumprod[k].item() == pytest.approx(spread, abs=1e-3)
    assert schedule.alphas_cumprod[k].item() == pytest.approx(closed_form_alpha_bar(k), abs=1e-6)


def test_buffers_shape_dtype_and_monotonic(schedule: CosineSchedule) -> None:
    for name in ("alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod"):
        buffer = getattr(schedule, name)
        assert buffer.shape == (1000,) and buffer.dtype == torch.float32
        assert name not in schedule.state_dict()  # rebuilt from the config, not saved
    assert bool((schedule.alphas_cumprod[1:] < schedule.alphas_cumprod[:-1]).all())
    assert schedule.alphas_cumprod[0].item() == pytest.approx(closed_form_alpha_bar(0), abs=1e-7)
    # the last β is clipped to 0.999, so ᾱ_{T-1} = 0.001 · ᾱ_{T-2}
    assert schedule.alphas_cumprod[-1].item() == pytest.approx(0.001 * schedule.alphas_cumprod[-2].item(), rel=1e-4)


def test_matches_monai_cosine(schedule: CosineSchedule) -> None:
    """MONAI 1.6.1's cosine ᾱ uses the same 0-based index as the reference (no shift, clip β ≤ 0.999).

    docs/ENGINE.md describes a one-index shift; with MONAI 1.6.1 the arrays agree index for index, and the shifted
    comparison is off by far more than float precision (asserted below so a MONAI change is noticed)."""
    monai = DDPMScheduler(num_train_timesteps=1000, schedule="cosine", prediction_type="sample", clip_sample=False)
    ours = schedule.alphas_cumprod
    assert torch.allclose(monai.alphas_cumprod[:-1], ours[:-1], atol=1e-5)
    shifted_gap = (monai.alphas_cumprod[1:500] - ours[:499]).abs().max().item()
    assert shifted_gap > 1e-4


def test_q_sample_formula_and_broadcast(schedule: CosineSchedule) -> None:
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 1, 8, 8, generator=generator) * 2 - 1
    noise = torch.randn(1, 1, 8, 8, generator=generator)
    k = torch.tensor([0, 499, 999])
    x_k = schedule.q_sample(x0, k, noise)
    assert x_k.shape == (3, 1, 8, 8)
    for i, level in enumerate(k.tolist()):
        a = closed_form_alpha_bar(level) if level < 999 else schedule.alphas_cumprod[999].item()
        expected = math.sqrt(a) * x0[i] + math.sqrt(1 - a) * noise[0]
        assert torch.allclose(x_k[i], expected, atol=1e-5)


def test_q_sample_stays_fp32_under_autocast(schedule: CosineSchedule) -> None:
    x0 = torch.zeros(2, 1, 4, 4, dtype=torch.bfloat16)
    noise = torch.ones(1, 1, 4, 4, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_k = schedule.q_sample(x0, torch.tensor([249, 749]), noise)
    assert x_k.dtype == torch.float32
    assert x_k[0, 0, 0, 0].item() == pytest.approx(schedule.sqrt_one_minus_alphas_cumprod[249].item(), abs=1e-7)


def test_q_sample_rejects_bad_indices(schedule: CosineSchedule) -> None:
    x0 = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError):
        schedule.q_sample(x0, torch.tensor([0, 1000]), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError):
        schedule.q_sample(x0, torch.tensor([0.0, 1.0]), torch.zeros(1, 1, 4, 4))

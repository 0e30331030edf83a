"""ε-InfoNCE and the masked-patch MSE of stage 1 (docs/METHOD.md §3)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastive_anomaly.method.losses import cell_edges, eps_infonce, masked_patch_mse

TAU, EPS = 0.07, 0.5


def reference_eps_infonce(z_a: list[list[float]], z_b: list[list[float]], tau: float, eps: float) -> float:
    """Plain-python double loop over anchors and contrasts, following the formula in docs/METHOD.md §3."""
    z = z_a + z_b
    n, batch = len(z), len(z_a)
    total = 0.0
    for i in range(n):
        sims = [sum(p * q for p, q in zip(z[i], z[k], strict=True)) / tau for k in range(n)]
        row_max = max(sims)
        positive = (i + batch) % n
        denominator = math.exp(sims[positive] - eps - row_max)
        for k in range(n):
            if k not in (i, positive):
                denominator += math.exp(sims[k] - row_max)
        total += -(sims[positive] - row_max) + math.log(denominator + 1e-6)
    return total / n


def test_eps_infonce_hand_example() -> None:
    """B = 2, D = 2: a0 = (1, 0), a1 = (0, 1), b0 = (0.6, 0.8), b1 = (0.8, -0.6); every term written out."""
    z_a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_b = torch.tensor([[0.6, 0.8], [0.8, -0.6]])
    tau, eps = 0.5, 0.5
    # dot products: a0·a1 = 0, a0·b0 = .6, a0·b1 = .8, a1·b0 = .8, a1·b1 = -.6, b0·b1 = 0; self = 1 (row max 1/τ = 2)
    def term(positive: float, negatives: tuple[float, float]) -> float:
        shift = 1 / tau
        denominator = math.exp(positive / tau - eps - shift) + sum(math.exp(s / tau - shift) for s in negatives)
        return -(positive / tau - shift) + math.log(denominator + 1e-6)

    expected = (
        term(0.6, (0.0, 0.8))  # anchor a0: positive b0, negatives a1, b1
        + term(-0.6, (0.0, 0.8))  # anchor a1: positive b1, negatives a0, b0
        + term(0.6, (0.8, 0.0))  # anchor b0: positive a0, negatives a1, b1
        + term(-0.6, (0.8, 0.0))  # anchor b1: positive a1, negatives a0, b0
    ) / 4
    assert eps_infonce(z_a, z_b, temperature=tau, epsilon=eps).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("batch", [1, 3, 6])
def test_eps_infonce_matches_double_loop(batch: int) -> None:
    generator = torch.Generator().manual_seed(batch)
    z_a = F.normalize(torch.randn(batch, 5, generator=generator, dtype=torch.float64), dim=1)
    z_b = F.normalize(torch.randn(batch, 5, generator=generator, dtype=torch.float64), dim=1)
    expected = reference_eps_infonce(z_a.tolist(), z_b.tolist(), TAU, EPS)
    assert eps_infonce(z_a, z_b, TAU, EPS).item() == pytest.approx(expected, abs=1e-4)


def test_eps_infonce_minimum_is_minus_epsilon() -> None:
    """Identical positives and orthogonal negatives reach the floor −ε (the loss can be negative)."""
    basis = torch.eye(4)
    value = eps_infonce(basis, basis.clone(), TAU, EPS).item()
    assert value == pytest.approx(-EPS, abs=1e-3)
    worse = eps_infonce(basis, basis.roll(1, dims=0), TAU, EPS).item()
    assert worse > value + 1.0


def test_eps_infonce_gradient_is_finite() -> None:
    z_a = F.normalize(torch.randn(4, 8), dim=1).requires_grad_(True)
    z_b = F.normalize(torch.randn(4, 8), dim=1)
    eps_infonce(z_a, z_b).backward()
    assert z_a.grad is not None and bool(torch.isfinite(z_a.grad).all()) and z_a.grad.abs().sum() > 0


def test_cell_edges_assigns_remainder_to_last_cell() -> None:
    assert cell_edges(96, 3) == [(0, 32), (32, 64), (64, 96)]
    assert cell_edges(10, 3) == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError):
        cell_edges(2, 3)


def test_masked_patch_mse_ignores_visible_patches() -> None:
    target = torch.rand(1, 1, 9, 9)
    visible = torch.zeros(1, 1, 9, 9)
    visible[..., 0:3, 0:3] = 1.0  # cell (0, 0) visible
    visible[..., 3:6, 6:9] = 1.0  # cell (1, 2) visible
    reconstruction = target.clone()
    reconstruction[..., 0:3, 0:3] += 5.0
    reconstruction[..., 3:6, 6:9] -= 3.0
    assert masked_patch_mse(reconstruction, target, visible, grid=3).item() == pytest.approx(0.0, abs=1e-9)
    reconstruction[..., 6:9, 0:3] += 0.7  # one of the 7 masked cells now has squared error 0.49
    assert masked_patch_mse(reconstruction, target, visible, grid=3).item() == pytest.approx(0.49 / 7, rel=1e-5)


def test_masked_patch_mse_is_a_mean_over_patches_not_pixels() -> None:
    """11 px with grid 2: cells of 5 and 6 px (remainder to the last cell); each cell counts once, whatever its size."""
    target = torch.zeros(2, 1, 11, 11)
    visible = torch.zeros(2, 1, 11, 11)
    reconstruction = torch.zeros(2, 1, 11, 11)
    reconstruction[0, 0, 5:11, 5:11] = 2.0  # error 4 on the whole last cell of image 0
    expected = 4.0 / 8  # one of 2 × 4 masked cells
    assert masked_patch_mse(reconstruction, target, visible, grid=2).item() == pytest.approx(expected, rel=1e-6)
    reconstruction[1, 0, 0:5, 0:5] = 1.0
    visible[1] = 1.0  # image 1 fully visible: its error is ignored and its cells are not counted
    assert masked_patch_mse(reconstruction, target, visible, grid=2).item() == pytest.approx(4.0 / 4, rel=1e-6)


def test_eps_infonce_is_computed_in_fp32_under_autocast() -> None:
    generator = torch.Generator().manual_seed(11)
    z_a = F.normalize(torch.randn(8, 16, generator=generator), dim=1)
    z_b = F.normalize(z_a + 0.05 * torch.randn(8, 16, generator=generator), dim=1)
    expected = eps_infonce(z_a, z_b).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = eps_infonce(z_a.bfloat16(), z_b.bfloat16())
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, abs=2e-2)  # only the bf16 rounding of the inputs remains

"""Stage-1 losses (docs/METHOD.md §3): ε-InfoNCE between two views and the masked-patch reconstruction MSE.

The mask-cell layout (:func:`cell_edges`) lives here because the patch loss needs it; :mod:`masking` imports it so the
mask generator and the loss always agree on where the cells are.
"""

from __future__ import annotations

import torch
from torch import Tensor

LOG_EPS = 1e-6  # added inside the log of ε-InfoNCE for stability (docs/METHOD.md §3)


def cell_edges(size: int, grid: int) -> list[tuple[int, int]]:
    """Pixel ranges [start, stop) of the ``grid`` mask cells along one axis of ``size`` pixels.

    Each cell is ``size // grid`` pixels; the remainder goes to the last cell (96 px, grid 3 → 32/32/32;
    100 px → 33/33/34).
    """
    if grid < 1 or size < grid:
        raise ValueError(f"cannot split {size} pixels into {grid} mask cells")
    cell = size // grid
    return [(i * cell, size if i == grid - 1 else (i + 1) * cell) for i in range(grid)]


def eps_infonce(z_a: Tensor, z_b: Tensor, temperature: float = 0.07, epsilon: float = 0.5) -> Tensor:
    """Unsupervised ε-InfoNCE (Barbano et al., ICLR 2023) over N = 2B unit vectors, as written in docs/METHOD.md §3.

    ``z_a``, ``z_b``: [B, D] ℓ2-normalised embeddings of the two views; row i of ``z_a`` and row i of ``z_b`` are the
    positive pair, every other row of either view is a negative. With s_ij = z_i·z_j / τ and p(i) the other view of i:
    l_i = −s_ip + log(exp(s_ip − ε) + Σ_{k≠i,p(i)} exp(s_ik)); the loss is mean_i l_i (τ/τ_base = 1). The detached row
    maximum (self-similarity included) is subtracted before exponentiating and 1e−6 is added inside the log. The
    minimum is −ε, so the value can be negative. Returns a scalar tensor (float32 arithmetic).
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(f"views must both be [B, D], got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    with torch.autocast(device_type=z_a.device.type, enabled=False):  # similarities / 0.07 need fp32
        return _eps_infonce_fp32(torch.cat([z_a, z_b], dim=0).float(), z_a.shape[0], temperature, epsilon)


def _eps_infonce_fp32(z: Tensor, batch: int, temperature: float, epsilon: float) -> Tensor:
    """ε-InfoNCE on the stacked views z = [z_a; z_b] ([2B, D] float32); see :func:`eps_infonce`."""
    logits = z @ z.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    n = 2 * batch
    rows = torch.arange(n, device=z.device)
    partner = (rows + batch) % n
    positive = logits[rows, partner]
    negatives_mask = torch.ones(n, n, dtype=torch.bool, device=z.device)
    negatives_mask[rows, rows] = False
    negatives_mask[rows, partner] = False
    negatives = (logits.exp() * negatives_mask).sum(dim=1)
    per_anchor = -positive + torch.log(torch.exp(positive - epsilon) + negatives + LOG_EPS)
    return per_anchor.mean()


def masked_patch_mse(reconstruction: Tensor, target: Tensor, visible_mask: Tensor, grid: int) -> Tensor:
    """Mean over masked cells of the per-cell mean squared error (docs/METHOD.md §3, L_MIM).

    ``reconstruction``, ``target``: [B, 1, H, W] (target in [0, 1], no per-patch normalisation); ``visible_mask``:
    [B, 1, H, W] with 1 on visible and 0 on masked pixels, constant on each of the ``grid × grid`` cells of
    :func:`cell_edges`. Visible cells do not contribute. Returns 0 when no cell is masked.
    """
    if reconstruction.shape != target.shape or visible_mask.shape != target.shape:
        raise ValueError("reconstruction, target and visible_mask must have the same [B, 1, H, W] shape")
    height, width = target.shape[-2:]
    squared_error = (reconstruction.float() - target.float()) ** 2
    cell_errors, cell_masked = [], []
    for r0, r1 in cell_edges(height, grid):
        for c0, c1 in cell_edges(width, grid):
            cell_errors.append(squared_error[..., r0:r1, c0:c1].mean(dim=(-3, -2, -1)))
            cell_masked.append(visible_mask[..., r0:r1, c0:c1].float().mean(dim=(-3, -2, -1)) < 0.5)
    errors = torch.stack(cell_errors, dim=1)  # [B, grid*grid]
    masked = torch.stack(cell_masked, dim=1).float()
    return (errors * masked).sum() / masked.sum().clamp(min=1.0)

"""The cosine noise schedule of the forward diffusion process (docs/METHOD.md §4.4, decision D6).

Indices are 0-based: ``alphas_cumprod[k]`` is ᾱ_k = Π_{j≤k} (1 − β_j) for k = 0 … T−1, with
β_k = min(1 − f(k+1)/f(k), max_beta) and f(t) = cos²(((t/T) + s)/(1 + s) · π/2). The buffers are computed in float64
and stored as float32; :meth:`CosineSchedule.q_sample` always does its arithmetic in float32, even under autocast,
so the noise levels do not lose precision in fp16/bf16.

Implementation decision: the schedule is kept as own buffers rather than MONAI's ``DDPMScheduler`` so that it is
saved with the model's state dict and the index convention is explicit. MONAI 1.6.1's ``schedule="cosine"`` gives the
same ᾱ at the same index (checked in ``Testing/test_schedule.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..config import DiffusionConfig


def cosine_alphas_cumprod(num_timesteps: int, s: float, max_beta: float) -> Tensor:
    """ᾱ_k for k = 0 … num_timesteps−1 of the clipped cosine schedule, as a float64 tensor of shape (T,)."""
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64)
    f = torch.cos(((steps / num_timesteps) + s) / (1.0 + s) * (math.pi / 2.0)) ** 2
    betas = (1.0 - f[1:] / f[:-1]).clamp(min=0.0, max=max_beta)
    return torch.cumprod(1.0 - betas, dim=0)


class CosineSchedule(nn.Module):
    """Forward-process noise levels as float32 buffers of shape (T,): ``alphas_cumprod``, ``sqrt_alphas_cumprod``,
    ``sqrt_one_minus_alphas_cumprod``.

    The buffers follow the module across devices but are not saved in state dicts: they are rebuilt from the
    :class:`DiffusionConfig` stored with every model, the single source of truth."""

    alphas_cumprod: Tensor
    sqrt_alphas_cumprod: Tensor
    sqrt_one_minus_alphas_cumprod: Tensor

    def __init__(self, cfg: DiffusionConfig) -> None:
        super().__init__()
        if cfg.schedule != "cosine":
            raise ValueError(f"unsupported noise schedule {cfg.schedule!r}; only 'cosine' is implemented")
        self.num_timesteps = int(cfg.num_timesteps)
        alphas_cumprod = cosine_alphas_cumprod(self.num_timesteps, cfg.cosine_s, cfg.max_beta)
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)
        self.register_buffer("sqrt_alphas_cumprod", alphas_cumprod.sqrt().float(), persistent=False)
        self.register_buffer("sqrt_one_minus_alphas_cumprod", (1.0 - alphas_cumprod).sqrt().float(), persistent=False)

    def q_sample(self, x0_scaled: Tensor, k: Tensor, noise: Tensor) -> Tensor:
        """Noise a clean batch to level k: x_k = √ᾱ_k · x0 + √(1 − ᾱ_k) · noise.

        ``x0_scaled``: [B, 1, H, W] in [−1, 1] (the network scale); ``k``: integer tensor [B] of 0-based indices;
        ``noise``: any tensor broadcastable to ``x0_scaled`` (simplex or Gaussian, e.g. [1, 1, H, W] shared by the
        batch). Returns a float32 tensor of the broadcast shape.
        """
        if k.dim() != 1 or k.shape[0] != x0_scaled.shape[0]:
            raise ValueError(f"k must have shape [{x0_scaled.shape[0]}], got {tuple(k.shape)}")
        if k.dtype.is_floating_point:
            raise ValueError("k must be an integer tensor of 0-based diffusion indices")
        if int(k.min()) < 0 or int(k.max()) >= self.num_timesteps:
            raise ValueError(f"diffusion indices must lie in [0, {self.num_timesteps - 1}]")
        view = (-1,) + (1,) * (x0_scaled.dim() - 1)
        with torch.autocast(device_type=x0_scaled.device.type, enabled=False):
            signal = self.sqrt_alphas_cumprod[k].view(view)
            spread = self.sqrt_one_minus_alphas_cumprod[k].view(view)
            return signal * x0_scaled.float() + spread * noise.float()

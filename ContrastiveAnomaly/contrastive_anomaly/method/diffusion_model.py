"""The stage-2 model: condition encoder f + conditional UNet + cosine schedule (docs/METHOD.md §4, §5).

Intensities: callers pass clean slices ``x01`` in [0, 1]; the network works on 2x − 1 ∈ [−1, 1] and predicts x0 in
that scale; :meth:`AnomalyDiffusionModel.predict_x0` maps the prediction back with (x̂ + 1)/2, **not clamped**.
Noise maps are supplied by the caller (simplex noise lives in :mod:`noise`), typically one [1, 1, H, W] map shared
by the batch (docs/METHOD.md §4.5). Diffusion indices are 0-based.

Encoder modes (decision D2): ``set_encoder_frozen(True)`` freezes the trunk and keeps it in eval mode (BatchNorm
statistics fixed) while the fresh head stays trainable; ``False`` fine-tunes everything (the official code).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .encoder import ConditionEncoder
from .schedule import CosineSchedule
from .unet import ConditionalDiffusionUNet


def to_network_scale(x01: Tensor) -> Tensor:
    """[0, 1] intensities → the network's [−1, 1] scale (2x − 1)."""
    return 2.0 * x01 - 1.0


def from_network_scale(x_scaled: Tensor) -> Tensor:
    """The network's [−1, 1] scale → [0, 1] intensities ((x + 1)/2), not clamped."""
    return (x_scaled + 1.0) / 2.0


class AnomalyDiffusionModel(nn.Module):
    """``encoder`` (None when ``cfg.unet.conditioning == "none"``), ``unet`` and ``schedule`` of one trained model."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        conditioned = cfg.unet.conditioning != "none"
        self.encoder: ConditionEncoder | None = ConditionEncoder(cfg.encoder) if conditioned else None
        self.unet = ConditionalDiffusionUNet(cfg.unet, cfg.encoder.condition_dim)
        self.schedule = CosineSchedule(cfg.diffusion)
        self.encoder_frozen = False

    def condition(self, x01: Tensor) -> Tensor | None:
        """Condition vectors [B, condition_dim] of clean slices [B, 1, H, W] in [0, 1]; None for an unconditioned
        model."""
        return None if self.encoder is None else self.encoder(x01)

    def predict_x0(self, x01: Tensor, k: Tensor, noise: Tensor, condition: Tensor | None = None) -> Tensor:
        """One-step reconstruction (METHOD.md §5 step 2): noise ``x01`` [B, 1, H, W] ∈ [0, 1] to 0-based level ``k``
        [B] with ``noise`` ([B or 1, 1, H, W]) and return x̂0 [B, 1, H, W] float32 in the [0, 1] scale, not clamped.

        ``condition`` ([B, condition_dim]) is computed from ``x01`` when omitted, so callers that reconstruct several
        levels can compute it once with :meth:`condition` and pass it in."""
        if condition is None:
            condition = self.condition(x01)
        x_k = self.schedule.q_sample(to_network_scale(x01), k, noise).to(x01.dtype)
        return from_network_scale(self.unet(x_k, k, condition).float())

    def training_loss(self, x01: Tensor, k: Tensor, noise: Tensor) -> Tensor:
        """Stage-2 objective: mean L1 (or L2 per ``cfg.diffusion.loss``) between the UNet's x0 prediction and 2x − 1,
        over pixels and batch. ``x01`` [B, 1, H, W] ∈ [0, 1], ``k`` [B] 0-based, ``noise`` [B or 1, 1, H, W]."""
        target = to_network_scale(x01)
        x_k = self.schedule.q_sample(target, k, noise).to(x01.dtype)
        prediction = self.unet(x_k, k, self.condition(x01)).float()
        if self.cfg.diffusion.loss == "l2":
            return F.mse_loss(prediction, target.float())
        return F.l1_loss(prediction, target.float())

    def set_encoder_frozen(self, frozen: bool) -> None:
        """Freeze (``True``) or fine-tune (``False``) the encoder trunk; the head always stays trainable (D2).

        A frozen trunk is put in eval mode and stays there through later :meth:`train` calls."""
        self.encoder_frozen = bool(frozen)
        if self.encoder is None:
            return
        for parameter in self.encoder.trunk.parameters():
            parameter.requires_grad_(not frozen)
        for parameter in self.encoder.head.parameters():
            parameter.requires_grad_(True)
        self.encoder.trunk.train(self.training and not frozen)

    def train(self, mode: bool = True) -> AnomalyDiffusionModel:
        super().train(mode)
        if self.encoder is not None and self.encoder_frozen:
            self.encoder.trunk.eval()
        return self

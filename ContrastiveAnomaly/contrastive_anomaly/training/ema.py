"""Exponential moving average (EMA) of a network's weights, with a warm-up.

Built on ``torch.optim.swa_utils.AveragedModel`` (parameters and buffers averaged). Only the warm-up rule is ours:
after ``n`` updates the decay is ``min(decay, (1 + n) / (10 + n))``, the rule of TensorFlow's
``ExponentialMovingAverage(num_updates=...)``, so that a short run is not dominated by the initial weights.
Integer buffers (BatchNorm's ``num_batches_tracked``) are copied, not averaged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

WARMUP_OFFSET = 10.0  # (1 + n) / (WARMUP_OFFSET + n): 0.1 at the first update, 0.5 after 8, 0.99 after 890


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay used for the update after ``updates`` earlier ones (0 <= result <= ``decay``)."""
    return min(decay, (1.0 + updates) / (WARMUP_OFFSET + updates))


def exponential_average(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """An ``avg_fn`` for :class:`AveragedModel` implementing the warmed-up EMA above."""

    def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():
            return current
        # lerp leaves a weight that did not change (a frozen encoder trunk) bit-identical
        return torch.lerp(averaged, current, 1.0 - warmed_up_decay(decay, int(updates)))

    return average


class WeightAverage:
    """The EMA copy of ``network`` (``module``), updated after every optimiser step with :meth:`update`.

    ``updates`` is the number of updates so far (saved with a resumable checkpoint and restored with
    :meth:`restore`).
    """

    def __init__(self, network: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.averaged = AveragedModel(network, avg_fn=exponential_average(decay), use_buffers=True)

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    @property
    def updates(self) -> int:
        return int(self.averaged.n_averaged)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        self.averaged.update_parameters(network)

    @torch.no_grad()
    def restore(self, state: dict[str, torch.Tensor], updates: int) -> None:
        """Load averaged weights (a ``state_dict`` of the wrapped network) and the update count of a checkpoint."""
        self.module.load_state_dict(state, strict=True)
        self.averaged.n_averaged.fill_(int(updates))

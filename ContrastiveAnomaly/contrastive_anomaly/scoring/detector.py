"""One loaded model ready to score scans: the network, its one config, where it came from, and how it runs.

Every scoring path (``detect``, ``detect-batch``, ``evaluate``, calibration, the lesion benchmark and the demo)
carries a :class:`Detector` instead of a model plus a separately copied config and threshold. Per-request settings
(seed, precision, threshold, fast mode) are applied with :meth:`Detector.with_overrides`, which returns a new
Detector with its own config copy, so one request never changes the next one.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ModelConfig, Precision
from ..errors import CheckpointError
from ..method.diffusion_model import AnomalyDiffusionModel
from ..runtime.precision import resolve_precision
from ..storage.checkpoint import load_model_folder, load_state_strict
from ..storage.registry import resolve_model
from .normalisation import STATS_FILE, HealthyResidualStats


def fast_levels(timestep_indices: tuple[int, ...]) -> tuple[int, ...]:
    """The one level fast mode reconstructs at: the middle of the model's own (sorted) levels, 0-based.

    For the paper's levels (249, 499, 749) this is (499,), i.e. t = 500.
    """
    levels = sorted(timestep_indices)
    if not levels:
        raise ValueError("a model needs at least one inference level")
    return (levels[len(levels) // 2],)


@dataclass(frozen=True)
class Detector:
    """A stage-2 model in eval mode on ``device`` with the config it scores with.

    ``cfg`` is the only config scoring reads (grid, inference levels, seed, post-processing, threshold);
    ``folder`` is the model folder it was loaded from (``None`` for an in-memory model); ``dtype`` is the autocast
    dtype inference runs in (``torch.bfloat16`` or ``torch.float32``), resolved once from
    ``cfg.inference.precision`` and the device.
    """

    model: AnomalyDiffusionModel
    cfg: ModelConfig
    folder: Path | None
    device: torch.device
    dtype: torch.dtype
    healthy_stats: HealthyResidualStats | None = None

    @classmethod
    def from_model(cls, model: AnomalyDiffusionModel, device: torch.device, *, cfg: ModelConfig | None = None,
                   folder: Path | None = None) -> Detector:
        """Wrap an already built model (moved to ``device``, eval mode); ``cfg`` defaults to ``model.cfg``."""
        cfg = copy.deepcopy(cfg if cfg is not None else model.cfg)
        return cls(model=model.to(device).eval(), cfg=cfg, folder=folder, device=device,
                   dtype=resolve_precision(cfg.inference.precision, device))

    def with_overrides(self, *, seed: int | None = None, precision: Precision | None = None,
                       threshold: float | None = None, fast: bool = False,
                       residual_normalisation: str | None = None, noise_seeds: int | None = None) -> Detector:
        """A Detector for one request: the same network, a fresh config copy with the given settings changed.

        ``threshold`` is in residual (normalised-intensity) units and replaces the calibrated one; ``fast`` keeps
        only :func:`fast_levels` of the model's inference levels; ``residual_normalisation="none"`` scores the plain
        residual of a model calibrated with normalisation; ``noise_seeds`` averages that many noise draws (each one
        more model stage; the calibration was made with the model's own setting). ``self`` is never modified.
        """
        cfg = copy.deepcopy(self.cfg)  # nothing below may touch self.cfg, not even a nested object
        if seed is not None:
            cfg.inference.seed = int(seed)
        if precision is not None:
            cfg.inference.precision = precision
        if fast:
            cfg.inference.timestep_indices = fast_levels(cfg.inference.timestep_indices)
        if threshold is not None:
            cfg.postprocess.threshold = float(threshold)
        if residual_normalisation is not None:
            cfg.postprocess.residual_normalisation = residual_normalisation
        if noise_seeds is not None:
            cfg.inference.noise_seeds = int(noise_seeds)
        dtype = self.dtype if precision is None else resolve_precision(precision, self.device)
        return dataclasses.replace(self, cfg=cfg, dtype=dtype)


def load_detector(name_or_path: str | Path | None, device: torch.device) -> Detector:
    """Verify (checksums, config) and load a stage-2 model folder or registered model name onto ``device``.

    ``None`` or ``"default"`` loads the registry's default model. Raises :class:`CheckpointError` with one line
    when the folder is missing, fails its checksums, or describes a model that cannot be built.
    """
    folder = resolve_model(name_or_path, verify=False)  # the registry's trust rules; files are hashed once, below
    cfg, state, _ = load_model_folder(folder, expected_kind="diffusion")
    try:
        model = AnomalyDiffusionModel(cfg)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"config.json in {folder} describes an invalid model: {exc}") from None
    load_state_strict(model, state, folder)
    detector = Detector.from_model(model, device, cfg=cfg, folder=folder)
    if cfg.postprocess.residual_normalisation == "none":
        return detector
    stats = HealthyResidualStats.load(folder)
    if stats is None:
        raise CheckpointError(f"{folder} asks for residual normalisation but has no {STATS_FILE}; recalibrate it "
                              "with 'contrastive-anomaly calibrate --healthy DIR'")
    return dataclasses.replace(detector, healthy_stats=stats)

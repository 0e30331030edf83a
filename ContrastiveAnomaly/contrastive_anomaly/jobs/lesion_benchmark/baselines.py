"""The benchmark's methods: three learned variants of the diffusion model and a non-learned z-score baseline.

Every method is turned into a :data:`Scorer`: a function from one model-grid subject (KJI arrays, intensities in
[0, 1]) to a :class:`~contrastive_anomaly.scoring.volume_score.VolumeScore`,
so that thresholds, metrics and figures use the
same code path for all of them (docs/METHOD.md §6–7).

Learned methods (trained on the same healthy subjects, same seeds):

* ``ddpm``: the unconditioned DDPM (``UNetConfig.conditioning = "none"``), reconstructed in one step at t = 500;
* ``cddpm``: encoder trained by masked image modelling only (``contrastive_weight = 0``) + conditional DDPM;
* ``contrastive``: this method (MIM + EpsInfoNCE encoder + conditional DDPM).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...config import BenchmarkConfig, ModelConfig, PostprocessConfig
from ...data.volumes import Subject
from ...errors import InputError
from ...runtime.progress import ProgressReporter
from ...scoring.postprocess import effective_threshold, postprocess_residual
from ...scoring.volume_score import VolumeScore, score_volume

METHODS = ("ddpm", "cddpm", "contrastive", "zscore")
LEARNED_METHODS = ("ddpm", "cddpm", "contrastive")
MODEL_SUBFOLDER = "model"  # the stage-2 folder inside <models-dir>/<method>/

Scorer = Callable[[Subject], VolumeScore]


@dataclass
class ZScoreBaseline:
    """Voxel-wise healthy statistics of the (atlas-aligned) training subjects on the model grid.

    ``mean_kji`` and ``std_kji`` are float32 KJI arrays in intensity units; ``std_kji`` is already floored at
    ``BenchmarkConfig.zscore_min_std`` so that voxels outside every training brain do not explode.
    """

    mean_kji: np.ndarray
    std_kji: np.ndarray
    map_divisor: float

    @classmethod
    def fit(cls, train: list[Subject], settings: BenchmarkConfig) -> ZScoreBaseline:
        """Mean and (floored) standard deviation over the healthy training subjects, voxel by voxel."""
        if not train:
            raise InputError("the z-score baseline needs at least one healthy training subject")
        shapes = {s.image.shape for s in train}
        if len(shapes) != 1:
            raise InputError(f"training subjects have different grids: {sorted(shapes)}")
        stack = np.stack([s.image.astype(np.float64) for s in train])
        std = np.maximum(stack.std(axis=0), settings.zscore_min_std)
        return cls(mean_kji=stack.mean(axis=0).astype(np.float32), std_kji=std.astype(np.float32),
                   map_divisor=settings.zscore_map_divisor)

    def anomaly_map(self, image_kji: np.ndarray) -> np.ndarray:
        """``|image - mean| / std / map_divisor`` (KJI float32, dimensionless) before any post-processing."""
        if image_kji.shape != self.mean_kji.shape:
            raise InputError(f"image grid {image_kji.shape} (KJI) differs from the z-score statistics "
                             f"{self.mean_kji.shape}")
        z = (image_kji.astype(np.float32) - self.mean_kji) / self.std_kji
        return (np.abs(z) / self.map_divisor).astype(np.float32)

    def scorer(self, postprocess: PostprocessConfig) -> Scorer:
        """A :data:`Scorer` that post-processes the |z| map exactly like a residual map (erosion, median)."""

        def score(subject: Subject) -> VolumeScore:
            raw = self.anomaly_map(subject.image)
            filtered, mask = postprocess_residual(raw, subject.brain_mask, postprocess)
            return VolumeScore(reconstruction=self.mean_kji, residual=raw, filtered=filtered, mask=mask,
                               threshold=effective_threshold(postprocess), processed_slices=int(raw.shape[0]),
                               batch_size=1, dtype="float32")

        return score


def method_config(base: ModelConfig, method: str, settings: BenchmarkConfig) -> ModelConfig:
    """A copy of ``base`` changed into the given learned method's configuration."""
    if method not in LEARNED_METHODS:
        raise InputError(f"unknown learned method {method!r}; choose one of {LEARNED_METHODS}")
    cfg = copy.deepcopy(base)
    cfg.name = f"{base.name}-{method}"
    if method == "ddpm":
        cfg.unet.conditioning = "none"
        cfg.inference.timestep_indices = tuple(settings.ddpm_timestep_indices)
    elif method == "cddpm":
        cfg.encoder.contrastive_weight = 0.0
    return cfg


def train_method(base: ModelConfig, method: str, settings: BenchmarkConfig, train: list[Subject],
                 val: list[Subject], out_dir: Path, progress: ProgressReporter | None = None) -> Path:
    """Train one learned method into ``out_dir`` (stage 1 in ``encoder/``, stage 2 in ``diffusion/``).

    Returns the stage-2 folder (``out_dir/model``, a copy of the best checkpoint) to pass to
    :func:`~contrastive_anomaly.scoring.detector.load_detector`. ``val`` is only used to pick the best checkpoint.
    """
    import shutil

    from ...training.loops import train_diffusion, train_encoder

    cfg = method_config(base, method, settings)
    cfg.training_data = {"benchmark_train": [s.name for s in train], "benchmark_checkpoint_val": [s.name for s in val]}
    encoder_folder = None
    if method != "ddpm":
        encoder_folder = train_encoder(cfg, train, val, out_dir / "encoder", progress=progress).best
    result = train_diffusion(cfg, train, val, out_dir / "diffusion", encoder_folder=encoder_folder,
                             progress=progress)
    final = out_dir / MODEL_SUBFOLDER
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(result.best, final)
    return final


def learned_scorer(folder: Path, device: torch.device) -> tuple[Scorer, ModelConfig]:
    """Load a stage-2 model folder and wrap it as a :data:`Scorer` (its own inference levels and post-processing)."""
    from ...scoring.detector import load_detector

    detector = load_detector(folder, device)

    def score(subject: Subject) -> VolumeScore:
        return score_volume(detector, subject.image, subject.brain_mask)

    return score, detector.cfg

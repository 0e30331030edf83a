"""Scoring one volume on the model grid: reconstruction, residual, filtered map and mask (METHOD.md §5–6).

This is the pure core shared by ``detect``, ``evaluate``, threshold calibration, the benchmark and bulk scoring.
All arrays are KJI on the model grid; maps are in normalised-intensity units (the image is in [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import ModelConfig
from ..method.diffusion_model import AnomalyDiffusionModel
from ..runtime.progress import ProgressReporter
from .inference import reconstruct_volume
from .postprocess import binarize, effective_threshold, filter_map, residual_map

FAST_MODE_LEVELS = (499,)


@dataclass
class VolumeScore:
    """``reconstruction`` and ``residual`` are raw; ``filtered`` is after erosion + median; ``mask`` after threshold
    and the component filter."""

    reconstruction: np.ndarray
    residual: np.ndarray
    filtered: np.ndarray
    mask: np.ndarray
    threshold: float
    processed_slices: int
    batch_size: int
    dtype: str


def score_volume(model: AnomalyDiffusionModel, cfg: ModelConfig, image_kji: np.ndarray, brain_mask_kji: np.ndarray,
                 device: torch.device, progress: ProgressReporter | None = None, threshold: float | None = None,
                 fast: bool = False, precision: torch.dtype | None = None) -> VolumeScore:
    """Reconstruct and post-process one model-grid volume (stages ``model`` and ``postprocess``)."""
    progress = progress or ProgressReporter("none")
    with progress.stage("model", total=int(image_kji.shape[0])):
        result = reconstruct_volume(model, image_kji, brain_mask_kji, cfg, device, progress, precision=precision,
                                    timestep_indices=FAST_MODE_LEVELS if fast else None)
    with progress.stage("postprocess"):
        residual = residual_map(image_kji, result.reconstruction)
        filtered = filter_map(residual, brain_mask_kji, cfg.postprocess)
        chosen = effective_threshold(cfg.postprocess) if threshold is None else float(threshold)
        mask = binarize(filtered, chosen, cfg.postprocess)
    return VolumeScore(reconstruction=result.reconstruction, residual=residual, filtered=filtered, mask=mask,
                       threshold=chosen, processed_slices=len(result.processed_slices),
                       batch_size=result.batch_size, dtype=result.dtype)

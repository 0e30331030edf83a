"""Scoring one volume on the model grid: reconstruction, residual, filtered map and mask (docs/METHOD.md §5–6).

This is the pure core shared by ``detect``, ``evaluate``, threshold calibration, the benchmark and bulk scoring.
All arrays are KJI on the model grid; maps are in normalised-intensity units (the image is in [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..runtime.progress import ProgressReporter
from .detector import Detector
from .inference import reconstruct_volume
from .postprocess import effective_threshold, postprocess_residual, residual_map


@dataclass
class VolumeScore:
    """``reconstruction`` and ``residual`` (``|x - x_hat|``) are raw; ``filtered`` is the anomaly map (normalised
    when the model asks for it) after erosion + median; ``mask`` after threshold and the component filter."""

    reconstruction: np.ndarray
    residual: np.ndarray
    filtered: np.ndarray
    mask: np.ndarray
    threshold: float
    processed_slices: int
    batch_size: int
    dtype: str
    processed_slice_indices: np.ndarray | None = None  # K indices of the slices the model reconstructed


def anomaly_map(detector: Detector, residual_kji: np.ndarray) -> np.ndarray:
    """The map that post-processing filters: the residual, normalised by the detector's healthy statistics when
    its config asks for it (``PostprocessConfig.residual_normalisation``)."""
    if detector.cfg.postprocess.residual_normalisation == "none":
        return residual_kji
    if detector.healthy_stats is None:
        raise InputError("this model normalises residuals but no healthy statistics were loaded")
    return detector.healthy_stats.normalise(residual_kji)


def score_volume(detector: Detector, image_kji: np.ndarray, brain_mask_kji: np.ndarray,
                 progress: ProgressReporter | None = None) -> VolumeScore:
    """Reconstruct and post-process one model-grid volume (stages ``model`` and ``postprocess``).

    Everything (inference levels, seed, dtype, post-processing, threshold) comes from ``detector``; use
    :meth:`Detector.with_overrides` for per-request settings.
    """
    progress = progress or ProgressReporter("none")
    cfg = detector.cfg
    with progress.stage("model", total=int(image_kji.shape[0])):
        result = reconstruct_volume(detector.model, image_kji, brain_mask_kji, cfg, detector.device, progress,
                                    precision=detector.dtype)
    with progress.stage("postprocess"):
        residual = residual_map(image_kji, result.reconstruction)
        filtered, mask = postprocess_residual(anomaly_map(detector, residual), brain_mask_kji, cfg.postprocess)
    return VolumeScore(reconstruction=result.reconstruction, residual=residual, filtered=filtered, mask=mask,
                       threshold=effective_threshold(cfg.postprocess), processed_slices=len(result.processed_slices),
                       processed_slice_indices=result.processed_slices,
                       batch_size=result.batch_size, dtype=result.dtype)

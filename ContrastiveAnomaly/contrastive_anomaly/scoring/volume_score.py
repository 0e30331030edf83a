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
        score = score_reconstruction(detector, image_kji, brain_mask_kji, result.reconstruction)
    score.processed_slices = len(result.processed_slices)
    score.processed_slice_indices = result.processed_slices
    score.batch_size, score.dtype = result.batch_size, result.dtype
    return score


def score_reconstruction(detector: Detector, image_kji: np.ndarray, brain_mask_kji: np.ndarray,
                         reconstruction_kji: np.ndarray) -> VolumeScore:
    """Residual, filtered map and mask of a volume whose reconstruction is already known (KJI, model grid).

    The one place that turns a reconstruction into maps, so :func:`score_volume` and callers that splice
    reconstructions (the lesion benchmark re-runs only the slices a lesion changed) score identically.
    """
    residual = residual_map(image_kji, reconstruction_kji)
    filtered, mask = postprocess_residual(anomaly_map(detector, residual), brain_mask_kji, detector.cfg.postprocess)
    return VolumeScore(reconstruction=reconstruction_kji, residual=residual, filtered=filtered, mask=mask,
                       threshold=effective_threshold(detector.cfg.postprocess), processed_slices=0, batch_size=0,
                       dtype=str(detector.dtype).replace("torch.", ""))

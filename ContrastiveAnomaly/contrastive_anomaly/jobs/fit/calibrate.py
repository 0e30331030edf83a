"""Step 4 of ``fit``: the threshold by the healthy false-positive rule (rule B) on the held-out subjects.

Every held-out scan is reconstructed and post-processed exactly as ``detect`` does (:func:`score_volume`); the
threshold is the ``1 - target_fpr`` quantile of the filtered residual inside the brain masks
(:func:`~contrastive_anomaly.scoring.thresholds.fpr_thresholds`, as ``calibrate`` and ``train`` use it). Reported
with it: the voxel FPR of the raw map and of the final mask (after the component filter), the false-positive volume
per held-out scan (mL) and the distribution of the healthy residual (mean, percentiles, maximum; normalised-intensity
units, the image being in [0, 1]). The result is cached in ``training/calibration.json`` under the sha256 of the
stage-2 weights it was computed with, so a rerun does not score again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...data.volumes import Subject
from ...runtime.progress import ProgressReporter
from ...scoring.detector import Detector
from ...scoring.metrics import false_positive_volume_ml
from ...scoring.postprocess import binarize
from ...scoring.thresholds import fpr_thresholds, voxel_false_positive_rate
from ...scoring.volume_score import score_volume
from .files import read_json, write_json

CALIBRATION_FILE = "calibration.json"
RESIDUAL_PERCENTILES = (50.0, 95.0, 99.0, 99.9)


@dataclass
class Calibration:
    """Rule-B threshold and what it does on the held-out healthy scans (see the module docstring)."""

    threshold: float
    target_fpr: float
    voxel_fpr_raw: float
    voxel_fpr_final_mask: float
    false_positive_ml: dict[str, float]
    residual_mean: float
    residual_percentiles: dict[str, float]
    residual_max: float
    scans: list[str]
    weights_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate_on_held_out(detector: Detector, held_out: list[Subject], progress: ProgressReporter, *,
                          weights_sha256: str) -> Calibration:
    """Score ``held_out`` (stage ``calibrate``, one unit per scan) and derive the rule-B threshold and statistics."""
    cfg = detector.cfg
    target = cfg.postprocess.target_fpr
    maps, masks = [], []
    with progress.stage("calibrate", total=len(held_out)) as stage:
        for done, subject in enumerate(held_out, start=1):
            scored = score_volume(detector, subject.image, subject.brain_mask, ProgressReporter("none"))
            maps.append(scored.filtered)
            masks.append(subject.brain_mask)
            stage.advance(done)
    threshold = fpr_thresholds(maps, masks, [target])[target]
    final = [binarize(score, threshold, cfg.postprocess) for score in maps]
    brain_voxels = sum(int(np.count_nonzero(mask)) for mask in masks)
    flagged = sum(int(np.count_nonzero(f & (m > 0))) for f, m in zip(final, masks, strict=True))
    inside = np.concatenate([score[mask > 0] for score, mask in zip(maps, masks, strict=True)]).astype(np.float64)
    return Calibration(
        threshold=float(threshold), target_fpr=float(target),
        voxel_fpr_raw=voxel_false_positive_rate(maps, masks, threshold),
        voxel_fpr_final_mask=flagged / max(brain_voxels, 1),
        false_positive_ml={s.name: false_positive_volume_ml(f, s.spacing_mm) for s, f in zip(held_out, final,
                                                                                               strict=True)},
        residual_mean=float(inside.mean()),
        residual_percentiles={f"p{p:g}": float(np.percentile(inside, p)) for p in RESIDUAL_PERCENTILES},
        residual_max=float(inside.max()), scans=[s.name for s in held_out], weights_sha256=weights_sha256)


def cached_calibration(run_dir: Path, weights_sha256: str, scans: list[str], target_fpr: float) -> Calibration | None:
    """The saved calibration if it was computed for these weights, scans and target rate, else ``None``."""
    saved = read_json(Path(run_dir) / CALIBRATION_FILE)
    if not isinstance(saved, dict):
        return None
    try:
        calibration = Calibration(**saved)
    except TypeError:
        return None
    same = (calibration.weights_sha256 == weights_sha256 and calibration.scans == scans
            and calibration.target_fpr == target_fpr)
    return calibration if same else None


def save_calibration(run_dir: Path, calibration: Calibration) -> None:
    write_json(Path(run_dir) / CALIBRATION_FILE, calibration.to_dict())

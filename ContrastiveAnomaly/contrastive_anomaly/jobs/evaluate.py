"""Threshold calibration and evaluation of a trained model on model-grid subjects (docs/METHOD.md §6–7, D4).

Rule A: the threshold with the best pooled Dice on *labelled validation* subjects. Rule B: the threshold whose
voxel false-positive rate on *healthy validation* subjects equals ``target_fpr``. Thresholds are never tuned on the
test subjects. Metrics follow docs/METHOD.md §7: Dice after threshold and component filter; AUPRC and AUROC on the
filtered continuous map over all voxels (background included).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import PostprocessConfig, Precision
from ..data.volumes import Subject
from ..runtime.precision import precision_name
from ..runtime.progress import ProgressReporter
from ..scoring.brain_metrics import in_brain_ranking, whole_brain_floor
from ..scoring.detector import Detector
from ..scoring.metrics import (
    DETECTION_BINS_ML,
    evaluate_volumes,
    false_positive_volume_ml,
    healthy_reconstruction_error,
    lesion_detection,
    merge_lesion_detection,
)
from ..scoring.normalisation import MIN_SUBJECTS, HealthyResidualStats, held_out_normalised
from ..scoring.postprocess import binarize, effective_threshold, postprocess_residual
from ..scoring.thresholds import best_dice_threshold, fpr_thresholds
from ..scoring.volume_score import VolumeScore, score_volume


def score_subjects(detector: Detector, subjects: list[Subject], progress: ProgressReporter | None = None
                   ) -> list[VolumeScore]:
    """Score every subject (reconstruction and filtered map); returns one :class:`VolumeScore` per subject."""
    progress = progress or ProgressReporter("none")
    return [score_volume(detector, s.image, s.brain_mask, progress) for s in subjects]


def rule_report(subjects: list[Subject], scores: list[VolumeScore], threshold: float,
                postprocess: PostprocessConfig, bins_ml: tuple[float, ...] = DETECTION_BINS_ML) -> dict[str, Any]:
    """Metrics of labelled ``subjects`` at one threshold: ``evaluate_volumes`` output plus ``detection`` (per
    lesion-size bucket, mL bounds ``bins_ml``)."""
    masks = [binarize(score.filtered, threshold, postprocess) for score in scores]
    report = evaluate_volumes([score.filtered for score in scores], masks, [s.label for s in subjects])
    report["detection"] = merge_lesion_detection([lesion_detection(mask, s.label, s.spacing_mm, bins_ml)
                                                  for mask, s in zip(masks, subjects, strict=True)])
    report["in_brain"] = in_brain_report(subjects, scores)
    return report


def in_brain_report(subjects: list[Subject], scores: list[VolumeScore]) -> dict[str, float]:
    """Means over volumes of in-brain AUROC, AUPRC, lesion prevalence (the AUPRC of a random map) and the floor
    (Dice of flagging the whole brain); see :mod:`~contrastive_anomaly.scoring.brain_metrics`."""
    per_volume = []
    for subject, score in zip(subjects, scores, strict=True):
        ranking = in_brain_ranking(score.filtered, subject.label, subject.brain_mask)
        ranking["floor"] = whole_brain_floor(subject.label, subject.brain_mask)
        per_volume.append(ranking)
    return {key: float(np.nanmean([v[key] for v in per_volume])) for key in ("auroc", "auprc", "prevalence", "floor")}


def calibrate_fpr_threshold(detector: Detector, healthy: list[Subject], target_fpr: float | None = None) -> float:
    """Rule B threshold from healthy validation subjects (inside their brain masks)."""
    rate = detector.cfg.postprocess.target_fpr if target_fpr is None else target_fpr
    scores = score_subjects(detector, healthy)
    return fpr_thresholds([s.filtered for s in scores], [s.brain_mask for s in healthy], [rate])[rate]


def evaluate_model(detector: Detector, test: list[Subject], *, labelled_val: list[Subject] | None = None,
                   healthy_val: list[Subject] | None = None, target_fprs: tuple[float, ...] = (0.01, 0.05),
                   healthy_test: list[Subject] | None = None, progress: ProgressReporter | None = None
                   ) -> dict[str, Any]:
    """Metrics on labelled ``test`` subjects for every available threshold rule.

    Returns ``{"thresholds": {rule: value}, "rules": {rule: {"per_volume", "mean", "pooled", "detection",
    "healthy_fp_ml"}}, "seconds_per_volume": float}``. Rule names: ``dice`` (rule A, needs ``labelled_val``),
    ``fpr@<rate>`` (rule B, needs ``healthy_val``), and ``model`` (the detector's own threshold). Fast mode and
    other settings come from ``detector`` (:meth:`Detector.with_overrides`).
    """
    if any(s.label is None for s in test):
        raise ValueError("every test subject needs a label")
    progress = progress or ProgressReporter("none")
    cfg = detector.cfg
    thresholds: dict[str, float] = {"model": effective_threshold(cfg.postprocess)}
    if labelled_val:
        val_scores = score_subjects(detector, labelled_val)
        thresholds["dice"] = best_dice_threshold([s.filtered for s in val_scores],
                                                 [s.label for s in labelled_val], cfg.postprocess)
    if healthy_val:
        healthy_scores = score_subjects(detector, healthy_val)
        rates = fpr_thresholds([s.filtered for s in healthy_scores], [s.brain_mask for s in healthy_val],
                               list(target_fprs))
        thresholds.update({f"fpr@{rate:g}": value for rate, value in rates.items()})
    started = time.perf_counter()
    test_scores = score_subjects(detector, test, progress)
    seconds_per_volume = (time.perf_counter() - started) / max(len(test), 1)
    healthy_test_scores = score_subjects(detector, healthy_test) if healthy_test else []
    rules: dict[str, Any] = {}
    for rule, threshold in thresholds.items():
        report = rule_report(test, test_scores, threshold, cfg.postprocess)
        report["healthy_fp_ml"] = [false_positive_volume_ml(binarize(h.filtered, threshold, cfg.postprocess),
                                                            subject.spacing_mm)
                                   for h, subject in zip(healthy_test_scores, healthy_test or [], strict=True)]
        rules[rule] = report
    return {"thresholds": thresholds, "rules": rules, "seconds_per_volume": seconds_per_volume,
            "healthy_reconstruction_error": [healthy_reconstruction_error(s.image, h.reconstruction)
                                             for s, h in zip(healthy_test or [], healthy_test_scores, strict=True)]}


def export_calibrated_model(source: Path, healthy: list[Subject], destination: Path, device: torch.device,
                            target_fpr: float | None = None, labelled: list[Subject] | None = None,
                            half: bool = False, normalise_on: list[Subject] | None = None,
                            precision: Precision | None = None, noise_seeds: int | None = None
                            ) -> tuple[Path, float]:
    """Copy a stage-2 model folder to ``destination`` with a calibrated threshold in its config.

    Rule B (healthy FPR) by default; rule A (best Dice) when ``labelled`` validation subjects are given. The
    weights are unchanged (optionally stored as fp16); the new folder gets its own checksum manifest.
    ``normalise_on``: healthy subjects whose residuals give the voxel-wise statistics of residual normalisation
    (stored in the folder and switched on in its config); the threshold is then calibrated on normalised maps. When
    the same healthy subjects (three or more) give both, each one's map is normalised by the others' statistics
    (:func:`~contrastive_anomaly.scoring.normalisation.held_out_normalised`) and scored only once.
    ``precision`` computes the calibration maps in that precision (``None``: the model's own, resolved on this
    machine); the written config keeps the model's setting, and the one used is recorded in the metadata.
    ``noise_seeds`` sets the noise draws averaged per level in the written config, and the calibration maps use it
    (the statistics and the threshold belong to the map the model will produce).
    """
    from ..method.diffusion_model import AnomalyDiffusionModel
    from ..storage.checkpoint import load_model_folder, load_state_strict, save_model

    cfg, state, meta = load_model_folder(source, expected_kind="diffusion")
    model = AnomalyDiffusionModel(cfg)
    load_state_strict(model, state, source)
    if noise_seeds is not None:
        cfg.inference.noise_seeds = int(noise_seeds)
    detector = Detector.from_model(model, device, cfg=cfg, folder=source).with_overrides(precision=precision)
    stats = None
    held_out_threshold = None
    rate = cfg.postprocess.target_fpr if target_fpr is None else target_fpr
    if normalise_on:
        cfg.postprocess.residual_normalisation = "none"
        residuals = [score.residual for score in score_subjects(detector, normalise_on)]
        masks = [s.brain_mask for s in normalise_on]
        stats = HealthyResidualStats.fit(residuals, masks, cfg.postprocess)
        if not labelled and [s.name for s in healthy] == [s.name for s in normalise_on] and \
                len(normalise_on) > MIN_SUBJECTS:
            # the same scans give the statistics and the threshold: each scan's map is normalised by the others'
            # statistics (leave one out), which also saves scoring them a second time
            maps = held_out_normalised(residuals, masks, cfg.postprocess)
            filtered = [postprocess_residual(m, mask, cfg.postprocess)[0] for m, mask in zip(maps, masks, strict=True)]
            held_out_threshold = fpr_thresholds(filtered, masks, [rate])[rate]
        cfg.postprocess.residual_normalisation = "healthy_voxel_stats"
        detector = dataclasses.replace(
            Detector.from_model(model, device, cfg=cfg, folder=source).with_overrides(precision=precision),
            healthy_stats=stats)
    if held_out_threshold is not None:
        threshold = held_out_threshold
        cfg.postprocess.target_fpr = rate
        cfg.postprocess.threshold_rule = "fpr"
    elif labelled:
        scores = score_subjects(detector, labelled)
        threshold = best_dice_threshold([s.filtered for s in scores], [s.label for s in labelled], cfg.postprocess)
        cfg.postprocess.threshold_rule = "dice"
    else:
        cfg.postprocess.target_fpr = rate
        threshold = calibrate_fpr_threshold(detector, healthy, rate)
        cfg.postprocess.threshold_rule = "fpr"
    cfg.postprocess.threshold = threshold
    meta = dict(meta, calibrated_on=[s.name for s in (labelled or healthy)],
                calibration_precision=precision_name(detector.dtype))
    if held_out_threshold is not None:
        meta["threshold_calibration"] = "leave-one-out: each scan normalised by the other scans' statistics"
    if stats is not None:
        meta["normalisation_fitted_on"] = [s.name for s in normalise_on]
        stats.save(Path(destination))  # before the weights: save_model's manifest then covers it
    meta.pop("kind", None)
    meta.pop("dtype", None)
    return save_model(destination, state, cfg, kind="diffusion", half=half, metadata=meta), threshold

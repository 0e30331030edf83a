"""Leave-one-subject-out protocol of the synthetic-lesion benchmark (docs/DATA.md §5, docs/METHOD.md §6–7).

A :class:`Fold` holds the healthy training subjects, one healthy validation subject and one healthy test subject
(all KJI on the model grid, intensities in [0, 1]). Lesions of each kind are planted into the validation subject
with validation seeds and into the test subject with test seeds (disjoint ranges, :class:`BenchmarkConfig`).

Per fold, method and lesion kind:

* rule A: the threshold with the best pooled Dice on the validation cases of that kind;
* rule B: the threshold at ``rule_b_fpr`` voxel FPR inside the brain of the healthy validation subject;
* Dice (both rules), AUPRC and AUROC (mean over test cases), detection rate per lesion size (rule A), and the
  false-positive volume (mL) of both rules on the healthy test subject; time per scored volume.

Nothing here reads files: the protocol takes subjects, so tests can run it on phantoms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...config import BenchmarkConfig, PostprocessConfig
from ...data.lesions.plant import plant_lesion
from ...data.volumes import Subject
from ...errors import InputError
from ...scoring.metrics import false_positive_volume_ml
from ...scoring.postprocess import binarize
from ...scoring.thresholds import best_dice_threshold, fpr_thresholds
from ...scoring.volume_score import VolumeScore
from ..evaluate import rule_report
from .baselines import Scorer


@dataclass
class Fold:
    """One rotation: ``val`` and ``test`` are healthy held-out subjects; ``*_tissue`` are optional (CSF, GM, WM)
    maps ``[3, K, J, I]`` for lesion placement (estimated by a GMM when ``None``)."""

    name: str
    train: list[Subject]
    val: Subject
    test: Subject
    val_tissue: np.ndarray | None = None
    test_tissue: np.ndarray | None = None


@dataclass
class CaseScores:
    """Scores of one method on one fold: labelled cases per kind, the healthy scans, and the scoring time."""

    val_cases: dict[str, list[tuple[Subject, VolumeScore]]]
    test_cases: dict[str, list[tuple[Subject, VolumeScore]]]
    healthy_val: VolumeScore
    healthy_test: VolumeScore
    seconds_per_volume: float
    rows: list[dict[str, Any]] = field(default_factory=list)


def lesion_cases(subject: Subject, kind: str, contrast: str, first_seed: int, count: int,
                 tissue: np.ndarray | None = None) -> list[Subject]:
    """``count`` labelled copies of ``subject`` with one planted lesion of ``kind`` each (seeds ``first_seed + i``)."""
    cases = []
    for index in range(count):
        seed = first_seed + index
        case = plant_lesion(subject.image, subject.brain_mask, kind, contrast, seed, spacing_mm=subject.spacing_mm,
                            tissue=tissue)
        cases.append(Subject(name=f"{subject.name}-{kind}-{seed}", image=case.image_kji,
                             brain_mask=case.brain_mask_kji, label=case.mask_kji, spacing_mm=subject.spacing_mm,
                             metadata={"lesion": case.params}))
    return cases


def fold_cases(fold: Fold, settings: BenchmarkConfig, contrast: str) -> tuple[dict[str, list[Subject]],
                                                                              dict[str, list[Subject]]]:
    """Validation and test lesion cases per kind for one fold (validation and test seed ranges never overlap)."""
    limit = settings.seed_range // max(len(settings.lesion_kinds), 1)
    if not 1 <= settings.lesions_per_kind <= limit:
        raise InputError(f"lesions per kind must be between 1 and {limit}")
    if abs(settings.test_seed_start - settings.val_seed_start) < settings.seed_range:
        raise InputError("validation and test lesion seed ranges overlap; change BenchmarkConfig seeds")
    val, test = {}, {}
    for offset, kind in enumerate(settings.lesion_kinds):
        # Each kind gets its own block of seeds inside the validation / test range.
        block = offset * settings.lesions_per_kind
        val[kind] = lesion_cases(fold.val, kind, contrast, settings.val_seed_start + block,
                                 settings.lesions_per_kind, fold.val_tissue)
        test[kind] = lesion_cases(fold.test, kind, contrast, settings.test_seed_start + block,
                                  settings.lesions_per_kind, fold.test_tissue)
    return val, test


def score_fold(scorer: Scorer, fold: Fold, val_cases: dict[str, list[Subject]],
               test_cases: dict[str, list[Subject]]) -> CaseScores:
    """Run one method on every case of a fold; the time per volume is measured on the test scans."""
    scored_val = {kind: [(s, scorer(s)) for s in cases] for kind, cases in val_cases.items()}
    healthy_val = scorer(fold.val)
    started = time.perf_counter()
    scored_test = {kind: [(s, scorer(s)) for s in cases] for kind, cases in test_cases.items()}
    healthy_test = scorer(fold.test)
    count = sum(len(cases) for cases in test_cases.values()) + 1
    return CaseScores(val_cases=scored_val, test_cases=scored_test, healthy_val=healthy_val,
                      healthy_test=healthy_test, seconds_per_volume=(time.perf_counter() - started) / count)


def _rule_metrics(cases: list[tuple[Subject, VolumeScore]], threshold: float, postprocess: PostprocessConfig,
                  bins_ml: tuple[float, ...]) -> dict[str, Any]:
    return rule_report([s for s, _ in cases], [score for _, score in cases], threshold, postprocess, bins_ml)


def bucket_name(lower_ml: float, upper_ml: float | None) -> str:
    """Column name of one lesion-size bucket, e.g. ``detect_0.1-1mL`` or ``detect_>=10mL``."""
    return f"detect_{lower_ml:g}-{upper_ml:g}mL" if upper_ml is not None else f"detect_>={lower_ml:g}mL"


def fold_rows(method: str, fold: Fold, scores: CaseScores, postprocess: PostprocessConfig,
              settings: BenchmarkConfig) -> list[dict[str, Any]]:
    """One result row per lesion kind (see the module docstring for the columns' meaning)."""
    rule_b = fpr_thresholds([scores.healthy_val.filtered], [fold.val.brain_mask], [settings.rule_b_fpr])
    threshold_b = rule_b[settings.rule_b_fpr]
    fp_b = false_positive_volume_ml(binarize(scores.healthy_test.filtered, threshold_b, postprocess),
                                    fold.test.spacing_mm)
    rows = []
    for kind, test_cases in scores.test_cases.items():
        val_cases = scores.val_cases[kind]
        threshold_a = best_dice_threshold([s.filtered for _, s in val_cases], [c.label for c, _ in val_cases],
                                          postprocess)
        report_a = _rule_metrics(test_cases, threshold_a, postprocess, settings.detection_bins_ml)
        report_b = _rule_metrics(test_cases, threshold_b, postprocess, settings.detection_bins_ml)
        row: dict[str, Any] = {
            "method": method, "fold": fold.name, "lesion_kind": kind, "test_cases": len(test_cases),
            "dice_rule_a": report_a["mean"]["dice"], "dice_rule_b": report_b["mean"]["dice"],
            "auprc": report_a["mean"]["auprc"], "auroc": report_a["mean"]["auroc"],
        }
        for bucket in report_a["detection"]["buckets"]:
            row[bucket_name(bucket["lower_ml"], bucket["upper_ml"])] = bucket["detection_rate"]
        row["healthy_fp_ml_rule_a"] = false_positive_volume_ml(
            binarize(scores.healthy_test.filtered, threshold_a, postprocess), fold.test.spacing_mm)
        row["healthy_fp_ml_rule_b"] = fp_b
        row["threshold_rule_a"] = threshold_a
        row["threshold_rule_b"] = threshold_b
        row["seconds_per_volume"] = scores.seconds_per_volume
        rows.append(row)
    return rows


def mean_over_folds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with ``fold = "mean"``: the nan-mean of every numeric column over the folds, per method and kind
    (``test_cases`` is summed)."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["method"], row["lesion_kind"]), []).append(row)
    means = []
    for (method, kind), group in grouped.items():
        mean: dict[str, Any] = {"method": method, "fold": "mean", "lesion_kind": kind}
        for column in group[0]:
            if column in mean:
                continue
            if column == "test_cases":
                mean[column] = sum(int(r[column]) for r in group)
                continue
            values = np.array([r[column] for r in group], dtype=np.float64)
            finite = values[np.isfinite(values)]
            mean[column] = float(finite.mean()) if finite.size else float("nan")
        means.append(mean)
    return means


def check_folds(folds: list[Fold]) -> None:
    """Refuse folds whose held-out subjects (or their augmented copies, named ``<subject>-…``) are in training."""
    for fold in folds:
        held_out = (fold.val.name, fold.test.name)
        leaked = [s.name for s in fold.train if any(s.name == h or s.name.startswith(f"{h}-") for h in held_out)]
        if leaked:
            raise InputError(f"fold {fold.name}: held-out subjects are in the training data: {leaked[:3]}")
        shapes = {s.image.shape for s in [*fold.train, fold.val, fold.test]}
        if len(shapes) != 1:
            raise InputError(f"fold {fold.name}: subjects are on different grids {sorted(shapes)}")

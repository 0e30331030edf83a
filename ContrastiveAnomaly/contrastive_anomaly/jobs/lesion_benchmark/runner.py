"""Run the benchmark: get (train or reuse) every method once, score every fold, write the report files.

Learned methods are trained once on the folds' shared healthy training subjects (the held-out subjects are never
used for training or checkpoint selection) and reused for both rotations. Outputs in ``out_dir``:
``results.csv``, ``results.md``, ``montage_<method>.png``, ``summary.png`` (written through a staging folder, so
a failed run leaves none of them), and trained models under ``models_dir/<method>/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import BenchmarkConfig, ModelConfig
from ...data.volumes import Subject
from ...errors import InputError
from ...runtime.progress import ProgressReporter
from ...scoring.postprocess import binarize
from ...storage.files import staged_outputs
from . import report
from .baselines import METHODS, MODEL_SUBFOLDER, Scorer, ZScoreBaseline, learned_scorer, train_method
from .protocol import Fold, check_folds, fold_cases, fold_rows, mean_over_folds, score_fold


@dataclass
class BenchmarkRequest:
    """What to run. ``base_cfg`` is the preset the learned methods are trained from (its grid must match the
    subjects); ``pretrained`` maps a method name to an existing stage-2 model folder to use without training;
    ``checkpoint_val`` are healthy subjects used only to pick the best checkpoint (default: the training subjects);
    ``zscore_reference`` are the healthy subjects of the z-score statistics (default: the training subjects)."""

    methods: tuple[str, ...]
    base_cfg: ModelConfig
    out_dir: Path
    settings: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    models_dir: Path | None = None
    pretrained: dict[str, Path] = field(default_factory=dict)
    checkpoint_val: list[Subject] | None = None
    zscore_reference: list[Subject] | None = None
    device: str = "auto"
    command: str = ""
    notes: list[str] = field(default_factory=list)


def _check_request(request: BenchmarkRequest, folds: list[Fold]) -> None:
    unknown = [m for m in request.methods if m not in METHODS]
    if unknown or not request.methods:
        raise InputError(f"unknown benchmark methods {unknown}; choose from {','.join(METHODS)}")
    if not folds:
        raise InputError("the benchmark needs at least one fold")
    check_folds(folds)
    names = [sorted(s.name for s in fold.train) for fold in folds]
    if any(n != names[0] for n in names):
        raise InputError("every fold must share the same training subjects (models are trained once)")


def _method_scorers(request: BenchmarkRequest, train: list[Subject], progress: ProgressReporter
                    ) -> tuple[dict[str, tuple[Scorer, Any]], list[str]]:
    """``({method: (scorer, postprocess config)}, notes)``, training learned methods that have no model yet."""
    from ...runtime.precision import resolve_device

    device = resolve_device(request.device)
    models_dir = request.models_dir or request.out_dir / "models"
    shape_kji = train[0].image.shape
    scorers: dict[str, tuple[Scorer, Any]] = {}
    notes: list[str] = []
    for method in request.methods:
        if method == "zscore":
            baseline = ZScoreBaseline.fit(request.zscore_reference or train, request.settings)
            scorers[method] = (baseline.scorer(request.base_cfg.postprocess), request.base_cfg.postprocess)
            continue
        folder = request.pretrained.get(method) or models_dir / method / MODEL_SUBFOLDER
        if not Path(folder).is_dir():
            with progress.stage(f"train {method}"):
                folder = train_method(request.base_cfg, method, request.settings, train,
                                      request.checkpoint_val or train, models_dir / method, progress)
        else:
            notes.append(f"{method}: existing model {folder} (its config.json records how it was trained)")
        scorer, cfg = learned_scorer(Path(folder), device)
        if tuple(reversed(cfg.grid.shape)) != shape_kji:
            raise InputError(f"model {folder} works on a {cfg.grid.shape} grid (IJK) but the subjects are "
                             f"{shape_kji[::-1]}")
        scorers[method] = (scorer, cfg.postprocess)
    return scorers, notes


def _montage_note(method: str) -> str:
    """The z-score baseline has no reconstruction: say what its panels show."""
    return "; 'reconstruction' = training mean, map = |z| / divisor" if method == "zscore" else ""


def run_benchmark(folds: list[Fold], request: BenchmarkRequest, progress: ProgressReporter | None = None
                  ) -> dict[str, Path]:
    """Run every method on every fold and write the report; returns ``{output name: path}``."""
    progress = progress or ProgressReporter("none")
    _check_request(request, folds)
    scorers, model_notes = _method_scorers(request, folds[0].train, progress)
    settings = request.settings
    montage_kind = settings.montage_kind if settings.montage_kind in settings.lesion_kinds else \
        settings.lesion_kinds[0]
    rows: list[dict[str, Any]] = []
    montage_inputs = {}
    for fold_index, fold in enumerate(folds):
        with progress.stage(f"lesions {fold.name}"):
            val_cases, test_cases = fold_cases(fold, settings, request.base_cfg.contrast)
        for method, (scorer, postprocess) in scorers.items():
            with progress.stage(f"score {method} {fold.name}"):
                scores = score_fold(scorer, fold, val_cases, test_cases)
            method_rows = fold_rows(method, fold, scores, postprocess, settings)
            rows += method_rows
            if fold_index == 0:
                threshold = next(r["threshold_rule_a"] for r in method_rows if r["lesion_kind"] == montage_kind)
                case, score = scores.test_cases[montage_kind][0]
                montage_inputs[method] = (case, score, threshold, binarize(score.filtered, threshold, postprocess))
    rows += mean_over_folds(rows)
    outputs: dict[str, Path] = {}
    with staged_outputs(request.out_dir) as staging:
        written = [report.write_csv(rows, staging / "results.csv"),
                   report.write_markdown(rows, staging / "results.md", request.command,
                                         [*request.notes, *model_notes]),
                   report.summary_plot(rows, staging / "summary.png")]
        for method, (case, score, threshold, mask) in montage_inputs.items():
            written.append(report.montage(case, score, threshold, mask, staging / f"montage_{method}.png",
                                          f"{method}: {case.name} ({folds[0].name}){_montage_note(method)}"))
        outputs = {path.stem: request.out_dir / path.name for path in written}
    return outputs

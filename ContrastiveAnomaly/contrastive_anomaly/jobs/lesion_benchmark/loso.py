"""Leave-one-real-subject-out synthetic-lesion benchmark of one learned model against the template z-score.

Subjects are the corpus preprocessed on the model's own grid (:func:`~contrastive_anomaly.data.corpus_preprocess.
ensure_preprocessed`): the population templates and the real T1 brains. Every real subject gets ``lesions_per_kind``
separate cases of each lesion kind (one lesion per case, seeds disjoint across subjects, kinds and cases). The
model scores every case once (it never saw a real brain, so no fold leaks); only the axial slices a lesion changed
are reconstructed again, the others are the subject's healthy reconstruction (the model is 2-D and its noise is
one field per level, so a slice's reconstruction depends on that slice only).

Fold = one held-out real subject. Everything that is calibrated uses only the other subjects:

* rule A: the best pooled Dice (dense sweep) on the other real subjects' cases of the same kind;
* rule B: ``rule_b_fpr`` voxel FPR on the other real subjects' healthy scans;
* the z-score baseline: voxel-wise mean/std of the templates and the other real subjects; its validation maps of
  a subject ``v`` come from statistics without ``v`` as well (nested), so that its thresholds are not tuned on
  maps of its own training data.

The learned model is reported twice: ``model`` (the method: the filtered residual) and ``model_normalised`` (beyond
the paper: the residual normalised by voxel-wise healthy residual statistics, see
:mod:`~contrastive_anomaly.scoring.normalisation`). Those statistics are fitted like the z-score's: on the templates'
and the other real subjects' healthy residuals, nested for the validation maps.

Per fold, method and lesion kind (tumour also as ``tumour_core``: core + rim without the oedema) the row holds the
mean over the test cases of in-brain AUROC, AUPRC and lesion prevalence, Dice by rule A and rule B, the floor
(Dice of flagging the whole brain), the ceiling (a perfect reconstruction, i.e. the clean pre-lesion image,
scored by the model's own pipeline at the model's rule-A threshold; model rows only) and the volume (mL) each
rule flags on the held-out subject's healthy scan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...config import BenchmarkConfig, PostprocessConfig
from ...data.corpus_preprocess import ensure_preprocessed, load_preprocessed, load_tissue
from ...data.lesions.plant import plant_lesion
from ...data.registry_corpus import REAL_T1_SUBJECTS
from ...data.volumes import Subject
from ...errors import InputError
from ...runtime.progress import ProgressReporter
from ...scoring.brain_metrics import dice, in_brain_ranking, whole_brain_floor
from ...scoring.inference import reconstruct_volume
from ...scoring.metrics import false_positive_volume_ml
from ...scoring.normalisation import MIN_SUBJECTS as NORMALISATION_MIN_SUBJECTS
from ...scoring.normalisation import HealthyResidualStats
from ...scoring.postprocess import binarize, filter_map
from ...scoring.thresholds import best_dice_threshold, fpr_threshold
from ...scoring.volume_score import score_reconstruction, score_volume
from ...storage.files import staged_outputs, write_json_atomic
from . import diagnostics as diag
from .baselines import ZScoreBaseline

SUBJECT_SEED_STRIDE = 10_000  # seeds: test_seed_start + subject * 10 000 + kind * 1 000 + case
KIND_SEED_STRIDE = 1_000
DEFAULT_KINDS = ("tumour", "stroke", "ms")
COPY_KINDS = ("stroke", "ms", "control_intensity")  # no mass effect: the clean image is the subject's own scan
CORE_SUFFIX = "_core"
MODEL_METHOD, NORMALISED_METHOD, ZSCORE_METHOD = "model", "model_normalised", "zscore"
METHODS = (MODEL_METHOD, NORMALISED_METHOD, ZSCORE_METHOD)


@dataclass
class LosoRequest:
    """What to run; ``model`` is a folder or registered name (``None``: the default model)."""

    corpus: Path
    out_dir: Path
    model: str | Path | None = None
    kinds: tuple[str, ...] = DEFAULT_KINDS
    subjects: tuple[str, ...] | None = None
    lesions_per_kind: int = 5
    settings: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    device: str = "auto"
    precision: str | None = None
    noise_seeds: int | None = None  # None: the model's own setting
    copy_cases_per_kind: int = 1
    diagnostic_templates: int = 1  # templates the model scores for the fit diagnostics (the z-score uses all)
    command: str = ""


@dataclass
class Case:
    """One planted lesion: KJI arrays on the model grid; ``clean`` is the image before painting."""

    subject: str
    kind: str
    seed: int
    image: np.ndarray
    brain: np.ndarray
    clean: np.ndarray
    labels: dict[str, np.ndarray]  # label key (kind, or kind + "_core") -> uint8 mask
    filtered: dict[str, np.ndarray] = field(default_factory=dict)  # method -> filtered map
    residual: np.ndarray | None = None  # |image - reconstruction| of the model, before any post-processing
    ceiling: np.ndarray | None = None  # the model pipeline's filtered map of a perfect reconstruction
    reconstruction: np.ndarray | None = None


def _label_keys(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(kind, label key) pairs: tumour is scored on the whole lesion and on its core."""
    keys = [(kind, kind) for kind in kinds]
    keys += [(kind, kind + CORE_SUFFIX) for kind in kinds if kind == "tumour"]
    return keys


def _load_subjects(request: LosoRequest, cfg: Any) -> tuple[list[Subject], list[Subject], dict[str, np.ndarray]]:
    records = ensure_preprocessed(request.corpus, cfg)
    spacing = (float(cfg.grid.spacing_mm),) * 3

    def subjects(roles: tuple[str, ...]) -> list[Subject]:
        return [Subject(name=n, image=i, brain_mask=m, spacing_mm=spacing)
                for n, (i, m) in sorted(load_preprocessed(request.corpus, records, roles=roles).items())]

    templates, real = subjects(("train",)), subjects(("test",))
    if request.subjects:
        unknown = sorted(set(request.subjects) - {s.name for s in real})
        if unknown:
            raise InputError(f"--subjects {unknown} are not preprocessed real subjects of {request.corpus} "
                             f"(available: {[s.name for s in real]})")
        real = [s for s in real if s.name in request.subjects]
    if len(real) < 2:
        raise InputError("leave-one-real-subject-out needs at least 2 real subjects (one held out, one to calibrate)")
    if not templates:
        raise InputError(f"no preprocessed templates in {request.corpus}; run 'contrastive-anomaly data fetch'")
    tissue = {s.name: load_tissue(request.corpus, records, s.name) for s in real
              if "tissue" in records["preprocessed"][s.name]}
    return templates, real, tissue


def plant_cases(real: list[Subject], tissue: dict[str, np.ndarray], request: LosoRequest, contrast: str
                ) -> list[Case]:
    """``lesions_per_kind`` cases of every kind in every real subject (seeds from the subject's corpus index)."""
    cases = []
    for subject in real:
        subject_index = REAL_T1_SUBJECTS.index(subject.name) if subject.name in REAL_T1_SUBJECTS else 0
        for kind_index, kind in enumerate(request.kinds):
            for index in range(request.lesions_per_kind):
                seed = (request.settings.test_seed_start + subject_index * SUBJECT_SEED_STRIDE
                        + kind_index * KIND_SEED_STRIDE + index)
                planted = plant_lesion(subject.image, subject.brain_mask, kind, contrast, seed,
                                       spacing_mm=subject.spacing_mm, tissue=tissue.get(subject.name))
                labels = {kind: planted.mask_kji}
                if kind == "tumour":
                    labels[kind + CORE_SUFFIX] = planted.core_mask_kji
                cases.append(Case(subject=subject.name, kind=kind, seed=seed, image=planted.image_kji,
                                  brain=planted.brain_mask_kji, clean=planted.background_kji, labels=labels))
    return cases


def reconstruct_changed(detector: Any, image: np.ndarray, brain: np.ndarray, clean_image: np.ndarray,
                        clean_reconstruction: np.ndarray, levels: tuple[int, ...] | None = None) -> np.ndarray:
    """The reconstruction of ``image``, re-running only the axial slices that differ from ``clean_image``.

    ``clean_reconstruction`` must come from the same detector and levels. Equal to a full reconstruction because
    the model works slice by slice with one noise field per level for the whole volume.
    """
    if not detector.cfg.inference.skip_empty_slices:
        return reconstruct_volume(detector.model, image, brain, detector.cfg, detector.device,
                                  precision=detector.dtype, timestep_indices=levels).reconstruction
    changed = np.flatnonzero(np.any(image != clean_image, axis=(1, 2)))
    reconstruction = clean_reconstruction.copy()
    if changed.size == 0:
        return reconstruction
    only_changed = np.zeros_like(brain)
    only_changed[changed] = brain[changed]
    result = reconstruct_volume(detector.model, image, only_changed, detector.cfg, detector.device,
                                precision=detector.dtype, timestep_indices=levels)
    reconstruction[changed] = image[changed]  # a changed slice with too little brain is not reconstructed
    reconstruction[result.processed_slices] = result.reconstruction[result.processed_slices]
    return reconstruction


def _case_metrics(case: Case, key: str, method: str, thresholds: tuple[float, float], postprocess: PostprocessConfig,
                  ceiling_threshold: float | None) -> dict[str, float]:
    label = case.labels[key]
    score = case.filtered[method]
    ranking = in_brain_ranking(score, label, case.brain)
    row = {"auroc": ranking["auroc"], "auprc": ranking["auprc"], "prevalence": ranking["prevalence"],
           "dice_rule_a": dice(binarize(score, thresholds[0], postprocess), label),
           "dice_rule_b": dice(binarize(score, thresholds[1], postprocess), label),
           "floor": whole_brain_floor(label, case.brain), "lesion_ml": float(label.sum())}
    row["ceiling"] = (dice(binarize(case.ceiling, ceiling_threshold, postprocess), label)
                      if ceiling_threshold is not None and case.ceiling is not None else float("nan"))
    return row


class _ZScoreMaps:
    """Filtered |z| maps of a subject's scans from statistics that leave out a given set of real subjects."""

    def __init__(self, templates: list[Subject], real: list[Subject], settings: BenchmarkConfig,
                 postprocess: PostprocessConfig) -> None:
        self.templates, self.real, self.settings, self.postprocess = templates, real, settings, postprocess
        self._baselines: dict[frozenset, ZScoreBaseline] = {}
        self._maps: dict[tuple[int, frozenset], np.ndarray] = {}

    def baseline(self, excluded: frozenset) -> ZScoreBaseline:
        if excluded not in self._baselines:
            reference = self.templates + [s for s in self.real if s.name not in excluded]
            self._baselines[excluded] = ZScoreBaseline.fit(reference, self.settings)
        return self._baselines[excluded]

    def filtered(self, image: np.ndarray, brain: np.ndarray, excluded: frozenset) -> np.ndarray:
        key = (id(image), excluded)
        if key not in self._maps:
            self._maps[key] = filter_map(self.baseline(excluded).anomaly_map(image), brain, self.postprocess)
        return self._maps[key]


class _NormalisedMaps:
    """Filtered normalised residual maps, with healthy statistics that leave out a given set of real subjects.

    ``healthy`` maps each healthy real scan's name to its (raw residual, brain mask); a fold excludes some of them."""

    def __init__(self, healthy: dict[str, tuple[np.ndarray, np.ndarray]], postprocess: PostprocessConfig) -> None:
        self.healthy, self.postprocess = healthy, postprocess
        self._stats: dict[frozenset, HealthyResidualStats] = {}
        self._maps: dict[tuple[int, frozenset], np.ndarray] = {}

    def stats(self, excluded: frozenset) -> HealthyResidualStats:
        if excluded not in self._stats:
            kept = [pair for name, pair in self.healthy.items() if name not in excluded]
            self._stats[excluded] = HealthyResidualStats.fit([r for r, _ in kept], [m for _, m in kept],
                                                             self.postprocess)
        return self._stats[excluded]

    def filtered(self, residual: np.ndarray, brain: np.ndarray, excluded: frozenset) -> np.ndarray:
        key = (id(residual), excluded)
        if key not in self._maps:
            self._maps[key] = filter_map(self.stats(excluded).normalise(residual), brain, self.postprocess)
        return self._maps[key]


@dataclass
class _MethodMaps:
    """How one method's filtered map of a case or a healthy scan is obtained, leaving out ``excluded`` subjects."""

    of_case: Any  # (case, excluded) -> filtered map
    of_healthy: Any  # (subject, excluded) -> filtered map


def _method_maps(zscore: _ZScoreMaps, normalised: _NormalisedMaps, healthy_filtered: dict[str, np.ndarray],
                 healthy_residual: dict[str, np.ndarray]) -> dict[str, _MethodMaps]:
    return {
        MODEL_METHOD: _MethodMaps(lambda case, _: case.filtered[MODEL_METHOD],
                                  lambda subject, _: healthy_filtered[subject.name]),
        NORMALISED_METHOD: _MethodMaps(
            lambda case, excluded: normalised.filtered(case.residual, case.brain, excluded),
            lambda subject, excluded: normalised.filtered(healthy_residual[subject.name], subject.brain_mask,
                                                          excluded)),
        ZSCORE_METHOD: _MethodMaps(lambda case, excluded: zscore.filtered(case.image, case.brain, excluded),
                                   lambda subject, excluded: zscore.filtered(subject.image, subject.brain_mask,
                                                                             excluded)),
    }


def _mean_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in rows[0]:
        values = np.array([r[column] for r in rows], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[column] = float(finite.mean()) if finite.size else float("nan")
    return out


def run_loso(request: LosoRequest, progress: ProgressReporter | None = None) -> dict[str, Path]:
    """Run the benchmark and write ``results.csv``, ``results.md``, ``diagnostics.json`` and ``diagnostics.md``."""
    from ...runtime.precision import resolve_device
    from ...scoring.detector import load_detector

    progress = progress or ProgressReporter("none")
    if request.lesions_per_kind < 1:
        raise InputError("--lesions-per-kind must be at least 1")
    started = time.perf_counter()
    detector = load_detector(request.model, resolve_device(request.device))
    # the "model" rows are the method itself; normalisation is measured separately with per-fold statistics
    detector = detector.with_overrides(precision=request.precision or None, noise_seeds=request.noise_seeds,
                                       residual_normalisation="none")
    cfg, postprocess, settings = detector.cfg, detector.cfg.postprocess, request.settings
    with progress.stage("subjects"):
        templates, real, tissue = _load_subjects(request, cfg)
        cases = plant_cases(real, tissue, request, cfg.contrast)
    healthy_recon: dict[str, np.ndarray] = {}
    healthy_filtered: dict[str, np.ndarray] = {}
    healthy_residual: dict[str, np.ndarray] = {}
    volumes_scored = 0
    model_started = time.perf_counter()
    scored_templates = templates[:max(request.diagnostic_templates, 0)]
    with progress.stage("healthy scans", total=len(scored_templates) + len(real)):
        for done, subject in enumerate(scored_templates + real, start=1):
            score = score_volume(detector, subject.image, subject.brain_mask)
            healthy_recon[subject.name], healthy_filtered[subject.name] = score.reconstruction, score.filtered
            healthy_residual[subject.name] = score.residual
            volumes_scored += 1
            progress.advance(done)
    by_name = {s.name: s for s in real}
    slices_run = 0
    with progress.stage("lesion cases", total=len(cases)):
        for done, case in enumerate(cases, start=1):
            subject = by_name[case.subject]
            recon = reconstruct_changed(detector, case.image, case.brain, subject.image, healthy_recon[subject.name])
            slices_run += int(np.any(case.image != subject.image, axis=(1, 2)).sum())
            scored = score_reconstruction(detector, case.image, case.brain, recon)
            case.filtered[MODEL_METHOD], case.residual = scored.filtered, scored.residual
            case.ceiling = score_reconstruction(detector, case.image, case.brain, case.clean).filtered
            if case.kind in COPY_KINDS:
                case.reconstruction = recon
            progress.advance(done)
    model_seconds = time.perf_counter() - model_started
    zscore = _ZScoreMaps(templates, real, settings, postprocess)
    # statistics from real brains only, as the shipped model's are (templates are the model's training data, whose
    # residuals are smaller than a new scan's); each fold leaves out its held-out subject (and, nested, the subject
    # a threshold is calibrated on)
    normalised = _NormalisedMaps({s.name: (healthy_residual[s.name], s.brain_mask) for s in real}, postprocess)
    maps = _method_maps(zscore, normalised, healthy_filtered, healthy_residual)
    if len(real) < NORMALISATION_MIN_SUBJECTS + 2:  # a nested fold leaves out two real subjects
        del maps[NORMALISED_METHOD]

    rows: list[dict[str, Any]] = []
    with progress.stage("folds", total=len(real)):
        for fold_index, held_out in enumerate(real, start=1):
            others = [s for s in real if s.name != held_out.name]
            rows += _fold_rows(held_out, others, cases, maps, request, postprocess)
            progress.advance(fold_index)
    means = _means_over_folds(rows)
    with progress.stage("diagnostics"):
        diagnostics = _diagnostics(detector, scored_templates, real, cases, healthy_recon, request)
    diagnostics["timing"] = {"total_s": time.perf_counter() - started, "model_s": model_seconds,
                             "healthy_volumes": volumes_scored, "lesion_cases": len(cases),
                             "lesion_slices_reconstructed": slices_run, "slices_per_volume": int(cfg.grid.shape[2]),
                             "precision": str(detector.dtype).replace("torch.", ""),
                             "noise_seeds": cfg.inference.noise_seeds}
    return write_outputs(rows, means, diagnostics, request, detector, real, templates)


def write_outputs(rows: list[dict[str, Any]], means: list[dict[str, Any]], diagnostics: dict[str, Any],
                  request: LosoRequest, detector: Any, real: list[Subject], templates: list[Subject]
                  ) -> dict[str, Path]:
    """Write results.csv/md and diagnostics.json/md through a staging folder (all or nothing)."""
    from . import loso_report

    with staged_outputs(request.out_dir) as staging:
        written = [loso_report.write_csv(rows + means, staging / "results.csv"),
                   loso_report.write_markdown(means, rows, staging / "results.md", request, detector, real,
                                              templates, diagnostics),
                   write_json_atomic(diagnostics, staging / "diagnostics.json", sort_keys=True)]
        (staging / "diagnostics.md").write_text(diag.diagnostics_markdown(diagnostics), encoding="utf-8")
        written.append(staging / "diagnostics.md")
    return {Path(p).name: request.out_dir / Path(p).name for p in written}


def _fold_rows(held_out: Subject, others: list[Subject], cases: list[Case], maps: dict[str, _MethodMaps],
               request: LosoRequest, postprocess: PostprocessConfig) -> list[dict[str, Any]]:
    settings = request.settings
    test_cases = [c for c in cases if c.subject == held_out.name]
    val_cases = [c for c in cases if c.subject != held_out.name]
    exclude_test = frozenset({held_out.name})
    for method, source in maps.items():
        for case in test_cases:
            case.filtered[method] = source.of_case(case, exclude_test)
    healthy_test = {method: source.of_healthy(held_out, exclude_test) for method, source in maps.items()}
    # a validation map of subject v comes from statistics without v too (nested), like the test maps
    val_maps = {method: [(c, source.of_case(c, frozenset({held_out.name, c.subject}))) for c in val_cases]
                for method, source in maps.items()}
    healthy_val = {method: [source.of_healthy(s, frozenset({held_out.name, s.name})) for s in others]
                   for method, source in maps.items()}
    brains_val = [s.brain_mask for s in others]
    rows = []
    model_threshold_a: dict[str, float] = {}
    for method in maps:
        threshold_b = fpr_threshold(healthy_val[method], brains_val, settings.rule_b_fpr)
        fp_b = false_positive_volume_ml(binarize(healthy_test[method], threshold_b, postprocess),
                                        held_out.spacing_mm)
        for kind, key in _label_keys(request.kinds):
            pairs = [(c, m) for c, m in val_maps[method] if c.kind == kind]
            threshold_a = best_dice_threshold([m for _, m in pairs], [c.labels[key] for c, _ in pairs], postprocess)
            if method == MODEL_METHOD:
                model_threshold_a[key] = threshold_a
            ceiling_threshold = model_threshold_a.get(key) if method == MODEL_METHOD else None
            per_case = [_case_metrics(c, key, method, (threshold_a, threshold_b), postprocess, ceiling_threshold)
                        for c in test_cases if c.kind == kind]
            row = {"method": method, "fold": held_out.name, "lesion_kind": key, "test_cases": len(per_case)}
            row.update(_mean_rows(per_case))
            row["lesion_ml"] *= float(np.prod(held_out.spacing_mm)) / 1000.0
            row["healthy_fp_ml_rule_a"] = false_positive_volume_ml(
                binarize(healthy_test[method], threshold_a, postprocess), held_out.spacing_mm)
            row["healthy_fp_ml_rule_b"] = fp_b
            row["threshold_rule_a"], row["threshold_rule_b"] = threshold_a, threshold_b
            rows.append(row)
    return rows


def _means_over_folds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["lesion_kind"]), []).append(row)
    means = []
    for (method, key), group in groups.items():
        numeric = [{k: v for k, v in r.items() if k not in ("method", "fold", "lesion_kind")} for r in group]
        mean = {"method": method, "fold": "mean", "lesion_kind": key}
        mean.update(_mean_rows(numeric))
        mean["test_cases"] = int(sum(r["test_cases"] for r in group))
        means.append(mean)
    return means


def _diagnostics(detector: Any, templates: list[Subject], real: list[Subject], cases: list[Case],
                 healthy_recon: dict[str, np.ndarray], request: LosoRequest) -> dict[str, Any]:
    """Healthy error, edge-energy ratio and copied lesion contrast (per level and ensemble) of the model."""
    def per(subjects: list[Subject], function) -> dict[str, Any]:
        return diag.summarise({s.name: function(s.image, healthy_recon[s.name], s.brain_mask) for s in subjects})

    levels = tuple(detector.cfg.inference.timestep_indices)
    copy_cases = []
    for subject in real:
        for kind in COPY_KINDS:
            chosen = [c for c in cases if c.subject == subject.name and c.kind == kind][:request.copy_cases_per_kind]
            copy_cases += chosen
    by_name = {s.name: s for s in real}
    per_level: dict[str, dict[str, float]] = {str(level + 1): {} for level in levels}
    ensemble: dict[str, float] = {}
    clean_level_recon: dict[tuple[str, int], np.ndarray] = {}
    for case in copy_cases:
        subject = by_name[case.subject]
        name = f"{case.subject}-{case.kind}-{case.seed}"
        label = case.labels[case.kind]
        ensemble[name] = diag.copied_share(case.image, case.clean, case.reconstruction,
                                           healthy_recon[case.subject], label)
        for level in levels:
            if (case.subject, level) not in clean_level_recon:
                clean_level_recon[(case.subject, level)] = reconstruct_volume(
                    detector.model, subject.image, subject.brain_mask, detector.cfg, detector.device,
                    precision=detector.dtype, timestep_indices=(level,)).reconstruction
            clean = clean_level_recon[(case.subject, level)]
            lesioned = reconstruct_changed(detector, case.image, case.brain, subject.image, clean, (level,))
            per_level[str(level + 1)][name] = diag.copied_share(case.image, case.clean, lesioned, clean, label)
    return {
        "model": str(detector.folder), "grid": list(detector.cfg.grid.shape),
        "healthy_error": {"templates": per(templates, diag.healthy_error), "real": per(real, diag.healthy_error)},
        "edge_energy_ratio": {"templates": per(templates, diag.edge_energy_ratio),
                              "real": per(real, diag.edge_energy_ratio)},
        "copied_contrast": {"per_level": {t: diag.summarise(v) for t, v in per_level.items()},
                            "ensemble": diag.summarise(ensemble), "cases": len(copy_cases),
                            "kinds": sorted({c.kind for c in copy_cases}),
                            "min_contrast": diag.MIN_COPY_CONTRAST},
    }

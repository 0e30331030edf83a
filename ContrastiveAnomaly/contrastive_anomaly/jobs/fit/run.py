"""``fit``: from a folder of healthy scans to a calibrated, registered model, resumable at every step.

Order: resolve the settings and discover the scans (every bad-source check, nothing written) -> record the fit ->
hash and preprocess (cache) -> split by subject (frozen in ``training/plan.json``) -> stage 1, stage 2 (checkpoints)
-> rule-B calibration on the held-out subjects (cached) -> model folder + card -> user registry. Killing the process
at any point and running the same command again continues from the last finished scan or checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...data.sources import Discovery, ScanSource, discover_scans
from ...data.volumes import Subject
from ...errors import Cancelled, InputError
from ...runtime.distributed import DistContext, barrier, init_distributed, shutdown
from ...runtime.progress import ProgressReporter
from .cache import CACHE_DIR, CachedScan, collect_cached, hash_scans, preprocess_scans
from .calibrate import Calibration, cached_calibration, calibrate_on_held_out, save_calibration
from .card import CardFacts, model_card
from .hardware import hardware_summary
from .publish import CARD_FILE, register, write_model_folder
from .request import FitRequest, FitSettings, command_line, resolve_settings, start_record
from .split import MIN_SUBJECTS, freeze_plan, split_scans
from .train import TRAINING_DIR, StageResults, train_stages


@dataclass
class FitResult:
    """Where the model is and how the fit went."""

    model_dir: Path
    name: str
    threshold: float
    used_scans: int
    subjects: int
    skipped: dict[str, str]
    registered: bool

    def outputs(self) -> dict[str, str]:
        return {"model": str(self.model_dir), "card": str(self.model_dir / CARD_FILE)}


def _check_before_heavy_work(settings: FitSettings) -> Discovery:
    """Discover the scans and reject a source that cannot give a model; writes nothing."""
    discovery = discover_scans(settings.healthy, settings.contrast)
    subjects = discovery.subjects
    if len(subjects) < MIN_SUBJECTS:
        raise InputError(f"{settings.healthy} holds {settings.contrast} scans of {len(subjects)} subject "
                         f"({subjects[0]}); fit needs at least {MIN_SUBJECTS} subjects (one trains, one is held out)")
    return discovery


def _drop_duplicates(cached: list[CachedScan]) -> list[CachedScan]:
    """Mark a scan whose content equals an earlier one's as failed, so one image never trains and calibrates."""
    first: dict[str, str] = {}
    for item in cached:
        if item.status == "ok" and item.sha256 in first:
            item.status, item.reason = "failed", f"same content as {first[item.sha256]}"
        elif item.sha256:
            first.setdefault(item.sha256, item.scan.scan_id)
    return cached


def _preprocess(settings: FitSettings, scans: list[ScanSource], ctx: DistContext,
                progress: ProgressReporter) -> list[CachedScan]:
    """Every scan into the cache; under torchrun each rank takes every N-th scan, then all read the cache."""
    cache_root = settings.out_dir / CACHE_DIR
    mine = scans[ctx.rank::ctx.world_size]
    digests = hash_scans(mine, progress)
    done = preprocess_scans(mine, settings.cfg, cache_root, progress, digests)
    if not ctx.enabled:
        return _drop_duplicates(done)
    barrier(ctx)
    return _drop_duplicates(collect_cached(scans, settings.cfg, cache_root))


def _report_skipped(cached: list[CachedScan], allow: bool, progress: ProgressReporter) -> dict[str, str]:
    skipped = {c.scan.scan_id: c.skip_reason(allow) for c in cached if not c.usable(allow)}
    for scan_id, reason in skipped.items():
        progress.warn(f"skipped {scan_id}: {reason}", code="scan_skipped")
    return skipped


def _calibrate(settings: FitSettings, stages: StageResults, held_out: list[Subject], ctx: DistContext,
               progress: ProgressReporter) -> tuple[Calibration, dict, dict]:
    """Rule-B threshold for the chosen stage-2 checkpoint (reused when already computed for it)."""
    from ...method.diffusion_model import AnomalyDiffusionModel
    from ...scoring.detector import Detector
    from ...storage.checkpoint import load_model_folder, load_state_strict
    from ...storage.integrity import WEIGHTS_FILE, read_manifest

    best = stages.diffusion.best
    cfg, state, meta = load_model_folder(best, expected_kind="diffusion")
    weights_sha = read_manifest(best)[WEIGHTS_FILE]
    run_dir = settings.out_dir / TRAINING_DIR
    names = [s.name for s in held_out]
    calibration = cached_calibration(run_dir, weights_sha, names, cfg.postprocess.target_fpr)
    if calibration is None:
        model = AnomalyDiffusionModel(cfg)
        load_state_strict(model, state, best)
        detector = Detector.from_model(model, ctx.device, cfg=cfg, folder=best)
        calibration = calibrate_on_held_out(detector, held_out, progress, weights_sha256=weights_sha)
        save_calibration(run_dir, calibration)
    return calibration, state, meta


def _training_hardware(stages: StageResults) -> dict[str, str]:
    from ...storage.checkpoint import read_model_config

    found = {}
    for label, result in (("stage-1", stages.encoder), ("stage-2", stages.diffusion)):
        _, meta = read_model_config(result.last)
        if meta.get("hardware"):
            found[label] = str(meta["hardware"])
    return found


def _publish(settings: FitSettings, facts: CardFacts, state: dict, meta: dict, calibration: Calibration,
             progress: ProgressReporter) -> None:
    import copy

    cfg = copy.deepcopy(facts.cfg)
    cfg.name = settings.name
    cfg.postprocess.threshold = calibration.threshold
    cfg.postprocess.threshold_rule = "fpr"
    metadata = {k: v for k, v in meta.items() if k not in ("kind", "dtype")}
    metadata.update(calibrated_on=calibration.scans, fitted_with="contrastive-anomaly fit")
    with progress.stage("write", total=1) as stage:
        write_model_folder(settings.out_dir, state, cfg, model_card(facts), metadata)
        stage.advance(1)


def fit(request: FitRequest, progress: ProgressReporter | None = None) -> FitResult:
    """Run (or continue) a fit; see the module docstring. Raises :class:`InputError` for an unusable source,
    :class:`Cancelled` when interrupted (the work done so far is kept for the next run)."""
    progress = progress or ProgressReporter("none")
    settings = resolve_settings(request)
    discovery = _check_before_heavy_work(settings)
    ctx = init_distributed(request.device)
    try:
        if ctx.is_main:
            start_record(settings)
        barrier(ctx)
        cached = _preprocess(settings, discovery.scans, ctx, progress)
        skipped = _report_skipped(cached, settings.allow_qc_warnings, progress)
        usable = [c for c in cached if c.usable(settings.allow_qc_warnings)]
        try:
            plan = split_scans(usable, fraction=settings.held_out_fraction, seed=settings.seed)
        except InputError as exc:
            raise InputError(f"{exc} after preprocessing ({len(skipped)} of {len(cached)} scans left out; reasons "
                             f"in {settings.out_dir / CACHE_DIR}/*/qc.json)") from None
        run_dir = settings.out_dir / TRAINING_DIR
        if ctx.is_main:
            freeze_plan(plan, run_dir)
        barrier(ctx)
        cfg = settings.cfg
        cfg.training_data = {"source": str(settings.healthy), "kind": discovery.kind, "contrast": settings.contrast,
                             "train_subjects": plan.train_subjects, "held_out_subjects": plan.held_out_subjects,
                             "scans": len(usable)}
        train = [c.to_subject() for c in plan.train]
        held_out = [c.to_subject() for c in plan.held_out]
        stages = train_stages(cfg, train, held_out, run_dir, ctx, progress)
        registered = False
        calibration = None
        if ctx.is_main:
            calibration, state, meta = _calibrate(settings, stages, held_out, ctx, progress)
            facts = CardFacts(name=settings.name, cfg=cfg, discovery=discovery, cached=cached, plan=plan,
                              stages=stages, calibration=calibration, allow_qc_warnings=settings.allow_qc_warnings,
                              hardware=hardware_summary(), training_hardware=_training_hardware(stages),
                              preprocess_seconds=sum(c.seconds for c in cached),
                              command=command_line(request, settings))
            _publish(settings, facts, state, meta, calibration, progress)
            if request.register:
                register(settings.out_dir, name=settings.name, contrast=settings.contrast)
                registered = True
        barrier(ctx)
    except KeyboardInterrupt:
        raise Cancelled(f"cancelled; finished work is kept in {settings.out_dir}: run the same command again to "
                        "continue") from None
    finally:
        shutdown(ctx)
    return FitResult(model_dir=settings.out_dir, name=settings.name,
                     threshold=calibration.threshold if calibration else float("nan"),
                     used_scans=len(usable), subjects=len(plan.train_subjects) + len(plan.held_out_subjects),
                     skipped=skipped, registered=registered)

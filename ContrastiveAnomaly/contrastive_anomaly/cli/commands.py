"""What each ``contrastive-anomaly`` subcommand does, given its parsed arguments (the parser is in :mod:`.cli`).

Each ``run_*`` function takes ``(args, progress)`` and returns the exit code; heavy imports happen inside them so
that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..config import GridConfig, ModelConfig, preset
from ..errors import InputError, UsageError
from ..runtime.progress import ProgressReporter

# Preset used when none is given: the paper's sizes need a GPU (days of CPU time), the compact model trains on a CPU.
GPU_DEFAULT_PRESET, CPU_DEFAULT_PRESET = "paper", "compact"


def default_preset(device: str, cuda_available: bool) -> str:
    """The preset that suits ``device`` (``auto`` means the GPU when there is one)."""
    name = device.lower()
    on_gpu = name in ("gpu", "cuda") or name.startswith("cuda:") or (name == "auto" and cuda_available)
    return GPU_DEFAULT_PRESET if on_gpu else CPU_DEFAULT_PRESET


def _preset_name(args: argparse.Namespace, progress: ProgressReporter | None) -> str:
    if args.preset is not None:
        return args.preset
    import torch

    name = default_preset(args.device, torch.cuda.is_available())
    if progress is not None:
        progress.say(f"no --preset given: using '{name}', which suits this device "
                     f"({'GPU' if name == GPU_DEFAULT_PRESET else 'CPU only'}); pass --preset to choose")
    return name


def _config_from_args(args: argparse.Namespace, stage: str, progress: ProgressReporter | None = None
                      ) -> ModelConfig:
    cfg = ModelConfig.load(args.config) if args.config else preset(_preset_name(args, progress))
    if args.contrast:
        cfg.contrast = args.contrast
    train_cfg = cfg.encoder_training if stage == "encoder" else cfg.diffusion_training
    for name, attribute in (("steps", "steps"), ("batch_size", "batch_size"), ("lr", "learning_rate"),
                            ("seed", "seed"), ("validate_every", "validate_every"),
                            ("checkpoint_every", "checkpoint_every"), ("ema_decay", "ema_decay")):
        if getattr(args, name) is not None:
            setattr(train_cfg, attribute, getattr(args, name))
    if getattr(args, "timestep_range", None) is not None:
        train_cfg.timestep_range = tuple(args.timestep_range)
    if args.grid is not None:
        cfg.grid = GridConfig.for_protocol(args.grid, cfg.grid.spacing_mm)
    return cfg


def _training_subjects(args: argparse.Namespace, cfg: ModelConfig):
    from ..data.volumes import phantom_subjects, read_volume_folder

    if args.data is None and args.phantoms <= 0:
        raise UsageError("give --data FOLDER (healthy subjects) or --phantoms N")
    if args.data is not None:
        subjects = read_volume_folder(args.data)
        described = {"source": str(args.data), "subjects": [s.name for s in subjects]}
    else:
        subjects = phantom_subjects(args.phantoms, cfg.grid.shape, contrast=cfg.contrast)
        described = {"source": "synthetic phantoms (contrastive_anomaly.data.phantoms)",
                     "subjects": args.phantoms}
    if args.val_data is not None:
        val = read_volume_folder(args.val_data)
        train = subjects
    else:
        count = max(1, round(len(subjects) * args.val_fraction))
        if len(subjects) - count < 1:
            raise InputError("need at least 2 subjects to split off validation; add --val-data")
        train, val = subjects[:-count], subjects[-count:]
    described.update(train=[s.name for s in train], val=[s.name for s in val])
    shape_kji = tuple(reversed(cfg.grid.shape))
    for subject in train + val:
        if subject.image.shape != shape_kji:
            raise InputError(f"subject {subject.name} is {subject.image.shape[::-1]} voxels (IJK), not the model "
                             f"grid {cfg.grid.shape}; preprocess it first")
    return train, val, described


def run_train_encoder(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from ..runtime.distributed import init_distributed, shutdown
    from ..training.loops import train_encoder

    cfg = _config_from_args(args, "encoder", progress)
    if args.mim_only:
        cfg.encoder.contrastive_weight = 0.0
    train, val, described = _training_subjects(args, cfg)
    cfg.training_data = {"stage1": described}
    ctx = init_distributed(args.device)
    result = train_encoder(cfg, train, val, args.out, ctx, progress, resume=args.resume)
    shutdown(ctx)
    progress.result({"best": str(result.best), "last": str(result.last)}, steps=result.steps,
                    best_val_loss=result.best_val_loss, wall_time_s=round(result.wall_time_s, 1))
    return 0


def run_train(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from ..jobs.evaluate import export_calibrated_model
    from ..runtime.distributed import init_distributed, shutdown
    from ..storage.checkpoint import read_model_config
    from ..training.loops import train_diffusion

    cfg = _config_from_args(args, "diffusion", progress)
    if args.encoder is not None and args.config is None:
        encoder_cfg, _ = read_model_config(args.encoder)
        cfg.encoder = encoder_cfg.encoder
        cfg.encoder_training = encoder_cfg.encoder_training  # what stage 1 ran, not the preset's defaults
        cfg.training_data = dict(encoder_cfg.training_data)
    if args.init_from is not None and args.config is None:
        # a warm start keeps the starting model's architecture and records where its weights came from
        start_cfg, start_checkpoint = read_model_config(args.init_from)
        cfg.encoder, cfg.unet, cfg.diffusion = start_cfg.encoder, start_cfg.unet, start_cfg.diffusion
        cfg.encoder_training = start_cfg.encoder_training
        cfg.training_data = dict(start_cfg.training_data)
        cfg.training_data["warm_start"] = {"from": str(args.init_from), "name": start_cfg.name,
                                           "steps": start_checkpoint.get("step"),
                                           "diffusion_training": dataclasses.asdict(start_cfg.diffusion_training)}
    if args.encoder_mode:
        cfg.diffusion_training.encoder_mode = args.encoder_mode
    if args.unconditioned:
        cfg.unet.conditioning = "none"
    if args.target_fpr is not None:
        cfg.postprocess.target_fpr = args.target_fpr
    train, val, described = _training_subjects(args, cfg)
    cfg.training_data["stage2"] = described
    ctx = init_distributed(args.device)
    result = train_diffusion(cfg, train, val, args.out, encoder_folder=args.encoder, ctx=ctx, progress=progress,
                             resume=args.resume, init_from=args.init_from)
    outputs = {"best": str(result.best), "last": str(result.last)}
    if ctx.is_main:
        with progress.stage("calibrate"):
            folder, _ = export_calibrated_model(result.best, val, args.out / "model", ctx.device)
        outputs["model"] = str(folder)
    shutdown(ctx)
    progress.result(outputs, steps=result.steps, best_val_loss=result.best_val_loss,
                    wall_time_s=round(result.wall_time_s, 1))
    return 0



def run_evaluate(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from ..data.volumes import read_volume_folder
    from ..jobs.evaluate import evaluate_model
    from ..runtime.precision import resolve_device
    from ..scoring.detector import load_detector

    detector = load_detector(args.model, resolve_device(args.device)).with_overrides(fast=args.fast)
    test = read_volume_folder(args.test)
    if any(s.label is None for s in test):
        raise InputError(f"every subject in {args.test} needs a label file (label.nii.gz)")
    report = evaluate_model(detector, test,
                            labelled_val=read_volume_folder(args.val) if args.val else None,
                            healthy_val=read_volume_folder(args.healthy) if args.healthy else None,
                            progress=progress)
    if args.out:
        from ..storage.files import write_json_atomic

        write_json_atomic(report, args.out / "metrics.json", default=float)
    if args.progress != "jsonl":
        for rule, result in report["rules"].items():
            mean = result["mean"]
            print(f"{rule:>10}: threshold {report['thresholds'][rule]:.4f}  Dice {mean['dice']:.3f}  "
                  f"AUPRC {mean['auprc']:.3f}  AUROC {mean['auroc']:.3f}")
    progress.result({"metrics": str(args.out / "metrics.json") if args.out else ""},
                    thresholds=report["thresholds"])
    return 0


def run_calibrate(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from ..data.volumes import read_volume_folder
    from ..jobs.evaluate import export_calibrated_model
    from ..jobs.request_checks import check_noise_seeds
    from ..runtime.precision import resolve_device
    from ..storage.registry import resolve_model

    if args.healthy is None and args.labelled is None:
        raise UsageError("give --healthy FOLDER (rule B: fixed FPR) or --labelled FOLDER (rule A: best Dice)")
    check_noise_seeds(args.noise_seeds)
    with progress.stage("calibrate"):
        folder, threshold = export_calibrated_model(
            resolve_model(args.model), read_volume_folder(args.healthy) if args.healthy else [], args.out,
            resolve_device(args.device), target_fpr=args.target_fpr,
            labelled=read_volume_folder(args.labelled) if args.labelled else None, half=args.half,
            normalise_on=read_volume_folder(args.normalise_on) if args.normalise_on else None,
            precision=args.precision, noise_seeds=args.noise_seeds)
    if args.progress != "jsonl":
        print(f"threshold {threshold:.5f}; calibrated model written to {folder}")
    progress.result({"model": str(folder)}, threshold=threshold)
    return 0


def run_data(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from ..data.fetch import fetch_corpus

    with progress.stage("fetch"):
        manifest = fetch_corpus(args.out, preprocess=not args.no_preprocess, archives=args.archives)
    if args.progress != "jsonl":
        print(f"corpus ready in {args.out} ({len(manifest.get('files', []))} files verified)")
    progress.result({"manifest": str(args.out / "manifest.json")})
    return 0

"""The ``contrastive-anomaly benchmark`` sub-command (parser and body; cli.py registers both)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ...runtime.progress import ProgressReporter

DEFAULT_METHODS = "ddpm,cddpm,contrastive,zscore"


def add_benchmark_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``benchmark`` to the top-level sub-parsers ``sub``."""
    bench = sub.add_parser(
        "benchmark", help="synthetic-lesion benchmark of the method and its baselines (leave-one-subject-out)",
        description="Trains (or reuses) ddpm, cddpm and contrastive on the healthy training subjects, fits the "
                    "z-score baseline, and evaluates all of them on the two held-out corpus subjects (rotated "
                    "validation/test) with planted lesions. Writes results.csv, results.md, montage_*.png and "
                    "summary.png. Example: contrastive-anomaly benchmark --corpus data/registry --out bench "
                    "--preset compact")
    bench.add_argument("--corpus", type=Path, required=True, help="corpus folder written by 'data fetch'")
    bench.add_argument("--out", type=Path, required=True, help="folder for the results")
    bench.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    bench.add_argument("--preset", default="compact", choices=("tiny", "compact", "paper"),
                       help="model size of the learned methods (default compact)")
    bench.add_argument("--steps-encoder", type=int, help="stage-1 optimisation steps (default: the preset's)")
    bench.add_argument("--steps", type=int, help="stage-2 optimisation steps (default: the preset's)")
    bench.add_argument("--batch-size", type=int, help="batch size of both stages (default: the preset's)")
    bench.add_argument("--train-data", type=Path,
                       help="healthy training subjects (e.g. data/bank/train) instead of the corpus templates")
    bench.add_argument("--models-dir", type=Path,
                       help="where trained models live (reused if OUT/<method>/model exists; default OUT/models)")
    bench.add_argument("--contrastive-model", type=Path,
                       help="an existing stage-2 model folder to benchmark as 'contrastive' "
                            "(e.g. the built-in t1-compact's folder)")
    bench.add_argument("--lesions-per-kind", type=int, help="lesions per kind per held-out subject (default 2)")
    bench.add_argument("--seed", type=int, help="training seed of the learned methods")
    bench.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar", help="progress display")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return bench


def run_benchmark_command(args: argparse.Namespace, progress: ProgressReporter) -> int:
    """Body of ``contrastive-anomaly benchmark``; returns the exit code."""
    from ...config import BenchmarkConfig, preset
    from ...data.volumes import read_volume_folder
    from ...errors import InputError
    from .folds import corpus_folds
    from .runner import BenchmarkRequest, run_benchmark

    cfg = preset(args.preset)
    if args.steps_encoder is not None:
        cfg.encoder_training.steps = args.steps_encoder
    if args.steps is not None:
        cfg.diffusion_training.steps = args.steps
    for train_cfg in (cfg.encoder_training, cfg.diffusion_training):
        if args.seed is not None:
            train_cfg.seed = args.seed
        if args.batch_size is not None:
            train_cfg.batch_size = args.batch_size
        train_cfg.validate_every = min(train_cfg.validate_every, max(train_cfg.steps, 1))
    settings = BenchmarkConfig()
    if args.lesions_per_kind is not None:
        if args.lesions_per_kind < 1:
            raise InputError("--lesions-per-kind must be at least 1")
        settings.lesions_per_kind = args.lesions_per_kind
    if args.contrastive_model is not None and not args.contrastive_model.is_dir():
        raise InputError(f"--contrastive-model folder not found: {args.contrastive_model}")
    pretrained = {"contrastive": args.contrastive_model} if args.contrastive_model else {}
    train = read_volume_folder(args.train_data) if args.train_data else None
    folds, templates = corpus_folds(args.corpus, cfg.grid.spacing_mm, train)
    source = f"from {args.train_data}" if train else "corpus templates"
    notes = [f"training subjects: {len(folds[0].train)} ({source}); "
             f"checkpoint selection and z-score statistics: corpus templates {[s.name for s in templates]}",
             f"preset {args.preset}; encoder steps {cfg.encoder_training.steps}, diffusion steps "
             f"{cfg.diffusion_training.steps}, batch {cfg.diffusion_training.batch_size}; "
             f"lesions per kind per held-out subject {settings.lesions_per_kind}"]
    if pretrained:
        notes.append(f"'contrastive' is the pre-trained model {args.contrastive_model} (not retrained here)")
    request = BenchmarkRequest(methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
                               base_cfg=cfg, out_dir=args.out, settings=settings, models_dir=args.models_dir,
                               pretrained=pretrained, checkpoint_val=templates, zscore_reference=templates,
                               device=args.device, notes=notes,
                               command="contrastive-anomaly " + shlex.join(sys.argv[1:]))
    outputs = run_benchmark(folds, request, progress)
    progress.result({name: str(path) for name, path in outputs.items()})
    if args.progress != "jsonl":
        print(f"benchmark written to {args.out} (results.csv, results.md, summary.png, montages)")
    return 0

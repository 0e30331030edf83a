"""The ``contrastive-anomaly benchmark`` sub-command (parser and body; cli/main.py registers both)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ...runtime.progress import ProgressReporter

DEFAULT_KINDS = "tumour,stroke,ms"


def add_benchmark_parser(sub: argparse._SubParsersAction, epilog: str | None = None) -> argparse.ArgumentParser:
    """Add ``benchmark`` to the top-level sub-parsers ``sub`` (``epilog``: the closing line of ``--help``)."""
    bench = sub.add_parser(
        "benchmark", epilog=epilog,
        help="leave-one-real-subject-out synthetic-lesion benchmark of a model vs the template z-score",
        description="Holds out each real T1 subject of the corpus in turn, plants lesions in every real subject, "
                    "calibrates rule A (best Dice) and rule B (healthy FPR) and the z-score statistics on the other "
                    "subjects only, and reports in-brain AUROC/AUPRC (+ prevalence), Dice by both rules, the floor, "
                    "the ceiling and the healthy false-positive volume for the model and the z-score baseline, plus "
                    "the model's reconstruction diagnostics. Example: contrastive-anomaly benchmark --corpus "
                    "data/registry --out bench --model t1-compact-wholebrain --lesions-per-kind 5")
    bench.add_argument("--corpus", type=Path, required=True, help="corpus folder written by 'data fetch'")
    bench.add_argument("--out", type=Path, required=True, help="folder for results.md/csv and diagnostics.json/md")
    bench.add_argument("--model", help="model folder or registered name (default: the default model); it must not "
                                       "have been trained on the real subjects")
    bench.add_argument("--kinds", default=DEFAULT_KINDS, help=f"lesion kinds, comma-separated (default "
                                                              f"{DEFAULT_KINDS}; also control_intensity)")
    bench.add_argument("--subjects", help="real subjects to use, comma-separated (default: all five)")
    bench.add_argument("--lesions-per-kind", type=int, default=5, help="cases per kind per subject (default 5)")
    bench.add_argument("--copy-cases", type=int, default=1,
                       help="cases per kind per subject for the copied-contrast diagnostic (default 1)")
    bench.add_argument("--diagnostic-templates", type=int, default=1,
                       help="training templates the model scores for the healthy-error diagnostic (default 1)")
    bench.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="override the model's precision")
    bench.add_argument("--noise-seeds", type=int,
                       help="override the model's noise draws averaged per level (1 = the method)")
    bench.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar", help="progress display")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return bench


def run_benchmark_command(args: argparse.Namespace, progress: ProgressReporter) -> int:
    """Body of ``contrastive-anomaly benchmark``; returns the exit code."""
    from ...data.lesions import LESION_KINDS
    from ...errors import InputError
    from ..request_checks import check_noise_seeds
    from .loso import LosoRequest, run_loso

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = [k for k in kinds if k not in LESION_KINDS]
    if unknown or not kinds:
        raise InputError(f"unknown lesion kinds {unknown}; choose from {','.join(LESION_KINDS)}")
    if args.lesions_per_kind < 1 or args.copy_cases < 0:
        raise InputError("--lesions-per-kind must be at least 1 and --copy-cases at least 0")
    check_noise_seeds(args.noise_seeds)
    subjects = tuple(s.strip() for s in args.subjects.split(",")) if args.subjects else None
    request = LosoRequest(corpus=args.corpus, out_dir=args.out, model=args.model, kinds=kinds, subjects=subjects,
                          lesions_per_kind=args.lesions_per_kind, device=args.device, precision=args.precision,
                          noise_seeds=args.noise_seeds,
                          copy_cases_per_kind=args.copy_cases, diagnostic_templates=args.diagnostic_templates,
                          command="contrastive-anomaly " + shlex.join(sys.argv[1:]))
    outputs = run_loso(request, progress)
    progress.result({name: str(path) for name, path in outputs.items()})
    if args.progress != "jsonl":
        print(f"benchmark written to {args.out} (results.md, results.csv, diagnostics.json, diagnostics.md)")
    return 0

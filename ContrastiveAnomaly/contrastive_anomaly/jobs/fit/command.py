"""The ``contrastive-anomaly fit`` sub-command: parser and body (``cli/main.py`` registers both)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...config import CONTRASTS
from ...runtime.progress import ProgressReporter

EXAMPLE = "contrastive-anomaly fit --healthy /data/ixi --contrast T2 --out models/ixi-t2"


def add_fit_parser(sub: argparse._SubParsersAction, epilog: str = "") -> argparse.ArgumentParser:
    """Add ``fit`` to the top-level sub-parsers ``sub``."""
    parser = sub.add_parser(
        "fit", epilog=epilog, help="train a calibrated model on your own healthy scans (resumable)",
        description="From raw healthy scans to a model that detect and the Slicer panel can use: every scan goes "
                    "through the detect preprocessing (cached in OUT/cache), the subjects are split into training and "
                    "held-out, stage 1 and stage 2 train, the threshold is calibrated on the held-out subjects "
                    "(healthy false-positive rule), and OUT becomes a model folder with a generated MODEL_CARD.md, "
                    "registered under its name. Interrupt it at any time; the same command continues. "
                    f"Example: {EXAMPLE}")
    parser.add_argument("--healthy", type=Path,
                        help="healthy scans: a folder of NIfTI/NRRD/MHA files or DICOM series, a BIDS dataset, IXI "
                             "files, or a CSV with a 'path' column (optional: subject, id, contrast, series)")
    parser.add_argument("--contrast", type=str.upper, choices=CONTRASTS,
                        help="which scans to use (BIDS _T1w/_T2w/_FLAIR/_PDw, IXI -T1/-T2/-PD)")
    parser.add_argument("--out", type=Path, required=True, help="the model folder to create (or continue)")
    parser.add_argument("--name", help="name in the model registry (default: the folder's name)")
    parser.add_argument("--preset", choices=("tiny", "compact", "paper"),
                        help="model size: compact (default, CPU-sized), paper (GPU) or tiny (smoke runs)")
    parser.add_argument("--config", type=Path, help="a config.json to start from instead of a preset")
    parser.add_argument("--grid", choices=("whole-brain", "paper-central-100"),
                        help="model grid protocol (default whole-brain; paper-central-100 = the paper's 100 mm slab)")
    parser.add_argument("--steps-encoder", type=int, help="stage-1 optimisation steps (default: the preset's)")
    parser.add_argument("--steps", type=int, help="stage-2 optimisation steps (default: the preset's)")
    parser.add_argument("--seed", type=int, help="seed of the split and of training (default: the preset's)")
    parser.add_argument("--held-out-fraction", type=float,
                        help="share of subjects held out for validation and calibration (default 0.2, at least one)")
    parser.add_argument("--allow-qc-warnings", action="store_true", default=None,
                        help="also train on scans whose registration QC raised a warning (default: leave them out)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the fit in OUT (options not given are taken from OUT/fit.json)")
    parser.add_argument("--no-register", action="store_true", help="do not add the model to the user registry")
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="progress display: tqdm bar on stderr, JSON lines on stdout (for programs), or none")
    parser.add_argument("--device", default="auto", help="auto (GPU if available), cpu, cuda or cuda:N")
    return parser


def run_fit_command(args: argparse.Namespace, progress: ProgressReporter) -> int:
    """Body of ``contrastive-anomaly fit``; returns the exit code."""
    from .request import FitRequest
    from .run import fit

    request = FitRequest(out_dir=args.out, healthy=args.healthy, contrast=args.contrast, preset=args.preset,
                         config=args.config, grid=args.grid, steps_encoder=args.steps_encoder, steps=args.steps,
                         seed=args.seed, name=args.name, device=args.device, resume=args.resume,
                         register=not args.no_register, allow_qc_warnings=args.allow_qc_warnings,
                         held_out_fraction=args.held_out_fraction)
    result = fit(request, progress)
    if args.progress != "jsonl":
        where = f"registered as {result.name!r}" if result.registered else "not registered"
        model = result.name if result.registered else result.model_dir
        print(f"model written to {result.model_dir} ({where}): threshold {result.threshold:.5f}, "
              f"{result.used_scans} scans of {result.subjects} subjects, {len(result.skipped)} left out. "
              f"Use it: contrastive-anomaly detect SCAN --model {model}")
    progress.result(result.outputs(), threshold=result.threshold, name=result.name, registered=result.registered,
                    used_scans=result.used_scans, subjects=result.subjects, skipped=result.skipped)
    return 0

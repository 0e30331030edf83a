#!/usr/bin/env python3
"""The demo case under inference variants: Dice, healthy false-positive volume and model-stage seconds, in one run.

    python benchmarks/bench_demo_variants.py --corpus data/registry [--model M] [--noise-seeds 1 2]
        [--precision fp32] [--thresholds 0.08,0.10,0.13] [--out DIR]

For each number of noise draws per level, the script runs ``demo`` (the ROBEX brain with the tumour-like lesion of
seed 7) and ``detect`` on the same brain without a lesion, both through the whole clinical path, and reads the Dice,
the flagged volume (mL) and the model stage's seconds from their summaries. The variant is passed as detect's
per-request overrides (``--noise-seeds``, ``--precision``), so the runs go through exactly the code users run.
``--thresholds`` adds a sweep: the Dice and the healthy volume at other thresholds, read from each run's threshold
index (no re-run). The statistics and threshold of the model stay those it was calibrated with: a variant the model
was not calibrated for is compared at a threshold that was not fitted to it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import SimpleITK as sitk
import torch

from contrastive_anomaly.jobs.demo import demo_scan, run_demo
from contrastive_anomaly.jobs.detect import OUTPUT_FILES, DetectRequest, detect
from contrastive_anomaly.runtime.precision import cpu_description
from contrastive_anomaly.scoring.metrics import dice
from contrastive_anomaly.scoring.threshold_index import ThresholdIndex, native_mask
from contrastive_anomaly.storage.files import write_json_atomic, write_text_atomic
from contrastive_anomaly.storage.registry import resolve_model

ROOT = Path(__file__).resolve().parents[1]


def sweep(run_dir: Path, thresholds: list[float], truth=None) -> dict[float, float]:
    """Dice against ``truth`` (or flagged mL when ``truth`` is None) at each threshold, from the run's index."""
    index = ThresholdIndex.load(run_dir / OUTPUT_FILES["threshold_index"])
    model_index = sitk.GetArrayFromImage(sitk.ReadImage(str(run_dir / OUTPUT_FILES["model_index"])))
    values = {}
    for threshold in thresholds:
        mask = native_mask(index.model_mask(threshold), model_index)
        values[threshold] = dice(mask, truth) if truth is not None else float(mask.sum() * index.native_voxel_ml)
    return values


def run_variant(corpus: Path, model: Path, work: Path, noise_seeds: int, precision: str,
                thresholds: list[float]) -> dict[str, Any]:
    demo = run_demo(corpus, work / f"demo-{noise_seeds}", model=str(model), device="cpu", precision=precision,
                    noise_seeds=noise_seeds)
    scan, _ = demo_scan(corpus)
    sitk.WriteImage(scan, str(work / "healthy.nii.gz"))
    healthy = detect(DetectRequest(input=work / "healthy.nii.gz", out_dir=work / f"healthy-{noise_seeds}",
                                   model=str(model), device="cpu", precision=precision, noise_seeds=noise_seeds))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(demo["synthetic_lesion"]["mask"])) > 0
    return {"noise_seeds": noise_seeds, "threshold": demo["threshold"], "demo_dice": demo["dice"],
            "healthy_ml": healthy["total_volume_ml"], "model_s_demo": demo["timings_s"]["model"],
            "model_s_healthy": healthy["timings_s"]["model"],
            "sweep_dice": sweep(work / f"demo-{noise_seeds}", thresholds, truth),
            "sweep_healthy_ml": sweep(work / f"healthy-{noise_seeds}", thresholds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--model", default=None, help="model folder or name (default: the default model)")
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="fp32")
    parser.add_argument("--thresholds", default="", help="comma-separated extra thresholds for the sweep")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    model = resolve_model(args.model)
    thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
    with tempfile.TemporaryDirectory() as scratch:
        rows = [run_variant(args.corpus, model, Path(scratch), n, args.precision, thresholds)
                for n in args.noise_seeds]
    hardware = f"{cpu_description()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    lines = [f"# Demo case under inference variants ({model.name})", "",
             f"Command: `python benchmarks/bench_demo_variants.py --corpus {args.corpus} --noise-seeds "
             f"{' '.join(map(str, args.noise_seeds))} --precision {args.precision}"
             + (f" --thresholds {args.thresholds}" if thresholds else "") + "`", "",
             f"Machine: {hardware}. One case (ROBEX + tumour-like lesion, seed 7) and the same brain without it.", "",
             "| noise draws per level | threshold | demo Dice | healthy mL flagged | model stage s (demo, healthy) |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['noise_seeds']} | {row['threshold']:.4f} | {row['demo_dice']:.3f} | "
                     f"{row['healthy_ml']:.1f} | {row['model_s_demo']:.1f}, {row['model_s_healthy']:.1f} |")
    if thresholds:
        lines += ["", "Threshold sweep (Dice / healthy mL):", "",
                  "| noise draws | " + " | ".join(f"{t:g}" for t in thresholds) + " |",
                  "|---|" + "---|" * len(thresholds)]
        for row in rows:
            lines.append(f"| {row['noise_seeds']} | " + " | ".join(
                f"{row['sweep_dice'][t]:.3f} / {row['sweep_healthy_ml'][t]:.1f}" for t in thresholds) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic("\n".join(lines) + "\n", args.out / "demo_variants.md")
    write_json_atomic({"model": str(model), "hardware": hardware, "rows": rows}, args.out / "demo_variants.json",
                      default=str)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

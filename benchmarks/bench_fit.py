#!/usr/bin/env python3
"""What ``fit`` costs per phase on this machine, and a FLOP-based estimate for one GPU:

    python benchmarks/bench_fit.py [--presets compact paper] [--scan data/registry/robex_subject/atlas.nii.gz]

* preprocessing: seconds per scan of the ``detect`` pipeline (``prepare_file``, as the fit cache runs it) on a
  synthetic 1 mm head (256 x 256 x 180) and, if given, a real scan; median of ``--repeats``;
* training: seconds per optimiser step of stage 1 and stage 2 at each preset's own batch size on its own grid (fp32,
  median of ``--repeats`` after a warm-up step), and the FLOPs of one step counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (forward + backward at batch 2, scaled to the preset's batch;
  the AdamW update is not counted);
* calibration: seconds to score one held-out volume (the ``detect`` model stage: all inference levels).

The GPU column is an ESTIMATE, not a measurement: FLOPs per step divided by an assumed sustained bf16 throughput
(``--gpu-tflops``, default 200 TFLOP/s: about a fifth of an H100/H200's dense bf16 peak, a typical share for
small convolutional networks). The report says so next to every such number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from contrastive_anomaly.config import preset
from contrastive_anomaly.data.phantoms import head_phantom
from contrastive_anomaly.jobs.fit.hardware import describe, hardware_summary
from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.method.masking import MaskedImageModel
from contrastive_anomaly.method.noise import NoiseSampler
from contrastive_anomaly.preprocess import prepare_volume
from contrastive_anomaly.scoring.detector import Detector
from contrastive_anomaly.scoring.volume_score import score_volume
from contrastive_anomaly.storage.files import read_image

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_SIZE, SYNTHETIC_SPACING = (256, 256, 180), (1.0, 1.0, 1.0)
DEFAULT_GPU_TFLOPS = 200.0
FLOP_COUNT_BATCH = 2


def median_seconds(run: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median wall seconds and median CPU seconds of this process (all threads) over ``repeats`` runs.

    On a shared machine the wall time grows with the other jobs' load; the CPU time much less, so both are kept.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def stage_steps(name: str, batch: int | None = None) -> dict[str, tuple[Callable[[], None], int]]:
    """``{stage: (one optimiser step, batch size)}`` of a preset on synthetic slices of its grid, at the preset's own
    batch sizes unless ``batch`` is given."""
    cfg = preset(name)
    rows, cols = cfg.grid.slice_shape
    torch.manual_seed(0)
    steps = {}
    encoder = MaskedImageModel(cfg.encoder).train()
    enc_opt = torch.optim.AdamW(encoder.parameters(), lr=1e-4)
    enc_size = batch or cfg.encoder_training.batch_size
    enc_batch = torch.rand(enc_size, 1, rows, cols)

    def encoder_step() -> None:
        loss = encoder(enc_batch, generator=torch.Generator().manual_seed(0))["loss"]
        enc_opt.zero_grad(set_to_none=True)
        loss.backward()
        enc_opt.step()

    steps["stage 1"] = (encoder_step, enc_size)
    model = AnomalyDiffusionModel(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = batch or cfg.diffusion_training.batch_size
    x01 = torch.rand(batch, 1, rows, cols)
    k = torch.randint(0, cfg.diffusion.num_timesteps, (batch,))
    noise = NoiseSampler(cfg.diffusion.noise, np.random.default_rng(0)).sample(batch, rows, cols)

    def diffusion_step() -> None:
        loss = model.training_loss(x01, k, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    steps["stage 2"] = (diffusion_step, batch)
    return steps


def flops_of(name: str, stage: str, batch: int) -> int:
    """FLOPs of one step at the preset's ``batch``, counted at :data:`FLOP_COUNT_BATCH` and scaled linearly (every
    layer's work is proportional to the batch; counting the paper model at batch 32 needs more memory than we have).
    """
    step, _ = stage_steps(name, batch=FLOP_COUNT_BATCH)[stage]
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops()) * batch // FLOP_COUNT_BATCH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["compact", "paper"])
    parser.add_argument("--flops-only", nargs="*", default=[],
                        help="presets whose steps are only counted (FLOPs, GPU estimate), not timed on this CPU")
    parser.add_argument("--scan", type=Path, help="a real scan to time preprocessing on as well")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-tflops", type=float, default=DEFAULT_GPU_TFLOPS,
                        help="assumed sustained bf16 TFLOP/s of one GPU for the estimate")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    hardware = hardware_summary()
    results: dict[str, object] = {"hardware": hardware, "gpu_tflops_assumed": args.gpu_tflops, "presets": {}}
    cfg = preset("compact")
    phantom = head_phantom(size=SYNTHETIC_SIZE, spacing=SYNTHETIC_SPACING, bias_amplitude=0.2, noise_sigma=0.02)
    preprocess = {"synthetic head 1 mm 256x256x180": median_seconds(lambda: prepare_volume(phantom.image, cfg),
                                                                    args.repeats)}
    if args.scan is not None:
        image = read_image(args.scan)
        preprocess[f"{args.scan.name} {'x'.join(map(str, image.GetSize()))}"] = median_seconds(
            lambda: prepare_volume(image, cfg), args.repeats)
    results["preprocess_s_per_scan"] = preprocess
    print(f"preprocessing: {preprocess}", flush=True)
    for name in [*args.presets, *args.flops_only]:
        timed = name in args.presets
        entry: dict[str, object] = {}
        stages = stage_steps(name) if timed else {}
        for stage in ("stage 1", "stage 2"):
            batch = getattr(preset(name), "encoder_training" if stage == "stage 1" else "diffusion_training").batch_size
            seconds = {"wall": float("nan"), "cpu": float("nan")}
            if timed:
                step = stages[stage][0]
                step()  # warm-up
                seconds = median_seconds(step, args.repeats)
            flops = flops_of(name, stage, batch)
            print(f"{name} {stage}: {seconds}, {flops / 1e9:.0f} GFLOP", flush=True)
            entry[stage] = {"batch": batch, "s_per_step": seconds, "gflops_per_step": flops / 1e9,
                            "gpu_s_per_step_estimate": flops / (args.gpu_tflops * 1e12)}
        cfg_p = preset(name)
        model = AnomalyDiffusionModel(cfg_p)
        detector = Detector.from_model(model, torch.device("cpu"), cfg=cfg_p)
        shape_kji = tuple(reversed(cfg_p.grid.shape))
        brain = np.zeros(shape_kji, dtype=np.uint8)
        brain[4:-4, 8:-8, 8:-8] = 1
        volume = (np.random.default_rng(0).random(shape_kji, dtype=np.float32) * brain).astype(np.float32)
        not_timed = {"wall": float("nan"), "cpu": float("nan")}
        entry["calibrate_s_per_scan"] = median_seconds(lambda d=detector, v=volume, b=brain: score_volume(d, v, b), 1) \
            if timed else not_timed
        entry["steps"] = {"stage 1": cfg_p.encoder_training.steps, "stage 2": cfg_p.diffusion_training.steps}
        results["presets"][name] = entry
    lines = [f"# fit cost per phase: {describe(hardware)}", "",
             f"Command: `python benchmarks/bench_fit.py --presets {' '.join(args.presets)}"
             f"{' --flops-only ' + ' '.join(args.flops_only) if args.flops_only else ''}"
             f"{' --scan ' + str(args.scan) if args.scan else ''} --repeats {args.repeats}`; 1-min load average "
             f"at the end: {os.getloadavg()[0]:.1f} (the machine is shared; times are noisy).", "",
             "Wall = elapsed seconds; CPU = CPU seconds of the process over all its threads (less sensitive to the "
             "other jobs on the machine). Both measured, medians.", "",
             "| preprocessing input | wall s per scan | CPU s per scan |", "|---|---|---|"]
    lines += [f"| {label} | {s['wall']:.1f} | {s['cpu']:.1f} |" for label, s in preprocess.items()]
    lines += ["", "| preset | stage | batch | steps (preset) | wall s/step | CPU s/step | GFLOP/step (counted) | "
                  "GPU s/step (ESTIMATE) |", "|---|---|---|---|---|---|---|---|"]
    for name, entry in results["presets"].items():
        for stage in ("stage 1", "stage 2"):
            row = entry[stage]
            lines.append(f"| {name} | {stage} | {row['batch']} | {entry['steps'][stage]} | "
                         f"{row['s_per_step']['wall']:.2f} | {row['s_per_step']['cpu']:.2f} | "
                         f"{row['gflops_per_step']:.0f} | "
                         f"{row['gpu_s_per_step_estimate']:.4f} |")
        calibrate = entry["calibrate_s_per_scan"]
        lines.append(f"| {name} | calibration, per held-out scan | | | {calibrate['wall']:.1f} | "
                     f"{calibrate['cpu']:.1f} | | |")
    lines += ["", f"GPU numbers assume {args.gpu_tflops:g} TFLOP/s sustained bf16 on one GPU; they are estimates "
                  "from counted FLOPs, not measurements."]
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fit_cpu.md").write_text(report, encoding="utf-8")
    (args.out / "fit_cpu.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

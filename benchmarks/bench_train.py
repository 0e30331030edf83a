#!/usr/bin/env python3
"""Training throughput (stage 2 slices per second) per preset and variant, measured in one run:

    python benchmarks/bench_train.py [--presets tiny compact] [--repeats 3] [--steps 3] [--out benchmarks/results]

For each preset, one optimiser step of the stage-2 objective (encoder forward + UNet forward/backward + AdamW) on a
batch of model-grid slices is timed for these variants: fp32 eager (the baseline), bf16 autocast, channels_last
memory format, and ``torch.compile`` (if it compiles here). Variants are interleaved in every repeat so that a
machine's changing load hits them alike; the report gives the median (min-max) of the repeats and each variant's
speed relative to fp32 within the same run. The CPU model and its bf16-relevant flags are recorded, since bf16 is
only fast with AVX-512-BF16 or AMX.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from contrastive_anomaly.config import preset
from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.method.noise import NoiseSampler
from contrastive_anomaly.runtime.precision import cpu_description

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("fp32", "bf16", "channels_last", "compile")


def make_step(preset_name: str, variant: str, batch: int, device: torch.device) -> Callable[[], None] | None:
    """One training step of ``variant`` as a closure (None when the variant cannot run here)."""
    import numpy as np

    cfg = preset(preset_name)
    torch.manual_seed(0)
    model = AnomalyDiffusionModel(cfg).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows, cols = cfg.grid.slice_shape
    x01 = torch.rand(batch, 1, rows, cols, device=device)
    k = torch.randint(0, cfg.diffusion.num_timesteps, (batch,), device=device)
    noise = NoiseSampler(cfg.diffusion.noise, np.random.default_rng(0)).sample(1, rows, cols, device=device)
    loss_fn: Callable[..., torch.Tensor] = model.training_loss
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x01 = x01.contiguous(memory_format=torch.channels_last)
    if variant == "compile":
        try:
            loss_fn = torch.compile(model.training_loss)
            loss_fn(x01, k, noise).backward()  # compile now, outside the timing
        except Exception as exc:  # noqa: BLE001 - report that the variant does not run here and go on
            print(f"{preset_name}/compile: not available ({str(exc).splitlines()[0][:120]})")
            return None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant == "bf16")

    def step() -> None:
        with autocast:
            loss = loss_fn(x01, k, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: kernel selection and allocator
    return step


def timed(step: Callable[[], None], steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "compact"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--batch", type=int, default=16, help="slices per step")
    parser.add_argument("--steps", type=int, default=3, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    device = torch.device(args.device)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    results: dict[str, dict[str, list[float]]] = {}
    for name in args.presets:
        steps = {v: make_step(name, v, args.batch, device) for v in args.variants}
        runnable = {v: s for v, s in steps.items() if s is not None}
        seconds: dict[str, list[float]] = {v: [] for v in runnable}
        for _ in range(args.repeats):
            for variant, step in runnable.items():  # interleaved: load changes hit every variant alike
                seconds[variant].append(timed(step, args.steps, device))
        results[name] = seconds
    lines = [f"# Training throughput (stage 2), {hardware}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, batch {args.batch}",
             "", f"Command: `python benchmarks/bench_train.py --presets {' '.join(args.presets)} --variants "
             f"{' '.join(args.variants)} --repeats {args.repeats} --steps {args.steps} --batch {args.batch}`", "",
             "Timings on a shared machine scale with its load; the ratio to fp32 within this run is the stable figure.",
             "",
             "| preset | variant | s/step, median (min-max) | slices/s | speed vs fp32 (same run) |",
             "|---|---|---|---|---|"]
    for name, seconds in results.items():
        base = statistics.median(seconds["fp32"]) if "fp32" in seconds else None
        for variant, values in seconds.items():
            median = statistics.median(values)
            ratio = f"{base / median:.2f}x" if base else "-"
            lines.append(f"| {name} | {variant} | {median:.3f} ({min(values):.3f}-{max(values):.3f}) | "
                         f"{args.batch / median:.1f} | {ratio} |")
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"train_{device.type}.md").write_text(report, encoding="utf-8")
    (args.out / f"train_{device.type}.json").write_text(json.dumps(
        {"hardware": hardware, "machine": platform.machine(), "torch": torch.__version__, "batch": args.batch,
         "seconds_per_step": results}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

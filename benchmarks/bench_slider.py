"""Time one move of the panel's threshold slider on a 300 x 512 x 512 scan (the size the slider must stay fast on).

What a move costs in the panel (``ContrastiveAnomalyLib.findings.ResultIndex``): the mask decision and the
findings table on the model grid (88 x 96 x 96, the whole-brain default), measured on the native grid through the
per-model-voxel sums built once per result. That is the readout the panel updates on every move; the native mask
written into the segment follows on a pause (debounced) and is timed separately. For reference, the old path (native
threshold, native component filter, native labelling, as before) is timed once.

The maps are synthetic: a smooth "clean" map with a few blobs and a "noisy" one (white noise on top, many small
components), both above the threshold range the slider sweeps. Each move uses a new threshold (no cache hit), spread
over the map's range in a shuffled order; median and min-max over ``--moves`` moves.

    python benchmarks/bench_slider.py [--moves 40] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ContrastiveAnomaly"))

from contrastive_anomaly.scoring.postprocess import remove_small_components  # noqa: E402
from contrastive_anomaly.scoring.regions import find_regions  # noqa: E402
from contrastive_anomaly.scoring.threshold_index import ThresholdIndex  # noqa: E402
from ContrastiveAnomalyLib.findings import ResultIndex  # noqa: E402

NATIVE_SHAPE = (300, 512, 512)  # KJI
HEAD_SHAPE = (180, 256, 256)  # KJI, a 1 mm head
MODEL_SHAPE = (88, 96, 96)      # KJI, the whole-brain 2 mm grid
MAX_REMOVED, CONNECTIVITY = 7, 26
TARGET_MS = 100.0


def model_map(kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(MODEL_SHAPE)
    brain = ((k - 44) / 42.0) ** 2 + ((j - 48) / 45.0) ** 2 + ((i - 48) / 40.0) ** 2 <= 1.0
    scores = ndimage.gaussian_filter(rng.random(MODEL_SHAPE), 1.5) * 0.3
    for _ in range(4):
        centre = rng.integers((20, 25, 25), (70, 70, 70))
        scores += 0.5 * np.exp(-((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2) / 18.0)
    if kind == "noisy":
        scores += 0.15 * rng.random(MODEL_SHAPE)
    return (scores * brain).astype(np.float32)


def native_index(native_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Each native voxel samples the model voxel it falls in (a scaled, slightly shifted grid; 0 outside)."""
    axes = []
    for native, model in zip(native_shape or NATIVE_SHAPE, MODEL_SHAPE, strict=True):
        position = (np.arange(native) + 0.5) * (model + 6) / native - 3  # the scan reaches beyond the model grid
        index = np.floor(position).astype(np.int64)
        axes.append(np.where((index >= 0) & (index < model), index, -1))
    k, j, i = np.meshgrid(*axes, indexing="ij", sparse=True)
    flat = (k * MODEL_SHAPE[1] + j) * MODEL_SHAPE[2] + i + 1
    flat = np.where((k < 0) | (j < 0) | (i < 0), 0, flat)
    return flat.astype(np.int32)


def detect_index_cost(filtered, index_kji, native_ijk_to_lps) -> float:
    """Seconds ``detect`` spends on the index at its threshold: the model-grid part, the mask, the regions."""
    start = time.perf_counter()
    light = ThresholdIndex.on_model_grid(filtered, native_ijk_to_lps, max_removed_component_voxels=MAX_REMOVED,
                                         connectivity=CONNECTIVITY)
    mask = light.model_mask(0.5 * float(filtered.max()))
    light.regions_from_native(mask, index_kji)
    return time.perf_counter() - start


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return (time.perf_counter() - start) * 1000.0


def old_path(native_map: np.ndarray, threshold: float) -> None:
    """What a move cost before: threshold, component filter and labelling on the native grid."""
    mask = remove_small_components(native_map > threshold, MAX_REMOVED, CONNECTIVITY)
    find_regions(mask, native_map, (0.5, 0.5, 0.6), (0.0, 0.0, 0.0), np.eye(3).ravel())


def machine() -> dict:
    flags = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                     platform.processor())
        flags = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Flags")), "")
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor()
    wanted = ("avx2", "avx512f", "amx_tile")
    return {"cpu": model, "flags": [f for f in wanted if f in flags.split()], "python": platform.python_version(),
            "numpy": np.__version__, "load_average_1min": round(os.getloadavg()[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--skip-old", action="store_true", help="do not time the old native path")
    args = parser.parse_args()
    index_kji = native_index()
    native_ijk_to_lps = np.diag([0.5, 0.5, 0.6, 1.0])
    results = {"native_shape_kji": NATIVE_SHAPE, "model_shape_kji": MODEL_SHAPE, "moves": args.moves,
               "machine": machine(), "cases": {}}
    rng = np.random.default_rng(1)
    for kind in ("clean", "noisy"):
        filtered = model_map(kind)
        native_map = np.concatenate([[0.0], filtered.ravel()]).astype(np.float32)[index_kji]
        detect_s = detect_index_cost(filtered, index_kji, native_ijk_to_lps)
        start = time.perf_counter()
        built = ThresholdIndex.build(filtered, index_kji, native_ijk_to_lps,
                                     max_removed_component_voxels=MAX_REMOVED, connectivity=CONNECTIVITY)
        build_s = time.perf_counter() - start
        result = ResultIndex(built, index_kji)
        top = float(filtered.max())
        thresholds = rng.permutation(np.linspace(0.02 * top, 0.98 * top, args.moves))
        readout_ms = [timed(result.readout, float(t)) for t in thresholds]
        segment_ms = [timed(result.native_mask, float(t)) for t in thresholds[: max(5, args.moves // 4)]]
        case = {"build_s": round(build_s, 2), "detect_index_s": round(detect_s, 2),
                "readout_ms": {"median": round(statistics.median(readout_ms), 1), "min": round(min(readout_ms), 1),
                               "max": round(max(readout_ms), 1)},
                "segment_mask_ms": {"median": round(statistics.median(segment_ms), 1),
                                    "min": round(min(segment_ms), 1), "max": round(max(segment_ms), 1)}}
        if not args.skip_old:
            threshold = float(np.median(thresholds))

            case["old_native_path_ms"] = round(timed(old_path, native_map, threshold), 0)
        results["cases"][kind] = case
        print(kind, json.dumps(case), flush=True)
    head_index = native_index(HEAD_SHAPE)
    results["head_detect_index_s"] = round(detect_index_cost(model_map("clean"), head_index, np.eye(4)), 2)
    print("head", results["head_detect_index_s"], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "slider.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = ["# Threshold slider: one move on a 300 x 512 x 512 scan", "",
             f"`python benchmarks/bench_slider.py --moves {args.moves}`; {results['machine']['cpu']} "
             f"(flags: {', '.join(results['machine']['flags']) or 'none of avx2/avx512f/amx'}), one process, "
             f"numpy {np.__version__}, 1-minute load average {results['machine']['load_average_1min']} at the "
             "start (the machine is shared: timings scale with it; the ratio to the old path within one run is the "
             f"stable figure). Target: median under {TARGET_MS:.0f} ms per move.", "",
             "| map | readout per move (mask decision + findings), median [min-max] ms | native segment mask "
             "(on pause), median ms | old native path, one move, ms | panel: native sums at result load, s | "
             "detect: index + regions, s |", "|---|---|---|---|---|---|"]
    for kind, case in results["cases"].items():
        r, s = case["readout_ms"], case["segment_mask_ms"]
        lines.append(f"| {kind} | {r['median']} [{r['min']}-{r['max']}] | {s['median']} | "
                     f"{case.get('old_native_path_ms', 'n/a')} | {case['build_s']} | {case['detect_index_s']} |")
    lines += ["", f"`detect` on a 1 mm {' x '.join(map(str, HEAD_SHAPE))} head (KJI): index + regions "
              f"{results['head_detect_index_s']} s (the model-grid part and the regions from the native voxels in the "
              "mask; the whole-grid native sums are added by the panel when it loads the result)."]
    (args.out / "slider.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

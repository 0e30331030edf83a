"""A fake ``contrastive_anomaly.cli.main detect`` for panel tests: the real JSON-lines protocol and real output files,
without a model.

Usage (the arguments ``detect`` gets from the panel): ``fake_detect.py detect INPUT --out DIR --model FOLDER ...``.
The model folder's ``fake_mode.txt`` says what to do: ``ok`` (default) or ``fail``. Before the result it waits for
the file named by ``$FAKE_DETECT_GATE`` (when set) so a test can look at the panel while the run is going.

Outputs, all on the input's grid (SimpleITK copies the input's geometry, LPS): the anomaly map is the input's
intensity where it exceeds :data:`MAP_FLOOR` (0 elsewhere), so bright blobs are the anomalies; the model grid is the
input grid (``model_index`` numbers every voxel), and the mask, regions and ``summary.json`` come from the engine's
own :class:`ThresholdIndex` at :data:`THRESHOLD`, exactly as ``detect`` makes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from contrastive_anomaly.runtime import events
from contrastive_anomaly.scoring.regions import regions_summary
from contrastive_anomaly.scoring.threshold_index import ThresholdIndex, ijk_to_lps_of
from contrastive_anomaly.storage.segmentation import write_anomaly_segmentation

MAP_FLOOR = 0.5
THRESHOLD = 0.6
POSTPROCESS = {"threshold": THRESHOLD, "max_removed_component_voxels": 1, "connectivity": 26}
STAGES = ("read", "model", "write")
GATE_TIMEOUT_S = 60.0


def emit(payload: dict) -> None:
    print(events.to_line(payload), flush=True)


def write_like(array: np.ndarray, reference: sitk.Image, path: Path) -> str:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path), useCompression=True)
    return str(path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("input")
    parser.add_argument("--out", required=True)
    for flag in ("--model", "--device", "--progress", "--contrast", "--brain-mask", "--threshold", "--seed"):
        parser.add_argument(flag)
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args(argv)
    mode_file = Path(args.model) / "fake_mode.txt"
    mode = mode_file.read_text().strip() if mode_file.is_file() else "ok"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / "argv.json").write_text(json.dumps(argv))

    emit(events.stage_start_event("read", total=1, index=1, count=len(STAGES)))
    image = sitk.ReadImage(args.input)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    emit(events.progress_event("read", 1, 1, eta_s=0.0, overall=0.1))
    emit(events.stage_end_event("read", seconds=0.01, overall=0.1))
    if mode == "fail":
        emit(events.error_event("the scan's contrast (T2) differs from the model's (T1)", kind="InputError",
                                exit_code=2))
        return 2
    emit(events.stage_start_event("model", total=4, index=2, count=len(STAGES)))
    for done in range(1, 5):
        emit(events.progress_event("model", done, 4, eta_s=4.0 - done, overall=0.1 + 0.15 * done))
    emit(events.warning_event("fake engine: no model was run", code="fake", stage="model"))
    gate = os.environ.get("FAKE_DETECT_GATE")
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while gate and not Path(gate).exists():
        if time.monotonic() > deadline:
            emit(events.error_event("the test never opened the gate", kind="TimeoutError", exit_code=1))
            return 1
        time.sleep(0.02)

    scores = np.where(array > MAP_FLOOR, array, 0.0).astype(np.float32)
    model_index = np.arange(1, scores.size + 1, dtype=np.int32).reshape(scores.shape)
    index = ThresholdIndex.build(scores, model_index,
                                 ijk_to_lps_of(image.GetSpacing(), image.GetOrigin(), image.GetDirection()),
                                 max_removed_component_voxels=POSTPROCESS["max_removed_component_voxels"],
                                 connectivity=POSTPROCESS["connectivity"])
    mask, regions = index.mask_and_regions(THRESHOLD)
    outputs = {
        "anomaly_map": write_like(scores, image, out / "anomaly_map.nii.gz"),
        "reconstruction": write_like(np.minimum(array, MAP_FLOOR), image, out / "reconstruction.nii.gz"),
        "mask": write_like(mask.astype(np.uint8), image, out / "anomaly_mask.nii.gz"),
        "brain_mask": write_like((array > 0).astype(np.uint8), image, out / "brain_mask.nii.gz"),
        "segmentation": str(write_anomaly_segmentation(mask, image, out / "anomaly.seg.nrrd")),
        "threshold_index": str(index.save(out / "threshold_index.npz")),
        "model_index": write_like(model_index, image, out / "model_index.nii.gz"),
    }
    summary = {"threshold": THRESHOLD, "postprocess": POSTPROCESS, **regions_summary(regions),
               "regions": [region.to_dict() for region in regions]}
    outputs["summary"] = str(out / "summary.json")
    Path(outputs["summary"]).write_text(json.dumps(summary))
    emit(events.stage_end_event("model", seconds=0.01, overall=0.7))
    emit(events.stage_start_event("write", total=1, index=3, count=len(STAGES)))
    emit(events.progress_event("write", 1, 1, eta_s=0.0, overall=1.0))
    emit(events.stage_end_event("write", seconds=0.01, overall=1.0))
    emit(events.result_event(outputs, threshold=THRESHOLD, postprocess=POSTPROCESS, seed=0, precision="fp32",
                             timings_s={"read": 0.01, "model": 0.01, "write": 0.01},
                             warnings=["fake engine: no model was run"], region_count=summary["region_count"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

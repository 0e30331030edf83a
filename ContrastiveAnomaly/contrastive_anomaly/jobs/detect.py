"""``detect``: from a scan on disk to anomaly outputs on the scan's own voxel grid.

Stages (names as reported in the progress protocol and in ``timings_s``): load_model, read, validate,
brain_extraction, bias_correction, registration, normalisation (see :mod:`contrastive_anomaly.preprocess`), model,
postprocess, native_space, write. Outputs (all on exactly the input grid: same size, spacing, origin and direction,
LPS):

* ``anomaly_map.nii.gz``: the filtered residual map, float32, normalised-intensity units;
* ``reconstruction.nii.gz``: the pseudo-healthy reconstruction, float32, normalised intensity in [0, 1];
* ``anomaly_mask.nii.gz``: uint8 0/1 after threshold and component filter;
* ``brain_mask.nii.gz``: uint8 0/1;
* ``anomaly.seg.nrrd``: the mask as a Slicer segmentation with name, colour and terminology;
* ``summary.json``: threshold, regions (volume mL, peak/mean score, centroid RAS), model, QC, timings, warnings.
* ``threshold_index.npz`` and ``model_index.nii.gz`` (int32, 1-based model voxel sampled by each voxel, 0 outside):
  what re-thresholding needs (the Slicer panel's slider), see :mod:`contrastive_anomaly.scoring.threshold_index`.
  The index file holds the model-grid part only; the panel adds the whole-grid native sums when it loads a result,
  so ``detect`` never pays for them.

The mask is decided on the model grid and looked up natively; regions are the model-grid components measured on the
input grid, so ``summary.json`` and the panel report the same regions at the same threshold.

Everything is written in a staging folder and moved into place only when complete.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from .. import __version__
from ..preprocess import prepare_file
from ..runtime.precision import deterministic_inference, precision_name, resolve_device
from ..runtime.progress import ProgressReporter
from ..scoring.detector import Detector, load_detector
from ..scoring.normalisation import map_label, map_units
from ..scoring.regions import regions_summary
from ..scoring.volume_score import score_volume
from ..storage.files import image_from_array, jsonable, staged_outputs, write_image_atomic, write_json_atomic
from ..storage.segmentation import write_anomaly_segmentation
from .coverage import coverage_warning, scored_coverage
from .native_outputs import native_outputs
from .request_checks import check_detect_request, check_threshold, range_for_normalisation

# Typical stage durations (s) of the default model on the 2-core CPU of docs/PERFORMANCE.md: only their ratios
# matter, as weights of the run's ``overall`` progress fraction.
DETECT_STAGE_SECONDS = {"load_model": 1.0, "read": 0.5, "validate": 0.2, "brain_extraction": 8.0,
                        "bias_correction": 4.0, "registration": 6.0, "normalisation": 1.0, "model": 10.0,
                        "postprocess": 0.5, "native_space": 1.0, "write": 1.5}
PREPROCESS_ONLY_STAGES = ("brain_extraction", "bias_correction", "registration")

OUTPUT_FILES = {
    "anomaly_map": "anomaly_map.nii.gz",
    "reconstruction": "reconstruction.nii.gz",
    "mask": "anomaly_mask.nii.gz",
    "brain_mask": "brain_mask.nii.gz",
    "segmentation": "anomaly.seg.nrrd",
    "summary": "summary.json",
    "threshold_index": "threshold_index.npz",
    "model_index": "model_index.nii.gz",
}


@dataclass
class DetectRequest:
    """What the user asked for. ``on_model_grid=None`` decides from the input size (equal to the model grid)."""

    input: Path
    out_dir: Path
    model: str | None = None
    brain_mask: Path | None = None
    contrast: str | None = None
    device: str = "auto"
    threshold: float | None = None
    fast: bool = False
    series_uid: str | None = None
    seed: int | None = None
    precision: str | None = None
    on_model_grid: bool | None = None
    noise_seeds: int | None = None


def _is_on_model_grid(path: Path, shape_ijk: tuple[int, int, int]) -> bool:
    if path.is_dir():
        return False
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return False  # the read stage reports the error
    return tuple(reader.GetSize()) == tuple(shape_ijk)


def detect(request: DetectRequest, progress: ProgressReporter | None = None,
           detector: Detector | None = None, *, report_result: bool = True) -> dict[str, Any]:
    """Run the whole detection; returns the summary dict (also written as ``summary.json``).

    ``report_result=False`` leaves the final ``result`` event to a caller that does more work afterwards (the demo),
    so the result stays the last event of the run.

    ``detector``: a model already loaded by :func:`load_detector` (bulk scoring loads it once). The request's
    seed, precision, threshold and fast mode apply to a copy (:meth:`Detector.with_overrides`), so they never
    leak into the next scan.
    """
    progress = progress or ProgressReporter("none")
    check_detect_request(input=Path(request.input), out_dir=Path(request.out_dir),
                         model=request.model if detector is None else str(detector.folder or ""),
                         brain_mask=request.brain_mask, threshold=request.threshold, seed=request.seed,
                         device=request.device, series_uid=request.series_uid, check_model=detector is None,
                         noise_seeds=request.noise_seeds)
    progress.plan(DETECT_STAGE_SECONDS)
    if detector is None:
        with progress.stage("load_model"):
            device = resolve_device(request.device)
            deterministic_inference(device)
            detector = load_detector(request.model, device)
    else:
        deterministic_inference(detector.device)
        map_range = range_for_normalisation(detector.cfg.postprocess.residual_normalisation)
        check_threshold(request.threshold, valid=map_range)
    detector = detector.with_overrides(seed=request.seed, precision=request.precision, threshold=request.threshold,
                                       fast=request.fast, noise_seeds=request.noise_seeds)
    cfg = detector.cfg
    on_grid = request.on_model_grid
    if on_grid is None:
        on_grid = _is_on_model_grid(Path(request.input), cfg.grid.shape)
    if on_grid:
        progress.plan({k: v for k, v in DETECT_STAGE_SECONDS.items() if k not in PREPROCESS_ONLY_STAGES})
    prepared = prepare_file(request.input, cfg, request.brain_mask, request.series_uid, request.contrast, progress,
                            on_model_grid=on_grid)
    progress.timings_s.update({k: v for k, v in prepared.timings_s.items() if k not in progress.timings_s})
    scored = score_volume(detector, prepared.image_kji, prepared.brain_mask_kji, progress)
    with progress.stage("native_space"):
        native = native_outputs(prepared, scored, cfg)
        regions = native.regions
    processed = scored.processed_slice_indices
    coverage = scored_coverage(prepared, np.arange(prepared.image_kji.shape[0]) if processed is None else processed)
    unscored = coverage_warning(coverage)
    if unscored is not None:
        progress.warn(unscored, code="unscored_brain")
    precision = precision_name(detector.dtype)
    postprocess_used = {**dataclasses.asdict(cfg.postprocess), "threshold": scored.threshold}
    summary = {
        "input": str(request.input),
        "threshold": scored.threshold,
        "postprocess": postprocess_used,
        "scored": coverage,
        "fast_mode": request.fast,
        **regions_summary(regions),
        "regions": [region.to_dict() for region in regions],
        "model": {"folder": str(detector.folder), "name": cfg.name, "contrast": cfg.contrast,
                  "training_data": cfg.training_data},
        "inference": {"device": str(detector.device), "dtype": scored.dtype, "batch_size": scored.batch_size,
                      "slices": scored.processed_slices, "seed": cfg.inference.seed,
                      "noise_seeds": cfg.inference.noise_seeds,
                      "precision": precision, "precision_requested": cfg.inference.precision,
                      "threads": torch.get_num_threads()},
        "qc": jsonable(prepared.qc),
        "warnings": list(progress.warnings),
        "warning_codes": list(progress.warning_codes),
        "contrast": {"scan": request.contrast, "model": cfg.contrast,
                     "mismatch": "contrast_mismatch" in progress.warning_codes,
                     "post_contrast_header": "post_contrast" in progress.warning_codes},
        "engine_version": __version__,
        "units": map_units(cfg.postprocess.residual_normalisation),
        "map_label": map_label(cfg.postprocess.residual_normalisation),
    }
    out_dir = Path(request.out_dir)
    reference = prepared.native_reference
    writers = {
        "anomaly_map": lambda path: write_image_atomic(native.anomaly_map, path),
        "reconstruction": lambda path: write_image_atomic(native.reconstruction, path),
        "mask": lambda path: write_image_atomic(native.mask, path),
        "model_index": lambda path: write_image_atomic(image_from_array(native.model_index_kji, reference), path),
        "threshold_index": native.index.save,
        "brain_mask": lambda path: write_image_atomic(prepared.native_brain_mask, path),
        "segmentation": lambda path: write_anomaly_segmentation(native.mask_kji, reference, path),
    }
    with progress.stage("write", total=len(OUTPUT_FILES)) as stage, staged_outputs(out_dir) as staging:
        for done, (name, write) in enumerate(writers.items(), start=1):
            write(staging / OUTPUT_FILES[name])
            stage.advance(done)
        summary["timings_s"] = {k: round(v, 3) for k, v in progress.timings_s.items()}
        write_json_atomic(summary, staging / OUTPUT_FILES["summary"])
    outputs = {name: str(out_dir / filename) for name, filename in OUTPUT_FILES.items()}
    summary["outputs"] = outputs
    if report_result:
        progress.result(outputs, **result_fields(summary))
    return summary


def result_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """The result event's fields (besides outputs, timings and warnings) for a detect summary."""
    return {"threshold": summary["threshold"], "postprocess": summary["postprocess"],
            "seed": summary["inference"]["seed"], "precision": summary["inference"]["precision"],
            "scored": summary["scored"], "region_count": summary["region_count"],
            "total_volume_ml": summary["total_volume_ml"]}

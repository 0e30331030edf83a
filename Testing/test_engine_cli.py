"""End to end through the command line: train -> detect (JSON-lines protocol, geometry) -> evaluate; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.cli.main import main
from contrastive_anomaly.data.phantoms import plant_sphere_lesion
from contrastive_anomaly.data.volumes import Subject, write_subject
from contrastive_anomaly.jobs.detect import OUTPUT_FILES
from contrastive_anomaly.scoring.metrics import dice
from engine_fixtures import small_subjects


def lesion_subject(seed: int) -> Subject:
    subject = small_subjects(1, first_seed=100 + seed)[0]
    image, label = plant_sphere_lesion(subject.image, subject.brain_mask, radius_vox=2.5, intensity=1.0, seed=seed)
    return Subject(name=f"lesion-{seed}", image=image, brain_mask=subject.brain_mask, label=label)


def oblique_lps_image(array_kji: np.ndarray) -> sitk.Image:
    """The array with a rotated, flipped direction, an offset origin and 2 mm voxels (LPS)."""
    image = sitk.GetImageFromArray(array_kji)
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, -1.0]])
    image.SetDirection(rotation.ravel().tolist())
    image.SetOrigin((12.5, -40.0, 7.25))
    image.SetSpacing((2.0, 2.0, 2.0))
    return image


def read_events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_detect_writes_outputs_on_the_input_grid_with_jsonl_progress(trained_tiny_model, tmp_path, capsys):
    subject = lesion_subject(0)
    scan = oblique_lps_image(subject.image)
    sitk.WriteImage(scan, str(tmp_path / "scan.nii.gz"))
    out = tmp_path / "out"
    code = main(["detect", str(tmp_path / "scan.nii.gz"), "--out", str(out), "--model", str(trained_tiny_model),
                 "--progress", "jsonl", "--device", "cpu"])
    events = read_events(capsys.readouterr().out)
    assert code == 0
    progress = [e for e in events if e["event"] == "progress"]
    assert {"model", "postprocess", "native_space", "write"} <= {e["stage"] for e in progress}
    assert all({"stage", "done", "total", "eta_s"} <= set(e) for e in progress)
    result = events[-1]
    assert result["event"] == "result"
    assert set(result["outputs"]) == set(OUTPUT_FILES)
    # every stage starts, moves and ends; the model stage advances per batch, not in one jump
    started = [e["stage"] for e in events if e["event"] == "stage_start"]
    ended = [e["stage"] for e in events if e["event"] == "stage_end"]
    assert started == ended and {"load_model", "read", "model", "postprocess", "native_space", "write"} <= set(ended)
    model_done = [e["done"] for e in progress if e["stage"] == "model"]
    assert len(set(model_done)) >= 4 and model_done == sorted(model_done)
    overall = [e["overall"] for e in events if e["event"] in ("progress", "stage_end")]
    assert overall == sorted(overall) and overall[-1] == 1.0
    # the panel's data: settings used and how much of the brain was scored
    assert result["seed"] == 0 and result["precision"] in ("bf16", "fp32")
    assert result["postprocess"]["threshold"] == result["threshold"]
    assert {"brain_ml", "scored_ml", "unscored_ml", "fraction", "unscored_percent"} <= set(result["scored"])
    assert 0.0 < result["scored"]["fraction"] <= 1.0
    assert {"model", "postprocess", "write"} <= set(result["timings_s"])
    for name in ("anomaly_map", "reconstruction", "mask", "brain_mask"):
        output = sitk.ReadImage(result["outputs"][name])
        assert output.GetSize() == scan.GetSize()
        np.testing.assert_allclose(output.GetOrigin(), scan.GetOrigin(), atol=1e-5)
        np.testing.assert_allclose(output.GetDirection(), scan.GetDirection(), atol=1e-6)
        np.testing.assert_allclose(output.GetSpacing(), scan.GetSpacing(), atol=1e-6)
    summary = json.loads(Path(result["outputs"]["summary"]).read_text(encoding="utf-8"))
    assert summary["region_count"] == len(summary["regions"])
    assert summary["scored"] == result["scored"] and summary["inference"]["seed"] == 0
    assert all(region["peak_score"] >= summary["threshold"] for region in summary["regions"])
    if result["scored"]["unscored_ml"] >= 0.05:
        assert "unscored_brain" in summary["warning_codes"]
    assert not list(out.glob(".staging*")) and not list(out.glob("*.partial*"))


def test_evaluate_reports_both_threshold_rules(trained_tiny_model, tmp_path, capsys):
    for seed in range(2):
        write_subject(lesion_subject(seed), tmp_path / "val")
        write_subject(lesion_subject(10 + seed), tmp_path / "test")
    for subject in small_subjects(2, first_seed=50):
        write_subject(subject, tmp_path / "healthy")
    code = main(["evaluate", "--model", str(trained_tiny_model), "--test", str(tmp_path / "test"),
                 "--val", str(tmp_path / "val"), "--healthy", str(tmp_path / "healthy"),
                 "--out", str(tmp_path / "eval"), "--progress", "none", "--device", "cpu"])
    assert code == 0
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert {"model", "dice", "fpr@0.01", "fpr@0.05"} <= set(report["thresholds"])
    assert report["thresholds"]["fpr@0.05"] <= report["thresholds"]["fpr@0.01"]
    for rule in report["rules"].values():
        assert len(rule["per_volume"]) == 2
        assert 0.0 <= rule["mean"]["dice"] <= 1.0 and 0.0 <= rule["pooled"]["auroc"] <= 1.0
    assert "Dice" in capsys.readouterr().out


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0,) * len(array.shape))
    return image


def _bad_scan(kind: str, folder: Path) -> Path:
    good = small_subjects(1)[0].image
    path = folder / f"{kind}.mha"  # NIfTI IO in SimpleITK turns NaN into 0
    if kind == "2d":
        sitk.WriteImage(_image(good[8]), str(path))
    elif kind == "4d":
        sitk.WriteImage(sitk.JoinSeries([_image(good), _image(good)]), str(path))
    elif kind == "constant":
        sitk.WriteImage(_image(np.full_like(good, 0.5)), str(path))
    elif kind == "empty":
        sitk.WriteImage(_image(np.zeros_like(good)), str(path))
    elif kind in ("nan", "inf"):
        broken = good.copy()
        broken[8, 16, 16] = np.nan if kind == "nan" else np.inf
        sitk.WriteImage(_image(broken), str(path))
    elif kind == "unreadable":
        path.write_bytes(b"not an image at all")
    return path


@pytest.mark.parametrize("kind", ["2d", "4d", "constant", "empty", "nan", "inf", "unreadable"])
def test_bad_scan_gives_one_line_nonzero_exit_and_no_output(kind, trained_tiny_model, tmp_path, capsys):
    scan = _bad_scan(kind, tmp_path)
    out = tmp_path / "out"
    code = main(["detect", str(scan), "--out", str(out), "--model", str(trained_tiny_model), "--progress", "none",
                 "--on-model-grid"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len([line for line in err if line.startswith("error:")]) == 1, err
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".write-test")]


def test_missing_corrupt_and_mismatched_checkpoints_are_refused(trained_tiny_model, tmp_path, capsys):
    import shutil

    scan = tmp_path / "scan.nii.gz"
    sitk.WriteImage(_image(small_subjects(1)[0].image), str(scan))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained_tiny_model, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\0" * 64)
    for model, expected in ((tmp_path / "missing", "neither a folder"), (corrupt, "checksum mismatch")):
        code = main(["detect", str(scan), "--out", str(tmp_path / "out"), "--model", str(model),
                     "--progress", "jsonl"])
        captured = capsys.readouterr()
        assert code != 0 and expected in captured.err
        assert read_events(captured.out)[-1]["event"] == "error"
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder_is_reported(trained_tiny_model, tmp_path, capsys):
    scan = tmp_path / "scan.nii.gz"
    sitk.WriteImage(_image(small_subjects(1)[0].image), str(scan))
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    code = main(["detect", str(scan), "--out", str(blocker / "out"), "--model", str(trained_tiny_model),
                 "--progress", "none", "--on-model-grid"])
    assert code != 0 and "not writable" in capsys.readouterr().err


def test_detect_full_pipeline_on_an_oblique_non_ras_head(trained_tiny_model, tmp_path, capsys):
    """Raw head phantom (skull, oblique LPS-flipped grid, 3 mm): brain extraction, registration, model and return."""
    from contrastive_anomaly.data.phantoms import head_phantom, rotation_matrix

    direction = rotation_matrix((12.0, -8.0, 5.0)) @ np.diag([-1.0, 1.0, -1.0])
    phantom = head_phantom(size=(72, 80, 64), spacing=(3.0, 3.0, 3.0), direction=direction, seed=3)
    sitk.WriteImage(phantom.image, str(tmp_path / "head.nrrd"))
    out = tmp_path / "out"
    code = main(["detect", str(tmp_path / "head.nrrd"), "--out", str(out), "--model", str(trained_tiny_model),
                 "--progress", "jsonl", "--contrast", "T1"])
    events = read_events(capsys.readouterr().out)
    assert code == 0, events[-1]
    assert {"brain_extraction", "registration", "normalisation"} <= set(events[-1]["timings_s"])
    brain = sitk.ReadImage(str(out / OUTPUT_FILES["brain_mask"]))
    assert brain.GetSize() == phantom.image.GetSize()
    np.testing.assert_allclose(brain.GetDirection(), phantom.image.GetDirection(), atol=1e-9)
    np.testing.assert_allclose(brain.GetOrigin(), phantom.image.GetOrigin(), atol=1e-6)
    found = sitk.GetArrayFromImage(brain) > 0
    truth = sitk.GetArrayFromImage(phantom.brain_mask) > 0
    assert dice(found, truth) > 0.8
    # one mask, one region definition: summary.json, the native mask file and the threshold index agree exactly
    from contrastive_anomaly.scoring.threshold_index import ThresholdIndex, native_mask

    summary = json.loads((out / OUTPUT_FILES["summary"]).read_text(encoding="utf-8"))
    model_index = sitk.GetArrayFromImage(sitk.ReadImage(str(out / OUTPUT_FILES["model_index"])))
    index = ThresholdIndex.load(out / OUTPUT_FILES["threshold_index"]).with_native(model_index)
    mask_file = sitk.GetArrayFromImage(sitk.ReadImage(str(out / OUTPUT_FILES["mask"]))) > 0
    again = native_mask(index.model_mask(summary["threshold"]), model_index)
    assert np.array_equal(again, mask_file)
    regions = index.regions(summary["threshold"])
    assert [round(r.volume_ml, 6) for r in regions] == [round(r["volume_ml"], 6) for r in summary["regions"]]
    assert [round(r.peak_score, 6) for r in regions] == [round(r["peak_score"], 6) for r in summary["regions"]]
    voxel_ml = np.prod(phantom.image.GetSpacing()) / 1000.0
    assert abs(sum(r.volume_ml for r in regions) - mask_file.sum() * voxel_ml) < 1e-6

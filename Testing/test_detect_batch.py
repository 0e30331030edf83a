"""detect-batch: one bad scan never stops the batch, finished scans are skipped, half-written ones redone,
and rank shards cover every scan exactly once."""

from __future__ import annotations

import csv
import os

import pytest
import SimpleITK as sitk

from contrastive_anomaly.cli.main import main
from contrastive_anomaly.jobs.batch import list_scans, merge_summaries, score_shard
from engine_fixtures import small_subjects


def _write_scans(folder, count=3):
    folder.mkdir()
    for index, subject in enumerate(small_subjects(count, first_seed=40)):
        image = sitk.GetImageFromArray(subject.image)
        image.SetSpacing((2.0, 2.0, 2.0))
        sitk.WriteImage(image, str(folder / f"scan{index}.nii.gz"))
    (folder / "broken.nii.gz").write_bytes(b"garbage")


def _rows(path):
    with open(path, newline="") as handle:
        return {row["scan_id"]: row for row in csv.DictReader(handle)}


def test_batch_survives_a_bad_scan_and_resumes(trained_tiny_model, tmp_path, capsys):
    scans = tmp_path / "scans"
    _write_scans(scans)
    out = tmp_path / "out"
    args = ["detect-batch", str(scans), "--out", str(out), "--model", str(trained_tiny_model), "--progress", "none",
            "--device", "cpu"]
    assert main(args) == 9  # a scan failed: the batch says so in its exit code
    captured = capsys.readouterr()
    assert "4 scan(s): 3 scored, 0 skipped (already done), 1 failed" in captured.out
    assert "error: 1 of 4 scan(s) failed" in captured.err
    assert not list(out.glob("summary.rank*.csv")), "no per-rank file is left after a single-process run"
    rows = _rows(out / "summary.csv")
    assert set(rows) == {"scan0", "scan1", "scan2", "broken"}
    assert rows["broken"]["status"] == "failed" and rows["broken"]["error"]
    assert all(rows[f"scan{i}"]["status"] == "ok" for i in range(3))
    assert float(rows["scan0"]["peak_score"]) >= 0 and rows["scan0"]["timings_s"].startswith("{")
    # simulate an interrupted scan: its summary.json never arrived
    (out / "scan1" / "summary.json").unlink()
    assert main(args) == 9
    assert "4 scan(s): 1 scored, 2 skipped (already done), 1 failed" in capsys.readouterr().out
    rows = _rows(out / "summary.csv")
    assert rows["scan0"]["status"] == "skipped" and rows["scan2"]["status"] == "skipped"
    assert rows["scan1"]["status"] == "ok" and (out / "scan1" / "summary.json").is_file()
    (scans / "broken.nii.gz").unlink()
    assert main(args) == 0, "all scans done or skipped: success"


def test_rank_shards_cover_every_scan_once(trained_tiny_model, tmp_path):
    scans = tmp_path / "scans"
    _write_scans(scans)
    items = list_scans(scans)
    out = tmp_path / "out"
    seen = []
    for rank in range(2):
        seen += [row["scan_id"] for row in score_shard(items, out, str(trained_tiny_model), "cpu", rank, 2)]
    assert sorted(seen) == sorted(item.scan_id for item in items)
    assert set(_rows(merge_summaries(out))) == {item.scan_id for item in items}


def test_csv_list_with_relative_paths(tmp_path):
    scans = tmp_path / "scans"
    _write_scans(scans, count=1)
    listing = tmp_path / "list.csv"
    listing.write_text("id,path,contrast\nfirst,scans/scan0.nii.gz,T1\n")
    [item] = list_scans(listing)
    assert item.scan_id == "first" and item.path == (scans / "scan0.nii.gz").resolve() and item.contrast == "T1"


@pytest.mark.slow
def test_detect_batch_with_ray_in_local_mode(trained_tiny_model, tmp_path):
    """The user command ``detect-batch --ray``, in its own process: Ray installs signal handlers that must not leak
    into the test session."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("ray") is None:  # not importorskip: importing ray here changes sys.path
        pytest.skip("ray is not installed")
    scans = tmp_path / "scans"
    _write_scans(scans, count=2)
    command = [sys.executable, "-m", "contrastive_anomaly.cli.main", "detect-batch", str(scans), "--out",
               str(tmp_path / "out"), "--model", str(trained_tiny_model), "--device", "cpu", "--progress", "none",
               "--ray", "--ray-workers", "1"]
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    completed = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                               timeout=600, env=env)
    assert completed.returncode == 9, completed.stderr[-2000:]  # the broken scan failed
    rows = _rows(tmp_path / "out" / "summary.csv")
    assert rows["scan0"]["status"] == "ok" and rows["scan1"]["status"] == "ok"
    assert rows["broken"]["status"] == "failed"
    assert (tmp_path / "out" / "scan0" / "anomaly.seg.nrrd").is_file()

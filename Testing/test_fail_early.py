"""Everything that needs no model is checked before torch is imported; argument and input errors have their own
exit codes (2 and 8)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.errors import InputError, OutputError, UsageError
from contrastive_anomaly.jobs import request_checks

# Runs the command in a fresh interpreter and reports its exit code and whether torch got imported.
PROBE = ("import json, sys\n"
         "from contrastive_anomaly.cli.main import main\n"
         "code = main(json.loads(sys.argv[1]))\n"
         "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules}))\n")


def _run(args: list[str]) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True,
                          encoding="utf-8", timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.fixture
def scan(tmp_path) -> Path:
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((8, 8, 8), np.float32)), str(path))
    return path


def test_detect_refuses_bad_requests_before_importing_torch(scan, tmp_path, trained_tiny_model):
    model = str(trained_tiny_model)
    a_file = tmp_path / "a_file"
    a_file.write_text("x", encoding="utf-8")
    cases = [
        (["detect", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o")], 8, "input not found"),
        (["detect", str(scan), "--out", str(a_file), "--model", model], 4, "is a file"),
        (["detect", str(scan), "--out", str(tmp_path / "o"), "--model", model, "--threshold", "-1"], 2,
         "outside the anomaly map's range"),
        (["detect", str(scan), "--out", str(tmp_path / "o"), "--model", model, "--threshold", "1.5"], 2,
         "outside the anomaly map's range"),
        (["detect", str(scan), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "nope")], 3,
         "neither a folder"),
        (["detect", str(scan), "--out", str(tmp_path / "o"), "--model", model, "--seed", "-3"], 2, "--seed"),
        (["detect", str(scan), "--out", str(tmp_path / "o"), "--model", model, "--device", "tpu"], 2, "--device"),
        (["detect", str(scan), "--out", str(tmp_path / "o"), "--model", model, "--noise-seeds", "0"], 2,
         "--noise-seeds 0 must be"),
        (["detect", str(scan), "--out", str(tmp_path / "o"), "--model", model, "--noise-seeds", "9"], 2,
         "--noise-seeds 9 must be"),
    ]
    for args, code, message in cases:
        outcome, stderr = _run(args)
        assert outcome == {"code": code, "torch": False}, (args, stderr)
        assert message in stderr and stderr.count("error:") == 1, stderr
    assert not (tmp_path / "o").exists()


def test_argparse_errors_keep_exit_code_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "contrastive_anomaly.cli.main", "detect", "--threshold", "x"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and UsageError.exit_code == 2 and InputError.exit_code == 8


def test_read_only_location_is_refused_without_creating_anything():
    unwritable = Path("/proc/contrastive-anomaly-out")  # procfs refuses new files, even for root
    with pytest.raises(OutputError, match="not writable"):
        request_checks.check_output_folder(unwritable)


def test_output_folder_check_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    request_checks.check_output_folder(target)
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [0.0, 1.0, float("nan"), -0.1])
def test_threshold_must_be_inside_the_map_range(value):
    with pytest.raises(UsageError):
        request_checks.check_threshold(value)
    request_checks.check_threshold(0.2)


def test_threshold_range_follows_the_models_map_scale(tmp_path):
    """A plain map is bounded by 1; a healthy-voxel-normalised map takes any finite positive threshold."""
    plain, normalised = tmp_path / "plain", tmp_path / "normalised"
    for folder, mode in ((plain, "none"), (normalised, "healthy_voxel_stats")):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"postprocess": {"residual_normalisation": mode}}))
    assert request_checks.threshold_range(plain) == (0.0, 1.0)
    with pytest.raises(UsageError, match="0-1 intensity scale"):
        request_checks.check_threshold(3.5, valid=request_checks.threshold_range(plain))
    request_checks.check_threshold(3.5, valid=request_checks.threshold_range(normalised))
    for bad in (0.0, float("inf"), float("nan")):
        with pytest.raises(UsageError):
            request_checks.check_threshold(bad, valid=request_checks.threshold_range(normalised))

"""Same scan, model, seed and precision give a bit-identical map; ``auto`` precision follows the hardware flags."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from contrastive_anomaly.cli.main import main
from contrastive_anomaly.jobs.detect import OUTPUT_FILES
from contrastive_anomaly.runtime import precision

COMPARED = ("anomaly_map", "reconstruction", "mask", "brain_mask")


@pytest.mark.parametrize(("flags", "expected"), [
    (frozenset({"avx2", "fma"}), torch.float32),
    (frozenset({"avx2", "avx512f"}), torch.float32),
    (frozenset({"avx512f", "avx512_bf16"}), torch.bfloat16),
    (frozenset({"amx_bf16", "amx_tile"}), torch.bfloat16),
    (frozenset(), torch.float32),
])
def test_auto_precision_on_cpu_follows_the_flags_only(flags, expected):
    cpu = torch.device("cpu")
    assert precision.resolve_precision("auto", cpu, cpu_flag_set=flags) == expected
    assert precision.resolve_precision("fp32", cpu, cpu_flag_set=flags) == torch.float32
    assert precision.resolve_precision("bf16", cpu, cpu_flag_set=flags) == torch.bfloat16


def test_no_timing_probe_remains():
    assert not hasattr(precision, "cpu_bf16_speedup")
    assert precision.resolve_precision("auto", torch.device("cpu")) == precision.resolve_precision(
        "auto", torch.device("cpu"))


def test_detect_twice_gives_identical_bytes(trained_tiny_model, tmp_path):
    """The full clinical path (brain extraction and registration included) on an oblique head, bf16 forced."""
    from contrastive_anomaly.data.phantoms import head_phantom, rotation_matrix

    direction = rotation_matrix((10.0, -6.0, 4.0)) @ np.diag([-1.0, 1.0, -1.0])
    phantom = head_phantom(size=(72, 80, 64), spacing=(3.0, 3.0, 3.0), direction=direction, seed=5)
    scan = tmp_path / "head.nii.gz"
    sitk.WriteImage(phantom.image, str(scan))
    outs = [tmp_path / f"run{i}" for i in range(2)]
    for out in outs:
        assert main(["detect", str(scan), "--out", str(out), "--model", str(trained_tiny_model), "--progress", "none",
                     "--device", "cpu", "--precision", "bf16", "--seed", "11", "--contrast", "T1"]) == 0
    for name in COMPARED:
        first, second = ((out / OUTPUT_FILES[name]).read_bytes() for out in outs)
        assert first == second, f"{name} differs between two identical runs"
    summary = json.loads((outs[0] / OUTPUT_FILES["summary"]).read_text(encoding="utf-8"))
    assert summary["inference"]["seed"] == 11 and summary["inference"]["precision"] == "bf16"
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(outs[0] / OUTPUT_FILES["reconstruction"]))).any()

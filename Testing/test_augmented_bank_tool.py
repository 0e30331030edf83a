"""tools/make_augmented_bank.py: the bank the default model trains on, written from a (small, fake) corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from contrastive_anomaly.data.corpus_manifest import write_manifest
from contrastive_anomaly.data.volumes import Subject, read_subject_folder, write_subject

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "make_augmented_bank.py"


def _fake_corpus(root: Path) -> None:
    """One 'train' template and one 'test' subject (a bright ellipsoid brain, 2 mm) with a manifest."""
    k, j, i = np.mgrid[:20, :24, :24]
    brain = (((k - 10) / 8.0) ** 2 + ((j - 12) / 10.0) ** 2 + ((i - 12) / 10.0) ** 2 <= 1).astype(np.uint8)
    image = (0.2 + 0.6 * brain + 0.1 * (i / 24.0)).astype(np.float32) * brain
    records = {}
    for name, role in (("template_a", "train"), ("real_b", "test")):
        write_subject(Subject(name=name, image=image, brain_mask=brain), root / "preprocessed")
        records[name] = {"role": role, "image": f"preprocessed/{name}/image.nii.gz",
                         "brain_mask": f"preprocessed/{name}/brain_mask.nii.gz"}
    write_manifest(root, {"files": [], "preprocessed": records})


def _run(corpus: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), "--corpus", str(corpus), "--out", str(out),
                           "--per-subject", "2", "--val-copies", "1"], capture_output=True, text=True, timeout=300)


def test_bank_has_originals_copies_and_validation_of_train_subjects_only(tmp_path):
    _fake_corpus(tmp_path / "corpus")
    out = tmp_path / "bank"
    result = _run(tmp_path / "corpus", out)
    assert result.returncode == 0, result.stderr[-2000:]
    settings = json.loads((out / "bank.json").read_text())
    assert settings["train_subjects"] == ["template_a"] and settings["per_subject"] == 2
    assert sorted(p.name for p in (out / "train").iterdir()) == ["template_a-orig", "template_a-train000",
                                                                "template_a-train001"]
    assert sorted(p.name for p in (out / "val").iterdir()) == ["template_a-val000"]
    seeds = {json.loads((out / role / name / "metadata.json").read_text())["seed"]
             for role, name in (("train", "template_a-train000"), ("train", "template_a-train001"),
                                ("val", "template_a-val000"))}
    assert len(seeds) == 3  # every copy its own seed; validation seeds never repeat training ones
    original = read_subject_folder(out / "train" / "template_a-orig")
    copy = read_subject_folder(out / "train" / "template_a-train000")
    assert copy.image.shape == original.image.shape
    assert not np.array_equal(copy.image, original.image)  # augmented, not a copy


def test_bank_is_resumable_and_keeps_finished_copies(tmp_path):
    _fake_corpus(tmp_path / "corpus")
    out = tmp_path / "bank"
    assert _run(tmp_path / "corpus", out).returncode == 0
    kept = out / "train" / "template_a-train001" / "image.nii.gz"
    marker = sitk.ReadImage(str(kept))
    marker_time = kept.stat().st_mtime_ns
    assert _run(tmp_path / "corpus", out).returncode == 0
    assert kept.stat().st_mtime_ns == marker_time
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(kept))).sum() == sitk.GetArrayFromImage(marker).sum()

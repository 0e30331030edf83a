"""One atomic writer: a finished block replaces the file, a failed one leaves the old file and no temporary."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.config import ModelConfig, tiny_config
from contrastive_anomaly.errors import OutputError
from contrastive_anomaly.storage.files import (
    atomic_write,
    write_csv_atomic,
    write_image_atomic,
    write_json_atomic,
    write_text_atomic,
)


def leftovers(folder):
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


def test_success_replaces_with_ordinary_permissions(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old", encoding="utf-8")
    write_json_atomic({"b": 1, "a": [1, 2]}, target, sort_keys=True)
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": [1, 2], "b": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert leftovers(tmp_path) == []


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(ZeroDivisionError), atomic_write(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        _ = 1 / 0
    assert target.read_text(encoding="utf-8") == "old" and leftovers(tmp_path) == []


def test_temporary_keeps_the_format_suffix(tmp_path):
    seen = []
    for name in ("map.nii.gz", "anomaly.seg.nrrd", "w.safetensors", "x.csv"):
        with atomic_write(tmp_path / name) as tmp:
            seen.append(tmp.name)
            tmp.write_bytes(b"")
    assert seen[0].endswith(".partial.nii.gz") and seen[1].endswith(".partial.seg.nrrd")
    assert seen[2].endswith(".partial.safetensors") and seen[3].endswith(".partial.csv")


def test_unwritable_folder_is_one_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(OutputError, match="cannot write"):
        write_text_atomic("x", blocker / "sub" / "a.txt")


def test_every_writer_goes_through_it(tmp_path):
    write_csv_atomic([{"a": 1}, {"a": 2, "b": 3}], ["a", "b"], tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text(encoding="utf-8").splitlines() == ["a,b", "1,", "2,3"]
    write_image_atomic(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.float32)), tmp_path / "i.nii.gz")
    assert sitk.ReadImage(str(tmp_path / "i.nii.gz")).GetSize() == (4, 3, 2)
    cfg = tiny_config()
    cfg.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json") == cfg
    assert leftovers(tmp_path) == []

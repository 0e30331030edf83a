"""A cut-off NIfTI, NRRD or MetaImage file (compressed or raw) is refused with one line before it is read as a scan."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.errors import InputError
from contrastive_anomaly.storage.file_checks import check_complete
from contrastive_anomaly.storage.files import read_image

SUFFIXES = (".nii.gz", ".nii", ".nrrd", "raw.nrrd", ".mha", "raw.mha")


def _write(tmp_path: Path, suffix: str) -> Path:
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.normal(size=(20, 24, 28)).astype(np.float32))
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(image, str(path), useCompression=suffix in (".nii.gz", ".nrrd", ".mha"))
    return path


def _truncate(path: Path, keep_fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_whole_file_passes(tmp_path, suffix):
    path = _write(tmp_path, suffix)
    check_complete(path)
    assert read_image(path).GetSize() == (28, 24, 20)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_cut_off_file_is_refused_by_read_image(tmp_path, suffix):
    path = _write(tmp_path, suffix)
    _truncate(path, 0.6)
    with pytest.raises(InputError, match="is cut off") as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_gzip_stream_without_end_marker_is_refused_even_if_the_header_is_whole(tmp_path):
    path = _write(tmp_path, ".nii.gz")
    _truncate(path, 0.95)
    with pytest.raises(InputError, match="compressed stream ends"):
        check_complete(path)


def test_a_gzip_stream_that_is_complete_but_too_short_is_refused(tmp_path):
    whole = _write(tmp_path, ".nii")
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(whole.read_bytes()[:-1000]))  # a valid stream of too little data
    with pytest.raises(InputError, match="header declares"):
        check_complete(short)


def test_a_detached_nrrd_with_a_short_data_file_is_refused(tmp_path):
    path = _write(tmp_path, "raw.nrrd")
    data = path.read_bytes()
    header_end = data.index(b"\n\n") + 2
    (tmp_path / "scan.raw").write_bytes(data[header_end:][:-4])
    (tmp_path / "scan.nhdr").write_bytes(data[:header_end - 1] + b"data file: scan.raw\n\n")
    with pytest.raises(InputError, match="is cut off"):
        check_complete(tmp_path / "scan.nhdr")


def test_a_metaimage_with_a_short_detached_data_file_is_refused(tmp_path):
    path = _write(tmp_path, ".mhd")  # ITK writes scan.mhd and scan.raw
    check_complete(path)
    raw = tmp_path / "scan.raw"
    raw.write_bytes(raw.read_bytes()[:-8])
    with pytest.raises(InputError, match="is cut off"):
        check_complete(path)


def test_other_files_are_left_to_itk(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello", encoding="utf-8")
    check_complete(path)
    check_complete(tmp_path)

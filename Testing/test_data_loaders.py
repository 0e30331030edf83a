"""Loaders for user datasets, on tiny fixtures written in the cDDPM and NOVA layouts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contrastive_anomaly.errors import InputError
from paper_protocols.cddpm_layout import load_cddpm_split, subject_key, swap_modality
from paper_protocols.nova_images import load_nova, load_png_grey

SPLIT_COLUMNS = ["img_name", "age", "label", "img_path", "mask_path", "seg_path", "Sex"]


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"nifti")


@pytest.fixture()
def cddpm_dir(tmp_path: Path) -> Path:
    data = tmp_path / "DATA" / "Data"
    ixi = ["IXI002-Guys-0828", "IXI012-HH-1211", "IXI013-HH-1212"]
    rows = [[f"{s}_t1.nii.gz", 30 + n, 0, f"Train/ixi/t1/{s}_t1.nii.gz", f"Train/ixi/mask/{s}_mask.nii.gz", "", "F"]
            for n, s in enumerate(ixi)]
    _write_csv(data / "splits" / "IXI_train_fold0.csv", SPLIT_COLUMNS, rows)
    _write_csv(data / "splits" / "avail_t2.csv", ["img_name"], [[f"{ixi[0]}_t2.nii.gz"], [f"{ixi[2]}_t2.nii.gz"]])
    for s in ixi:
        _touch(data / "Train" / "ixi" / "t2" / f"{s}_t2.nii.gz")
    brats = ["BraTS2021_00t1", "BraTS2021_00002"]  # an id containing "t1" must survive the modality swap
    rows = [[f"{s}_t1.nii.gz", "", 1, f"/Test/Brats21/t1/{s}_t1.nii.gz", f"Test/Brats21/mask/{s}_mask.nii.gz",
             f"Test/Brats21/seg/{s}_seg.nii.gz", ""] for s in brats]
    _write_csv(data / "splits" / "Brats21_test.csv", SPLIT_COLUMNS, rows)
    for s in brats:
        _touch(data / "Test" / "Brats21" / "t2" / f"{s}_t2.nii.gz")
    return tmp_path / "DATA"


def test_swap_only_the_modality_folder_and_suffix():
    assert swap_modality("Test/Brats21/t1/BraTS_t1x_t1.nii.gz", "t2") == "Test/Brats21/t2/BraTS_t1x_t2.nii.gz"
    assert swap_modality("Train/ixi/t1/IXIt1_t1.nii.gz", "t2") == "Train/ixi/t2/IXIt1_t2.nii.gz"
    assert swap_modality("t1data/t1/a.nii.gz", "t2") == "t1data/t2/a.nii.gz"
    assert subject_key("IXI002-Guys-0828_t2.nii.gz") == "IXI002-Guys-0828"
    assert subject_key("BraTS2021_00002") == "BraTS2021_00002"


def test_ixi_split_is_filtered_by_t2_availability(cddpm_dir):
    records = load_cddpm_split(cddpm_dir, "IXI_train_fold0")
    assert [r.subject_id for r in records] == ["IXI002-Guys-0828", "IXI013-HH-1212"]
    first = records[0]
    assert first.image_path == cddpm_dir / "Data/Train/ixi/t2/IXI002-Guys-0828_t2.nii.gz"
    assert first.mask_path == cddpm_dir / "Data/Train/ixi/mask/IXI002-Guys-0828_mask.nii.gz"
    assert first.seg_path is None and first.label == 0 and first.age == 30 and first.dataset == "IXI"
    assert load_cddpm_split(cddpm_dir / "Data", "IXI_train_fold0.csv") == records


def test_brats_split_with_segmentations(cddpm_dir):
    records = load_cddpm_split(cddpm_dir, "Brats21_test")
    assert [r.subject_id for r in records] == ["BraTS2021_00t1", "BraTS2021_00002"]
    assert records[0].image_path == cddpm_dir / "Data/Test/Brats21/t2/BraTS2021_00t1_t2.nii.gz"
    assert records[0].seg_path == cddpm_dir / "Data/Test/Brats21/seg/BraTS2021_00t1_seg.nii.gz"
    assert all(r.label == 1 and r.age is None for r in records)


def test_cddpm_errors(cddpm_dir, tmp_path):
    with pytest.raises(InputError, match="not a cDDPM data folder"):
        load_cddpm_split(tmp_path / "nothing", "IXI_test")
    with pytest.raises(InputError, match="split file not found"):
        load_cddpm_split(cddpm_dir, "MSLUB_test")
    (cddpm_dir / "Data/Test/Brats21/t2/BraTS2021_00002_t2.nii.gz").unlink()
    with pytest.raises(InputError, match="BraTS2021_00002"):
        load_cddpm_split(cddpm_dir, "Brats21_test")
    assert len(load_cddpm_split(cddpm_dir, "Brats21_test", check_files=False)) == 2


NOVA_COLUMNS = ["filename", "caption", "case_id", "scan_id", "title", "publication_date", "clinical_history",
                "differential_diagnosis", "final_diagnosis", "link", "bbox_gold", "bbox_raters"]


@pytest.fixture()
def nova_dir(tmp_path: Path) -> Path:
    nova = tmp_path / "DATA" / "Data" / "NOVA"
    (nova / "images").mkdir(parents=True)
    rows = [
        ["a.png", "Axial T2 weighted image, lesion", "case1", 1, "", "", "", "", "", "",
         "{'x': [10.5, 3.0], 'y': [4.0, 1.0], 'width': [5.0, 2.0], 'height': [6.0, 2.0]}", "{}"],
        ["b.png", "Precontrast T1WI", "case1", 2, "", "", "", "", "", "", "{'x': [1.0], 'y': [1.0], 'width': [1.0],"
         " 'height': [1.0]}", "{}"],
        ["c.png", "Coronal FLAIR and T2*", "case2", 1, "", "", "", "", "", "",
         "{'x': [0.0], 'y': [2.0], 'width': [3.0], 'height': [4.0]}", "{}"],
    ]
    _write_csv(nova / "NOVA_metadata.csv", NOVA_COLUMNS, rows)
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(grey).save(nova / "images" / "a.png")
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(nova / "images" / "b.png")
    Image.fromarray(np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000).save(nova / "images" / "c.png")
    return tmp_path / "DATA"


def test_nova_t2_filter_boxes_and_images(nova_dir):
    records = load_nova(nova_dir)
    assert [r.filename for r in records] == ["a.png", "c.png"]
    assert records[0].boxes == ((10.5, 4.0, 5.0, 6.0), (3.0, 1.0, 2.0, 2.0))
    assert records[1].case_id == "case2" and records[1].boxes == ((0.0, 2.0, 3.0, 4.0),)
    assert len(load_nova(nova_dir, t2_only=False)) == 3
    a = load_png_grey(records[0].image_path)
    assert a.shape == (6, 8) and a.dtype == np.float32
    assert a[0, 0] == 0.0 and a[-1, -1] == pytest.approx(235 / 255)
    c = load_png_grey(records[1].image_path)
    assert c.max() == pytest.approx(47000 / 65535) and c.min() == 0.0
    rgb = load_png_grey(nova_dir / "Data/NOVA/images/b.png")
    assert rgb.shape == (6, 8) and np.allclose(rgb, a, atol=1 / 255)


def test_nova_errors(nova_dir, tmp_path):
    with pytest.raises(InputError, match="no NOVA data"):
        load_nova(tmp_path / "missing")
    (nova_dir / "Data/NOVA/images/c.png").unlink()
    with pytest.raises(InputError, match="c.png"):
        load_nova(nova_dir)
    bad = nova_dir / "Data/NOVA/images/a.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read NOVA image"):
        load_png_grey(bad)

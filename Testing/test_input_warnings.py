"""Warnings for scans the model was not made for: thick slices, another contrast, post-contrast T1."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.config import preset
from contrastive_anomaly.preprocess.validate import check_acquisition, header_descriptions, validate_image
from contrastive_anomaly.runtime.progress import ProgressReporter
from contrastive_anomaly.storage.files import read_image

NIFTI_DESCRIP_OFFSET, NIFTI_DESCRIP_BYTES = 148, 80  # char descrip[80] in the NIfTI-1 header


def _head(spacing=(1.0, 1.0, 3.0)) -> sitk.Image:
    array = np.zeros((40, 120, 120), np.float32)
    array[5:35, 20:100, 20:100] = 1.0
    array[20, 60, 60] = 2.0
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def _codes(warnings) -> list[str]:
    return [getattr(w, "code", None) for w in warnings]


def test_slices_of_6_5_mm_warn_but_5_mm_do_not():
    cfg = preset("tiny")
    assert cfg.preprocess.thick_slice_warning_mm == 5.0
    assert "thick_slices" in _codes(validate_image(_head((1.0, 1.0, 6.5)), cfg))
    assert "thick_slices" not in _codes(validate_image(_head((1.0, 1.0, 5.0)), cfg))


def test_contrast_mismatch_is_a_coded_loud_warning():
    cfg = preset("tiny")  # a T1 model
    [warning] = check_acquisition(_head(), cfg, "FLAIR")
    assert warning.code == "contrast_mismatch" and warning.startswith("CONTRAST MISMATCH")
    assert check_acquisition(_head(), cfg, "T1") == []


@pytest.mark.parametrize("description", ["T1 POST GAD", "t1_mprage_post", "AX T1 +C", "T1 C+ FS", "T1CE",
                                         "T1 contrast-enhanced", "MPRAGE Gd"])
def test_post_contrast_descriptions_warn_for_a_t1_model(description):
    image = _head()
    image.SetMetaData("ContrastiveAnomaly:SeriesDescription", description)
    assert _codes(check_acquisition(image, preset("tiny"), None)) == ["post_contrast"]


@pytest.mark.parametrize("description", ["T1 MPRAGE", "AX T1 SE", "sag t1 posterior fossa", "T1w"])
def test_plain_descriptions_do_not_warn(description):
    image = _head()
    image.SetMetaData("ContrastiveAnomaly:SeriesDescription", description)
    assert check_acquisition(image, preset("tiny"), None) == []


@pytest.mark.parametrize(("agent", "codes"), [("GADOVIST 1 mmol/ml", ["post_contrast"]), ("NONE", []), (None, [])])
def test_dicom_contrast_agent_tag_is_read(tmp_path, agent, codes):
    """A DICOM series whose Contrast/Bolus Agent (0018,0010) names an agent warns even with a plain description."""
    from fit_scans import write_dicom_series

    from contrastive_anomaly.storage.dicom import read_dicom_series

    tags = () if agent is None else (("0018|0010", agent),)
    folder = write_dicom_series(tmp_path / "dicom", 3, patient="P1", description="T1 MPRAGE", extra_tags=tags)
    image = read_dicom_series(folder)
    assert _codes(check_acquisition(image, preset("tiny"), None)) == codes


def test_nifti_descrip_field_is_read(tmp_path):
    path = tmp_path / "scan.nii"
    sitk.WriteImage(_head(), str(path))
    data = bytearray(path.read_bytes())
    text = b"T1 post-gad".ljust(NIFTI_DESCRIP_BYTES, b"\0")
    data[NIFTI_DESCRIP_OFFSET:NIFTI_DESCRIP_OFFSET + NIFTI_DESCRIP_BYTES] = text
    path.write_bytes(bytes(data))
    image = read_image(path)
    assert header_descriptions(image) == ["T1 post-gad"]
    assert _codes(validate_image(image, preset("tiny"), "T1")) == ["post_contrast"]


def test_the_warning_event_carries_the_code():
    stream = io.StringIO()
    reporter = ProgressReporter("jsonl", stream)
    for warning in check_acquisition(_head(), preset("tiny"), "T2"):
        reporter.warn(warning)
    event = json.loads(stream.getvalue().splitlines()[0])
    assert event["event"] == "warning" and event["code"] == "contrast_mismatch"
    assert reporter.warnings and type(reporter.warnings[0]) is str

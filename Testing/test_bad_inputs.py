"""Bad input gets one clear line (InputError / RegistrationError) and nothing written (docs/PREPROCESSING.md)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.config import preset
from contrastive_anomaly.data.phantoms import head_phantom
from contrastive_anomaly.errors import InputError, RegistrationError
from contrastive_anomaly.preprocess import prepare_volume
from contrastive_anomaly.preprocess.validate import max_input_voxels, validate_image
from contrastive_anomaly.storage.dicom import SERIES_UID_KEY, read_dicom_series
from contrastive_anomaly.storage.files import read_image

SPACING = (3.0, 3.0, 3.0)
SIZE = (64, 76, 64)


def _phantom_array() -> tuple[np.ndarray, sitk.Image]:
    phantom = head_phantom(size=SIZE, spacing=SPACING)
    return sitk.GetArrayFromImage(phantom.image), phantom.image


def _with_values(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def _nan_volume() -> sitk.Image:
    array, ref = _phantom_array()
    array[10, 10, 10] = np.nan
    return _with_values(array, ref)


def _inf_volume() -> sitk.Image:
    array, ref = _phantom_array()
    array[5, 5, 5] = np.inf
    return _with_values(array, ref)


def _ct_volume() -> sitk.Image:
    array, ref = _phantom_array()
    hounsfield = np.where(array > 0, 40.0, -1000.0).astype(np.float32)  # air around a soft-tissue head
    return _with_values(hounsfield, ref)


def _noise_volume() -> sitk.Image:
    rng = np.random.default_rng(3)
    _, ref = _phantom_array()
    return _with_values(rng.random(ref.GetSize()[::-1]).astype(np.float32) * 1000, ref)


def _knee_like_volume() -> sitk.Image:
    """A limb: soft-tissue cylinder with two bone cylinders along S, no skull or brain."""
    size, spacing = (64, 64, 64), SPACING
    k, j, i = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    x, y = (i - 32) * spacing[0], (j - 32) * spacing[1]
    array = np.where(x**2 + y**2 < 60**2, 500.0, 0.0)
    array[(x - 15) ** 2 + y**2 < 14**2] = 900.0
    array[(x + 20) ** 2 + (y - 5) ** 2 < 10**2] = 900.0
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    return image


def _sized(size: tuple[int, ...], spacing: tuple[float, ...], components: int = 1) -> sitk.Image:
    pixel = sitk.sitkVectorFloat32 if components > 1 else sitk.sitkFloat32
    image = sitk.Image(list(size), pixel, components) if components > 1 else sitk.Image(list(size), pixel)
    image.SetSpacing(spacing)
    return image


CASES = [
    ("2D image", lambda: _sized((64, 64), (1.0, 1.0)), InputError, "2D"),
    ("4D image", lambda: _sized((40, 40, 40, 3), (3.0, 3.0, 3.0, 1.0)), InputError, "4D"),
    ("RGB image", lambda: _sized((40, 40, 40), (3.0, 3.0, 3.0), components=3), InputError, "components"),
    ("single slice", lambda: _sized((200, 200, 1), (1.0, 1.0, 1.0)), InputError, "single slice"),
    ("too small", lambda: _sized((30, 30, 30), (1.0, 1.0, 1.0)), InputError, "too small"),
    ("NaN voxel", _nan_volume, InputError, "NaN"),
    ("Inf voxel", _inf_volume, InputError, "NaN/Inf"),
    ("constant", lambda: _sized((64, 64, 64), (3.0, 3.0, 3.0)), InputError, "constant"),
    ("CT intensities", _ct_volume, InputError, "CT"),
    ("noise, not a brain", _noise_volume, RegistrationError, "not look like a head"),
    ("knee-like, not a brain", _knee_like_volume, RegistrationError, "not look like a head"),
]


@pytest.mark.parametrize(("name", "make", "error", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_one_line(name, make, error, words, tmp_path):
    image = make()
    with pytest.raises(error) as info:
        prepare_volume(image, preset("tiny"))
    message = str(info.value)
    assert "\n" not in message and message
    assert words in message
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_too_large_for_memory_budget():
    cfg = preset("tiny")
    cfg.inference.memory_budget_mb = 4
    image = _sized((64, 64, 64), (3.0, 3.0, 3.0))
    assert 64**3 > max_input_voxels(cfg)
    with pytest.raises(InputError, match="memory budget"):
        prepare_volume(image, cfg)


def test_thick_slices_warn_only():
    image = _sized((60, 60, 14), (3.0, 3.0, 10.0))
    image[30, 30, 7] = 1.0
    warnings = validate_image(image, preset("tiny"))
    assert any("10.0 mm thick" in w for w in warnings)
    assert [getattr(w, "code", None) for w in warnings] == ["thick_slices"]


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"this is not an image")
    with pytest.raises(InputError) as info:
        read_image(path)
    assert "\n" not in str(info.value) and "cannot read" in str(info.value)


def test_empty_dicom_folder(tmp_path):
    folder = tmp_path / "dicom"
    folder.mkdir()
    with pytest.raises(InputError, match="empty"):
        read_image(folder)
    (folder / "notes.txt").write_text("no dicom here")
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(folder)


def _write_series(folder, uid: str, slices: int, description: str) -> None:
    for k in range(slices):
        image = sitk.Image([16, 16], sitk.sitkInt16) + k
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for tag, value in (("0020|000e", uid), ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
                           ("0008|0060", "MR"), ("0008|103e", description), ("0020|0013", str(k + 1)),
                           ("0020|0032", f"0\\0\\{2.0 * k}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0028|0030", "1\\1"), ("0018|0050", "2"),
                           ("0008|0018", f"{uid}.{k + 1}")):
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{uid[-3:]}_{k:03d}.dcm"))
        writer.Execute(image)


@pytest.mark.filterwarnings("ignore:DICOM folder holds")  # the notice itself is tested below
def test_dicom_picks_largest_3d_series(tmp_path):
    small, large = "1.2.826.0.1.3680043.2.1125.101", "1.2.826.0.1.3680043.2.1125.202"
    _write_series(tmp_path, small, 3, "localizer")
    _write_series(tmp_path, large, 6, "T1 axial")
    image = read_dicom_series(tmp_path)
    assert image.GetSize()[2] == 6 and image.GetMetaData(SERIES_UID_KEY) == large
    chosen = read_dicom_series(tmp_path, small)
    assert chosen.GetSize()[2] == 3
    with pytest.raises(InputError, match="not found"):
        read_dicom_series(tmp_path, "1.2.3")


def test_series_choice_reaches_the_progress_reporter_on_the_detect_path(tmp_path):
    """detect reads through prepare_file: the several-series notice must arrive as a JSON-lines warning event."""
    import io
    import json

    from contrastive_anomaly.preprocess import prepare_file
    from contrastive_anomaly.runtime.progress import ProgressReporter

    _write_series(tmp_path, "1.2.826.0.1.3680043.2.1125.101", 3, "localizer")
    _write_series(tmp_path, "1.2.826.0.1.3680043.2.1125.202", 6, "T1 axial")
    stream = io.StringIO()
    reporter = ProgressReporter("jsonl", stream)
    with pytest.raises(InputError):  # 16 x 16 x 6 mm is far too small to be a head; the read stage ran first
        prepare_file(tmp_path, preset("tiny"), progress=reporter)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    notices = [e["message"] for e in events if e["event"] == "warning"]
    assert [e["code"] for e in events if e["event"] == "warning"] == ["dicom_series_choice"]
    assert any("2 series" in m and "1.2.826.0.1.3680043.2.1125.202" in m for m in notices), notices
    assert reporter.warnings == notices


def test_series_choice_without_a_reporter_is_a_python_warning(tmp_path):
    _write_series(tmp_path, "1.2.826.0.1.3680043.2.1125.101", 3, "localizer")
    _write_series(tmp_path, "1.2.826.0.1.3680043.2.1125.202", 6, "T1 axial")
    with pytest.warns(UserWarning, match="2 series"):
        read_dicom_series(tmp_path)

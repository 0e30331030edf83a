"""Reading and writing volumes with SimpleITK, and the engine's one atomic file writer.

Geometry is SimpleITK's: origin, spacing and direction in **LPS** physical space (mm). Arrays obtained with
``SimpleITK.GetArrayFromImage`` are **KJI**. Every file the engine writes (images, JSON, CSV, weights, configs,
segmentations, corpus files) goes through :func:`atomic_write`: written under a temporary name in the target
folder and renamed when complete, so a crash or a cancel never leaves a half-written result. The writer itself lives
in the dependency-free :mod:`contrastive_anomaly.atomic` (so that ``config.py`` can use it too) and is re-exported
here with the image and CSV writers built on it.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..atomic import atomic_write, write_json_atomic, write_text_atomic
from ..errors import InputError, OutputError
from .file_checks import check_complete

__all__ = ["atomic_write", "write_text_atomic", "write_json_atomic", "write_csv_atomic", "write_image_atomic",
           "read_image", "image_from_array", "jsonable", "check_writable_folder", "staged_outputs", "VOLUME_SUFFIXES"]

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def read_image(path: str | Path, series_uid: str | None = None, *,
               warn: Callable[[str], None] | None = None) -> sitk.Image:
    """Read a NIfTI/NRRD/MHA file or a DICOM folder as a float32 image, keeping its geometry (LPS).

    A DICOM folder with several series: the one named by ``series_uid``, otherwise the largest 3D series; the
    choice is passed to ``warn`` (see :func:`~contrastive_anomaly.storage.dicom.read_dicom_series`).
    Raises :class:`InputError` with a one-line message when the file cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        from .dicom import read_dicom_series

        image = read_dicom_series(path, series_uid, warn=warn)
    else:
        check_complete(path)
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
            raise InputError(f"cannot read {path.name}: not a readable image ({first[:160]})") from None
    return squeeze_trailing_singleton(image)


def squeeze_trailing_singleton(image: sitk.Image) -> sitk.Image:
    """A 4D image with one volume (size 1 on the 4th axis, as some NIfTI writers store 3D data) becomes 3D."""
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        size = list(image.GetSize())
        size[3] = 0
        return sitk.Extract(image, size, [0, 0, 0, 0])
    return image


def image_from_array(array_kji: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Wrap a KJI array in an image carrying ``reference``'s origin, spacing and direction."""
    image = sitk.GetImageFromArray(array_kji)
    image.CopyInformation(reference)
    return image


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars turned into Python numbers, tuples into lists and keys into strings (for JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_csv_atomic(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], path: str | Path) -> Path:
    """Write ``rows`` (dicts; missing keys stay empty) under the header ``columns`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def write_image_atomic(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` (format from the extension) through :func:`atomic_write`."""
    path = Path(path)
    with atomic_write(path) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
        except RuntimeError as exc:
            raise OutputError(f"cannot write {path}: {str(exc).strip().splitlines()[-1][:160]}") from None
    return path


def check_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check that a file can be created in it; raise :class:`OutputError` if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test."):
            pass
    except OSError as exc:
        raise OutputError(f"output folder {folder} is not writable: {exc.strerror or exc}") from None
    return folder


@contextmanager
def staged_outputs(folder: str | Path) -> Iterator[Path]:
    """Yield a hidden staging folder inside ``folder``; on success move its files into ``folder``.

    On any exception (including KeyboardInterrupt) the staging folder is deleted and nothing appears in
    ``folder``. Files are moved one by one with ``os.replace`` (atomic per file on the same file system).
    """
    folder = check_writable_folder(folder)
    staging = Path(tempfile.mkdtemp(prefix=".staging.", dir=folder))
    try:
        yield staging
        for item in sorted(staging.iterdir()):
            os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

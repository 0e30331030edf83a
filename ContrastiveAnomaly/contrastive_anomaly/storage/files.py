"""Reading and writing volumes with SimpleITK, and atomic output.

Geometry is SimpleITK's: origin, spacing and direction in **LPS** physical space (mm). Arrays obtained with
``SimpleITK.GetArrayFromImage`` are **KJI**. Every output is first written under a temporary name in the target
folder and renamed when complete, so a crash or a cancel never leaves a half-written result.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError, OutputError

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def read_image(path: str | Path, series_uid: str | None = None) -> sitk.Image:
    """Read a NIfTI/NRRD/MHA file or a DICOM folder as a float32 image, keeping its geometry (LPS).

    A DICOM folder with several series: the one named by ``series_uid``, otherwise the largest 3D series.
    Raises :class:`InputError` with a one-line message when the file cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        from .dicom import read_dicom_series

        image = read_dicom_series(path, series_uid)
    else:
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


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def replace_into_place(tmp: str | Path, path: str | Path) -> None:
    """Rename a finished temporary file onto ``path`` with ordinary permissions (mkstemp creates files 0600)."""
    os.chmod(tmp, _default_file_mode())
    os.replace(tmp, path)


def image_from_array(array_kji: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Wrap a KJI array in an image carrying ``reference``'s origin, spacing and direction."""
    image = sitk.GetImageFromArray(array_kji)
    image.CopyInformation(reference)
    return image


def write_image_atomic(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{suffix}", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    try:
        sitk.WriteImage(image, tmp, useCompression=compress)
        replace_into_place(tmp, path)
    except (RuntimeError, OSError) as exc:
        Path(tmp).unlink(missing_ok=True)
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

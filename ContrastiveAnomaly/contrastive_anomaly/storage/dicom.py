"""DICOM series reading: pick one 3D series from a folder and say which one was taken.

Geometry is SimpleITK's (LPS mm). The chosen series UID and description are stored on the returned image as the
metadata keys ``ContrastiveAnomaly:SeriesInstanceUID`` and ``ContrastiveAnomaly:SeriesDescription``. When the folder
holds several series, the choice is reported through the caller's ``warn`` callback (on the detect path that is the
progress reporter, so the panel shows it as a warning event), else as a Python warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from ..errors import InputError

SERIES_UID_KEY = "ContrastiveAnomaly:SeriesInstanceUID"
SERIES_DESCRIPTION_KEY = "ContrastiveAnomaly:SeriesDescription"
DESCRIPTION_TAG = "0008|103e"
# Contrast/Bolus Agent (0018,0010): the agent given for this acquisition, empty or absent when none was
CONTRAST_AGENT_KEY = "ContrastiveAnomaly:ContrastBolusAgent"
CONTRAST_AGENT_TAG = "0018|0010"


@dataclass
class DicomSeries:
    """One series found in a folder: its UID, description, files (sorted by position) and voxel count."""

    uid: str
    description: str
    files: tuple[str, ...]
    voxels: int
    contrast_agent: str = ""


def _describe(uid: str, files: tuple[str, ...]) -> DicomSeries:
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    try:
        reader.ReadImageInformation()
        size = reader.GetSize()
        per_file = int(size[0]) * int(size[1])
        description = reader.GetMetaData(DESCRIPTION_TAG).strip() if reader.HasMetaDataKey(DESCRIPTION_TAG) else ""
        agent = reader.GetMetaData(CONTRAST_AGENT_TAG).strip() if reader.HasMetaDataKey(CONTRAST_AGENT_TAG) else ""
    except RuntimeError:
        per_file, description, agent = 0, "", ""
    return DicomSeries(uid=uid, description=description, files=files, voxels=per_file * len(files),
                       contrast_agent=agent)


def list_series(folder: str | Path) -> list[DicomSeries]:
    """Every DICOM series in ``folder`` (not recursive), largest first. Raises :class:`InputError` if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"DICOM folder not found: {folder}")
    if not any(folder.iterdir()):
        raise InputError(f"DICOM folder {folder} is empty")
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    if not ids:
        raise InputError(f"no DICOM series found in folder {folder}")
    series = [_describe(uid, tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))) for uid in ids]
    return sorted(series, key=lambda s: (len(s.files) > 1, s.voxels), reverse=True)


def choose_series(series: list[DicomSeries], series_uid: str | None = None) -> DicomSeries:
    """The series named by ``series_uid``, else the largest one with more than one slice (a 3D series)."""
    if series_uid is not None:
        for item in series:
            if item.uid == series_uid:
                return item
        raise InputError(f"DICOM series {series_uid} not found; available: {', '.join(s.uid for s in series)}")
    volumes = [item for item in series if len(item.files) > 1]
    if not volumes:
        raise InputError("the DICOM folder holds only single-slice series; a 3D series is needed")
    return volumes[0]


def read_dicom_series(folder: Path, series_uid: str | None = None, *,
                      warn: Callable[[str], None] | None = None) -> sitk.Image:
    """Read one DICOM series from ``folder``: ``series_uid`` if given, else the largest 3D series.

    ``warn(message)`` receives the one-line notice that a folder with several series was narrowed to one;
    without it the notice is a :class:`UserWarning`."""
    series = list_series(folder)
    chosen = choose_series(series, series_uid)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(chosen.files))
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "unknown reason"
        raise InputError(f"cannot read DICOM series {chosen.uid}: {reason}") from None
    if len(series) > 1:
        message = (f"DICOM folder holds {len(series)} series; using {chosen.uid} "
                   f"({chosen.description or 'no description'}, {len(chosen.files)} files); choose another with "
                   "--series UID")
        if warn is not None:
            warn(message)
        else:
            warnings.warn(message, stacklevel=2)
    image.SetMetaData(SERIES_UID_KEY, chosen.uid)
    image.SetMetaData(SERIES_DESCRIPTION_KEY, chosen.description)
    if chosen.contrast_agent:
        image.SetMetaData(CONTRAST_AGENT_KEY, chosen.contrast_agent)
    return image

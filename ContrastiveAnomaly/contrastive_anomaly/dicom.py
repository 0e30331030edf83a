"""DICOM series reading (placeholder until the clinical-input pipeline lands)."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from .errors import InputError


def read_dicom_series(folder: Path, series_uid: str | None = None) -> sitk.Image:
    """Read one DICOM series from ``folder``: ``series_uid`` if given, else the series with the most files."""
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    if not ids:
        raise InputError(f"no DICOM series found in folder {folder}")
    if series_uid is not None and series_uid not in ids:
        raise InputError(f"DICOM series {series_uid} not found in {folder}; available: {', '.join(ids)}")
    files_by_id = {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid) for uid in ids}
    chosen = series_uid or max(files_by_id, key=lambda uid: len(files_by_id[uid]))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files_by_id[chosen])
    return reader.Execute()

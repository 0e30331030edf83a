"""Finding the healthy scans of one contrast in a user's data, and which subject each belongs to.

A source (``fit --healthy SRC``) is one of

* a **BIDS** dataset: ``sub-<label>/[ses-<label>/]anat/sub-<label>[_...]_<suffix>.nii[.gz]``, the suffix chosen by the
  contrast (:data:`BIDS_SUFFIXES`); recognised by ``dataset_description.json`` or ``sub-*`` folders;
* the **IXI** naming, ``IXI<number>-<site>-<id>-<T1|T2|PD>.nii[.gz]`` (IXI has no FLAIR);
* a **CSV** file with a ``path`` column and optional ``subject``, ``id``, ``contrast`` and ``series`` columns
  (relative paths are relative to the CSV's folder);
* a **folder** (searched recursively) of NIfTI/NRRD/MHA files and/or DICOM series.

The split into training and held-out data is by subject, so every scan carries a subject id: the BIDS ``sub-``
label, the IXI number, the CSV's ``subject`` column, the DICOM PatientID, or else the file's stem. In a plain folder a
file whose name names another contrast (``_T2w``, ``-FLAIR``, ...) is left out; a name that names none is taken to be
of the requested contrast. Nothing here reads voxels: discovery is cheap and runs before any heavy work.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

from ..config import CONTRASTS
from ..errors import InputError
from ..storage.files import VOLUME_SUFFIXES

BIDS_SUFFIXES = {"T1": ("T1w",), "T2": ("T2w",), "FLAIR": ("FLAIR",), "PD": ("PDw", "PD")}
BIDS_DESCRIPTION_FILE = "dataset_description.json"
IXI_PATTERN = re.compile(r"^(IXI\d+)-.+-(T1|T2|PD|MRA|DTI(?:-\d+)?)\.nii(?:\.gz)?$", re.IGNORECASE)
# Name tokens (case-insensitive, split at _ - . and spaces) that say which contrast a file or DICOM series holds.
CONTRAST_TOKENS = {
    "T1": {"t1", "t1w", "mprage", "spgr", "bravo", "tfl3d"},
    "T2": {"t2", "t2w", "tse2"},
    "FLAIR": {"flair", "t2flair", "darkfluid"},
    "PD": {"pd", "pdw"},
}
# Files that are masks or label maps, never scans (same tokenisation).
NON_SCAN_TOKENS = {"mask", "brainmask", "label", "labels", "seg", "dseg", "segmentation", "lesion"}
DICOM_PATIENT_ID_TAG = "0010|0020"
DICOM_DESCRIPTION_TAG = "0008|103e"
SAFE_ID_PATTERN = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ScanSource:
    """One scan to preprocess. ``path`` is a volume file or a DICOM folder (``series_uid`` picks the series there);
    ``files`` are the files whose bytes make up the scan (hashed to recognise it); ``scan_id`` is unique within the
    source and safe as a folder name; ``subject`` is the split unit."""

    scan_id: str
    subject: str
    path: Path
    files: tuple[Path, ...]
    series_uid: str | None = None


@dataclass
class Discovery:
    """What a source holds: the ``scans`` of the requested contrast, and how many scans of other contrasts were left
    out (``other_contrasts``, e.g. ``{"T2": 3}``). ``kind``: ``bids``, ``ixi``, ``csv`` or ``folder``."""

    kind: str
    source: Path
    contrast: str
    scans: list[ScanSource]
    other_contrasts: dict[str, int] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        """The distinct subject ids, sorted."""
        return sorted({scan.subject for scan in self.scans})


def volume_stem(name: str) -> str:
    """A file name without its volume suffix (``a.nii.gz`` -> ``a``)."""
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def safe_id(text: str) -> str:
    """``text`` with every run of characters other than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    return SAFE_ID_PATTERN.sub("_", text).strip("._") or "scan"


def _tokens(text: str) -> set[str]:
    return {token for token in re.split(r"[_\-.\s]+", text.lower()) if token}


def named_contrast(text: str) -> str | None:
    """The one contrast a name or series description names, or ``None`` (none, or several)."""
    tokens = _tokens(text)
    found = [contrast for contrast, words in CONTRAST_TOKENS.items() if tokens & words]
    if "FLAIR" in found:
        found = [c for c in found if c != "T2"]  # "T2 FLAIR" is a FLAIR
    return found[0] if len(found) == 1 else None


def check_contrast(contrast: str) -> str:
    """The canonical spelling of ``contrast`` (case-insensitive), or a one-line :class:`InputError`."""
    canonical = {c.lower(): c for c in CONTRASTS}.get(str(contrast).lower())
    if canonical is None:
        raise InputError(f"unknown contrast {contrast!r}; choose one of {', '.join(CONTRASTS)}")
    return canonical


def _is_volume_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(VOLUME_SUFFIXES) and not path.name.startswith(".")


def _unique_ids(scans: list[ScanSource]) -> list[ScanSource]:
    """Make scan ids unique by appending ``-2``, ``-3``, ... (in path order) where two scans share one."""
    counts: Counter[str] = Counter()
    unique = []
    for scan in sorted(scans, key=lambda s: (str(s.path), s.series_uid or "")):
        counts[scan.scan_id] += 1
        scan_id = scan.scan_id if counts[scan.scan_id] == 1 else f"{scan.scan_id}-{counts[scan.scan_id]}"
        unique.append(ScanSource(scan_id, scan.subject, scan.path, scan.files, scan.series_uid))
    return sorted(unique, key=lambda s: s.scan_id)


# --- BIDS ------------------------------------------------------------------------------------------------------------


def is_bids(folder: Path) -> bool:
    """A folder with ``dataset_description.json`` or at least one ``sub-*`` sub-folder."""
    return (folder / BIDS_DESCRIPTION_FILE).is_file() or any(p.is_dir() for p in folder.glob("sub-*"))


def bids_suffix(name: str) -> str:
    """The BIDS suffix of a file name (``sub-01_ses-1_T1w.nii.gz`` -> ``T1w``)."""
    return volume_stem(name).rsplit("_", 1)[-1]


def _bids_scans(folder: Path, contrast: str) -> tuple[list[ScanSource], Counter[str]]:
    wanted = BIDS_SUFFIXES[contrast]
    suffix_to_contrast = {s: c for c, suffixes in BIDS_SUFFIXES.items() for s in suffixes}
    scans, others = [], Counter()
    files = sorted(folder.glob("sub-*/anat/*")) + sorted(folder.glob("sub-*/ses-*/anat/*"))
    for path in files:
        if not (_is_volume_file(path) and path.name.lower().endswith((".nii", ".nii.gz"))):
            continue
        suffix = bids_suffix(path.name)
        subject = path.relative_to(folder).parts[0]
        if suffix in wanted:
            scans.append(ScanSource(safe_id(volume_stem(path.name)), subject, path, (path,)))
        elif suffix in suffix_to_contrast:
            others[suffix_to_contrast[suffix]] += 1
    return scans, others


# --- IXI -------------------------------------------------------------------------------------------------------------


def ixi_match(name: str) -> tuple[str, str] | None:
    """``(subject, contrast)`` of an IXI file name (``IXI002-Guys-0828-T1.nii.gz`` -> ``("IXI002", "T1")``)."""
    match = IXI_PATTERN.match(name)
    return (match.group(1).upper(), match.group(2).upper()) if match else None


def _is_ixi(folder: Path) -> bool:
    return any(ixi_match(path.name) for path in folder.iterdir() if path.is_file())


def _ixi_scans(folder: Path, contrast: str) -> tuple[list[ScanSource], Counter[str]]:
    scans, others = [], Counter()
    for path in sorted(folder.iterdir()):
        parsed = ixi_match(path.name) if _is_volume_file(path) else None
        if parsed is None:
            continue
        subject, found = parsed
        if found == contrast:
            scans.append(ScanSource(safe_id(volume_stem(path.name)), subject, path, (path,)))
        else:
            others[found] += 1
    return scans, others


# --- a plain folder (files and DICOM series) -------------------------------------------------------------------------


def _dicom_series_in(folder: Path) -> list[tuple[str, tuple[Path, ...], str, str]]:
    """``(series uid, files, PatientID, description)`` of every multi-file DICOM series directly in ``folder``."""
    found = []
    for uid in sorted(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()):
        files = tuple(Path(f) for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
        if len(files) < 2:
            continue  # localisers and single images are not volumes
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(files[0]))
        patient, description = "", ""
        try:
            reader.ReadImageInformation()
            if reader.HasMetaDataKey(DICOM_PATIENT_ID_TAG):
                patient = reader.GetMetaData(DICOM_PATIENT_ID_TAG).strip()
            if reader.HasMetaDataKey(DICOM_DESCRIPTION_TAG):
                description = reader.GetMetaData(DICOM_DESCRIPTION_TAG).strip()
        except RuntimeError:
            pass  # the read stage reports an unreadable series with its reason
        found.append((uid, files, patient, description))
    return found


@dataclass
class _Candidate:
    path: Path
    files: tuple[Path, ...]
    series_uid: str | None = None
    patient: str = ""
    series_count: int = 1
    series_index: int = 0


def _assign_ids(candidates: list[_Candidate]) -> list[ScanSource]:
    """Scan and subject ids for a plain folder.

    Paths are taken relative to the deepest folder holding every scan: a file directly there is its own subject
    (its stem); anything below a sub-folder belongs to the subject named by that sub-folder. A DICOM PatientID,
    when present, names the subject instead.
    """
    parents = [c.path if c.series_uid else c.path.parent for c in candidates]
    root = Path(os.path.commonpath([str(p) for p in parents]))
    scans = []
    for candidate, parent in zip(candidates, parents, strict=True):
        relative = parent.relative_to(root).parts
        if candidate.series_uid is None:
            leaf = volume_stem(candidate.path.name)
            scan_id = "_".join((*relative, leaf))
            subject = relative[0] if relative else leaf
        else:
            scan_id = "_".join(relative) or root.name
            if candidate.series_count > 1:
                scan_id += f"_series{candidate.series_index + 1}"
            subject = candidate.patient or (relative[0] if relative else root.name)
        scans.append(ScanSource(safe_id(scan_id), safe_id(subject), candidate.path, candidate.files,
                                candidate.series_uid))
    return scans


def _folder_scans(folder: Path, contrast: str) -> tuple[list[ScanSource], Counter[str]]:
    candidates, others = [], Counter()
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        here = Path(directory)
        other_files = False
        for name in sorted(names):
            path = here / name
            if name.startswith("."):
                continue
            if not _is_volume_file(path):
                other_files = True
                continue
            stem = volume_stem(name)
            if _tokens(stem) & NON_SCAN_TOKENS:
                continue
            named = named_contrast(stem)
            if named is not None and named != contrast:
                others[named] += 1
                continue
            candidates.append(_Candidate(path, (path,)))
        if other_files:
            series = _dicom_series_in(here)
            for index, (uid, files, patient, description) in enumerate(series):
                named = named_contrast(description)
                if named is not None and named != contrast:
                    others[named] += 1
                else:
                    candidates.append(_Candidate(here, files, uid, patient, len(series), index))
    return (_assign_ids(candidates) if candidates else []), others


# --- CSV -------------------------------------------------------------------------------------------------------------


def _subject_from_name(path: Path) -> str:
    parsed = ixi_match(path.name)
    if parsed:
        return parsed[0]
    bids = re.match(r"^(sub-[A-Za-z0-9]+)", path.name)
    return bids.group(1) if bids else safe_id(volume_stem(path.name))


def _csv_scans(table: Path, contrast: str) -> tuple[list[ScanSource], Counter[str]]:
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read the scan list {table.name}: {exc}") from None
    if rows and "path" not in rows[0]:
        raise InputError(f"{table.name} needs a 'path' column (optional: subject, id, contrast, series)")
    scans, others = [], Counter()
    for row in rows:
        if not (row.get("path") or "").strip():
            continue
        path = (table.parent / row["path"].strip()).resolve()
        row_contrast = (row.get("contrast") or "").strip()
        if row_contrast:
            named = check_contrast(row_contrast)
        else:
            named = named_contrast(volume_stem(path.name)) or contrast
        if named != contrast:
            others[named] += 1
            continue
        subject = (row.get("subject") or "").strip() or _subject_from_name(path)
        scan_id = (row.get("id") or "").strip() or volume_stem(path.name)
        files = (path,) if not path.is_dir() else tuple(sorted(p for p in path.iterdir() if p.is_file()))
        scans.append(ScanSource(safe_id(scan_id), safe_id(subject), path, files,
                                (row.get("series") or "").strip() or None))
    return scans, others


# --- entry point -----------------------------------------------------------------------------------------------------


def discover_scans(source: str | Path, contrast: str) -> Discovery:
    """The scans of ``contrast`` in ``source`` (see the module docstring), sorted by scan id.

    Raises :class:`InputError` with one line when the source is missing or empty or holds no scan of ``contrast``.
    """
    contrast = check_contrast(contrast)
    source = Path(source).expanduser()
    if not source.exists():
        raise InputError(f"healthy-scan source not found: {source}")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise InputError(f"{source.name} is not a folder or a CSV list of scans")
        kind = "csv"
        scans, others = _csv_scans(source, contrast)
    elif is_bids(source):
        kind = "bids"
        scans, others = _bids_scans(source, contrast)
    elif _is_ixi(source):
        kind = "ixi"
        scans, others = _ixi_scans(source, contrast)
    else:
        kind = "folder"
        scans, others = _folder_scans(source, contrast)
    if not scans:
        if others:
            found = ", ".join(f"{count} {name}" for name, count in sorted(others.items()))
            raise InputError(f"no {contrast} scans in {source} ({kind}); it holds {found}: pass the matching "
                             "--contrast")
        raise InputError(f"no scans found in {source} (looked for NIfTI/NRRD/MHA files, DICOM series, "
                         f"BIDS or IXI names)")
    return Discovery(kind=kind, source=source, contrast=contrast, scans=_unique_ids(scans),
                     other_contrasts=dict(sorted(others.items())))

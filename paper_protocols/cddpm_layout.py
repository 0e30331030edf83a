"""IXI, BraTS21 and MSLUB in the cDDPM preprocessed layout, with their split CSVs (docs/DATA.md §6).

Layout (``<DATA_DIR>`` or ``<DATA_DIR>/Data`` may be given)::

    <DATA_DIR>/Data/splits/IXI_train_fold{0..4}.csv  IXI_val_fold{0..4}.csv  IXI_test.csv  avail_t2.csv
    <DATA_DIR>/Data/splits/Brats21_{val,test}.csv  MSLUB_{val,test}.csv
    <DATA_DIR>/Data/Train/ixi/{t2,mask}/IXI…_{t2,mask}.nii.gz
    <DATA_DIR>/Data/Test/{Brats21,MSLUB}/{t2,mask,seg}/<id>_{t2,mask,seg}.nii.gz

The CSV paths are relative to ``<DATA_DIR>/Data`` and name the T1 files. The image path is switched to the
wanted modality by replacing only the modality folder (a path component equal to ``t1``) and the file-name suffix
(``_t1.nii.gz``), never every "t1" substring (subject ids may contain one). IXI subjects are kept only if listed in
``avail_t2.csv`` (when loading T2).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from contrastive_anomaly.errors import InputError

SOURCE_MODALITY = "t1"
NIFTI_SUFFIX = ".nii.gz"
IXI_AVAILABILITY_CSV = {"t2": "avail_t2.csv"}


@dataclass(frozen=True)
class VolumeRecord:
    """One volume of a split: paths are absolute; ``label`` is 0 (healthy) or 1 (pathological)."""

    subject_id: str
    image_path: Path
    mask_path: Path | None
    seg_path: Path | None
    label: int
    age: float | None
    dataset: str
    split: str


def data_root(data_dir: Path) -> Path:
    """``<DATA_DIR>/Data`` (accepts either folder); raises :class:`InputError` if there is no ``splits`` folder."""
    data_dir = Path(data_dir)
    for candidate in (data_dir / "Data", data_dir):
        if (candidate / "splits").is_dir():
            return candidate
    raise InputError(f"{data_dir} is not a cDDPM data folder: no Data/splits/ inside")


def swap_modality(relative_path: str, modality: str, source: str = SOURCE_MODALITY) -> str:
    """Replace the modality folder and the ``_<source>.nii.gz`` suffix of a CSV path; nothing else changes."""
    parts = list(PurePosixPath(relative_path.replace("\\", "/")).parts)
    parts = [modality if part == source else part for part in parts[:-1]] + parts[-1:]
    name = parts[-1]
    suffix = f"_{source}{NIFTI_SUFFIX}"
    if name.endswith(suffix):
        parts[-1] = name[: -len(suffix)] + f"_{modality}{NIFTI_SUFFIX}"
    return str(PurePosixPath(*parts))


def subject_key(name: str) -> str:
    """A subject id from an ``img_name`` or file name: the extension and a trailing ``_<modality>`` removed."""
    stem = PurePosixPath(name.strip()).name
    for ending in (NIFTI_SUFFIX, ".nii"):
        stem = stem.removesuffix(ending)
    head, sep, tail = stem.rpartition("_")
    return head if sep and tail.lower() in ("t1", "t2", "flair", "pd", "mask", "seg") else stem


def _resolve(root: Path, path: str | None) -> Path | None:
    if path is None or str(path).strip() in ("", "nan", "None"):
        return None
    return root / str(path).strip().lstrip("/")


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    if not csv_path.is_file():
        raise InputError(f"split file not found: {csv_path}")
    with open(csv_path, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    required = {"img_name", "label", "img_path"}
    if rows and not required <= set(rows[0]):
        raise InputError(f"{csv_path.name} lacks the columns {sorted(required - set(rows[0]))}")
    return rows


def ixi_available(root: Path, modality: str) -> set[str] | None:
    """Subject keys listed in the IXI availability CSV for ``modality`` (``None`` when none applies)."""
    name = IXI_AVAILABILITY_CSV.get(modality)
    if name is None:
        return None
    path = root / "splits" / name
    if not path.is_file():
        raise InputError(f"IXI {modality.upper()} availability list not found: {path}")
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    if not rows:
        return set()
    header = [h.strip() for h in rows[0]]
    has_header = not header[0].upper().startswith("IXI")  # a header row names columns; data rows start with IXI
    column = header.index("img_name") if "img_name" in header else 0
    body = rows[1:] if has_header else rows
    return {subject_key(row[column]) for row in body if row and row[column].strip()}


def load_cddpm_split(data_dir: Path, split: str, modality: str = "t2", check_files: bool = True
                     ) -> list[VolumeRecord]:
    """Records of one split CSV, e.g. ``"IXI_train_fold0"``, ``"Brats21_test"``, ``"MSLUB_val"``.

    ``modality`` is the image modality to load (the CSVs name T1 files). With ``check_files`` a missing image
    raises :class:`InputError` naming it.
    """
    root = data_root(data_dir)
    split = split.removesuffix(".csv")
    rows = _read_rows(root / "splits" / f"{split}.csv")
    dataset = split.split("_")[0]
    keep = ixi_available(root, modality) if dataset.upper() == "IXI" else None
    records = []
    for row in rows:
        subject = subject_key(row["img_name"])
        if keep is not None and subject not in keep:
            continue
        image = _resolve(root, swap_modality(row["img_path"], modality))
        if check_files and (image is None or not image.is_file()):
            raise InputError(f"{split}: image of {subject} not found: {image}")
        age = (row.get("age") or "").strip()
        records.append(VolumeRecord(
            subject_id=subject, image_path=image, mask_path=_resolve(root, row.get("mask_path")),
            seg_path=_resolve(root, row.get("seg_path")), label=int(float(row["label"])),
            age=float(age) if age not in ("", "nan") else None, dataset=dataset, split=split))
    return records

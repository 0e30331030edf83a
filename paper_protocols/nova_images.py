"""NOVA (evaluation only): PNG images plus ``NOVA_metadata.csv`` (docs/DATA.md §6, docs/METHOD.md §7).

Layout: ``<DATA_DIR>/Data/NOVA/NOVA_metadata.csv`` and ``<DATA_DIR>/Data/NOVA/images/<filename>``; the CSV may also
sit at ``<DATA_DIR>/Data/NOVA_metadata.csv``. Rows are kept when the caption contains "T2" (the protocol's filter,
:func:`paper_protocols.nova_boxes.keep_for_nova`); ``bbox_gold`` is parsed with
:func:`paper_protocols.nova_boxes.parse_bbox_gold` (Python literal).
Images load as 2D greyscale float32 in [0, 1],
``(rows, cols)`` at native size; boxes are ``(x, y, width, height)`` in pixels (x = column).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from contrastive_anomaly.errors import InputError

from .nova_boxes import Box, keep_for_nova, parse_bbox_gold

METADATA_NAME = "NOVA_metadata.csv"
REQUIRED_COLUMNS = ("filename", "caption", "bbox_gold")


@dataclass(frozen=True)
class NovaRecord:
    """One NOVA image: its path, caption, case id and gold boxes."""

    filename: str
    image_path: Path
    caption: str
    case_id: str
    boxes: tuple[Box, ...]


def _locate(data_dir: Path) -> tuple[Path, Path]:
    """(metadata CSV, images folder) under ``data_dir`` (``<DATA_DIR>``, ``<DATA_DIR>/Data`` or the NOVA folder)."""
    data_dir = Path(data_dir)
    for nova in (data_dir / "Data" / "NOVA", data_dir / "NOVA", data_dir):
        images = nova / "images"
        for csv_path in (nova / METADATA_NAME, nova.parent / METADATA_NAME):
            if csv_path.is_file() and images.is_dir():
                return csv_path, images
    raise InputError(f"no NOVA data in {data_dir}: expected Data/NOVA/{METADATA_NAME} and Data/NOVA/images/")


def load_nova(data_dir: Path, t2_only: bool = True, check_files: bool = True) -> list[NovaRecord]:
    """NOVA records in CSV order; ``t2_only`` applies the caption filter of the protocol."""
    csv_path, images = _locate(data_dir)
    with open(csv_path, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    if rows and any(c not in rows[0] for c in REQUIRED_COLUMNS):
        raise InputError(f"{csv_path.name} lacks columns {[c for c in REQUIRED_COLUMNS if c not in rows[0]]}")
    records = []
    for row in rows:
        if t2_only and not keep_for_nova(row["caption"]):
            continue
        path = images / row["filename"]
        if check_files and not path.is_file():
            raise InputError(f"NOVA image not found: {path}")
        records.append(NovaRecord(filename=row["filename"], image_path=path, caption=row["caption"],
                                  case_id=row.get("case_id", ""), boxes=tuple(parse_bbox_gold(row["bbox_gold"]))))
    return records


def load_png_grey(path: Path) -> np.ndarray:
    """A PNG as 2D greyscale float32 in [0, 1] (rows, cols); 16-bit images are scaled by 65535, 8-bit by 255."""
    try:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float32)
                return np.clip(array / 65535.0, 0.0, 1.0)
            return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read NOVA image {Path(path).name}: {exc}") from None

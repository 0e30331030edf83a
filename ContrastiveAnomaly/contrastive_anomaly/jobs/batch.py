"""``detect-batch``: score many scans, resumably, sharded over ``torchrun`` ranks (docs/PERFORMANCE.md §6).

Each scan gets its own output folder ``OUT/<scan id>/`` written by :func:`~contrastive_anomaly.jobs.detect.detect`;
``summary.json`` is moved in last, so a folder with it is complete and is skipped on a rerun, and a folder
without it (an interrupted scan) is redone. Rank r of W takes scans ``r, r+W, …``; each rank writes
``OUT/summary.rank<r>.csv`` after every scan, and rank 0 merges them into ``OUT/summary.csv`` at the end and then
removes the per-rank files. One bad scan is recorded with its one-line error and never stops the batch; the row
``status`` is one of :data:`STATUSES` (``skipped`` = finished by an earlier run, not scored again).
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ContrastiveAnomalyError, InputError
from ..runtime.precision import resolve_device
from ..runtime.progress import ProgressReporter
from ..scoring.detector import Detector, load_detector
from ..storage.files import VOLUME_SUFFIXES, write_csv_atomic
from .detect import OUTPUT_FILES, DetectRequest, detect

STATUS_OK, STATUS_SKIPPED, STATUS_FAILED = "ok", "skipped", "failed"
STATUSES = (STATUS_OK, STATUS_SKIPPED, STATUS_FAILED)
SUMMARY_COLUMNS = ("scan_id", "path", "status", "anomaly_volume_ml", "region_count", "peak_score", "threshold",
                   "seconds", "timings_s", "error")


@dataclass
class ScanItem:
    """One scan to score. ``scan_id`` names its output folder."""

    scan_id: str
    path: Path
    brain_mask: Path | None = None
    contrast: str | None = None


def _scan_id(path: Path) -> str:
    name = path.name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def list_scans(source: str | Path) -> list[ScanItem]:
    """Scans from a folder (volume files and DICOM sub-folders) or a CSV (columns ``path`` [, ``id``,
    ``brain_mask``, ``contrast``]; relative paths are relative to the CSV). Sorted by id; ids must be unique."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "path" not in rows[0]:
            raise InputError(f"{source} needs a 'path' column")
        items = []
        for row in rows:
            path = (source.parent / row["path"]).resolve()
            mask = (source.parent / row["brain_mask"]).resolve() if row.get("brain_mask") else None
            items.append(ScanItem(row.get("id") or _scan_id(path), path, mask, row.get("contrast") or None))
    elif source.is_dir():
        items = [ScanItem(_scan_id(p), p) for p in sorted(source.iterdir())
                 if (p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES)) or p.is_dir()]
    else:
        raise InputError(f"{source} is neither a folder of scans nor a CSV file")
    ids = [item.scan_id for item in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"scan ids are not unique: {', '.join(duplicates[:5])}")
    if not items:
        raise InputError(f"no scans found in {source}")
    return sorted(items, key=lambda item: item.scan_id)


def is_complete(folder: Path) -> bool:
    """A scan folder is complete when every output, ``summary.json`` last, is in place."""
    return all((folder / name).is_file() for name in OUTPUT_FILES.values())


def _row_from_summary(item: ScanItem, summary: dict[str, Any], seconds: float, status: str) -> dict[str, Any]:
    return {"scan_id": item.scan_id, "path": str(item.path), "status": status,
            "anomaly_volume_ml": round(summary["total_volume_ml"], 4), "region_count": summary["region_count"],
            "peak_score": round(summary["peak_score"], 5), "threshold": round(summary["threshold"], 5),
            "seconds": round(seconds, 2), "timings_s": json.dumps(summary.get("timings_s", {})), "error": ""}


def write_summary_csv(rows: list[dict[str, Any]], path: Path) -> None:
    write_csv_atomic(rows, SUMMARY_COLUMNS, path)


def score_one(item: ScanItem, out_root: Path, detector: Detector, fast: bool = False) -> dict[str, Any]:
    """Score one scan into ``out_root/<scan id>/`` (skipped when complete); returns its summary row."""
    folder = out_root / item.scan_id
    started = time.perf_counter()
    if is_complete(folder):
        summary = json.loads((folder / OUTPUT_FILES["summary"]).read_text(encoding="utf-8"))
        return _row_from_summary(item, summary, 0.0, STATUS_SKIPPED)
    shutil.rmtree(folder, ignore_errors=True)  # a half-written scan is redone from scratch
    request = DetectRequest(input=item.path, out_dir=folder, brain_mask=item.brain_mask, contrast=item.contrast,
                            device=str(detector.device), fast=fast)
    try:
        summary = detect(request, ProgressReporter("none"), detector=detector)
    except ContrastiveAnomalyError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return {"scan_id": item.scan_id, "path": str(item.path), "status": STATUS_FAILED,
                "seconds": round(time.perf_counter() - started, 2),
                "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    return _row_from_summary(item, summary, time.perf_counter() - started, STATUS_OK)


def score_shard(items: list[ScanItem], out_root: Path, model: str | None, device: str, rank: int = 0,
                world_size: int = 1, fast: bool = False, progress: ProgressReporter | None = None
                ) -> list[dict[str, Any]]:
    """Score this rank's share of ``items``; returns (and keeps writing) its summary rows."""
    progress = progress or ProgressReporter("none")
    out_root.mkdir(parents=True, exist_ok=True)
    detector = load_detector(model, resolve_device(device))
    mine = items[rank::world_size]
    rows: list[dict[str, Any]] = []
    with progress.stage("detect-batch", total=len(mine)) as stage:
        for done, item in enumerate(mine, start=1):
            rows.append(score_one(item, out_root, detector, fast))
            write_summary_csv(rows, out_root / f"summary.rank{rank}.csv")
            stage.advance(done)
    return rows


def merge_summaries(out_root: Path) -> Path:
    """Merge every ``summary.rank*.csv`` into ``summary.csv`` (sorted by scan id), then delete the rank files."""
    rows: list[dict[str, Any]] = []
    parts = sorted(out_root.glob("summary.rank*.csv"))
    for part in parts:
        with open(part, newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    rows.sort(key=lambda row: row["scan_id"])
    path = out_root / "summary.csv"
    write_summary_csv(rows, path)
    for part in parts:
        part.unlink(missing_ok=True)
    return path


def count_statuses(summary_csv: Path) -> dict[str, int]:
    """``{"ok": n, "skipped": n, "failed": n}`` over the rows of a batch summary CSV."""
    with open(summary_csv, newline="", encoding="utf-8") as handle:
        statuses = [row["status"] for row in csv.DictReader(handle)]
    return {status: statuses.count(status) for status in STATUSES}

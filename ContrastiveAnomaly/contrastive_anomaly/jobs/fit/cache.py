"""Step 1 of ``fit``: every scan through exactly the ``detect`` preprocessing, cached next to the model.

``MODEL_DIR/cache/<scan id>/`` holds ``image.nii.gz`` (float32, model grid, [0, 1], 0 outside the brain),
``brain_mask.nii.gz`` (uint8 0/1, model grid; both KJI arrays with the model grid's LPS geometry) and ``qc.json``:
the scan's content sha256, the cache key, ``status`` (``ok`` or ``failed``), the one-line ``reason`` of a failure, the
QC numbers and flags, the warnings and the seconds it took. A folder appears only when complete (staging folder, then
rename), so a killed run never leaves a half-written scan. A scan is done again only when its content or the
preprocessing settings changed (the cache key covers both); a failed scan is remembered too and not retried.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ... import __version__
from ...config import ModelConfig
from ...data.corpus_preprocess import model_grid_image
from ...data.sources import ScanSource
from ...data.volumes import Subject, read_subject_folder
from ...errors import ContrastiveAnomalyError
from ...preprocess import prepare_file
from ...runtime.progress import ProgressReporter
from ...storage.files import jsonable, write_image_atomic
from .files import (
    content_sha256,
    new_staging_folder,
    read_json,
    remove_stale_staging,
    replace_folder,
    write_json,
)

CACHE_DIR = "cache"
IMAGE_FILE = "image.nii.gz"
MASK_FILE = "brain_mask.nii.gz"
QC_FILE = "qc.json"


@dataclass
class CachedScan:
    """The outcome of preprocessing one scan. ``usable`` says whether training may use it."""

    scan: ScanSource
    sha256: str
    status: str
    reason: str = ""
    qc: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    folder: Path | None = None

    def usable(self, allow_qc_warnings: bool) -> bool:
        """Preprocessed, and (unless allowed) without QC flags."""
        return self.status == "ok" and (allow_qc_warnings or not self.qc.get("flags"))

    def skip_reason(self, allow_qc_warnings: bool) -> str:
        """One line saying why the scan is not used ("" when it is)."""
        if self.status != "ok":
            return self.reason
        if not self.usable(allow_qc_warnings):
            return "QC: " + "; ".join(self.warnings or self.qc.get("flags", []))
        return ""

    def to_subject(self) -> Subject:
        """The cached model-grid volume as a training :class:`Subject` named by the scan id."""
        subject = read_subject_folder(self.folder)
        subject.metadata.update(subject_id=self.scan.subject, sha256=self.sha256)
        return subject


def preprocessing_key(cfg: ModelConfig) -> str:
    """sha256 of everything that shapes a preprocessed volume: grid, intensity and preprocessing settings, engine
    version."""
    parts = {"grid": cfg.grid, "intensity": cfg.intensity, "preprocess": cfg.preprocess, "engine": __version__}
    text = json.dumps({k: (v if isinstance(v, str) else v.__dict__) for k, v in parts.items()}, sort_keys=True,
                      default=list)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(content: str, settings_key: str) -> str:
    return hashlib.sha256(f"{content}:{settings_key}".encode("ascii")).hexdigest()


def _from_record(scan: ScanSource, folder: Path, record: dict[str, Any]) -> CachedScan:
    return CachedScan(scan=scan, sha256=record["sha256"], status=record["status"], reason=record.get("reason", ""),
                      qc=record.get("qc", {}), warnings=record.get("warnings", []),
                      seconds=float(record.get("seconds", 0.0)), folder=folder)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _preprocess_one(scan: ScanSource, sha256: str, key: str, cfg: ModelConfig, target: Path) -> CachedScan:
    """Run ``prepare_file`` (the detect pipeline) on one scan and write its cache folder; never raises for a bad
    scan (the failure is recorded instead)."""
    started = time.perf_counter()
    staging = new_staging_folder(target.parent, scan.scan_id)
    record: dict[str, Any] = {"scan_id": scan.scan_id, "subject": scan.subject, "source": str(scan.path),
                              "series_uid": scan.series_uid, "sha256": sha256, "cache_key": key,
                              "contrast": cfg.contrast}
    try:
        prepared = prepare_file(scan.path, cfg, series_uid=scan.series_uid, contrast=cfg.contrast,
                                progress=ProgressReporter("none"))
        grid = prepared.model_grid
        write_image_atomic(model_grid_image(prepared.image_kji.astype(np.float32), cfg.grid.spacing_mm, grid),
                           staging / IMAGE_FILE)
        write_image_atomic(model_grid_image(prepared.brain_mask_kji.astype(np.uint8), cfg.grid.spacing_mm, grid),
                           staging / MASK_FILE)
        record.update(status="ok", qc=jsonable(prepared.qc), warnings=list(prepared.warnings),
                      timings_s={k: round(v, 3) for k, v in prepared.timings_s.items()})
    except (ContrastiveAnomalyError, RuntimeError, ValueError, OSError, MemoryError) as exc:
        # one unreadable or misaligned scan must not stop the fit: it is recorded and skipped
        for partial in staging.iterdir():
            partial.unlink()
        record.update(status="failed", reason=_one_line(exc))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # interrupted: nothing of this scan is kept
        raise
    record["seconds"] = round(time.perf_counter() - started, 3)
    write_json(staging / QC_FILE, record)
    replace_folder(staging, target)
    return _from_record(scan, target, record)


def read_cached(scan: ScanSource, cache_root: Path, key: str) -> CachedScan | None:
    """The cached outcome of ``scan`` if its ``qc.json`` carries cache key ``key``, else ``None``."""
    folder = cache_root / scan.scan_id
    record = read_json(folder / QC_FILE)
    if not isinstance(record, dict) or record.get("cache_key") != key:
        return None
    if record.get("status") == "ok" and not ((folder / IMAGE_FILE).is_file() and (folder / MASK_FILE).is_file()):
        return None
    return _from_record(scan, folder, record)


def hash_scans(scans: list[ScanSource], progress: ProgressReporter) -> dict[str, str | Exception]:
    """``{scan id: content sha256}``; an unreadable scan maps to its error (recorded as a failure later)."""
    digests: dict[str, str | Exception] = {}
    with progress.stage("hash", total=len(scans)) as stage:
        for done, scan in enumerate(scans, start=1):
            try:
                digests[scan.scan_id] = content_sha256(scan.files)
            except OSError as exc:
                digests[scan.scan_id] = exc
            stage.advance(done)
    return digests


def preprocess_scans(scans: list[ScanSource], cfg: ModelConfig, cache_root: Path, progress: ProgressReporter,
                     digests: dict[str, str | Exception]) -> list[CachedScan]:
    """Bring every scan into the cache (cached ones are only read); returns one :class:`CachedScan` per scan.

    ``digests``: :func:`hash_scans` output. Progress: stage ``preprocess``, one unit per scan still to do, so the
    ETA reflects the work left.
    """
    cache_root.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(cache_root)
    settings_key = preprocessing_key(cfg)
    results: dict[str, CachedScan] = {}
    todo: list[tuple[ScanSource, str, str]] = []
    for scan in scans:
        digest = digests[scan.scan_id]
        if isinstance(digest, Exception):
            results[scan.scan_id] = CachedScan(scan=scan, sha256="", status="failed",
                                               reason=f"cannot read {scan.path.name}: {_one_line(digest)}")
            continue
        key = cache_key(digest, settings_key)
        cached = read_cached(scan, cache_root, key)
        if cached is not None:
            results[scan.scan_id] = cached
        else:
            todo.append((scan, digest, key))
    with progress.stage("preprocess", total=len(todo)) as stage:
        for done, (scan, digest, key) in enumerate(todo, start=1):
            results[scan.scan_id] = _preprocess_one(scan, digest, key, cfg, cache_root / scan.scan_id)
            stage.advance(done)
    return [results[scan.scan_id] for scan in scans]


def collect_cached(scans: list[ScanSource], cfg: ModelConfig, cache_root: Path) -> list[CachedScan]:
    """Read every scan's cached outcome (after other processes preprocessed them); a missing one is a failure."""
    settings_key = preprocessing_key(cfg)
    digests = hash_scans(scans, ProgressReporter("none"))
    results = []
    for scan in scans:
        digest = digests[scan.scan_id]
        found = None if isinstance(digest, Exception) else \
            read_cached(scan, cache_root, cache_key(digest, settings_key))
        results.append(found or CachedScan(scan=scan, sha256="", status="failed", reason="not preprocessed"))
    return results

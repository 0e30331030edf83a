"""Small file helpers of ``fit``: JSON written atomically, content hashes of scans, a staged folder swap.

Everything ``fit`` writes reaches its final name by ``os.replace`` from a temporary name in the same folder, so a
kill at any moment leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...storage.files import write_json_atomic
from ...storage.integrity import sha256_of

FOLDER_MODE = 0o777


def write_json(path: Path, data: Any) -> Path:
    """``data`` as sorted, indented JSON through the engine's :func:`~contrastive_anomaly.storage.files.atomic_write`
    (numpy scalars become numbers, anything else unknown a string)."""
    return write_json_atomic(data, path, sort_keys=True, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or ``None`` when it is missing or unreadable (a file being replaced counts as missing)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def content_sha256(files: Iterable[Path]) -> str:
    """The sha256 of one file, or for several (a DICOM series) the sha256 of their sorted per-file digests.

    File names do not enter the digest, so a renamed or moved scan is still recognised.
    """
    files = list(files)
    if len(files) == 1:
        return sha256_of(files[0])
    digests = sorted(sha256_of(f) for f in files)
    return hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest()


def replace_folder(staging: Path, target: Path) -> None:
    """Put the finished folder ``staging`` at ``target`` (removing an older ``target`` first)."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def new_staging_folder(parent: Path, label: str) -> Path:
    """A hidden temporary folder in ``parent`` (same file system as the target, so the final rename is atomic)."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{label}-", dir=parent))
    os.chmod(staging, FOLDER_MODE & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
    return staging


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def remove_stale_staging(parent: Path) -> None:
    """Delete temporary folders left by a killed run."""
    if parent.is_dir():
        for stale in parent.glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)

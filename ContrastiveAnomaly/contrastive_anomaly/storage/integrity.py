"""Checksums of model folders, with no torch import (the Slicer panel verifies imports before torch exists).

A model folder's ``model.sha256`` holds ``sha256sum``-format lines ``<hex>  <file name>``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import CheckpointError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CHECKSUM_FILE = "model.sha256"
# Files a model folder may also hold; when present, the manifest covers them like the weights.
HEALTHY_STATS_FILE = "healthy_residual_stats.safetensors"
OPTIONAL_MODEL_FILES = (HEALTHY_STATS_FILE,)
HASH_CHUNK_BYTES = 1 << 20


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: str | Path) -> dict[str, str]:
    """``{file name: lowercase hex sha256}`` from ``model.sha256``; empty when there is none."""
    manifest = Path(folder) / CHECKSUM_FILE
    if not manifest.is_file():
        return {}
    entries: dict[str, str] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or len(parts[0]) != 64:
            raise CheckpointError(f"{manifest} is malformed (expected '<sha256>  <file>' lines)")
        entries[parts[1].lstrip("*")] = parts[0].lower()
    return entries


def verify_model_folder(folder: str | Path) -> dict[str, str]:
    """Check every file listed in ``model.sha256`` (which must cover the weights and the config).

    Returns ``{file: sha256}``; raises :class:`CheckpointError` with one line on any problem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}")
    expected = read_manifest(folder)
    if not expected:
        raise CheckpointError(f"model folder {folder} has no {CHECKSUM_FILE}; refusing unverified weights")
    for required in (WEIGHTS_FILE, CONFIG_FILE):
        if required not in expected:
            raise CheckpointError(f"{folder / CHECKSUM_FILE} does not cover {required}")
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"model file missing: {path}")
        if sha256_of(path) != digest:
            raise CheckpointError(f"checksum mismatch for {path}: the file is corrupted or was modified")
    return expected

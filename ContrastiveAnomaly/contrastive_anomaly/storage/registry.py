"""Finding trained models: a folder path, or a name in ``models/registry.json``.

Registry search order: ``$CONTRASTIVE_ANOMALY_MODELS`` (a folder holding ``registry.json``), then the repository's
(or Slicer extension's) ``models/`` folder next to the engine package. A registry entry is
``{"name", "contrast", "grid", "size_mb", "sha256", "path", "url"?, "default"?}``; ``path`` is relative to the
registry's folder. Nothing is ever downloaded: an entry whose folder is missing names its URL in the error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CheckpointError
from .integrity import WEIGHTS_FILE, sha256_of

REGISTRY_FILE = "registry.json"
DEFAULT_MODEL = "default"


def registry_folders() -> list[Path]:
    """Folders that may hold a ``registry.json``, in search order."""
    folders = []
    if os.environ.get("CONTRASTIVE_ANOMALY_MODELS"):
        folders.append(Path(os.environ["CONTRASTIVE_ANOMALY_MODELS"]))
    package = Path(__file__).resolve().parents[1]
    folders += [package.parents[1] / "models", package.parent / "models", package / "models"]
    return folders


def read_registry() -> tuple[Path | None, list[dict]]:
    """The first registry found and its entries (``(None, [])`` when there is none)."""
    for folder in registry_folders():
        path = folder / REGISTRY_FILE
        if path.is_file():
            return folder, json.loads(path.read_text(encoding="utf-8")).get("models", [])
    return None, []


def resolve_model(name_or_path: str | Path | None) -> Path:
    """The model folder for a path, a registry name, or ``None``/``"default"`` (the registry's default entry)."""
    if name_or_path is not None and Path(name_or_path).is_dir():
        return Path(name_or_path)
    folder, entries = read_registry()
    name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    for entry in entries:
        if entry["name"] == name or (name == DEFAULT_MODEL and entry.get("default")):
            path = folder / entry["path"]
            if not path.is_dir():
                hint = f"; download it from {entry['url']} into {path}" if entry.get("url") else ""
                raise CheckpointError(f"model {entry['name']!r} is registered but not installed{hint}")
            expected = entry.get("sha256")
            if expected and sha256_of(path / WEIGHTS_FILE) != expected:
                raise CheckpointError(f"model {entry['name']!r}: weights do not match the registry's sha256")
            return path
    if name_or_path is None or name == DEFAULT_MODEL:
        raise CheckpointError("no default model is installed; pass --model FOLDER (train one with "
                              "'contrastive-anomaly train')")
    raise CheckpointError(f"model {name!r} is neither a folder nor a registered model name")

"""Models the panel can offer: entries of ``models/registry.json`` plus models the user imported, and the
checksum-verified import itself (hashlib only, no torch: the Slicer process never loads weights).

A model folder holds ``model.safetensors``, ``config.json`` and ``model.sha256`` (``sha256sum`` lines
``<hex>  <file>``). The registry is ``{"models": [{"name", "contrast", "grid", "size_mb", "sha256", "path", "url"}]}``
where ``path`` is a folder relative to the registry file's folder (or, failing that, to its parent: the repository
root) and ``sha256`` is the digest of ``model.safetensors``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contrastive_anomaly.errors import CheckpointError
from contrastive_anomaly.storage.integrity import CHECKSUM_FILE, CONFIG_FILE, WEIGHTS_FILE, sha256_of
from contrastive_anomaly.storage.integrity import read_manifest as _read_manifest

MODEL_FILES = (WEIGHTS_FILE, CONFIG_FILE, CHECKSUM_FILE)
USER_MODELS_ENV = "CONTRASTIVE_ANOMALY_MODELS"
DEFAULT_USER_MODELS_DIR = Path.home() / ".contrastive_anomaly" / "models"


class ModelImportError(Exception):
    """One-line reason why a model cannot be offered or imported."""


@dataclass(frozen=True)
class ModelEntry:
    """A model the panel can list. ``folder`` may not exist yet for registry entries that are only downloadable."""

    name: str
    contrast: str
    folder: Path
    sha256: str | None
    source: str  # "registry" or "imported"
    size_mb: float | None = None
    url: str | None = None

    @property
    def available(self) -> bool:
        return (self.folder / WEIGHTS_FILE).is_file() and (self.folder / CONFIG_FILE).is_file()

    @property
    def label(self) -> str:
        """Text for the model combo box."""
        suffix = "" if self.available else " (not installed)"
        return f"{self.name} ({self.contrast}){suffix}"


def user_models_dir(settings_value: str | None = None) -> Path:
    """Where imported models go: the Slicer setting, else ``$CONTRASTIVE_ANOMALY_MODELS``, else the home folder."""
    if settings_value:
        return Path(settings_value)
    return Path(os.environ.get(USER_MODELS_ENV) or DEFAULT_USER_MODELS_DIR)


def read_manifest(folder: Path) -> dict[str, str]:
    """``{file name: lowercase hex sha256}`` from ``model.sha256``; empty if there is none."""
    try:
        return _read_manifest(folder)
    except CheckpointError as exc:
        raise ModelImportError(str(exc)) from None


def read_model_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelImportError(f"{CONFIG_FILE} is missing next to the weights in {folder}") from None
    except ValueError as exc:
        raise ModelImportError(f"{path} is not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict):
        raise ModelImportError(f"{path} does not describe a model")
    return data


def postprocess_settings(folder: Path) -> dict[str, Any]:
    """The ``postprocess`` section of a model's ``config.json`` (calibrated threshold, component filter)."""
    section = read_model_config(folder).get("postprocess", {})
    return section if isinstance(section, dict) else {}


def calibrated_threshold(folder: Path) -> float | None:
    """The model's calibrated threshold (intensity units), else its default threshold, else ``None``."""
    section = postprocess_settings(folder)
    for key in ("threshold", "default_threshold"):
        if section.get(key) is not None:
            return float(section[key])
    return None


def verify_model_folder(folder: Path, expected_weights_sha256: str | None = None) -> str:
    """Check the weights (and every file in the manifest) against ``model.sha256`` and/or the registry digest.

    Returns the weights' sha256. Raises :class:`ModelImportError` on any mismatch, or when there is nothing to
    verify against.
    """
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelImportError(f"{WEIGHTS_FILE} not found in {folder}")
    manifest = read_manifest(folder)
    if not manifest and not expected_weights_sha256:
        raise ModelImportError(f"no {CHECKSUM_FILE} next to {weights.name} and no registry checksum: refusing "
                               "an unverified model")
    actual = sha256_of(weights)
    if expected_weights_sha256 and actual != expected_weights_sha256.lower():
        raise ModelImportError(f"checksum mismatch: {weights.name} does not match the registry's sha256 (corrupted "
                               "or a different model)")
    for name, digest in manifest.items():
        path = folder / name
        if not path.is_file():
            raise ModelImportError(f"{name} listed in {CHECKSUM_FILE} is missing from {folder}")
        if (actual if name == WEIGHTS_FILE else sha256_of(path)) != digest:
            raise ModelImportError(f"checksum mismatch: {name} does not match {CHECKSUM_FILE} (corrupted or modified)")
    return actual


def load_registry(registry_path: Path) -> list[ModelEntry]:
    """Entries of a ``registry.json``; a missing file gives an empty list, a malformed one raises."""
    if not registry_path.is_file():
        return []
    try:
        data = json.loads(registry_path.read_text(encoding="utf-8"))
        rows = data["models"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelImportError(f"model registry {registry_path} is malformed ({exc})") from None
    entries = []
    for row in rows:
        relative = Path(str(row.get("path") or row["name"]))
        folder = registry_path.parent / relative
        if not folder.is_dir() and (registry_path.parent.parent / relative).is_dir():
            folder = registry_path.parent.parent / relative
        entries.append(ModelEntry(name=str(row["name"]), contrast=str(row.get("contrast", "T1")), folder=folder,
                                  sha256=row.get("sha256"), source="registry", size_mb=row.get("size_mb"),
                                  url=row.get("url")))
    return entries


def imported_models(models_dir: Path) -> list[ModelEntry]:
    """Model folders previously imported into ``models_dir``."""
    if not models_dir.is_dir():
        return []
    entries = []
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (folder / WEIGHTS_FILE).is_file():
            continue
        try:
            contrast = str(read_model_config(folder).get("contrast", "T1"))
        except ModelImportError:
            continue
        entries.append(ModelEntry(name=folder.name, contrast=contrast, folder=folder, sha256=None, source="imported"))
    return entries


def list_models(registry_path: Path, models_dir: Path) -> list[ModelEntry]:
    """Registry models first, then imported ones whose names the registry does not already use."""
    registry = load_registry(registry_path)
    names = {entry.name for entry in registry}
    return registry + [entry for entry in imported_models(models_dir) if entry.name not in names]


def import_model(weights_file: Path, models_dir: Path, registry: list[ModelEntry] | None = None) -> ModelEntry:
    """Copy a verified model folder (the one holding ``weights_file``) into ``models_dir``; return its entry.

    The sha256 of ``model.safetensors`` must match ``model.sha256`` and, when a registry entry has the same name,
    the registry's digest. Files are copied into a hidden temporary folder that is renamed into place, so a failed
    import leaves nothing behind.
    """
    weights_file = Path(weights_file)
    source = weights_file if weights_file.is_dir() else weights_file.parent
    if not weights_file.is_dir() and weights_file.name != WEIGHTS_FILE:
        raise ModelImportError(f"select the model's {WEIGHTS_FILE} (got {weights_file.name})")
    config = read_model_config(source)
    name = str(config.get("name") or source.name)
    registered = next((entry for entry in registry or [] if entry.name == name), None)
    digest = verify_model_folder(source, registered.sha256 if registered else None)
    target = models_dir / name
    if target.exists():
        if (target / WEIGHTS_FILE).is_file() and sha256_of(target / WEIGHTS_FILE) == digest:
            return ModelEntry(name, str(config.get("contrast", "T1")), target, digest, "imported")
        raise ModelImportError(f"a different model named {name!r} is already installed in {models_dir}")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir))
    try:
        for file_name in MODEL_FILES:
            if (source / file_name).is_file():
                shutil.copy2(source / file_name, staging / file_name)
        if sha256_of(staging / WEIGHTS_FILE) != digest:
            raise ModelImportError("the copied weights differ from the source; check the disk and try again")
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ModelEntry(name, str(config.get("contrast", "T1")), target, digest, "imported")

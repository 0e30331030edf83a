"""The model registry shared by the CLI and the Slicer panel, and the rules for trusting a model folder.

Two registries, each a ``registry.json`` (``{"models": [row, ...]}``) in a folder:

* the **built-in** one ships inside the package, ``contrastive_anomaly/resources/models/`` (so a wheel, an sdist, a
  source checkout and the Slicer extension all carry the default model); it is read-only;
* the **user** one is ``$CONTRASTIVE_ANOMALY_MODELS`` (default ``~/.contrastive_anomaly/models``). Imported models
  are copied into it; fitted models are registered where they were written (the row holds an absolute path).

A row is ``{"name", "path", "contrast", "sha256"?, "default"?, "description"?, "size_mb"?, "threshold"?, "url"?,
"card"?}``; ``path`` (and ``card``) are relative to the registry's folder unless absolute; ``sha256`` is the digest
of ``model.safetensors``.

Trust rules (written once, here): a model folder is used only if its ``model.sha256`` manifest exists, covers the
weights and the config, and matches every file it lists; and, when a registry row gives a ``sha256``, the manifest's
digest of the weights must equal it. Nothing is ever downloaded: a row whose folder is missing names its URL.

No torch here: the Slicer process lists, imports and verifies models before torch is installed. Loading the weights
is :func:`contrastive_anomaly.scoring.detector.load_detector`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import CheckpointError, InputError, UsageError
from .integrity import CHECKSUM_FILE, CONFIG_FILE, WEIGHTS_FILE, read_manifest, sha256_of, verify_model_folder

REGISTRY_FILE = "registry.json"
CARD_FILE = "MODEL_CARD.md"
DEFAULT_MODEL = "default"
USER_MODELS_ENV = "CONTRASTIVE_ANOMALY_MODELS"
DEFAULT_USER_MODELS_DIR = Path("~") / ".contrastive_anomaly" / "models"
BUILTIN_MODELS_DIR = Path(__file__).resolve().parents[1] / "resources" / "models"
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MB = 2**20

Source = Literal["built-in", "user"]


@dataclass(frozen=True)
class ModelEntry:
    """One registered model. ``folder`` may be missing for a row that only names a download URL."""

    name: str
    folder: Path
    contrast: str
    source: Source
    sha256: str | None = None
    default: bool = False
    description: str = ""
    size_mb: float | None = None
    threshold: float | None = None
    url: str | None = None
    card: Path | None = None

    @property
    def installed(self) -> bool:
        """The weights, the config and the manifest are present (not yet verified)."""
        return all((self.folder / name).is_file() for name in (WEIGHTS_FILE, CONFIG_FILE, CHECKSUM_FILE))

    @property
    def label(self) -> str:
        """Text for a model list: ``name (contrast)``, plus why it cannot be used."""
        suffix = "" if self.installed else " (not installed)"
        return f"{self.name} ({self.contrast}){suffix}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(folder=str(self.folder), card=str(self.card) if self.card else None, installed=self.installed)
        return data


def user_models_dir() -> Path:
    """The user registry's folder: ``$CONTRASTIVE_ANOMALY_MODELS``, else ``~/.contrastive_anomaly/models``."""
    return Path(os.environ.get(USER_MODELS_ENV) or DEFAULT_USER_MODELS_DIR).expanduser()


# --- reading ---------------------------------------------------------------------------------------------------------


def read_config_json(folder: Path) -> dict[str, Any]:
    """A model folder's ``config.json`` as a dict (no torch, no checksum check); one-line error if unreadable."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{CONFIG_FILE} is missing from {folder}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not describe a model")
    return data


def _read_rows(registry_dir: Path) -> list[dict[str, Any]]:
    path = registry_dir / REGISTRY_FILE
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["models"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) and r.get("name") for r in rows):
            raise TypeError("'models' must be a list of objects with a name")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"model registry {path} is malformed ({str(exc).splitlines()[0][:120]})") from None
    return rows


def _entry(row: dict[str, Any], registry_dir: Path, source: Source) -> ModelEntry:
    folder = registry_dir / str(row.get("path") or row["name"])  # an absolute path stays absolute
    card = registry_dir / row["card"] if row.get("card") else folder / CARD_FILE
    threshold = row.get("threshold")
    return ModelEntry(name=str(row["name"]), folder=folder, contrast=str(row.get("contrast", "T1")), source=source,
                      sha256=row.get("sha256"), default=bool(row.get("default", False)),
                      description=str(row.get("description", "")), size_mb=row.get("size_mb"),
                      threshold=None if threshold is None else float(threshold), url=row.get("url"),
                      card=card if card.is_file() else None)


def _unlisted_user_folders(user_dir: Path, listed: set[str]) -> list[ModelEntry]:
    """Model folders copied into the user folder without a registry row (imports by older versions)."""
    if not user_dir.is_dir():
        return []
    entries = []
    for folder in sorted(p for p in user_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name in listed or not (folder / WEIGHTS_FILE).is_file():
            continue
        try:
            config = read_config_json(folder)
        except CheckpointError:
            continue
        entries.append(_entry({"name": folder.name, "contrast": config.get("contrast", "T1"),
                               "threshold": (config.get("postprocess") or {}).get("threshold")}, user_dir, "user"))
    return entries


def list_models(*, builtin_dir: Path | None = None, user_dir: Path | None = None) -> list[ModelEntry]:
    """Built-in models first, then the user's (a user row cannot shadow a built-in name)."""
    builtin_dir = BUILTIN_MODELS_DIR if builtin_dir is None else Path(builtin_dir)
    user_dir = user_models_dir() if user_dir is None else Path(user_dir)
    entries = [_entry(row, builtin_dir, "built-in") for row in _read_rows(builtin_dir)]
    names = {entry.name for entry in entries}
    user_rows = [row for row in _read_rows(user_dir) if row["name"] not in names]
    entries += [_entry(row, user_dir, "user") for row in user_rows]
    entries += _unlisted_user_folders(user_dir, names | {row["name"] for row in user_rows})
    return entries


def find_model(name: str, *, builtin_dir: Path | None = None, user_dir: Path | None = None) -> ModelEntry | None:
    """The entry called ``name`` (``"default"``: the entry marked default), else ``None``."""
    entries = list_models(builtin_dir=builtin_dir, user_dir=user_dir)
    exact = next((entry for entry in entries if entry.name == name), None)
    if exact is not None or name != DEFAULT_MODEL:
        return exact
    return next((entry for entry in entries if entry.default), None)


# --- trust -----------------------------------------------------------------------------------------------------------


def verify_model(folder: str | Path, expected_sha256: str | None = None, *, hash_files: bool = True) -> dict[str, str]:
    """Apply the trust rules to ``folder``; return its manifest ``{file: sha256}``.

    ``expected_sha256`` is a registry row's digest of the weights. ``hash_files=False`` checks the manifest's
    presence and the registry digest only, for callers that hash the files themselves when they read them.
    """
    folder = Path(folder)
    manifest = verify_model_folder(folder) if hash_files else _manifest_only(folder)
    if expected_sha256 and manifest[WEIGHTS_FILE] != expected_sha256.lower():
        raise CheckpointError(f"checksum mismatch: {folder / WEIGHTS_FILE} is not the model the registry names "
                              "(corrupted, or a different model)")
    return manifest


def _manifest_only(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}")
    manifest = read_manifest(folder)
    if WEIGHTS_FILE not in manifest or CONFIG_FILE not in manifest:
        raise CheckpointError(f"model folder {folder} has no valid {CHECKSUM_FILE}; refusing unverified weights")
    return manifest


def resolve_model(name_or_path: str | Path | None, *, verify: bool = True, builtin_dir: Path | None = None,
                  user_dir: Path | None = None) -> Path:
    """The verified folder of a model given as a folder path, a registered name, or ``None``/``"default"``.

    ``verify=False`` skips hashing the files (the registry digest is still compared with the manifest); use it only
    when the caller verifies the files as it reads them, as ``load_detector`` does.
    """
    if name_or_path is not None and Path(name_or_path).expanduser().is_dir():
        folder = Path(name_or_path).expanduser()
        verify_model(folder, hash_files=verify)
        return folder
    name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    entry = find_model(name, builtin_dir=builtin_dir, user_dir=user_dir)
    if entry is None:
        if name == DEFAULT_MODEL:
            raise CheckpointError("no default model is installed; pass --model FOLDER or NAME "
                                  "(see 'contrastive-anomaly models list')")
        raise CheckpointError(f"model {name!r} is neither a folder nor a registered model "
                              "(see 'contrastive-anomaly models list')")
    if not entry.folder.is_dir():
        hint = f"; download it from {entry.url} into {entry.folder}" if entry.url else ""
        raise CheckpointError(f"model {entry.name!r} is registered but its folder {entry.folder} is missing{hint}")
    verify_model(entry.folder, entry.sha256, hash_files=verify)
    return entry.folder


# --- changing the user registry ---------------------------------------------------------------------------------------


def _check_name(name: str, *, builtin_dir: Path | None) -> None:
    if not MODEL_NAME_PATTERN.match(name) or name == DEFAULT_MODEL:
        raise UsageError(f"model name {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
                         f"(at most 64 characters, not {DEFAULT_MODEL!r})")
    builtin_dir = BUILTIN_MODELS_DIR if builtin_dir is None else Path(builtin_dir)
    if any(row["name"] == name for row in _read_rows(builtin_dir)):
        raise UsageError(f"{name!r} is the name of a built-in model; choose another name")


def _write_rows(user_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the user ``registry.json`` atomically (:func:`~contrastive_anomaly.storage.files.atomic_write`)."""
    from .files import write_json_atomic

    write_json_atomic({"models": sorted(rows, key=lambda row: row["name"])}, user_dir / REGISTRY_FILE)


def _row_for(folder: Path, name: str, path: str, manifest: dict[str, str], *, contrast: str | None,
             description: str, card: Path | None) -> dict[str, Any]:
    config = read_config_json(folder)
    row: dict[str, Any] = {
        "name": name, "path": path, "contrast": contrast or str(config.get("contrast", "T1")),
        "sha256": manifest[WEIGHTS_FILE],
        "size_mb": round(sum((folder / f).stat().st_size for f in manifest) / MB, 2),
        "threshold": (config.get("postprocess") or {}).get("threshold"),
        "description": description,
    }
    if card is not None:
        row["card"] = str(Path(card).resolve())
    return row


def register_model(folder: str | Path, *, name: str | None = None, contrast: str | None = None,
                   card: str | Path | None = None, description: str = "", user_dir: Path | None = None,
                   builtin_dir: Path | None = None) -> ModelEntry:
    """Add a verified model folder to the user registry where it lies (no copy); return its entry.

    ``name`` defaults to the folder's name; ``card`` to ``folder/MODEL_CARD.md`` when present. Registering the same
    name again replaces its row; a name used by a built-in model is refused.
    """
    folder = Path(folder).expanduser().resolve()
    user_dir = user_models_dir() if user_dir is None else Path(user_dir)
    name = name or folder.name
    _check_name(name, builtin_dir=builtin_dir)
    manifest = verify_model(folder)
    card_path = Path(card) if card else None
    if card_path is not None and not card_path.is_file():
        raise InputError(f"model card not found: {card_path}")
    row = _row_for(folder, name, str(folder), manifest, contrast=contrast, description=description, card=card_path)
    rows = [r for r in _read_rows(user_dir) if r["name"] != name]
    _write_rows(user_dir, [*rows, row])
    return _entry(row, user_dir, "user")


def import_model(source: str | Path, *, name: str | None = None, user_dir: Path | None = None,
                 builtin_dir: Path | None = None) -> ModelEntry:
    """Copy a verified model folder (or the folder of a ``model.safetensors``) into the user registry.

    Refused when the manifest is missing or does not match the files. Files go to a hidden temporary folder that is
    verified again and then renamed into place, so a failed import leaves nothing behind. Importing the same model
    under the same name again is a no-op; a different model under a taken name is refused.
    """
    source = Path(source).expanduser()
    if source.is_file():
        if source.name != WEIGHTS_FILE:
            raise UsageError(f"select a model folder or its {WEIGHTS_FILE} (got {source.name})")
        source = source.parent
    if not source.is_dir():
        raise InputError(f"model folder not found: {source}")
    user_dir = user_models_dir() if user_dir is None else Path(user_dir)
    name = name or source.name
    _check_name(name, builtin_dir=builtin_dir)
    manifest = verify_model(source)
    rows = _read_rows(user_dir)
    existing = next((r for r in rows if r["name"] == name), None)
    target = user_dir / name
    if existing is not None or target.exists():
        if existing is not None and existing.get("sha256") == manifest[WEIGHTS_FILE]:
            return _entry(existing, user_dir, "user")
        raise UsageError(f"a different model named {name!r} is already registered; remove it first "
                         f"('contrastive-anomaly models remove {name}') or choose another name")
    files = [*manifest, CHECKSUM_FILE] + ([CARD_FILE] if (source / CARD_FILE).is_file() else [])
    user_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=user_dir))
    try:
        for file_name in files:
            (staging / file_name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / file_name, staging / file_name)
        verify_model(staging, manifest[WEIGHTS_FILE])
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    row = _row_for(target, name, name, manifest, contrast=None, description="", card=None)
    row["imported_from"] = str(source.resolve())
    _write_rows(user_dir, [*rows, row])
    return _entry(row, user_dir, "user")


def remove_model(name: str, *, user_dir: Path | None = None, builtin_dir: Path | None = None) -> ModelEntry:
    """Drop ``name`` from the user registry; delete its folder only if it was copied into the user folder.

    A model registered in place (``fit`` output) keeps its files. Built-in models cannot be removed.
    """
    user_dir = user_models_dir() if user_dir is None else Path(user_dir)
    entry = find_model(name, builtin_dir=builtin_dir, user_dir=user_dir)
    if entry is None or entry.name != name:
        raise UsageError(f"no model named {name!r} is registered (see 'contrastive-anomaly models list')")
    if entry.source == "built-in":
        raise UsageError(f"{name!r} is a built-in model and cannot be removed")
    rows = _read_rows(user_dir)
    _write_rows(user_dir, [r for r in rows if r["name"] != name])
    inside = entry.folder.resolve().parent == user_dir.resolve()
    if inside and entry.folder.is_dir():
        shutil.rmtree(entry.folder)
    return entry


def model_card_text(entry: ModelEntry, *, sha256: str | None = None) -> str:
    """A short text about a model: its card when it has one, else the registry's facts."""
    if entry.card is not None:
        return entry.card.read_text(encoding="utf-8")
    lines = [f"# {entry.name}", "", f"- contrast: {entry.contrast}", f"- source: {entry.source} registry",
             f"- folder: {entry.folder}"]
    if entry.threshold is not None:
        lines.append(f"- calibrated threshold: {entry.threshold:.4f}")
    if entry.description:
        lines.append(f"- {entry.description}")
    if sha256 or entry.sha256:
        lines.append(f"- weights sha256: {sha256 or entry.sha256}")
    return "\n".join(lines) + "\n"


__all__ = ["BUILTIN_MODELS_DIR", "CARD_FILE", "DEFAULT_MODEL", "REGISTRY_FILE", "USER_MODELS_ENV", "ModelEntry",
           "find_model", "import_model", "list_models", "model_card_text", "read_config_json", "register_model",
           "remove_model", "resolve_model", "sha256_of", "user_models_dir", "verify_model"]

"""Stand-in for ``storage.registry.register_model`` until the shared user registry lands (then this file goes).

Adds (or replaces) a row ``{"name", "path" (absolute), "contrast", "sha256", "threshold", "card", "description"}`` in
``$CONTRASTIVE_ANOMALY_MODELS/registry.json`` (default ``~/.contrastive_anomaly/models``), written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ...storage.integrity import WEIGHTS_FILE, verify_model_folder
from .files import read_json, write_json_atomic

USER_MODELS_ENV = "CONTRASTIVE_ANOMALY_MODELS"
DEFAULT_USER_MODELS_DIR = Path("~") / ".contrastive_anomaly" / "models"


def register_model(folder: Path, *, name: str, contrast: str, card: Path | None = None,
                   description: str = "") -> dict[str, Any]:
    """Verify ``folder`` and register it in place under ``name``; returns the row."""
    folder = Path(folder).resolve()
    manifest = verify_model_folder(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    user_dir = Path(os.environ.get(USER_MODELS_ENV) or DEFAULT_USER_MODELS_DIR).expanduser()
    registry = user_dir / "registry.json"
    rows = [row for row in (read_json(registry) or {}).get("models", []) if row.get("name") != name]
    row = {"name": name, "path": str(folder), "contrast": contrast, "sha256": manifest[WEIGHTS_FILE],
           "threshold": config.get("postprocess", {}).get("threshold"), "description": description}
    if card is not None:
        row["card"] = str(Path(card).resolve())
    write_json_atomic(registry, {"models": sorted([*rows, row], key=lambda r: r["name"])})
    return row

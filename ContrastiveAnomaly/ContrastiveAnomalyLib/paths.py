"""Where the module finds its files and settings (model registry, imported models, requirements, engine)."""

from __future__ import annotations

from pathlib import Path

from . import model_registry

MODULE_DIR = Path(__file__).resolve().parent.parent
ENGINE_PARENT_DIR = MODULE_DIR  # the engine package contrastive_anomaly/ sits next to ContrastiveAnomaly.py
REQUIREMENTS_FILE = MODULE_DIR / "Resources" / "requirements.txt"
SETTINGS_PREFIX = "ContrastiveAnomaly/"


def registry_path() -> Path:
    """``models/registry.json``: next to the module in a built extension, at the repository root in a checkout."""
    for candidate in (MODULE_DIR / "models" / "registry.json", MODULE_DIR.parent / "models" / "registry.json"):
        if candidate.is_file():
            return candidate
    return MODULE_DIR.parent / "models" / "registry.json"


def user_models_dir() -> Path:
    """Imported models: the Slicer setting ``ContrastiveAnomaly/ModelsDirectory``, else the engine's default."""
    import qt

    return model_registry.user_models_dir(qt.QSettings().value(SETTINGS_PREFIX + "ModelsDirectory") or None)

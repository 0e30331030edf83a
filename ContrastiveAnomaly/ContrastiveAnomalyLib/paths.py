"""Where the module finds its files and settings (requirements, engine). Models: the engine's registry."""

from __future__ import annotations

from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent.parent
ENGINE_PARENT_DIR = MODULE_DIR  # the engine package contrastive_anomaly/ sits next to ContrastiveAnomaly.py
REQUIREMENTS_FILE = MODULE_DIR / "Resources" / "requirements.txt"
SETTINGS_PREFIX = "ContrastiveAnomaly/"


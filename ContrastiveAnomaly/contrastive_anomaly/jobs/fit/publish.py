"""Step 5 of ``fit`` (files part): the model folder, then its entry in the user model registry.

``MODEL_DIR`` receives ``model.safetensors``, ``config.json`` (with the calibrated threshold), ``MODEL_CARD.md`` and,
last, ``model.sha256`` (written by :func:`~contrastive_anomaly.storage.checkpoint.save_model` in a staging folder
first). The old manifest is removed before any new file arrives, so at every moment the folder either verifies as a
complete model or has no manifest and is refused by every loader: a kill never leaves a half-written model in use.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ...config import ModelConfig
from ...storage.checkpoint import CHECKSUM_FILE, CONFIG_FILE, WEIGHTS_FILE, save_model
from .files import new_staging_folder

CARD_FILE = "MODEL_CARD.md"


def write_model_folder(out_dir: Path, state: dict[str, torch.Tensor], cfg: ModelConfig, card_text: str,
                       metadata: dict[str, Any]) -> Path:
    """Write the stage-2 weights ``state`` with ``cfg`` and the card into ``out_dir`` (see the module docstring)."""
    out_dir = Path(out_dir)
    staging = new_staging_folder(out_dir, "model")
    try:
        save_model(staging, state, cfg, kind="diffusion", metadata=metadata)
        (staging / CARD_FILE).write_text(card_text, encoding="utf-8")
        (out_dir / CHECKSUM_FILE).unlink(missing_ok=True)
        for name in (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE, CHECKSUM_FILE):
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def register(out_dir: Path, *, name: str, contrast: str) -> Any:
    """Add the fitted model to the user registry under ``name`` (in place, no copy); returns the registry entry."""
    from ...storage.registry import register_model

    return register_model(out_dir, name=name, contrast=contrast, card=out_dir / CARD_FILE,
                          description=f"fitted with contrastive-anomaly fit ({contrast})")

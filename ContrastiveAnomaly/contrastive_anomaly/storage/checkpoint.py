"""Model folders: safetensors weights + ``config.json`` + a sha256 manifest, and resumable training state.

A model folder holds

* ``model.safetensors``: the weights (fp32, or fp16 when saved with ``half=True``); never a pickle;
* ``config.json``: the :class:`~contrastive_anomaly.config.ModelConfig` (architecture, grid, contrast, intensity
  normalisation, calibrated threshold, training data description, code version) plus a ``checkpoint`` section;
* ``model.sha256``: ``sha256sum``-format lines for the two files above. Loading refuses a folder whose files do not
  match it, so a tampered or truncated file is caught before any weight is used.

Training folders add ``trainer_state.json`` and ``optimizer.safetensors`` so that a run can resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..config import ModelConfig
from ..errors import CheckpointError
from .files import atomic_write, write_json_atomic, write_text_atomic
from .integrity import (
    CHECKSUM_FILE,
    CONFIG_FILE,
    OPTIONAL_MODEL_FILES,
    WEIGHTS_FILE,
    sha256_of,
    verify_model_folder,
)

__all__ = ["CHECKSUM_FILE", "CONFIG_FILE", "WEIGHTS_FILE", "sha256_of", "verify_model_folder", "save_model",
           "load_model_folder", "read_model_config", "load_state_strict", "save_trainer_state", "load_trainer_state",
           "load_online_weights"]

TRAINER_STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
ONLINE_WEIGHTS_FILE = "online.safetensors"  # the optimised weights when model.safetensors holds their EMA


def save_model(folder: str | Path, state_dict: dict[str, torch.Tensor], cfg: ModelConfig, kind: str,
               half: bool = False, metadata: dict[str, Any] | None = None) -> Path:
    """Write a model folder. ``kind`` is ``"encoder"`` (stage 1) or ``"diffusion"`` (stage 2, the full model).

    Every file goes through a temporary name; the checksum manifest is written last, so a folder with a valid
    manifest is always complete.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").contiguous()
        if half and tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        tensors[name] = tensor
    if not cfg.code_version:
        cfg.code_version = __version__
    config_data = cfg.to_dict()
    config_data["checkpoint"] = {"kind": kind, "dtype": "float16" if half else "float32", **(metadata or {})}
    with atomic_write(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"kind": kind})
    write_json_atomic(config_data, folder / CONFIG_FILE, sort_keys=True)
    covered = (WEIGHTS_FILE, CONFIG_FILE, *(name for name in OPTIONAL_MODEL_FILES if (folder / name).is_file()))
    lines = "".join(f"{sha256_of(folder / name)}  {name}\n" for name in covered)
    write_text_atomic(lines, folder / CHECKSUM_FILE)
    return folder


def read_model_config(folder: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Return the folder's :class:`ModelConfig` and its ``checkpoint`` section (no checksum verification)."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        checkpoint = data.pop("checkpoint", {})
        return ModelConfig.from_dict(data), checkpoint
    except FileNotFoundError:
        raise CheckpointError(f"model config missing: {path}") from None
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"model config {path} is invalid: {str(exc).splitlines()[0][:160]}") from None


def load_model_folder(folder: str | Path, expected_kind: str | None = None
                      ) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Verify checksums, then return ``(config, fp32 state dict, checkpoint section)``."""
    verify_model_folder(folder)
    cfg, checkpoint = read_model_config(folder)
    kind = checkpoint.get("kind")
    if expected_kind is not None and kind != expected_kind:
        raise CheckpointError(f"{folder} holds a {kind!r} checkpoint, expected {expected_kind!r}")
    try:
        tensors = load_file(str(Path(folder) / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read weights in {folder}: {str(exc).splitlines()[0][:160]}") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    return cfg, state, checkpoint


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], folder: str | Path) -> None:
    """``module.load_state_dict(state, strict=True)`` with a one-line :class:`CheckpointError` on mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        missing = set(module.state_dict()) - set(state)
        unexpected = set(state) - set(module.state_dict())
        detail = f"{len(missing)} missing, {len(unexpected)} unexpected tensors" if missing or unexpected else \
            "tensor shapes differ"
        raise CheckpointError(f"weights in {folder} do not match their config.json ({detail})") from exc


def save_trainer_state(folder: str | Path, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                       online_weights: dict[str, torch.Tensor] | None = None) -> None:
    """Save optimizer tensors (safetensors) and JSON-serialisable loop state (step, best loss, curves…).

    ``online_weights``: the optimised (non-averaged) weights, written to ``online.safetensors`` when the folder's
    ``model.safetensors`` holds their exponential moving average. The loop state is written last, so a folder
    whose ``trainer_state.json`` is present has all its resumable files.
    """
    folder = Path(folder)
    if online_weights is not None:
        online = {name: tensor.detach().cpu().contiguous() for name, tensor in online_weights.items()}
        with atomic_write(folder / ONLINE_WEIGHTS_FILE) as tmp:
            save_file(online, str(tmp))
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in optimizer.state_dict()["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    payload = dict(state, optimizer_scalars=scalars, optimizer_param_groups=optimizer.state_dict()["param_groups"])
    with atomic_write(folder / OPTIMIZER_FILE) as tmp:
        save_file(tensors, str(tmp))
    write_json_atomic(payload, folder / TRAINER_STATE_FILE)


def load_trainer_state(folder: str | Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the optimizer saved by :func:`save_trainer_state` and return the loop state."""
    folder = Path(folder)
    try:
        payload = json.loads((folder / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / OPTIMIZER_FILE))
    except (OSError, ValueError, SafetensorError) as exc:
        raise CheckpointError(f"cannot resume from {folder}: {str(exc).splitlines()[0][:160]}") from None
    per_param: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = tensor
    for index, values in payload.pop("optimizer_scalars").items():
        per_param.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": per_param, "param_groups": payload.pop("optimizer_param_groups")})
    return payload


def load_online_weights(folder: str | Path) -> dict[str, torch.Tensor] | None:
    """The optimised weights saved beside an EMA checkpoint, or ``None`` when the run kept no EMA."""
    path = Path(folder) / ONLINE_WEIGHTS_FILE
    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"cannot resume from {folder}: {str(exc).splitlines()[0][:160]}") from None

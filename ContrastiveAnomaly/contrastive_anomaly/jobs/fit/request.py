"""What the user asked ``fit`` to do, and the record of it kept in the model folder so that a rerun continues.

``MODEL_DIR/fit.json`` holds the source, the contrast, the full model configuration and the other options of the
first run. A rerun fills every option it does not give from that record (``--resume`` alone is enough), and refuses
one that would make the saved checkpoints meaningless (another source or contrast, another architecture, grid or
seed); the step counts may change, which shortens or extends training.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import __version__
from ...config import GridConfig, ModelConfig, preset
from ...data.sources import check_contrast
from ...errors import InputError
from ...storage.files import check_writable_folder
from .files import write_json

RECORD_FILE = "fit.json"
RECORD_FORMAT = 1
DEFAULT_PRESET = "compact"
# Share of subjects held out for validation and threshold calibration: the usual 80/20 split; at least one subject is
# held out and at least one trains.
HELD_OUT_FRACTION = 0.2
# Settings that may differ between a run and its continuation: how long to train and how often to report.
RESUMABLE_CHANGES = ("steps", "validate_every", "log_every")


@dataclass
class FitRequest:
    """The options of ``contrastive-anomaly fit``; ``None`` means "as recorded in MODEL_DIR, else the default"."""

    out_dir: Path
    healthy: Path | None = None
    contrast: str | None = None
    preset: str | None = None
    config: Path | None = None
    grid: str | None = None
    steps_encoder: int | None = None
    steps: int | None = None
    seed: int | None = None
    name: str | None = None
    device: str = "auto"
    resume: bool = False
    register: bool = True
    allow_qc_warnings: bool | None = None
    held_out_fraction: float | None = None


@dataclass
class FitSettings:
    """The resolved settings of a fit: every option has its value, and ``cfg`` is the model configuration."""

    out_dir: Path
    healthy: Path
    contrast: str
    cfg: ModelConfig
    name: str
    seed: int
    allow_qc_warnings: bool
    held_out_fraction: float
    recorded: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The ``fit.json`` content for these settings."""
        return {"format": RECORD_FORMAT, "healthy": str(self.healthy), "contrast": self.contrast, "name": self.name,
                "seed": self.seed, "allow_qc_warnings": self.allow_qc_warnings,
                "held_out_fraction": self.held_out_fraction, "engine_version": __version__,
                "config": self.cfg.to_dict()}


def read_record(out_dir: Path) -> dict[str, Any] | None:
    """The ``fit.json`` of ``out_dir``, or ``None`` when there is none."""
    path = Path(out_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is unreadable ({str(exc).splitlines()[0][:120]}); remove it to start over") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise InputError(f"{path} was written by another version of fit; use a new --out folder")
    return record


def _check_out_dir(out_dir: Path, record: dict[str, Any] | None, resume: bool) -> None:
    if resume and record is None:
        raise InputError(f"nothing to resume in {out_dir}: it holds no {RECORD_FILE}")
    if record is None and out_dir.is_dir() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir} is not empty and holds no fit; choose a new or empty --out folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a folder")


def _base_config(request: FitRequest, record: dict[str, Any] | None) -> ModelConfig:
    if request.config is not None:
        try:
            return ModelConfig.load(request.config)
        except FileNotFoundError:
            raise InputError(f"config file not found: {request.config}") from None
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"{request.config} is not a model config: {str(exc).splitlines()[0][:160]}") from None
    if request.preset is not None or record is None:
        try:
            return preset(request.preset or DEFAULT_PRESET)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return ModelConfig.from_dict(record["config"])


def comparable(cfg: ModelConfig) -> dict[str, Any]:
    """The parts of a config that must not change while a fit continues (see :data:`RESUMABLE_CHANGES`)."""
    data = cfg.to_dict()
    for key in ("training_data", "code_version", "name"):
        data.pop(key, None)
    data["postprocess"] = {k: v for k, v in data["postprocess"].items() if k not in ("threshold", "threshold_rule")}
    for stage in ("encoder_training", "diffusion_training"):
        data[stage] = {k: v for k, v in data[stage].items() if k not in RESUMABLE_CHANGES}
    return data


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".")


def resolve_settings(request: FitRequest) -> FitSettings:
    """Merge the request with ``MODEL_DIR/fit.json`` (if any) and check that they agree; nothing is written.

    Raises :class:`InputError` with one line for a missing source or contrast, a foreign non-empty ``--out`` folder,
    ``--resume`` without a record, or a change that the saved checkpoints cannot follow.
    """
    out_dir = Path(request.out_dir).expanduser()
    record = read_record(out_dir)
    _check_out_dir(out_dir, record, request.resume)
    recorded = record or {}
    healthy = request.healthy if request.healthy is not None else recorded.get("healthy")
    contrast = request.contrast if request.contrast is not None else recorded.get("contrast")
    if healthy is None or contrast is None:
        raise InputError("give --healthy SOURCE and --contrast T1|T2|FLAIR|PD (or --resume an existing fit)")
    healthy = Path(healthy).expanduser().resolve()
    contrast = check_contrast(contrast)
    if record is not None and (str(healthy) != recorded["healthy"] or contrast != recorded["contrast"]):
        raise InputError(f"{out_dir} holds a fit of {recorded['contrast']} scans from {recorded['healthy']}; "
                         "use another --out folder for other data")
    cfg = _base_config(request, record)
    cfg.contrast = contrast
    if request.grid is not None:
        try:
            cfg.grid = GridConfig.for_protocol(request.grid, cfg.grid.spacing_mm)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    seed = request.seed if request.seed is not None else recorded.get("seed", cfg.diffusion_training.seed)
    for train_cfg in (cfg.encoder_training, cfg.diffusion_training):
        train_cfg.seed = int(seed)
    if request.steps_encoder is not None:
        cfg.encoder_training.steps = request.steps_encoder
    if request.steps is not None:
        cfg.diffusion_training.steps = request.steps
    for label, steps in (("--steps-encoder", cfg.encoder_training.steps), ("--steps", cfg.diffusion_training.steps)):
        if steps < 1:
            raise InputError(f"{label} must be at least 1 (got {steps})")
    if cfg.postprocess.residual_normalisation != "none":
        raise InputError("fit calibrates plain residual maps; set postprocess.residual_normalisation to \"none\" "
                         "and add the normalisation afterwards with 'calibrate --normalise-on'")
    if record is not None:
        before, now = comparable(ModelConfig.from_dict(recorded["config"])), comparable(cfg)
        if before != now:
            raise InputError(f"{out_dir} was fitted with another {_first_difference(before, now)} setting; rerun "
                             "with the original options or use a new --out folder")
    fraction = request.held_out_fraction if request.held_out_fraction is not None else \
        recorded.get("held_out_fraction", HELD_OUT_FRACTION)
    if not 0.0 < fraction < 1.0:
        raise InputError(f"the held-out fraction must be between 0 and 1 (got {fraction})")
    allow = request.allow_qc_warnings if request.allow_qc_warnings is not None else \
        bool(recorded.get("allow_qc_warnings", False))
    name = request.name or recorded.get("name") or out_dir.resolve().name
    return FitSettings(out_dir=out_dir, healthy=healthy, contrast=contrast, cfg=cfg, name=name, seed=int(seed),
                       allow_qc_warnings=allow, held_out_fraction=float(fraction), recorded=recorded)


def command_line(request: FitRequest, settings: FitSettings) -> str:
    """The ``fit`` command that reproduces this run (options as given, source and contrast as resolved)."""
    words = ["contrastive-anomaly", "fit", "--healthy", str(settings.healthy), "--contrast", settings.contrast,
             "--out", str(settings.out_dir)]
    options = (("--preset", request.preset), ("--config", request.config), ("--grid", request.grid),
               ("--steps-encoder", request.steps_encoder), ("--steps", request.steps), ("--seed", request.seed),
               ("--name", request.name), ("--held-out-fraction", request.held_out_fraction))
    words += [str(part) for flag, value in options if value is not None for part in (flag, value)]
    if settings.allow_qc_warnings:
        words.append("--allow-qc-warnings")
    return shlex.join(words)


def start_record(settings: FitSettings) -> None:
    """Create ``MODEL_DIR`` and write (or update) ``fit.json``: the first write of a fit."""
    check_writable_folder(settings.out_dir)
    write_json(settings.out_dir / RECORD_FILE, settings.to_record())

"""The JSON-lines event contract between the engine and the programs that drive it (the Slicer panel, scripts).

With ``--progress jsonl`` every command prints one JSON object per line on stdout; any other line (library
chatter, a traceback) is not part of the contract and :func:`parse_event` returns it as a :class:`LogLine`.
This module is the only place that writes or reads the shapes below; it imports nothing heavy (no torch, no
numpy), so the Slicer module can use it directly.

Every object has ``"event"`` (its kind) and ``"v"`` (:data:`PROTOCOL_VERSION`). The kinds:

``stage_start``
    ``stage`` (str), ``index`` (1-based position among the planned stages, or null for an unplanned stage),
    ``count`` (number of planned stages, or null), ``total`` (steps the stage will report, >= 1).
``progress``
    ``stage``, ``done`` (0 <= done <= total), ``total``, ``eta_s`` (seconds left in this stage, null until the first
    step is done), ``overall`` (fraction 0..1 of the whole run across stages, or null when the run has no plan).
    Extra numeric fields (e.g. ``loss``) may follow.
``stage_end``
    ``stage``, ``seconds`` (wall time of the stage), ``overall``.
``warning``
    ``message`` (one line), ``code`` (a stable machine name, e.g. ``"unscored_brain"``), ``stage`` (or null).
``result`` (last line on success)
    ``outputs`` ({name: path}), ``threshold`` (float or null), ``postprocess`` (the post-processing settings actually
    used: the model's ``PostprocessConfig`` as a dict, with the threshold in force), ``seed`` (int or null),
    ``precision`` (``"bf16"`` / ``"fp32"`` or null), ``timings_s`` ({stage: seconds}), ``warnings`` ([str]),
    ``scored`` (see :func:`scored_fraction`, or null), plus command-specific fields (e.g. ``region_count``).
``error`` (last line on failure)
    ``message`` (one line), ``kind`` (the exception class name), ``exit_code`` (the process exit code).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

PROTOCOL_VERSION = 1

EventKind = Literal["stage_start", "progress", "stage_end", "warning", "result", "error"]
EVENT_KINDS: tuple[str, ...] = ("stage_start", "progress", "stage_end", "warning", "result", "error")


class CodedMessage(str):
    """A one-line message that also carries a stable machine ``code`` (e.g. ``"contrast_mismatch"``).

    It is a ``str``, so code that keeps warnings as strings keeps working; the progress reporter puts ``code`` in
    the warning event.
    """

    code: str

    def __new__(cls, message: str, code: str) -> CodedMessage:
        instance = super().__new__(cls, message)
        instance.code = code
        return instance


# --------------------------------------------------------------------------------------------------- builders
def _base(kind: EventKind) -> dict[str, Any]:
    return {"event": kind, "v": PROTOCOL_VERSION}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def stage_start_event(stage: str, *, total: int = 1, index: int | None = None,
                      count: int | None = None) -> dict[str, Any]:
    """A stage begins; it will report ``total`` steps (>= 1)."""
    return {**_base("stage_start"), "stage": stage, "index": index, "count": count, "total": max(int(total), 1)}


def progress_event(stage: str, done: int, total: int, *, eta_s: float | None = None, overall: float | None = None,
                   **extra: Any) -> dict[str, Any]:
    """``done`` of ``total`` steps of ``stage`` are finished; ``overall`` is the run's fraction in [0, 1]."""
    total = max(int(total), 1)
    payload = {**_base("progress"), "stage": stage, "done": min(max(int(done), 0), total), "total": total,
               "eta_s": _round(eta_s, 2), "overall": _round(overall, 4)}
    payload.update(extra)
    return payload


def stage_end_event(stage: str, *, seconds: float, overall: float | None = None) -> dict[str, Any]:
    """A stage finished after ``seconds`` of wall time."""
    return {**_base("stage_end"), "stage": stage, "seconds": round(float(seconds), 3), "overall": _round(overall, 4)}


def warning_event(message: str, *, code: str = "warning", stage: str | None = None) -> dict[str, Any]:
    """A one-line warning; ``code`` is a stable name a program can switch on."""
    return {**_base("warning"), "message": _one_line(message), "code": code, "stage": stage}


def result_event(outputs: dict[str, str], *, threshold: float | None = None,
                 postprocess: dict[str, Any] | None = None, seed: int | None = None, precision: str | None = None,
                 timings_s: dict[str, float] | None = None, warnings: list[str] | None = None,
                 scored: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The run's outcome: see the module docstring for the fields."""
    payload = {**_base("result"), "outputs": {str(k): str(v) for k, v in outputs.items()},
               "threshold": None if threshold is None else float(threshold), "postprocess": postprocess,
               "seed": None if seed is None else int(seed), "precision": precision,
               "timings_s": {str(k): round(float(v), 3) for k, v in (timings_s or {}).items()},
               "warnings": [str(w) for w in (warnings or [])], "scored": scored}
    payload.update(extra)
    return payload


def error_event(message: str, *, kind: str, exit_code: int) -> dict[str, Any]:
    """The run failed with a one-line ``message``."""
    return {**_base("error"), "message": _one_line(message) or kind, "kind": kind, "exit_code": int(exit_code)}


def scored_fraction(brain_ml: float, scored_ml: float) -> dict[str, float]:
    """How much of the brain the model scored: ``{"brain_ml", "scored_ml", "unscored_ml", "fraction",
    "unscored_percent"}`` (mL and a fraction in [0, 1]; ``fraction`` is 1 for an empty brain)."""
    brain_ml = max(float(brain_ml), 0.0)
    scored_ml = min(max(float(scored_ml), 0.0), brain_ml)
    fraction = scored_ml / brain_ml if brain_ml > 0 else 1.0
    return {"brain_ml": round(brain_ml, 2), "scored_ml": round(scored_ml, 2),
            "unscored_ml": round(brain_ml - scored_ml, 2), "fraction": round(fraction, 4),
            "unscored_percent": round(100.0 * (1.0 - fraction), 2)}


def to_line(payload: dict[str, Any]) -> str:
    """One event as one line of JSON (no trailing newline). NaN/inf become null so every reader can parse it."""
    return json.dumps(_finite(payload), ensure_ascii=False, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _one_line(message: str) -> str:
    lines = str(message).strip().splitlines()
    return lines[0].strip() if lines else ""


# --------------------------------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class StageStartEvent:
    stage: str
    total: int
    index: int | None = None
    count: int | None = None
    event: str = field(default="stage_start", init=False)


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    done: int
    total: int
    eta_s: float | None = None
    overall: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    event: str = field(default="progress", init=False)

    @property
    def fraction(self) -> float:
        """This stage's fraction done, in [0, 1]."""
        return min(max(self.done, 0), self.total) / max(self.total, 1)


@dataclass(frozen=True)
class StageEndEvent:
    stage: str
    seconds: float
    overall: float | None = None
    event: str = field(default="stage_end", init=False)


@dataclass(frozen=True)
class WarningEvent:
    message: str
    code: str = "warning"
    stage: str | None = None
    event: str = field(default="warning", init=False)


@dataclass(frozen=True)
class ResultEvent:
    outputs: dict[str, str]
    threshold: float | None = None
    postprocess: dict[str, Any] | None = None
    seed: int | None = None
    precision: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    scored: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    event: str = field(default="result", init=False)


@dataclass(frozen=True)
class ErrorEvent:
    message: str
    kind: str = "error"  # the exception class name, e.g. "InputError"
    exit_code: int | None = None
    event: str = field(default="error", init=False)


@dataclass(frozen=True)
class LogLine:
    """A line that is not a protocol object (a traceback, library output); kept verbatim for "show details"."""

    text: str
    event: str = field(default="log", init=False)


Event = StageStartEvent | ProgressEvent | StageEndEvent | WarningEvent | ResultEvent | ErrorEvent | LogLine

_PROGRESS_KEYS = {"event", "v", "stage", "done", "total", "eta_s", "overall"}
_RESULT_KEYS = {"event", "v", "outputs", "threshold", "postprocess", "seed", "precision", "timings_s", "warnings",
                "scored"}


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _from_dict(data: dict[str, Any]) -> Event | None:
    kind = data.get("event")
    if kind == "stage_start":
        return StageStartEvent(stage=str(data["stage"]), total=max(int(data.get("total", 1)), 1),
                               index=_opt_int(data.get("index")), count=_opt_int(data.get("count")))
    if kind == "progress":
        total = max(int(data["total"]), 1)
        return ProgressEvent(stage=str(data["stage"]), done=min(max(int(data["done"]), 0), total), total=total,
                             eta_s=_opt_float(data.get("eta_s")), overall=_opt_float(data.get("overall")),
                             extra={k: v for k, v in data.items() if k not in _PROGRESS_KEYS})
    if kind == "stage_end":
        return StageEndEvent(stage=str(data["stage"]), seconds=float(data.get("seconds") or 0.0),
                             overall=_opt_float(data.get("overall")))
    if kind == "warning":
        stage = data.get("stage")
        return WarningEvent(message=_one_line(str(data["message"])), code=str(data.get("code") or "warning"),
                            stage=None if stage is None else str(stage))
    if kind == "result":
        return ResultEvent(
            outputs={str(k): str(v) for k, v in dict(data["outputs"]).items()},
            threshold=_opt_float(data.get("threshold")),
            postprocess=dict(data["postprocess"]) if isinstance(data.get("postprocess"), dict) else None,
            seed=_opt_int(data.get("seed")), precision=None if data.get("precision") is None else
            str(data["precision"]),
            timings_s={str(k): float(v) for k, v in dict(data.get("timings_s") or {}).items()},
            warnings=[str(w) for w in data.get("warnings") or []],
            scored=dict(data["scored"]) if isinstance(data.get("scored"), dict) else None,
            extra={k: v for k, v in data.items() if k not in _RESULT_KEYS})
    if kind == "error":
        exit_code = data.get("exit_code")
        return ErrorEvent(message=_one_line(str(data.get("message") or "")) or "unknown error",
                          kind=str(data.get("kind") or "error"), exit_code=_opt_int(exit_code))
    return None


def parse_event(line: str) -> Event:
    """Parse one line of ``--progress jsonl`` output into an event.

    Never raises: a line that is not a JSON object, has an unknown ``event`` or misses a required field comes back
    as a :class:`LogLine` holding the text (trailing newline removed), so a stray print cannot break a reader.
    """
    text = line.rstrip("\r\n")
    stripped = text.strip()
    if not stripped.startswith("{"):
        return LogLine(text)
    try:
        data = json.loads(stripped)
        event = _from_dict(data) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        event = None
    return event if event is not None else LogLine(text)

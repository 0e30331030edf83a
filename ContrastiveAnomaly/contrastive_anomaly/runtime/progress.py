"""Progress reporting: a tqdm bar for people, JSON lines for programs (the Slicer module's contract).

JSON-lines protocol (``--progress jsonl``), one object per line on stdout:

* ``{"event": "progress", "stage": str, "done": int, "total": int, "eta_s": float | null}``
* ``{"event": "warning", "message": str}``
* last line on success: ``{"event": "result", "outputs": {name: path}, "timings_s": {stage: seconds}, ...}``
* last line on failure: ``{"event": "error", "message": str, "kind": str}``
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Literal

from tqdm import tqdm

ProgressMode = Literal["bar", "jsonl", "none"]


class ProgressReporter:
    """Reports stage progress, warnings and stage timings in one of three modes.

    ``bar`` draws tqdm bars on stderr, ``jsonl`` prints the protocol above on ``stream`` (stdout by default),
    ``none`` stays silent. Stage durations are always recorded in :attr:`timings_s` (seconds, wall clock).
    """

    def __init__(self, mode: ProgressMode = "bar", stream: IO[str] | None = None) -> None:
        self.mode = mode
        self.stream = stream if stream is not None else sys.stdout
        self.timings_s: dict[str, float] = {}
        self.warnings: list[str] = []
        self._bar: tqdm | None = None
        self._stage: str | None = None
        self._stage_start = 0.0
        self._total = 0

    def emit(self, payload: dict[str, Any]) -> None:
        if self.mode == "jsonl":
            self.stream.write(json.dumps(payload) + "\n")
            self.stream.flush()

    @contextmanager
    def stage(self, name: str, total: int = 1) -> Iterator[ProgressReporter]:
        """Time a stage; call :meth:`advance` inside it for finer progress."""
        self._stage, self._total, self._stage_start = name, max(int(total), 1), time.perf_counter()
        if self.mode == "bar":
            self._bar = tqdm(total=self._total, desc=name, file=sys.stderr, leave=False, dynamic_ncols=True)
        self.emit({"event": "progress", "stage": name, "done": 0, "total": self._total, "eta_s": None})
        try:
            yield self
        finally:
            elapsed = time.perf_counter() - self._stage_start
            self.timings_s[name] = self.timings_s.get(name, 0.0) + elapsed
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self._stage = None

    def advance(self, done: int, total: int | None = None, **extra: Any) -> None:
        """Report that ``done`` of ``total`` units of the current stage are finished."""
        if total is not None:
            self._total = max(int(total), 1)
        elapsed = time.perf_counter() - self._stage_start
        eta = elapsed / done * (self._total - done) if done > 0 else None
        if self._bar is not None:
            self._bar.total = self._total
            self._bar.n = done
            if extra:
                self._bar.set_postfix(extra, refresh=False)
            self._bar.refresh()
        payload = {"event": "progress", "stage": self._stage, "done": int(done), "total": self._total,
                   "eta_s": None if eta is None else round(eta, 2)}
        payload.update(extra)
        self.emit(payload)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self.mode == "jsonl":
            self.emit({"event": "warning", "message": message})
        elif self.mode == "bar":
            print(f"warning: {message}", file=sys.stderr)

    def result(self, outputs: dict[str, str], **extra: Any) -> None:
        payload = {"event": "result", "outputs": outputs, "timings_s": {k: round(v, 3) for k, v in
                                                                        self.timings_s.items()},
                   "warnings": self.warnings}
        payload.update(extra)
        self.emit(payload)

    def error(self, message: str, kind: str) -> None:
        if self.mode == "jsonl":
            self.emit({"event": "error", "message": message, "kind": kind})

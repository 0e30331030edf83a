"""Progress reporting: a tqdm bar per stage for people, JSON lines for programs.

The JSON-lines shapes are defined once, in :mod:`contrastive_anomaly.runtime.events`; this module decides *when*
they are sent. Every stage sends ``stage_start``, a ``progress`` event at 0, one per :meth:`ProgressReporter.advance`
and one at ``total`` when it finishes, then ``stage_end``. When a run declares its stages with
:meth:`ProgressReporter.plan` (name -> relative weight, e.g. typical seconds), every event also carries ``overall``,
the fraction of the whole run done.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, Literal

from tqdm import tqdm

from . import events

ProgressMode = Literal["bar", "jsonl", "none"]


class ProgressReporter:
    """Reports stage progress, warnings and stage timings in one of three modes.

    ``bar`` draws one tqdm bar per stage on stderr (kept at 100 % when the stage ends), ``jsonl`` prints the event
    protocol on ``stream`` (stdout by default), ``none`` stays silent. Stage durations are always recorded in
    :attr:`timings_s` (seconds, wall clock) and warnings in :attr:`warnings`.
    """

    def __init__(self, mode: ProgressMode = "bar", stream: IO[str] | None = None) -> None:
        self.mode = mode
        self.stream = stream if stream is not None else sys.stdout
        self.timings_s: dict[str, float] = {}
        self.warnings: list[str] = []
        self.warning_codes: list[str] = []
        self._weights: dict[str, float] = {}
        self._finished_weight = 0.0
        self._finished: set[str] = set()
        self._bar: tqdm | None = None
        self._stage: str | None = None
        self._stage_start = 0.0
        self._start_step = 0
        self._total = 1
        self._done = 0

    # ------------------------------------------------------------------------------------------------ output
    def emit(self, payload: dict[str, Any]) -> None:
        """Print one event (built with :mod:`.events`) in ``jsonl`` mode; nothing otherwise."""
        if self.mode == "jsonl":
            self.stream.write(events.to_line(payload) + "\n")
            self.stream.flush()

    def plan(self, weights: Mapping[str, float]) -> None:
        """Declare the run's stages in order with relative weights (> 0, e.g. typical seconds) for ``overall``.

        Stages that never run (e.g. registration for a model-grid input) are counted as done when the run reports
        its result; stages not in the plan do not move ``overall``. Calling it again (a run that learns it will
        skip stages) keeps the stages already finished.
        """
        self._weights = {name: max(float(weight), 0.0) for name, weight in weights.items()}
        self._finished &= set(self._weights)
        self._finished_weight = sum(self._weights[name] for name in self._finished)

    def overall(self) -> float | None:
        """Fraction of the planned run finished, in [0, 1]; ``None`` without a plan."""
        total = sum(self._weights.values())
        if total <= 0:
            return None
        current = 0.0
        if self._stage is not None and self._stage not in self._finished:
            current = self._weights.get(self._stage, 0.0) * min(self._done / self._total, 1.0)
        return min((self._finished_weight + current) / total, 1.0)

    # ------------------------------------------------------------------------------------------------ stages
    @contextmanager
    def stage(self, name: str, total: int = 1, *, start: int = 0) -> Iterator[ProgressReporter]:
        """Time a stage of ``total`` steps; call :meth:`advance` inside it for progress between start and end.

        ``start``: steps already done before this run (a resumed training); the stage begins there, and the ETA
        counts only the steps done since, so a resume does not look faster than it is."""
        self._stage, self._total = name, max(int(total), 1)
        self._done = self._start_step = min(max(int(start), 0), self._total)
        self._stage_start = time.perf_counter()
        names = list(self._weights)
        index = names.index(name) + 1 if name in self._weights else None
        count = len(names) or None
        if self.mode == "bar":
            label = f"[{index}/{count}] {name}" if index is not None else name
            self._bar = tqdm(total=self._total, initial=self._done, desc=label, file=sys.stderr, leave=True,
                             dynamic_ncols=True, mininterval=0.5)
        self.emit(events.stage_start_event(name, total=self._total, index=index, count=count))
        self.emit(events.progress_event(name, self._done, self._total, overall=self.overall()))
        completed = False
        try:
            yield self
            completed = True
        finally:
            elapsed = time.perf_counter() - self._stage_start
            self.timings_s[name] = self.timings_s.get(name, 0.0) + elapsed
            if completed:
                self.advance(self._total)
                if name not in self._finished:
                    self._finished.add(name)
                    self._finished_weight += self._weights.get(name, 0.0)
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if completed:
                self.emit(events.stage_end_event(name, seconds=elapsed, overall=self.overall()))
            self._stage = None

    def advance(self, done: int, total: int | None = None, **extra: Any) -> None:
        """Report that ``done`` of ``total`` steps of the current stage are finished (``total`` may be revised)."""
        if total is not None:
            self._total = max(int(total), 1)
        self._done = min(max(int(done), 0), self._total)
        elapsed = time.perf_counter() - self._stage_start
        since_start = self._done - self._start_step
        eta = elapsed / since_start * (self._total - self._done) if since_start > 0 else None
        if self._bar is not None:
            self._bar.total = self._total
            self._bar.n = self._done
            if extra:
                self._bar.set_postfix(extra, refresh=False)
            self._bar.refresh()
        self.emit(events.progress_event(self._stage or "", self._done, self._total, eta_s=eta,
                                        overall=self.overall(), **extra))

    # ------------------------------------------------------------------------------------------------ messages
    def say(self, message: str) -> None:
        """A one-line note for people (e.g. "downloading 51 MB"); stderr in ``bar`` mode, a log line otherwise."""
        if self.mode == "bar":
            tqdm.write(message, file=sys.stderr)
        elif self.mode == "jsonl":
            print(message, file=sys.stderr, flush=True)

    def warn(self, message: str, code: str | None = None) -> None:
        """Record a warning (kept for the summary) and show it: stderr in ``bar`` mode, an event in ``jsonl``.

        ``code`` defaults to the message's own (:class:`.events.CodedMessage`), else ``"warning"``.
        """
        code = code or getattr(message, "code", "warning")
        message = str(message)
        self.warnings.append(message)
        self.warning_codes.append(code)
        if self.mode == "jsonl":
            self.emit(events.warning_event(message, code=code, stage=self._stage))
        elif self.mode == "bar":
            tqdm.write(f"warning: {message}", file=sys.stderr)

    def result(self, outputs: dict[str, str], **fields: Any) -> None:
        """The last event of a successful run (fields: see :func:`.events.result_event`)."""
        self._finished_weight, self._finished = sum(self._weights.values()), set(self._weights)
        self.emit(events.result_event(outputs, timings_s=self.timings_s, warnings=self.warnings, **fields))

    def error(self, message: str, kind: str, exit_code: int = 1) -> None:
        """The last event of a failed run."""
        self.emit(events.error_event(message, kind=kind, exit_code=exit_code))

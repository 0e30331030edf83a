"""Run the engine's ``detect`` in a child process, without Qt, and make sense of its JSON-lines output.

* :func:`parse_line` turns one output line into an event with the engine's parser
  (:mod:`contrastive_anomaly.runtime.events`, the JSON-lines contract written once).
* :class:`RunTracker` accumulates events and decides the outcome of a run (pure, no process involved). The widget
  feeds it from whichever launcher is in use: ``slicer.util.launchConsoleProcess(blocking=False)`` on Slicer 5.12+ or
  :class:`ChildProcessRunner` on 5.10.
* :class:`ChildProcessRunner` starts the child in its own session (POSIX) with stdout and stderr merged, reads lines
  on a daemon thread into a queue, and is polled by the caller (a ``qt.QTimer`` in Slicer, a loop in tests).
* :func:`kill_process_tree` ends the child and all of its descendants (psutil if importable, else the process group).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from contrastive_anomaly.runtime.events import (
    ErrorEvent,
    Event,
    LogLine,
    ProgressEvent,
    ResultEvent,
    StageEndEvent,
    StageStartEvent,
    WarningEvent,
    parse_event,
)

__all__ = ["ErrorEvent", "Event", "LogLine", "ProgressEvent", "ResultEvent", "StageEndEvent", "StageStartEvent",
           "WarningEvent", "RunTracker", "ChildProcessRunner", "detect_command", "child_environment",
           "kill_process_tree", "parse_line"]

Outcome = Literal["running", "succeeded", "failed", "cancelled"]
DEFAULT_KILL_GRACE_S = 3.0


def parse_line(line: str) -> Event:
    """One line of ``detect --progress jsonl`` output as an event (the engine's own parser: one contract)."""
    return parse_event(line)


@dataclass
class RunTracker:
    """State of one run, built from its output lines and exit code. The panel renders it; tests inspect it."""

    log: list[str] = field(default_factory=list)
    progress: ProgressEvent | None = None
    stage: str | None = None
    overall: float = 0.0
    warnings: list[str] = field(default_factory=list)
    result: ResultEvent | None = None
    error: ErrorEvent | None = None
    returncode: int | None = None
    cancelled: bool = False

    def feed_line(self, line: str) -> Event:
        """Record one output line and return its parsed event."""
        event = parse_line(line)
        self.log.append(line.rstrip("\r\n"))
        if isinstance(event, ProgressEvent):
            self.progress = event
            self.stage = event.stage
            self.overall = max(self.overall, event.overall or 0.0)
        elif isinstance(event, StageStartEvent):
            self.stage = event.stage
        elif isinstance(event, StageEndEvent):
            self.overall = max(self.overall, event.overall or 0.0)
        elif isinstance(event, WarningEvent):
            self.warnings.append(event.message)
        elif isinstance(event, ResultEvent):
            self.result = event
        elif isinstance(event, ErrorEvent):
            self.error = event
        return event

    def finish(self, returncode: int) -> None:
        self.returncode = int(returncode)

    @property
    def outcome(self) -> Outcome:
        if self.cancelled:
            return "cancelled"
        if self.returncode is None:
            return "running"
        if self.returncode == 0 and self.result is not None and self.error is None:
            return "succeeded"
        return "failed"

    def error_message(self) -> str:
        """One line for the error popup: the engine's own message, else the last log line, else the exit code."""
        if self.error is not None:
            return self.error.message
        if self.returncode == 0 and self.result is None:
            return "the detection finished without reporting its results (see details)"
        last = next((line.strip() for line in reversed(self.log) if line.strip()), "")
        code = f"exit code {self.returncode}" if self.returncode is not None else "no exit code"
        return f"the detection stopped unexpectedly ({code}): {last[:200]}" if last else \
            f"the detection stopped unexpectedly ({code})"

    def details(self) -> str:
        """The full child output, for the popup's "Show details"."""
        return "\n".join(self.log)


def kill_process_tree(pid: int, own_process_group: bool, grace_s: float = DEFAULT_KILL_GRACE_S) -> None:
    """Terminate ``pid`` and all its descendants: SIGTERM (lets the engine delete its staging folder), then SIGKILL
    whatever is still alive after ``grace_s`` seconds.

    Uses psutil when it is importable (it walks the tree, so it also works for children that are not group leaders,
    e.g. launched by ``slicer.util.launchConsoleProcess``). Otherwise, on POSIX, signals the process group, which is
    only safe when the child was started with ``start_new_session=True`` (``own_process_group``); else only the
    child itself is signalled.
    """
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            parent = psutil.Process(pid)
            processes = [*parent.children(recursive=True), parent]
        except psutil.NoSuchProcess:
            return
        for process in processes:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        # Never wait on ``parent`` itself with psutil: that would reap our own child and its Popen would then
        # report exit code 0. Poll it without reaping; the caller's Popen.wait collects the status.
        _, alive = psutil.wait_procs(processes[:-1], timeout=grace_s)
        deadline = time.monotonic() + grace_s
        while _running_unreaped(parent, psutil) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _running_unreaped(parent, psutil):
            alive.append(parent)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs([p for p in alive if p is not parent], timeout=grace_s)
        if not own_process_group:
            return
    # Also signal the group: it reaches descendants that psutil missed because their parent had already exited.
    _signal_without_psutil(pid, own_process_group, grace_s)


def _running_unreaped(process, psutil) -> bool:
    """True while ``process`` runs (a zombie has exited and only waits to be reaped by its parent)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal_without_psutil(pid: int, own_process_group: bool, grace_s: float) -> None:
    use_group = own_process_group and hasattr(os, "killpg")

    def send(sig: int) -> bool:
        try:
            if use_group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    if not send(signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not send(0):
            return
        time.sleep(0.05)
    send(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)


class ChildProcessRunner:
    """A child process whose merged stdout/stderr lines are read on a thread and collected by :meth:`poll`.

    ``on_line`` is called from :meth:`poll` (i.e. on the caller's thread, the Qt main thread in Slicer) for every
    new line; ``on_finished(returncode)`` once, after the last line, also from :meth:`poll`.
    """

    def __init__(self, on_line: Callable[[str], None], on_finished: Callable[[int], None],
                 kill_grace_s: float = DEFAULT_KILL_GRACE_S) -> None:
        self.on_line = on_line
        self.on_finished = on_finished
        self.kill_grace_s = kill_grace_s
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._finished = False

    def start(self, args: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        """Start ``args``; returns at once. Raises ``OSError`` if the program cannot be started."""
        posix = os.name == "posix"
        # On Windows: no console window, and a process group of its own (CTRL_BREAK can reach the whole group).
        windows_flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        self.process = subprocess.Popen(
            list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            encoding="utf-8", errors="replace", bufsize=1, env=env, cwd=cwd, start_new_session=posix,
            creationflags=0 if posix else windows_flags,
        )
        self._reader = threading.Thread(target=self._read_lines, name="contrastive-anomaly-reader", daemon=True)
        self._reader.start()

    def _read_lines(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self.process.stdout.close()
        self._lines.put(None)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def finished(self) -> bool:
        return self._finished

    def poll(self) -> bool:
        """Deliver the lines read so far; return True while the run is still going."""
        if self.process is None or self._finished:
            return False
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return True
            if line is None:
                returncode = self.process.wait()
                self._finished = True
                self.on_finished(returncode)
                return False
            self.on_line(line)

    def wait(self, timeout_s: float, poll_interval_s: float = 0.02) -> bool:
        """Poll until the child has finished or ``timeout_s`` passed (for scripts and tests); True if finished."""
        deadline = time.monotonic() + timeout_s
        while self.poll():
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_interval_s)
        return self._finished

    def cancel(self) -> None:
        """Kill the child and its descendants. The caller discards the output folder afterwards."""
        if self.process is None or self.process.poll() is not None and self._finished:
            return
        kill_process_tree(self.process.pid, own_process_group=os.name == "posix", grace_s=self.kill_grace_s)


def detect_command(python: str, input_path: str, out_dir: str, model: str, contrast: str | None = None,
                   device: str = "auto", brain_mask: str | None = None, fast: bool = False,
                   threshold: float | None = None, seed: int | None = None) -> list[str]:
    """The argument list for ``python -m contrastive_anomaly.cli.main detect`` with JSON-lines progress."""
    args = [python, "-m", "contrastive_anomaly.cli.main", "detect", input_path, "--out", out_dir, "--model", model,
            "--device", device, "--progress", "jsonl"]
    if brain_mask:
        args += ["--brain-mask", brain_mask]
    if contrast:
        args += ["--contrast", contrast]
    if fast:
        args.append("--fast")
    if threshold is not None:
        args += ["--threshold", repr(float(threshold))]
    if seed is not None:
        args += ["--seed", str(int(seed))]
    return args


def child_environment(base: dict[str, str], engine_parent_dir: str) -> dict[str, str]:
    """``base`` with the engine's parent folder first on ``PYTHONPATH`` and unbuffered output (live progress)."""
    env = dict(base)
    existing = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = engine_parent_dir + (os.pathsep + existing if existing else "")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env

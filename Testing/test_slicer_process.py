"""The module's child-process runner against fake engines: JSON-lines parsing, error surfacing, cancel.

The fake engine is a small Python script written by the test; "hang" mode starts a grandchild so that cancel must
kill the whole process tree.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ContrastiveAnomaly"))

from ContrastiveAnomalyLib import process  # noqa: E402

FAKE_ENGINE = textwrap.dedent('''
    import json, subprocess, sys, time
    mode, workdir = sys.argv[1], sys.argv[2]
    def emit(**payload):
        print(json.dumps(payload), flush=True)
    emit(event="progress", stage="load", done=0, total=1, eta_s=None)
    print("some library chatter", file=sys.stderr, flush=True)
    emit(event="progress", stage="reconstruct", done=5, total=20, eta_s=12.5)
    if mode == "ok":
        emit(event="warning", message="input is anisotropic")
        emit(event="result", outputs={"anomaly_map": workdir + "/map.nii.gz"}, threshold=0.125,
             timings_s={"load": 0.1, "reconstruct": 2.0}, warnings=["input is anisotropic"])
        sys.exit(0)
    if mode == "fail":
        emit(event="error", message="input has 2 dimensions; a 3D brain MRI is needed", kind="InputError")
        sys.exit(2)
    if mode == "crash":
        print("Traceback (most recent call last):", file=sys.stderr, flush=True)
        print("MemoryError: out of memory", file=sys.stderr, flush=True)
        sys.exit(1)
    if mode == "hang":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open(workdir + "/grandchild.pid", "w").write(str(grandchild.pid))
        open(workdir + "/partial.nii.gz", "w").write("half")
        while True:
            time.sleep(0.1)
''')


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_fake(tmp_path: Path, mode: str, timeout_s: float = 20.0):
    script = tmp_path / "fake_engine.py"
    script.write_text(FAKE_ENGINE)
    tracker = process.RunTracker()
    events = []

    def on_line(line: str) -> None:
        events.append(tracker.feed_line(line))

    runner = process.ChildProcessRunner(on_line=on_line, on_finished=tracker.finish, kill_grace_s=1.0)
    runner.start([sys.executable, str(script), mode, str(tmp_path)])
    return runner, tracker, events, timeout_s


def test_parse_line_understands_every_event():
    assert process.parse_line('{"event": "progress", "stage": "s", "done": 2, "total": 4, "eta_s": null}') == \
        process.ProgressEvent("s", 2, 4, None)
    assert process.parse_line('{"event": "warning", "message": "w"}\n') == process.WarningEvent("w")
    result = process.parse_line('{"event": "result", "outputs": {"mask": "/x"}, "threshold": 0.2, '
                                '"timings_s": {"a": 1}, "warnings": []}')
    assert isinstance(result, process.ResultEvent) and result.threshold == 0.2 and result.outputs == {"mask": "/x"}
    error = process.parse_line('{"event": "error", "message": "bad\\nsecond line", "kind": "InputError"}')
    assert error == process.ErrorEvent("bad", "InputError")


@pytest.mark.parametrize("line", ["plain text", "{not json", '{"event": "progress"}', "[1, 2]",
                                  '{"event": "unknown"}', '{"event": "progress", "stage": "s", "done": "x", '
                                  '"total": 1}'])
def test_parse_line_never_raises_on_garbage(line):
    assert isinstance(process.parse_line(line), process.LogLine)


def test_successful_run_reports_progress_warnings_and_result(tmp_path):
    runner, tracker, events, timeout_s = run_fake(tmp_path, "ok")
    assert runner.wait(timeout_s)
    assert tracker.outcome == "succeeded"
    assert tracker.returncode == 0
    progress = [e for e in events if isinstance(e, process.ProgressEvent)]
    assert [p.stage for p in progress] == ["load", "reconstruct"]
    assert progress[-1].eta_s == 12.5
    assert tracker.warnings == ["input is anisotropic"]
    assert tracker.result.threshold == 0.125
    assert tracker.result.outputs["anomaly_map"].endswith("map.nii.gz")
    assert "some library chatter" in tracker.details()  # stderr is merged and kept for "Show details"


def test_engine_error_is_surfaced_as_one_line(tmp_path):
    runner, tracker, _, timeout_s = run_fake(tmp_path, "fail")
    assert runner.wait(timeout_s)
    assert tracker.outcome == "failed"
    assert tracker.returncode == 2
    assert tracker.error_message() == "input has 2 dimensions; a 3D brain MRI is needed"


def test_crash_without_protocol_error_still_explains(tmp_path):
    runner, tracker, _, timeout_s = run_fake(tmp_path, "crash")
    assert runner.wait(timeout_s)
    assert tracker.outcome == "failed"
    message = tracker.error_message()
    assert "exit code 1" in message and "MemoryError" in message
    assert "\n" not in message
    assert "Traceback" in tracker.details()


@pytest.mark.skipif(os.name != "posix", reason="process-tree check reads /proc or signals POSIX pids")
def test_cancel_kills_the_whole_tree(tmp_path):
    runner, tracker, _, timeout_s = run_fake(tmp_path, "hang")
    pid_file = tmp_path / "grandchild.pid"
    deadline = time.monotonic() + timeout_s
    while not (pid_file.exists() and pid_file.read_text(encoding="utf-8")) and time.monotonic() < deadline:
        runner.poll()
        time.sleep(0.05)
    grandchild = int(pid_file.read_text(encoding="utf-8"))
    assert alive(runner.pid) and alive(grandchild)
    tracker.cancelled = True
    runner.cancel()
    assert runner.wait(timeout_s)
    assert tracker.outcome == "cancelled"
    assert tracker.returncode != 0
    deadline = time.monotonic() + 5.0
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(runner.pid)
    assert not alive(grandchild)


def test_detect_command_follows_the_cli_contract():
    args = process.detect_command("/py", "/in.nrrd", "/out", "/models/tiny", contrast="T2", device="cpu",
                                  brain_mask="/mask.nrrd", fast=True, threshold=0.25, seed=3)
    assert args[:5] == ["/py", "-m", "contrastive_anomaly.cli.main", "detect", "/in.nrrd"]
    pairs = {args[i]: args[i + 1] for i in range(5, len(args) - 1) if args[i].startswith("--")}
    assert pairs["--out"] == "/out" and pairs["--model"] == "/models/tiny" and pairs["--progress"] == "jsonl"
    assert pairs["--contrast"] == "T2" and pairs["--device"] == "cpu" and pairs["--brain-mask"] == "/mask.nrrd"
    assert float(pairs["--threshold"]) == 0.25 and pairs["--seed"] == "3"
    assert "--fast" in args
    minimal = process.detect_command("/py", "/in.nrrd", "/out", "m")
    assert "--fast" not in minimal and "--brain-mask" not in minimal and "--threshold" not in minimal


def test_child_environment_puts_the_engine_first():
    env = process.child_environment({"PYTHONPATH": "/other", "KEEP": "1"}, "/module")
    assert env["PYTHONPATH"].split(os.pathsep) == ["/module", "/other"]
    assert env["KEEP"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert process.child_environment({}, "/module")["PYTHONPATH"] == "/module"

"""The JSON-lines event contract (runtime.events) and the reporter that sends it (runtime.progress)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from contrastive_anomaly.runtime import events
from contrastive_anomaly.runtime.progress import ProgressReporter


def _roundtrip(payload: dict) -> events.Event:
    return events.parse_event(events.to_line(payload) + "\n")


def test_every_builder_round_trips_through_parse_event():
    start = _roundtrip(events.stage_start_event("model", total=12, index=3, count=9))
    assert isinstance(start, events.StageStartEvent) and (start.stage, start.total, start.index, start.count) == \
        ("model", 12, 3, 9)
    progress = _roundtrip(events.progress_event("model", 4, 12, eta_s=3.14159, overall=0.5, loss=0.25))
    assert isinstance(progress, events.ProgressEvent)
    assert (progress.done, progress.total, progress.eta_s, progress.overall) == (4, 12, 3.14, 0.5)
    assert progress.extra == {"loss": 0.25} and progress.fraction == pytest.approx(1 / 3)
    end = _roundtrip(events.stage_end_event("model", seconds=1.23456, overall=0.75))
    assert isinstance(end, events.StageEndEvent) and end.seconds == 1.235 and end.overall == 0.75
    warning = _roundtrip(events.warning_event("first line\nsecond", code="unscored_brain", stage="model"))
    assert isinstance(warning, events.WarningEvent)
    assert (warning.message, warning.code, warning.stage) == ("first line", "unscored_brain", "model")
    error = _roundtrip(events.error_event("input not found: x\ntrace", kind="InputError", exit_code=6))
    assert isinstance(error, events.ErrorEvent) and (error.message, error.kind, error.exit_code) == \
        ("input not found: x", "InputError", 6)


def test_result_event_carries_everything_the_panel_needs():
    scored = events.scored_fraction(1200.0, 1032.0)
    payload = events.result_event({"mask": "/o/m.nii.gz"}, threshold=0.2, postprocess={"median_size": 5},
                                  seed=7, precision="fp32", timings_s={"model": 1.23456}, warnings=["w"],
                                  scored=scored, region_count=2)
    result = _roundtrip(payload)
    assert isinstance(result, events.ResultEvent)
    assert result.outputs == {"mask": "/o/m.nii.gz"} and result.threshold == 0.2 and result.seed == 7
    assert result.postprocess == {"median_size": 5} and result.precision == "fp32"
    assert result.timings_s == {"model": 1.235} and result.warnings == ["w"]
    assert result.scored["unscored_ml"] == 168.0 and result.scored["unscored_percent"] == 14.0
    assert result.extra == {"region_count": 2}


def test_scored_fraction_is_clamped_and_handles_an_empty_brain():
    assert events.scored_fraction(100.0, 150.0)["fraction"] == 1.0
    assert events.scored_fraction(0.0, 0.0) == {"brain_ml": 0.0, "scored_ml": 0.0, "unscored_ml": 0.0,
                                                "fraction": 1.0, "unscored_percent": 0.0}


@pytest.mark.parametrize("line", ["", "Traceback (most recent call last):", "{not json", "[1, 2]",
                                  '{"event": "nope"}', '{"event": "progress", "stage": "x"}',
                                  '{"event": "result", "outputs": 3}', '{"no_event": 1}'])
def test_parse_event_never_raises_on_other_lines(line):
    parsed = events.parse_event(line + "\n")
    assert isinstance(parsed, events.LogLine) and parsed.text == line


def test_non_finite_numbers_become_null():
    line = events.to_line(events.progress_event("model", 1, 2, eta_s=float("inf")))
    assert json.loads(line)["eta_s"] is None


def test_events_module_imports_nothing_heavy():
    code = ("import sys; import contrastive_anomaly.runtime.events; "
            "print(sorted(m for m in ('torch', 'numpy', 'SimpleITK', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _run_stages(mode: str) -> tuple[list[events.Event], io.StringIO]:
    stream = io.StringIO()
    reporter = ProgressReporter(mode, stream)
    reporter.plan({"read": 1.0, "model": 3.0, "write": 1.0})
    with reporter.stage("read"):
        pass
    with reporter.stage("model", total=4):
        for done in range(1, 5):
            reporter.advance(done)
    reporter.warn("careful", code="test")
    with reporter.stage("write"):
        pass
    reporter.result({"x": "y"}, threshold=0.1)
    return [events.parse_event(line) for line in stream.getvalue().splitlines()], stream


def test_every_stage_reports_start_steady_progress_and_end():
    parsed, _ = _run_stages("jsonl")
    assert not any(isinstance(e, events.LogLine) for e in parsed)
    for stage in ("read", "model", "write"):
        kinds = [e.event for e in parsed if getattr(e, "stage", None) == stage and e.event != "warning"]
        assert kinds[0] == "stage_start" and kinds[-1] == "stage_end", (stage, kinds)
        done = [e.done for e in parsed if isinstance(e, events.ProgressEvent) and e.stage == stage]
        assert done[0] == 0 and done[-1] == max(done) and done == sorted(done)
    model_steps = [e.done for e in parsed if isinstance(e, events.ProgressEvent) and e.stage == "model"]
    assert set(model_steps) == {0, 1, 2, 3, 4}
    overall = [e.overall for e in parsed if isinstance(e, events.ProgressEvent | events.StageEndEvent)]
    assert overall == sorted(overall) and overall[0] == 0.0 and overall[-1] == 1.0
    assert 0.2 < next(e.overall for e in parsed if isinstance(e, events.ProgressEvent) and e.stage == "model"
                      and e.done == 2) < 0.6
    assert isinstance(parsed[-1], events.ResultEvent) and parsed[-1].warnings == ["careful"]
    warning = next(e for e in parsed if isinstance(e, events.WarningEvent))
    assert warning.code == "test" and warning.stage is None


def test_bar_mode_ends_each_stage_at_its_total(capsys):
    _run_stages("bar")
    err = capsys.readouterr().err
    assert "[2/3] model" in err and "4/4" in err and "warning: careful" in err
    assert "0/1" not in err.splitlines()[-1]


def test_a_failed_stage_sends_no_end_event():
    stream = io.StringIO()
    reporter = ProgressReporter("jsonl", stream)
    with pytest.raises(RuntimeError), reporter.stage("model", total=3):
        raise RuntimeError("boom")
    kinds = [events.parse_event(line).event for line in stream.getvalue().splitlines()]
    assert kinds == ["stage_start", "progress"]
    assert "model" in reporter.timings_s

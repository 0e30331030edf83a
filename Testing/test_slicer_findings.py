"""Findings table and threshold behaviour of the Slicer module (pure numpy/scipy; no Slicer needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ContrastiveAnomaly"))

from contrastive_anomaly.scoring.threshold_index import ThresholdIndex  # noqa: E402
from ContrastiveAnomalyLib import findings, widget_state  # noqa: E402
from ContrastiveAnomalyLib.process import RunTracker  # noqa: E402

# IJK-to-RAS with flipped axes, anisotropic spacing and an origin: voxel volume 2 * 1.5 * 3 = 9 mm^3.
IJK_TO_RAS = np.array([[-2.0, 0.0, 0.0, 10.0],
                       [0.0, -1.5, 0.0, 20.0],
                       [0.0, 0.0, 3.0, -5.0],
                       [0.0, 0.0, 0.0, 1.0]])


def make_result(seed: int = 3):
    """A threshold index on a 6x8x10 model grid whose native grid is the model grid upsampled 2x."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    filtered = ndimage.gaussian_filter(rng.random((6, 8, 10)), 0.8).astype(np.float32)
    model_index = np.arange(1, filtered.size + 1, dtype=np.int32).reshape(filtered.shape)
    model_index = model_index.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    index = ThresholdIndex.build(filtered, model_index, np.diag([-1.0, -1.0, 1.0, 1.0]) @ IJK_TO_RAS,
                                 max_removed_component_voxels=2, connectivity=26)
    return findings.ResultIndex(index, model_index), filtered


def test_readout_describes_exactly_the_native_mask():
    result, filtered = make_result()
    voxel_ml = abs(np.linalg.det(IJK_TO_RAS[:3, :3])) / 1000.0
    for threshold in (0.4, 0.5, 0.55):
        readout = result.readout(threshold)
        mask = result.native_mask(threshold)
        assert readout.summary.total_volume_ml == pytest.approx(mask.sum() * voxel_ml)
        assert readout.summary.region_count == len(readout.findings)
        assert np.array_equal(mask, readout.model_mask.repeat(2, 0).repeat(2, 1).repeat(2, 2))
    assert result.readout(0.5) is result.readout(0.5), "the last readout is cached"


def test_native_mask_outside_the_model_grid_is_empty():
    index, _ = make_result()
    padded = np.zeros((14, 16, 20), dtype=np.int32)
    padded[1:13, :, :] = index.model_index_box
    shifted = findings.ResultIndex(index.index, padded)
    assert shifted.box[0] == slice(1, 13)
    mask = shifted.native_mask(0.45)
    assert not mask[0].any() and not mask[13].any()
    assert np.array_equal(mask[1:13], index.native_mask(0.45))


def test_threshold_is_monotone():
    result, _ = make_result(4)
    counts = [int(result.native_mask(t).sum()) for t in np.linspace(0.3, 0.8, 11)]
    assert counts == sorted(counts, reverse=True) and counts[0] > 0 and counts[-1] == 0


def test_input_pick_skips_labelmaps_results_and_localizers():
    facts = widget_state.VolumeFacts
    volumes = [facts("label", (64, 64, 40), True, False), facts("map", (64, 64, 40), False, True),
               facts("localizer", (256, 256, 3), False, False), facts("t1", (176, 256, 256), False, False)]
    assert widget_state.pick_input(volumes) == "t1"
    assert widget_state.pick_input(volumes[:3]) is None


def test_slider_keeps_a_threshold_above_one_and_dialogs_never_open_in_slicers_folder(tmp_path):
    assert widget_state.slider_maximum(0.8, 1.4) == 1.4
    (tmp_path / "scan.nrrd").write_bytes(b"")
    assert widget_state.start_directory(None, str(tmp_path / "scan.nrrd"), "/home") == str(tmp_path)
    assert widget_state.start_directory(str(tmp_path / "missing"), None, "/home") == "/home"


def test_run_button_turns_into_cancel():
    assert widget_state.run_button_state(True, True, running=False).text == "Detect anomalies"
    assert widget_state.run_button_state(True, True, running=True).text == "Cancel"
    assert widget_state.run_button_state(True, True, running=True).enabled
    assert not widget_state.run_button_state(False, True, running=False).enabled
    assert not widget_state.run_button_state(True, False, running=False).enabled
    assert not widget_state.run_button_state(True, True, running=True, cancelling=True).enabled


def test_progress_is_overall_with_the_stage_as_text():
    tracker = RunTracker()
    assert widget_state.progress_view(tracker) == (0, "Starting…")
    tracker.feed_line(json.dumps({"event": "stage_start", "v": 1, "stage": "model", "total": 40}))
    tracker.feed_line(json.dumps({"event": "progress", "v": 1, "stage": "model", "done": 10, "total": 40,
                                  "eta_s": 95.0, "overall": 0.6}))
    percent, text = widget_state.progress_view(tracker)
    assert percent == 60 and "10/40" in text and "1 min 35 s" in text
    tracker.feed_line(json.dumps({"event": "stage_start", "v": 1, "stage": "postprocess", "total": 1}))
    percent, text = widget_state.progress_view(tracker)
    assert percent == 60 and text.startswith("Scoring"), "a new stage never restarts the bar"
    assert widget_state.format_duration(3725) == "1 h 2 min"
    assert widget_state.format_duration(None) == ""


def test_cpu_notice_only_on_first_cpu_run():
    assert widget_state.cpu_time_notice("cpu", None, first_run=True, fast_mode=False) is not None
    assert widget_state.cpu_time_notice("auto", False, first_run=True, fast_mode=True) is not None
    assert widget_state.cpu_time_notice("auto", True, first_run=True, fast_mode=False) is None
    assert widget_state.cpu_time_notice("cpu", None, first_run=False, fast_mode=False) is None


def test_summary_and_rows():
    assert widget_state.summary_text(None, 0.1, has_result=False) == "No results yet."
    assert "again" in widget_state.summary_text(None, 0.1)
    text = widget_state.summary_text(findings.FindingsSummary(1.234, 1), 0.15)
    assert "1.23 mL" in text and "1 region " in text
    row = widget_state.finding_row(2, 0.5, 0.91, 0.4, (1.0, -2.25, 3.0))
    assert len(row) == len(widget_state.FINDINGS_HEADERS)
    assert row[0] == "2"
    assert row[1:] == ["0.50", "0.910", "0.400", "1.0", f"{-2.25:.1f}", "3.0"]

"""The module's data path with the real engine, outside Slicer: MRML volume -> file -> ``detect`` child process
(JSON lines) -> result volumes back on the input's exact grid -> "Anomaly" segment and findings; and a cancel that
leaves no output.

Needs slicer-core and a model folder (see the ``model_folder`` fixture).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer_core", reason="needs PyPI slicer-core")
pytest.importorskip("contrastive_anomaly.data.phantoms")

import slicer.util  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "ContrastiveAnomaly"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_slicer_bridge import Mrml  # noqa: E402

from contrastive_anomaly.config import GridConfig  # noqa: E402
from contrastive_anomaly.data.phantoms import brain_phantom, plant_sphere_lesion  # noqa: E402
from contrastive_anomaly.storage import registry as model_registry  # noqa: E402
from ContrastiveAnomalyLib import appearance, findings, process, slicer_bridge  # noqa: E402

pytestmark = [pytest.mark.slicer_core, pytest.mark.slow]
RUN_TIMEOUT_S = 300


@pytest.fixture()
def model_folder(request) -> Path:
    """``$CONTRASTIVE_ANOMALY_TEST_MODEL``, else a registered tiny model, else the engine tests'
    session-wide ``trained_tiny_model`` (Testing/conftest.py; shared, so it is trained once per test session)."""
    configured = os.environ.get("CONTRASTIVE_ANOMALY_TEST_MODEL")
    if configured:
        return Path(configured)
    available = [m for m in model_registry.list_models(user_dir=REPO / ".no-user-models") if m.installed]
    tiny = [m for m in available if "tiny" in m.name]
    if tiny:
        return tiny[0].folder
    try:
        return Path(request.getfixturevalue("trained_tiny_model"))
    except pytest.FixtureLookupError:
        pytest.skip("no model: set CONTRASTIVE_ANOMALY_TEST_MODEL or register a tiny model")


def phantom_input(mrml: Mrml):
    grid = GridConfig()
    subject = brain_phantom(grid.shape, seed=5, spacing_mm=grid.spacing_mm)
    image, _ = plant_sphere_lesion(subject.image, subject.brain_mask, 4.0, 1.0, seed=5)
    spacing = grid.spacing_mm
    return mrml.volume(image, "phantom", np.diag([-spacing, -spacing, spacing, 1.0]))


def start_detect(mrml: Mrml, tmp_path: Path, model: Path, tracker: process.RunTracker):
    input_node = phantom_input(mrml)
    input_path = slicer_bridge.write_volume(mrml.scene, input_node, tmp_path / "input.nrrd")
    args = process.detect_command(sys.executable, str(input_path), str(tmp_path / "out"), str(model),
                                  device="cpu", fast=True)
    runner = process.ChildProcessRunner(on_line=tracker.feed_line, on_finished=tracker.finish, kill_grace_s=2.0)
    runner.start(args, env=process.child_environment(dict(os.environ), str(REPO / "ContrastiveAnomaly")))
    return input_node, runner


def test_detect_results_land_on_the_input_grid(tmp_path, model_folder):
    model = model_folder
    mrml = Mrml()
    tracker = process.RunTracker()
    input_node, runner = start_detect(mrml, tmp_path, model, tracker)
    assert runner.wait(RUN_TIMEOUT_S)
    assert tracker.outcome == "succeeded", tracker.error_message()
    assert tracker.progress is not None and tracker.result.threshold is not None
    map_node = slicer_bridge.load_result_volume(mrml.scene, tracker.result.outputs["anomaly_map"], "map", input_node)
    reconstruction = slicer_bridge.load_result_volume(mrml.scene, tracker.result.outputs["reconstruction"], "rec",
                                                      input_node)
    for node in (map_node, reconstruction):
        np.testing.assert_array_equal(slicer_bridge.ijk_to_ras(node), slicer_bridge.ijk_to_ras(input_node))
    scores = slicer.util.arrayFromVolume(map_node)
    assert np.isfinite(scores).all() and scores.min() >= 0.0
    segmentation = slicer_bridge.create_anomaly_segmentation(mrml.scene, input_node, "anomalies")
    outputs = tracker.result.outputs
    index = findings.ResultIndex.load(outputs["threshold_index"], outputs["model_index"])
    mask = slicer_bridge.in_volume_voxel_order(index.native_mask(tracker.result.threshold), index.native_ijk_to_ras,
                                               input_node)
    slicer_bridge.set_segment_mask(mrml.scene, mrml.segmentations_logic, segmentation, mask, input_node)
    segment_voxels = slicer_bridge.segment_mask(mrml.scene, mrml.segmentations_logic, segmentation, input_node)
    np.testing.assert_array_equal(segment_voxels, mask)
    readout = index.readout(tracker.result.threshold)
    assert sum(r.voxel_count for r in readout.findings) == int(mask.sum())
    summary = json.loads(Path(outputs["summary"]).read_text(encoding="utf-8"))
    assert readout.summary.region_count == summary["region_count"]  # the panel and summary.json agree
    assert segmentation.GetSegmentation().GetSegment(appearance.SEGMENT_ID).GetName() == appearance.SEGMENT_NAME


def test_cancel_leaves_no_output(tmp_path, model_folder):
    model = model_folder
    mrml = Mrml()
    tracker = process.RunTracker()
    _, runner = start_detect(mrml, tmp_path, model, tracker)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while tracker.progress is None and runner.poll() and time.monotonic() < deadline:
        time.sleep(0.02)
    tracker.cancelled = True
    runner.cancel()
    assert runner.wait(30)
    assert tracker.outcome == "cancelled"
    out = tmp_path / "out"
    leftovers = [p.name for p in out.iterdir()] if out.exists() else []
    assert tracker.returncode != 0, "the run finished before the cancel reached it"
    assert leftovers == [], f"half result left behind: {leftovers}"

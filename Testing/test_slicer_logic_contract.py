"""Contract tests of ``ContrastiveAnomalyLogic`` on a real MRML scene (slicer-core), with a fake engine process.

The logic receives its collaborators (scene, segmentations logic, process launcher) as constructor arguments; the
few application-only names it imports come from ``Testing/fakes/slicer_app.py``. The fake engine is a small script
that honours the CLI contract (JSON lines, outputs with the input's geometry, one-line errors) so that the logic's
whole path runs: inputs written, child started, results loaded, segment built, threshold moved, exports, cancel.
What this cannot prove (widget, PythonQt, launchConsoleProcess, parameter node) is left to the Slicer self-test.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("slicer_core", reason="needs PyPI slicer-core")
sitk = pytest.importorskip("SimpleITK")
slicerio = pytest.importorskip("slicerio")


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "ContrastiveAnomaly"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import slicer_app  # noqa: E402
from test_slicer_bridge import Mrml  # noqa: E402

from contrastive_anomaly.storage import registry as model_registry  # noqa: E402
from contrastive_anomaly.storage.integrity import sha256_of  # noqa: E402
from ContrastiveAnomalyLib import appearance, process, slicer_bridge  # noqa: E402

pytestmark = pytest.mark.slicer_core
TIMEOUT_S = 30.0

FAKE_ENGINE = textwrap.dedent('''
    import argparse, json, sys, time
    import numpy as np
    import SimpleITK as sitk
    parser = argparse.ArgumentParser()
    parser.add_argument("command"); parser.add_argument("input"); parser.add_argument("--out", required=True)
    for flag in ("--model", "--device", "--progress", "--contrast", "--brain-mask", "--threshold", "--seed"):
        parser.add_argument(flag)
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    mode = open(args.model + "/mode.txt").read().strip()
    def emit(**payload):
        print(json.dumps(payload), flush=True)
    emit(event="progress", stage="read", done=0, total=1, eta_s=None)
    if mode == "fail":
        emit(event="error", message="the scan's contrast (T2) differs from the model's (T1)", kind="InputError")
        sys.exit(2)
    if mode == "hang":
        while True:
            emit(event="progress", stage="model", done=1, total=50, eta_s=99.0)
            time.sleep(0.05)
    image = sitk.ReadImage(args.input)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    scores = np.where(array > 0.5, array, 0.0).astype(np.float32)
    import os
    os.makedirs(args.out, exist_ok=True)
    outputs = {}
    for name, data in (("anomaly_map", scores), ("reconstruction", np.minimum(array, 0.5))):
        out = sitk.GetImageFromArray(data)
        out.CopyInformation(image)
        outputs[name] = os.path.join(args.out, name + ".nii.gz")
        sitk.WriteImage(out, outputs[name])
    from contrastive_anomaly.scoring.threshold_index import ThresholdIndex, ijk_to_lps_of
    model_index = np.arange(1, scores.size + 1, dtype=np.int32).reshape(scores.shape)  # model grid = scan grid
    index = ThresholdIndex.build(scores, model_index, ijk_to_lps_of(image.GetSpacing(), image.GetOrigin(),
                                 image.GetDirection()), max_removed_component_voxels=1, connectivity=26)
    outputs["threshold_index"] = str(index.save(os.path.join(args.out, "threshold_index.npz")))
    out = sitk.GetImageFromArray(model_index)
    out.CopyInformation(image)
    outputs["model_index"] = os.path.join(args.out, "model_index.nii.gz")
    sitk.WriteImage(out, outputs["model_index"])
    with open(os.path.join(args.out, "argv.json"), "w") as handle:
        json.dump(sys.argv[1:], handle)
    emit(event="progress", stage="model", done=50, total=50, eta_s=0.0)
    emit(event="result", v=1, outputs=outputs, threshold=0.6, timings_s={"model": 0.1}, warnings=[],
         postprocess={"threshold": 0.6, "max_removed_component_voxels": 1, "connectivity": 26})
''')


class FakeEngineLauncher:
    """Runs the fake engine instead of ``python -m contrastive_anomaly.cli.main``; records the contract arguments."""

    def __init__(self, script: Path):
        self.script = script
        self.runner = None
        self.args = None
        self.cwd = None

    def start(self, args, env, cwd, onLine, onFinished):
        assert args[1:3] == ["-m", "contrastive_anomaly.cli.main"]
        self.args, self.cwd = list(args), cwd
        self.runner = process.ChildProcessRunner(on_line=onLine, on_finished=onFinished, kill_grace_s=1.0)
        self.runner.start([sys.executable, str(self.script), *args[3:]], env=None)
        return SimpleNamespace(cancel=self.runner.cancel)

    def wait(self):
        assert self.runner.wait(TIMEOUT_S)


@pytest.fixture()
def module(monkeypatch, tmp_path):
    slicer_app.install(monkeypatch, tmp_path)
    spec = importlib.util.spec_from_file_location("ContrastiveAnomaly", REPO / "ContrastiveAnomaly" /
                                                  "ContrastiveAnomaly.py")
    loaded = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ContrastiveAnomaly", loaded)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture()
def setup(module, tmp_path):
    mrml = Mrml()
    script = tmp_path / "fake_engine.py"
    script.write_text(FAKE_ENGINE)
    launcher = FakeEngineLauncher(script)
    logic = module.ContrastiveAnomalyLogic(launcher=launcher, scene=mrml.scene,
                                           segmentationsLogic=mrml.segmentations_logic)
    rng = np.random.default_rng(2)
    image = (0.4 * rng.random((8, 10, 12))).astype(np.float32)
    image[2:5, 3:7, 4:9] = 0.9
    image[6, 1, 1] = 0.8
    input_node = mrml.volume(image)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"fake")
    (model_dir / "config.json").write_text('{"name": "fake", "contrast": "T1"}')
    (model_dir / "model.sha256").write_text("".join(f"{sha256_of(model_dir / name)}  {name}\n"
                                                    for name in ("model.safetensors", "config.json")))
    params = SimpleNamespace(inputVolume=input_node, brainMask=None, contrast="T1", modelName="fake", device="cpu",
                             fastMode=True, threshold=0.1, calibratedThreshold=0.1, anomalyMap=None,
                             reconstruction=None, segmentation=None, analysedVolume=None, segmentFilled=False)
    model = model_registry.ModelEntry("fake", model_dir, "T1", "user")
    return SimpleNamespace(mrml=mrml, logic=logic, launcher=launcher, params=params, model=model, image=image,
                           model_dir=model_dir)


def set_mode(setup, mode: str) -> None:
    (setup.model_dir / "mode.txt").write_text(mode)


def test_detect_load_threshold_export(setup, tmp_path):
    set_mode(setup, "ok")
    finished = []
    run = setup.logic.startDetection(setup.params, setup.model, onFinished=finished.append)
    setup.launcher.wait()
    assert finished == [run] and run.tracker.outcome == "succeeded"
    argv = setup.launcher.args
    assert argv[argv.index("--progress") + 1] == "jsonl" and argv[argv.index("--device") + 1] == "cpu"
    assert argv[argv.index("--model") + 1] == str(setup.model_dir) and "--fast" in argv
    assert Path(setup.launcher.cwd) == REPO / "ContrastiveAnomaly"

    setup.logic.loadResults(setup.params, run)
    setup.logic.discardRunFolder(run)
    assert not run.workDir.exists()
    params = setup.params
    for node in (params.anomalyMap, params.reconstruction):
        np.testing.assert_array_equal(slicer_bridge.ijk_to_ras(node), slicer_bridge.ijk_to_ras(params.inputVolume))
    assert params.threshold == params.calibratedThreshold == pytest.approx(0.6)
    segment = params.segmentation.GetSegmentation().GetSegment(appearance.SEGMENT_ID)
    assert segment.GetName() == "Anomaly"
    assert params.anomalyMap.GetDisplayNode().GetLowerThreshold() == pytest.approx(0.6)
    voxels = slicer_bridge.segment_mask(setup.mrml.scene, setup.mrml.segmentations_logic, params.segmentation,
                                        params.inputVolume)
    expected = setup.image > 0.6
    expected[6, 1, 1] = False  # the lone voxel is below the engine's size limit (56 mm^3 here)
    np.testing.assert_array_equal(voxels, expected)

    rows, summary = setup.logic.computeFindings(params)
    assert summary.region_count == 1 and rows[0].voxel_count == int(expected.sum())

    params.threshold = 0.95
    setup.logic.updateSegment(params)
    assert not slicer_bridge.segment_mask(setup.mrml.scene, setup.mrml.segmentations_logic, params.segmentation,
                                          params.inputVolume).any()
    params.threshold = params.calibratedThreshold
    setup.logic.updateSegment(params)

    # results stay with the analysed volume: selecting another input changes nothing of them
    other = setup.mrml.volume(np.zeros((3, 4, 5), np.float32), "other")
    params.inputVolume = other
    assert params.analysedVolume.GetName() == "input"
    assert setup.logic.computeFindings(params)[1].region_count == 1
    assert setup.logic.runInfo(params)["postprocess"]["max_removed_component_voxels"] == 1

    seg_path = setup.logic.exportSegNrrd(params, tmp_path / "out.seg.nrrd")
    assert slicerio.read_segmentation(str(seg_path))["segments"][0]["name"] == "Anomaly"
    label_path = setup.logic.exportLabelmap(params, tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(label_path))) > 0, expected)
    with pytest.raises(ValueError, match="DICOM"):
        setup.logic.exportDicomSeg(params, tmp_path)
    assert not setup.logic.dicomExportState(params)[0]


def test_rerun_reuses_nodes_honours_the_transform_and_asks_before_overwriting_edits(setup):
    set_mode(setup, "ok")
    scene = setup.mrml.scene
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    setup.params.inputVolume.SetAndObserveTransformNodeID(transform.GetID())
    asked = []
    setup.logic.confirm = lambda text: asked.append(text) or False

    def run_once():
        run = setup.logic.startDetection(setup.params, setup.model)
        setup.launcher.wait()
        setup.logic.loadResults(setup.params, run)
        setup.logic.discardRunFolder(run)

    run_once()
    params = setup.params
    first = (params.anomalyMap.GetID(), params.reconstruction.GetID(), params.segmentation.GetID())
    for node in (params.anomalyMap, params.reconstruction, params.segmentation):
        assert node.GetTransformNodeID() == transform.GetID()
    def data_nodes():
        return sum(scene.GetNumberOfNodesByClass(c) for c in ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode"))

    count = data_nodes()
    run_once()
    assert (params.anomalyMap.GetID(), params.reconstruction.GetID(), params.segmentation.GetID()) == first
    assert data_nodes() == count and asked == []
    edited = np.zeros(setup.image.shape, bool)
    edited[0, 0, 0] = True  # a manual edit
    slicer_bridge.set_segment_mask(scene, setup.mrml.segmentations_logic, params.segmentation, edited,
                                   params.inputVolume)
    assert not setup.logic.updateSegment(params) and len(asked) == 1, "moving the threshold asks first"
    run_once()
    assert len(asked) == 2 and params.segmentation.GetID() != first[2], "a 'no' keeps the edited segmentation"
    kept = scene.GetNodeByID(first[2])
    assert slicer_bridge.segment_mask(scene, setup.mrml.segmentations_logic, kept, params.inputVolume)[0, 0, 0]


def test_brain_mask_is_passed_to_the_engine(setup):
    set_mode(setup, "ok")
    mask = slicer_bridge.create_anomaly_segmentation(setup.mrml.scene, setup.params.inputVolume, "brain")
    slicer_bridge.set_segment_mask(setup.mrml.scene, setup.mrml.segmentations_logic, mask,
                                   np.ones(setup.image.shape, bool), setup.params.inputVolume)
    setup.params.brainMask = mask
    run = setup.logic.startDetection(setup.params, setup.model)
    setup.launcher.wait()
    argv = setup.launcher.args
    mask_path = Path(argv[argv.index("--brain-mask") + 1])
    assert mask_path.parent == run.workDir and mask_path.is_file()
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path))) > 0).all()
    setup.logic.discardRunFolder(run)


def test_engine_error_reaches_the_user_and_adds_nothing(setup):
    set_mode(setup, "fail")
    nodes = setup.mrml.scene.GetNumberOfNodes()
    run = setup.logic.startDetection(setup.params, setup.model)
    setup.launcher.wait()
    assert run.tracker.outcome == "failed"
    assert run.tracker.error_message() == "the scan's contrast (T2) differs from the model's (T1)"
    setup.logic.discardRunFolder(run)
    assert not run.workDir.exists() and setup.mrml.scene.GetNumberOfNodes() == nodes


def test_cancel_stops_the_run_and_keeps_nothing(setup):
    set_mode(setup, "hang")
    nodes = setup.mrml.scene.GetNumberOfNodes()
    run = setup.logic.startDetection(setup.params, setup.model)
    deadline = time.monotonic() + TIMEOUT_S
    while run.tracker.progress is None or run.tracker.progress.stage != "model":
        assert setup.launcher.runner.poll() and time.monotonic() < deadline
        time.sleep(0.02)
    setup.logic.cancelDetection(run)
    setup.launcher.wait()
    assert run.tracker.outcome == "cancelled"
    setup.logic.discardRunFolder(run)
    assert not run.workDir.exists()
    assert setup.mrml.scene.GetNumberOfNodes() == nodes and setup.params.segmentation is None


def test_missing_input_or_model_is_refused_before_anything_runs(setup):
    setup.params.inputVolume = None
    with pytest.raises(ValueError, match="input volume"):
        setup.logic.startDetection(setup.params, setup.model)
    assert setup.launcher.args is None

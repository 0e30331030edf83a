"""The module's real ``ContrastiveAnomalyWidget``, built from the real .ui on PySide6 (QT_QPA_PLATFORM=offscreen) over
slicer-core's real MRML scene, logics and ``slicer.util``, and driven like a user: setup, enter, select a volume,
Detect (a fake engine child process that speaks the real JSON-lines protocol and writes real result files), the
threshold slider, Compare, and every export.

What is real and what stands in is listed in ``Testing/fakes/slicer_gui.py``; in short, Qt is PySide6 behind a
PythonQt-style ``qt`` shim, the CTK/MRML widgets and ``slicer.parameterNodeWrapper`` are minimal stand-ins that keep
Slicer's rules, and the layout manager has no views (its layout node and slice logics are real). The child process
is started by the module's own launcher (``slicer.util.launchConsoleProcess(blocking=False)`` or its poller); only
the Python executable it runs is replaced by ``fake_detect.py``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("slicer_core", reason="needs PyPI slicer-core")
pytest.importorskip("PySide6.QtUiTools")
sitk = pytest.importorskip("SimpleITK")
slicerio = pytest.importorskip("slicerio")

import slicer  # noqa: E402
import slicer.util  # noqa: E402
from PySide6 import QtWidgets  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODULE_DIR = REPO / "ContrastiveAnomaly"
sys.path.insert(0, str(MODULE_DIR))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import fake_detect, slicer_gui  # noqa: E402
from test_slicer_bridge import Mrml  # noqa: E402

from contrastive_anomaly.storage.integrity import sha256_of  # noqa: E402

pytestmark = pytest.mark.slicer_core
RUN_TIMEOUT_S = 60.0
SPACING_MM = (1.5, 1.2, 2.0)  # I, J, K
ORIGIN_RAS = np.array([10.0, -20.0, 5.0])


def phantom() -> np.ndarray:
    """KJI float32: a dim head with two bright blobs (0.9 and 0.7, both above the fake engine's threshold of 0.6)."""
    rng = np.random.default_rng(7)
    image = (0.3 + 0.1 * rng.random((20, 24, 28))).astype(np.float32)
    image[4:8, 5:10, 6:12] = 0.9     # 240 voxels
    image[13:16, 15:19, 18:21] = 0.7  # 36 voxels
    return image


def ijk_to_ras() -> np.ndarray:
    matrix = np.diag([-SPACING_MM[0], -SPACING_MM[1], SPACING_MM[2], 1.0])
    matrix[:3, 3] = ORIGIN_RAS
    return matrix


def wait_until(condition, timeout_s: float = RUN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        QtWidgets.QApplication.processEvents()
        time.sleep(0.01)


@pytest.fixture()
def fresh_module_imports(monkeypatch):
    """The module and its Lib re-imported against this test's ``qt``/``slicer`` (other tests import them with other
    fakes); the previous modules come back afterwards."""
    names = [n for n in sys.modules if n == "ContrastiveAnomaly" or n.startswith("ContrastiveAnomalyLib")]
    saved = {n: sys.modules.pop(n) for n in names}
    yield
    for name in [n for n in sys.modules if n == "ContrastiveAnomaly" or n.startswith("ContrastiveAnomalyLib")]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.fixture()
def panel(monkeypatch, tmp_path, fresh_module_imports):
    gui = slicer_gui.Gui(tmp_path / "app", MODULE_DIR / "ContrastiveAnomaly.py")
    (tmp_path / "app").mkdir()
    gui.install(monkeypatch)
    monkeypatch.setattr(slicer.util, "pip_install", lambda *a, **k: pytest.fail(f"pip install attempted: {a}"))
    # the fake model in an empty user registry
    models = tmp_path / "models"
    model = models / "fake-t1"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"not a real model")
    (model / "config.json").write_text(json.dumps({"name": "fake-t1", "contrast": "T2"}))
    (model / "model.sha256").write_text("".join(f"{sha256_of(model / n)}  {n}\n"
                                                for n in ("model.safetensors", "config.json")))
    monkeypatch.setenv("CONTRASTIVE_ANOMALY_MODELS", str(models))
    gate = tmp_path / "gate"
    monkeypatch.setenv("FAKE_DETECT_GATE", str(gate))
    python = tmp_path / "fake_python"  # runs fake_detect.py instead of "python -m contrastive_anomaly.cli.main"
    python.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" "{Path(fake_detect.__file__)}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)

    import importlib.util

    spec = importlib.util.spec_from_file_location("ContrastiveAnomaly", MODULE_DIR / "ContrastiveAnomaly.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ContrastiveAnomaly", module)
    spec.loader.exec_module(module)
    parent = slicer_gui.ModulePanel()
    widget = module.ContrastiveAnomalyWidget(parent)
    yield gui, widget, parent, model, gate, python
    widget.cleanup()
    parent.deleteLater()


def add_volume(gui, array, name, matrix=None):
    mrml = Mrml.__new__(Mrml)
    mrml.scene = gui.scene
    return mrml.volume(array, name, ijk_to_ras() if matrix is None else matrix)


def segment_voxels(gui, widget) -> np.ndarray:
    params = widget._parameterNode
    from ContrastiveAnomalyLib import slicer_bridge

    return slicer_bridge.segment_mask(gui.scene, gui.logics["segmentations"], params.segmentation,
                                      params.analysedVolume)


def loaded_terminologies(gui) -> list[str]:
    import vtk

    names = vtk.vtkStringArray()
    gui.logics["terminologies"].GetLoadedTerminologyNames(names)
    return [names.GetValue(i) for i in range(names.GetNumberOfValues())]


def test_the_real_widget_detects_thresholds_compares_and_exports(panel, tmp_path):
    gui, widget, parent, model_folder, gate, python = panel
    image = phantom()
    voxel_ml = float(np.prod(SPACING_MM)) / 1000.0
    # data loaded before the module is opened: a labelmap, a localizer and two scans
    labelmap = gui.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "a labelmap")
    slicer.util.updateVolumeFromArray(labelmap, (image > 0.6).astype(np.uint8))
    localizer = add_volume(gui, image[:1], "localizer")
    other = add_volume(gui, image * 0.5, "other scan")
    scan = add_volume(gui, image, "scan")
    terminologies_before = len(loaded_terminologies(gui))

    widget.setup()
    ui = widget.ui
    parent.isEntered = True
    widget.enter()
    params = widget._parameterNode
    assert len(loaded_terminologies(gui)) == terminologies_before + 1  # the "Anomaly" terminology was loaded
    assert ui.inputVolumeSelector.mrmlScene() is gui.scene  # the .ui forwards the scene to the selectors
    assert params.inputVolume is other, "the first 3D scalar volume that is not a labelmap or a localizer"
    assert ui.inputVolumeSelector.currentNode() is other
    assert localizer.GetID() != params.inputVolume.GetID()
    ui.inputVolumeSelector.setCurrentNode(scan)  # the user picks the scan
    assert params.inputVolume is scan
    assert [ui.contrastComboBox.itemText(i) for i in range(ui.contrastComboBox.count)] == ["T1", "T2", "FLAIR", "PD"]

    combo = ui.modelComboBox
    combo.setCurrentIndex(combo.findData("fake-t1"))
    assert params.modelName == "fake-t1" and params.contrast == "T2" and ui.contrastComboBox.currentText == "T2"
    assert ui.runButton.enabled and ui.runButton.text == "Detect anomalies"
    ui.deviceComboBox.currentIndex = 1
    ui.fastModeCheckBox.click()
    assert params.device == "cpu" and params.fastMode is True
    assert not ui.thresholdSlider.enabled and not ui.exportSegNrrdButton.enabled  # no results yet

    widget.logic.pythonExecutable = str(python)
    progress = []
    ui.progressBar.valueChanged.connect(progress.append)
    ui.runButton.click()
    wait_until(lambda: ui.progressBar.value >= 70)  # the engine waits at the gate after the model stage
    assert ui.runButton.text == "Cancel" and ui.runButton.enabled
    assert not ui.inputsCollapsibleButton.enabled and not ui.progressBar.isHidden()
    assert "Reconstructing a healthy-looking brain (4/4)" in ui.progressBar.format
    assert ui.statusLabel.text.startswith("No GPU in use: fast mode")  # first CPU run
    argv = json.loads((Path(widget._run.workDir) / "argv.json").read_text())
    assert argv[argv.index("--contrast") + 1] == "T2" and argv[argv.index("--device") + 1] == "cpu"
    assert "--fast" in argv and argv[argv.index("--model") + 1] == str(model_folder)
    gate.write_text("go")
    wait_until(lambda: ui.runButton.text == "Detect anomalies")
    assert progress == sorted(progress) and progress[-1] == 100, progress
    assert ui.progressBar.isHidden()
    assert ui.statusLabel.text.startswith("Done in") and "fake engine: no model was run" in ui.statusLabel.text

    # results: on the scan's grid, tied to it, shown in the views
    expected_map = np.where(image > fake_detect.MAP_FLOOR, image, 0.0)
    assert params.analysedVolume is scan
    for node in (params.anomalyMap, params.reconstruction):
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node).shape, image.shape)
        matrix = np.array(slicer.util.arrayFromVTKMatrix(_ijk_to_ras(node)))
        np.testing.assert_allclose(matrix, ijk_to_ras(), atol=1e-6)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(params.anomalyMap), expected_map, atol=1e-6)
    assert params.threshold == pytest.approx(fake_detect.THRESHOLD) == params.calibratedThreshold
    np.testing.assert_array_equal(segment_voxels(gui, widget), image > 0.6)
    red = gui.layout_manager.sliceWidget("Red").mrmlSliceCompositeNode()
    assert red.GetBackgroundVolumeID() == scan.GetID() and red.GetForegroundVolumeID() == params.anomalyMap.GetID()
    assert gui.logics["colors"].GetColorLegendDisplayNode(params.anomalyMap) is not None
    assert ui.thresholdSlider.enabled and ui.thresholdSlider.value == pytest.approx(0.6)
    assert ui.thresholdSlider.maximum == pytest.approx(float(expected_map.max()))
    assert ui.summaryLabel.text == f"{(image > 0.6).sum() * voxel_ml:.2f} mL in 2 regions above 0.600"
    assert ui.findingsTable.rowCount == 2
    assert ui.findingsTable.item(0, 1).text() == f"{(image > 0.8).sum() * voxel_ml:.2f}"  # the larger blob first

    # the slider: readout at once, the segment after the pause, always the same mask
    ui.thresholdSlider.value = 0.8
    assert params.threshold == pytest.approx(0.8)
    assert ui.summaryLabel.text == f"{(image > 0.8).sum() * voxel_ml:.2f} mL in 1 region above 0.800"
    assert ui.findingsTable.rowCount == 1
    assert params.anomalyMap.GetDisplayNode().GetLowerThreshold() == pytest.approx(0.8)
    wait_until(lambda: not segment_voxels(gui, widget)[13:16, 15:19, 18:21].any(), timeout_s=10)
    np.testing.assert_array_equal(segment_voxels(gui, widget), image > 0.8)
    ui.resetThresholdButton.click()
    assert params.threshold == pytest.approx(0.6) and ui.thresholdSlider.value == pytest.approx(0.6)
    wait_until(lambda: segment_voxels(gui, widget)[13:16, 15:19, 18:21].all(), timeout_s=10)
    np.testing.assert_array_equal(segment_voxels(gui, widget), image > 0.6)
    ui.segmentFilledCheckBox.click()
    assert params.segmentation.GetDisplayNode().GetVisibility2DFill()

    # Compare: two linked axial views, then the previous layout again
    layouts = slicer.vtkMRMLLayoutNode
    gui.layout_manager.setLayout(layouts.SlicerLayoutFourUpView)
    ui.sideBySideButton.click()
    assert gui.layout_manager.layout == layouts.SlicerLayoutSideBySideView
    for name, background in (("Red", scan), ("Yellow", params.reconstruction)):
        view = gui.layout_manager.sliceWidget(name)
        assert view.mrmlSliceNode().GetOrientationString() == "Axial", name
        assert view.mrmlSliceCompositeNode().GetLinkedControl(), name
        assert view.mrmlSliceCompositeNode().GetBackgroundVolumeID() == background.GetID(), name
    ui.sideBySideButton.click()
    assert gui.layout_manager.layout == layouts.SlicerLayoutFourUpView

    # exports
    from fakes.qt_shim import QFileDialog

    exports = tmp_path / "exports"
    exports.mkdir()
    QFileDialog.calls.clear()
    QFileDialog.answers[:] = [str(exports / "a.seg.nrrd")]
    ui.exportSegNrrdButton.click()
    assert ui.statusLabel.text == f"Saved {exports / 'a.seg.nrrd'}"
    segmentation = slicerio.read_segmentation(str(exports / "a.seg.nrrd"))
    assert [s["name"] for s in segmentation["segments"]] == ["Anomaly"]
    from ContrastiveAnomalyLib import appearance

    written = segmentation["segments"][0]
    assert {k: written.get("tags", {}).get(k) for k in appearance.segment_tags()} == appearance.segment_tags()
    assert "terminology" in written, "the segment keeps its terminology in the file"
    label = written["labelValue"]
    assert int((segmentation["voxels"] == label).sum()) == int((image > 0.6).sum())
    QFileDialog.answers[:] = [str(exports / "a.nii.gz")]
    ui.exportLabelmapButton.click()
    assert QFileDialog.calls[-1][1][1].startswith(str(exports)), "the dialog opens in the last export folder"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(exports / "a.nii.gz")))
    np.testing.assert_array_equal(labels > 0, image > 0.6)
    assert not ui.exportDicomSegButton.enabled
    assert "DICOM SEG needs an input loaded from Slicer's DICOM database" in ui.exportDicomSegButton.toolTip
    calls = len(QFileDialog.calls)
    ui.exportDicomSegButton.click()
    assert len(QFileDialog.calls) == calls


def test_dicom_seg_export_from_a_dicom_input(panel, tmp_path, caplog, monkeypatch):
    """An input in a DICOM patient/study: the results join its study, the DICOM SEG button is enabled, and the click
    reaches Slicer's DICOM SEG exporter with the segmentation's subject-hierarchy item and the chosen folder. Slicer's
    ``DICOMSegmentationPlugin`` is part of the Slicer application (not of slicer-core): without it the panel says in
    one line what is needed; with a recording stand-in the hand-over is checked (the DICOM files themselves are
    written by Slicer's plugin, which cannot run here)."""
    from fakes.qt_shim import QFileDialog

    gui, widget, parent, _, gate, python = panel
    image = phantom()
    scan = add_volume(gui, image, "dicom scan")
    scan.SetAttribute("DICOM.instanceUIDs", "1.2.826.0.1.3680043.2.1125.1 1.2.826.0.1.3680043.2.1125.2")
    hierarchy = gui.scene.GetSubjectHierarchyNode()
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient")
    study = hierarchy.CreateStudyItem(patient, "study")
    hierarchy.CreateItem(study, scan)  # as Slicer's DICOM loader places a series (slicer-core makes no items itself)
    widget.setup()
    ui = widget.ui
    parent.isEntered = True
    widget.enter()
    assert widget._parameterNode.inputVolume is scan
    assert not ui.exportDicomSegButton.enabled and ui.exportDicomSegButton.toolTip == "Run a detection first"
    ui.modelComboBox.setCurrentIndex(ui.modelComboBox.findData("fake-t1"))
    widget.logic.pythonExecutable = str(python)
    gate.write_text("go")
    ui.runButton.click()
    wait_until(lambda: ui.runButton.text == "Detect anomalies" and widget._parameterNode.segmentation is not None)
    params = widget._parameterNode
    segmentation_item = hierarchy.GetItemByDataNode(params.segmentation)
    assert hierarchy.GetItemParent(segmentation_item) == study, "the segmentation joins the input's study"
    assert params.segmentation.GetSegmentation().GetNumberOfSegments() == 1
    segment = params.segmentation.GetSegmentation().GetNthSegment(0)
    assert segment.GetName() == "Anomaly"
    import vtk

    from ContrastiveAnomalyLib import appearance

    for tag, value in appearance.segment_tags().items():
        found = vtk.reference("")
        assert segment.GetTag(tag, found), tag
        assert str(found) == value, tag  # what the DICOM SEG exporter writes as algorithm type and name
    assert ui.exportDicomSegButton.enabled
    assert "AUTOMATIC" in ui.exportDicomSegButton.toolTip

    folder = tmp_path / "dicom-seg"
    folder.mkdir()
    monkeypatch.delitem(sys.modules, "DICOMSegmentationPlugin", raising=False)
    status_before = ui.statusLabel.text
    QFileDialog.answers[:] = [str(folder)]
    with caplog.at_level("ERROR"):
        ui.exportDicomSegButton.click()
    assert any("DICOM SEG export needs Slicer 5.12, or the QuantitativeReporting extension" in r.getMessage()
               for r in caplog.records)
    assert ui.statusLabel.text == status_before and not any(folder.iterdir())

    handed_over = {}

    class Exporter:  # records what the panel hands to Slicer's exporter
        def examineForExport(self, item):  # noqa: N802 (Slicer's names)
            handed_over["item"] = item
            return [type("Exportable", (), {"directory": None})()]

        def export(self, exportables):
            handed_over["directories"] = [e.directory for e in exportables]
            return ""

    plugin = type(sys)("DICOMSegmentationPlugin")
    plugin.DICOMSegmentationPluginClass = Exporter
    monkeypatch.setitem(sys.modules, "DICOMSegmentationPlugin", plugin)
    QFileDialog.answers[:] = [str(folder)]
    ui.exportDicomSegButton.click()
    assert handed_over == {"item": segmentation_item, "directories": [str(folder)]}
    assert ui.statusLabel.text == f"Saved {folder}"


def _ijk_to_ras(node):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return matrix

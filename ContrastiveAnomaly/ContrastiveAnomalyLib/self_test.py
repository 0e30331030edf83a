"""The module's self-test: the whole flow inside a real Slicer with the shipped default model.

Input: the engine's synthetic head (skull, scalp, brain; an oblique 2.5 mm grid) loaded as a scalar volume under a
parent transform, so brain extraction, registration, the model and the mapping back all run. Nothing is downloaded.
On a machine without torch (Slicer's extension build machines) the test is skipped with a message.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import slicer
import slicer.util
import vtk

from contrastive_anomaly.storage import registry as model_registry

from . import appearance, install, slicer_bridge

SELF_TEST_SEED = 5


class SelfTestCases:
    """Mixed into ``ContrastiveAnomalyTest`` (a ``ScriptedLoadableModuleTest``: ``unittest`` asserts and
    ``delayDisplay``). The host class provides ``makeLogic()``."""

    TIMEOUT_S = 1800

    def runAllCases(self):
        if install.installed_version("torch") is None:
            self.delayDisplay("ContrastiveAnomalyTest skipped: PyTorch is not installed here (install the PyTorch "
                              "extension to run the end-to-end test)")
            return
        self.setUp()
        checked = self.test_detect_threshold_export()
        self.setUp()
        self.test_cancel()
        summary = "ContrastiveAnomalyTest passed: " + checked + "; cancel leaves no process, node or folder."
        print(summary)
        self.delayDisplay(summary)

    def _headVolume(self):
        """The engine's head phantom as a volume node, under a translation transform."""
        import SimpleITK as sitk

        from contrastive_anomaly.data.phantoms import head_phantom

        phantom = head_phantom(seed=SELF_TEST_SEED)
        folder = Path(tempfile.mkdtemp(prefix="ContrastiveAnomalyTest-"))
        try:
            sitk.WriteImage(phantom.image, str(folder / "head.nrrd"))
            volume = slicer.util.loadVolume(str(folder / "head.nrrd"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
        matrix = vtk.vtkMatrix4x4()
        matrix.SetElement(0, 3, 20.0)
        transform.SetMatrixTransformToParent(matrix)
        volume.SetAndObserveTransformNodeID(transform.GetID())
        return volume

    def _model(self):
        default = model_registry.find_model(model_registry.DEFAULT_MODEL)
        self.assertIsNotNone(default, "the shipped default model is not registered")
        self.assertTrue(default.installed, f"the shipped default model is missing from {default.folder}")
        return default

    def _waitFor(self, run):
        deadline = time.monotonic() + self.TIMEOUT_S
        while run.tracker.returncode is None and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertIsNotNone(run.tracker.returncode, "detect did not finish in time")

    def _detect(self, logic, params, volume, model):
        params.inputVolume = volume
        params.modelName = model.name
        params.device = "auto"
        params.fastMode = True
        run = logic.startDetection(params, model)
        self._waitFor(run)
        self.assertEqual(run.tracker.outcome, "succeeded", run.tracker.error_message())
        summary = json.loads(Path(run.tracker.result.outputs["summary"]).read_text(encoding="utf-8"))
        logic.loadResults(params, run)
        logic.discardRunFolder(run)
        self.assertFalse(run.workDir.exists())
        return summary

    def test_detect_threshold_export(self) -> str:
        self.delayDisplay("Detect on the head phantom with the shipped default model")
        logic = self.makeLogic()
        params = logic.getParameterNode()
        volume = self._headVolume()
        model = self._model()
        summary = self._detect(logic, params, volume, model)

        np.testing.assert_allclose(slicer_bridge.ijk_to_ras(params.anomalyMap), slicer_bridge.ijk_to_ras(volume))
        for node in (params.anomalyMap, params.reconstruction, params.segmentation):
            self.assertEqual(node.GetTransformNodeID(), volume.GetTransformNodeID())
        self.assertIs(params.analysedVolume, volume)
        segment = params.segmentation.GetSegmentation().GetSegment(appearance.SEGMENT_ID)
        self.assertEqual(segment.GetName(), appearance.SEGMENT_NAME)
        np.testing.assert_allclose(segment.GetColor(), appearance.SEGMENT_COLOR_RGB, atol=1e-6)
        self.assertEqual(segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName()), appearance.terminology_tag())
        scores = slicer.util.arrayFromVolume(params.anomalyMap)
        self.assertTrue(np.isfinite(scores).all() and float(scores.min()) >= 0.0)

        self.delayDisplay("The panel's readout equals summary.json at the engine's threshold")
        rows, readout = logic.computeFindings(params)
        self.assertEqual(readout.region_count, summary["region_count"])
        self.assertAlmostEqual(readout.total_volume_ml, summary["total_volume_ml"], places=3)
        segmentVoxels = slicer_bridge.segment_mask(slicer.mrmlScene, slicer.modules.segmentations.logic(),
                                                   params.segmentation, volume).sum()
        voxelMl = abs(np.linalg.det(slicer_bridge.ijk_to_ras(volume)[:3, :3])) / 1000.0
        self.assertAlmostEqual(segmentVoxels * voxelMl, readout.total_volume_ml, places=3)

        self.delayDisplay("Raising the threshold never adds voxels")
        counts = []
        for threshold in np.linspace(0.0, float(scores.max()), 5):
            params.threshold = float(threshold)
            logic.updateSegment(params)
            counts.append(int(slicer_bridge.segment_mask(slicer.mrmlScene, slicer.modules.segmentations.logic(),
                                                         params.segmentation, volume).sum()))
        self.assertEqual(counts, sorted(counts, reverse=True))

        self.delayDisplay("A rerun on the same volume reuses its three result nodes")
        nodes = (params.anomalyMap.GetID(), params.reconstruction.GetID(), params.segmentation.GetID())
        params.threshold = params.calibratedThreshold
        logic.updateSegment(params)
        self._detect(logic, params, volume, model)
        self.assertEqual((params.anomalyMap.GetID(), params.reconstruction.GetID(), params.segmentation.GetID()),
                         nodes)

        self.delayDisplay("Export .seg.nrrd and labelmap, read back")
        folder = Path(tempfile.mkdtemp(prefix="ContrastiveAnomalyTest-"))
        try:
            segPath = logic.exportSegNrrd(params, folder / "anomalies.seg.nrrd")
            loaded = slicer.util.loadSegmentation(str(segPath))
            loadedSegment = loaded.GetSegmentation().GetSegment(loaded.GetSegmentation().GetNthSegmentID(0))
            self.assertEqual(loadedSegment.GetName(), appearance.SEGMENT_NAME)
            self.assertEqual(loadedSegment.GetTag("DICOM.SegmentAlgorithmType"), "AUTOMATIC")
            self.assertTrue(logic.exportLabelmap(params, folder / "anomalies.nii.gz").is_file())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        possible, _ = logic.dicomExportState(params)
        self.assertFalse(possible, "a volume loaded from a file must not offer DICOM SEG export")

        self.delayDisplay("Widget: select the module, move the slider, compare, reset")
        slicer.util.selectModule("ContrastiveAnomaly")
        widget = slicer.modules.ContrastiveAnomalyWidget
        widget.setParameterNode(params)
        widget.ui.thresholdSlider.value = params.calibratedThreshold * 2
        self.assertAlmostEqual(params.threshold, params.calibratedThreshold * 2, places=5)
        self.assertAlmostEqual(params.anomalyMap.GetDisplayNode().GetLowerThreshold(), params.threshold, places=5)
        layoutBefore = slicer.app.layoutManager().layout
        widget.ui.sideBySideButton.checked = True
        for name in ("Red", "Yellow"):
            self.assertEqual(slicer.app.layoutManager().sliceWidget(name).mrmlSliceNode().GetOrientationString(),
                             "Axial")
        widget.ui.sideBySideButton.checked = False
        self.assertEqual(slicer.app.layoutManager().layout, layoutBefore)
        widget.ui.resetThresholdButton.click()
        self.assertAlmostEqual(params.threshold, params.calibratedThreshold, places=5)
        return (f"the shipped model '{model.name}' ran on a transformed head phantom; results on the input's grid "
                f"and transform; {readout.region_count} region(s) / {readout.total_volume_ml:.2f} mL equal "
                "summary.json and the segment; monotone threshold; rerun reuses nodes; .seg.nrrd and labelmap "
                "export; axial linked compare and layout restore")

    def test_cancel(self):
        self.delayDisplay("Start, then cancel: no process, no half result")
        logic = self.makeLogic()
        params = logic.getParameterNode()
        volume = self._headVolume()
        model = self._model()
        params.inputVolume = volume
        params.device = "cpu"
        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        run = logic.startDetection(params, model)
        slicer.app.processEvents()
        logic.cancelDetection(run)
        self._waitFor(run)
        self.assertEqual(run.tracker.outcome, "cancelled")
        logic.discardRunFolder(run)
        self.assertFalse(run.workDir.exists())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)
        self.assertIsNone(params.segmentation)

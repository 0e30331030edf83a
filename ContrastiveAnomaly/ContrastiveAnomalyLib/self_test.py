"""The module's self-test cases; they need a real Slicer (run through ``ContrastiveAnomalyTest``).

They need an installed model (the tiny test model of ``models/registry.json`` or an imported one) and the engine's
Python packages. The input is the engine's synthetic brain with a planted sphere: no network, no sample data.
"""

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import slicer
import slicer.util

from contrastive_anomaly.storage import registry as model_registry

from . import appearance, slicer_bridge

SELF_TEST_SEED = 5
SELF_TEST_LESION_RADIUS_VOX = 4.0


class SelfTestCases:
    """Test cases mixed into ``ContrastiveAnomalyTest`` (a ``ScriptedLoadableModuleTest``, so ``unittest`` asserts and
    ``delayDisplay`` are available). The host class provides ``makeLogic()``.
    """

    TIMEOUT_S = 600

    def _phantomVolume(self):
        """The engine's synthetic brain on its model grid (2 mm, RAS = -LPS axes) with a bright sphere planted."""
        from contrastive_anomaly.config import GridConfig
        from contrastive_anomaly.data.phantom_subjects import make_phantom, plant_sphere_lesion

        grid = GridConfig()
        subject = make_phantom(grid.shape, seed=SELF_TEST_SEED)
        image, lesion = plant_sphere_lesion(subject.image, subject.brain_mask, SELF_TEST_LESION_RADIUS_VOX, 1.0,
                                            seed=SELF_TEST_SEED)
        spacing = grid.spacing_mm
        ijkToRas = np.diag([-spacing, -spacing, spacing, 1.0])
        volume = slicer.util.addVolumeFromArray(image, ijkToRas, name="phantom")
        return volume, lesion

    def _model(self):
        models = [m for m in model_registry.list_models() if m.installed]
        tiny = [m for m in models if "tiny" in m.name] or models
        self.assertTrue(tiny, "no installed model: add the tiny test model to models/registry.json")
        return tiny[0]

    def _waitFor(self, run):
        deadline = time.monotonic() + self.TIMEOUT_S
        while run.tracker.returncode is None and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertIsNotNone(run.tracker.returncode, "detect did not finish in time")

    def test_detect_threshold_export(self):
        self.delayDisplay("Detect on a phantom with the tiny model")
        logic = self.makeLogic()
        params = logic.getParameterNode()
        volume, lesion = self._phantomVolume()
        model = self._model()
        params.inputVolume = volume
        params.modelName = model.name
        params.device = "cpu"
        params.fastMode = True
        run = logic.startDetection(params, model)
        self._waitFor(run)
        self.assertEqual(run.tracker.outcome, "succeeded", run.tracker.error_message())
        logic.loadResults(params, run)
        logic.discardRunFolder(run)
        self.assertFalse(run.workDir.exists())

        np.testing.assert_allclose(slicer_bridge.ijk_to_ras(params.anomalyMap), slicer_bridge.ijk_to_ras(volume))
        segment = params.segmentation.GetSegmentation().GetSegment(appearance.SEGMENT_ID)
        self.assertEqual(segment.GetName(), appearance.SEGMENT_NAME)
        np.testing.assert_allclose(segment.GetColor(), appearance.SEGMENT_COLOR_RGB, atol=1e-6)
        self.assertEqual(params.segmentation.GetNodeReference(
            params.segmentation.GetReferenceImageGeometryReferenceRole()), volume)
        # The tiny test model is barely trained, so finding the planted lesion is not asserted (with a real model,
        # check a Dice floor against `lesion` here); the map must be finite, non-negative and not all zero.
        scores = slicer.util.arrayFromVolume(params.anomalyMap)
        self.assertTrue(np.isfinite(scores).all() and float(scores.min()) >= 0.0)
        self.assertGreater(float(scores.max()), 0.0)
        self.assertTrue(lesion.any())

        self.delayDisplay("Raising the threshold never adds voxels")
        counts = []
        top = float(slicer.util.arrayFromVolume(params.anomalyMap).max())
        for threshold in np.linspace(0.0, top, 5):
            params.threshold = float(threshold)
            logic.updateSegment(params)
            counts.append(int(slicer_bridge.segment_mask(slicer.mrmlScene, slicer.modules.segmentations.logic(),
                                                         params.segmentation, volume).sum()))
        self.assertEqual(counts, sorted(counts, reverse=True))

        self.delayDisplay("Export .seg.nrrd and labelmap, read back")
        params.threshold = params.calibratedThreshold
        logic.updateSegment(params)
        folder = Path(tempfile.mkdtemp(prefix="ContrastiveAnomalyTest-"))
        try:
            segPath = logic.exportSegNrrd(params, folder / "anomalies.seg.nrrd")
            loaded = slicer.util.loadSegmentation(str(segPath))
            loadedSegment = loaded.GetSegmentation().GetSegment(loaded.GetSegmentation().GetNthSegmentID(0))
            self.assertEqual(loadedSegment.GetName(), appearance.SEGMENT_NAME)
            np.testing.assert_allclose(loadedSegment.GetColor(), appearance.SEGMENT_COLOR_RGB, atol=1e-4)
            labelPath = logic.exportLabelmap(params, folder / "anomalies.nii.gz")
            self.assertTrue(labelPath.is_file())
        finally:
            shutil.rmtree(folder, ignore_errors=True)

        self.delayDisplay("Widget: select the module, move the slider")
        slicer.util.selectModule("ContrastiveAnomaly")
        widget = slicer.modules.ContrastiveAnomalyWidget
        widget.setParameterNode(params)
        widget.ui.thresholdSlider.value = params.calibratedThreshold * 2
        self.assertAlmostEqual(params.threshold, params.calibratedThreshold * 2, places=5)
        self.assertAlmostEqual(params.anomalyMap.GetDisplayNode().GetLowerThreshold(), params.threshold, places=5)
        widget.ui.resetThresholdButton.click()
        self.assertAlmostEqual(params.threshold, params.calibratedThreshold, places=5)
        self.delayDisplay("Test passed")

    def test_cancel(self):
        self.delayDisplay("Start, then cancel: no process, no half result")
        logic = self.makeLogic()
        params = logic.getParameterNode()
        volume, _ = self._phantomVolume()
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
        self.delayDisplay("Test passed")

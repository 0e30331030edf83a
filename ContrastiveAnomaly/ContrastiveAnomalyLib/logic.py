"""The module's logic: write inputs, run the engine in the background, load and post-process its results, export.

``params`` is the module's parameter node (or any object with the same attributes); MRML work goes through
``slicer_bridge`` with the injected scene and segmentations logic.
"""

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import slicer
import slicer.util

from contrastive_anomaly.storage import registry as model_registry

from . import appearance, findings, process, slicer_bridge
from .launchers import defaultLauncher
from .paths import ENGINE_PARENT_DIR


class DetectionRun:
    """One child-process run: its work folder, output tracker and process handle."""

    def __init__(self, workDir: Path, inputVolume, modelFolder: Path):
        self.workDir = workDir
        self.outDir = workDir / "out"
        self.inputVolume = inputVolume
        self.modelFolder = modelFolder
        self.tracker = process.RunTracker()
        self.handle = None


class DetectionLogic:
    """All computation of the module; never touches widgets.

    Collaborators are constructor arguments (SlicerNNUnet style) so tests can run it on a slicer-core scene with a
    fake engine: ``launcher`` (see ``launchers.py``), ``scene``, ``segmentationsLogic`` and the Python executable
    that runs the engine. ``None`` means "the running Slicer's own".
    """

    def __init__(self, launcher=None, scene=None, segmentationsLogic=None, pythonExecutable: str | None = None):
        self.launcher = launcher
        self.scene = scene
        self.segmentationsLogic = segmentationsLogic
        self.pythonExecutable = pythonExecutable

    # collaborators resolved lazily so that the module loads without them
    def _scene(self):
        return self.scene or slicer.mrmlScene

    def _segmentationsLogic(self):
        return self.segmentationsLogic or slicer.modules.segmentations.logic()

    def _launcher(self):
        if self.launcher is None:
            self.launcher = defaultLauncher()
        return self.launcher

    def _python(self) -> str:
        return self.pythonExecutable or shutil.which("PythonSlicer") or sys.executable

    def gpuAvailable(self) -> bool:
        """A cheap guess that never imports torch into Slicer: an NVIDIA driver tool on PATH means that the engine's
        "auto" device will most likely find a CUDA GPU. Only used for the first-run time notice."""
        return shutil.which("nvidia-smi") is not None

    # --- detection ----------------------------------------------------------------------------------------------

    def startDetection(self, params, model, onEvent=None, onFinished=None) -> DetectionRun:
        """Write the inputs to a temporary folder and start ``detect`` in the background; return the run."""
        if params.inputVolume is None:
            raise ValueError("select an input volume")
        if model is None or not model.installed:
            raise ValueError("select an installed model (or import one)")
        scene = self._scene()
        workDir = Path(tempfile.mkdtemp(prefix="ContrastiveAnomaly-", dir=slicer.app.temporaryPath))
        run = DetectionRun(workDir, params.inputVolume, model.folder)
        try:
            inputPath = slicer_bridge.write_volume(scene, params.inputVolume, workDir / "input.nrrd")
            maskPath = None
            if params.brainMask is not None:
                maskPath = slicer_bridge.write_mask_in_input_geometry(
                    scene, self._segmentationsLogic(), params.brainMask, params.inputVolume, workDir / "mask.nrrd")
            args = process.detect_command(self._python(), str(inputPath), str(run.outDir), str(model.folder),
                                          contrast=params.contrast, device=params.device,
                                          brain_mask=str(maskPath) if maskPath else None, fast=params.fastMode)
        except Exception:
            shutil.rmtree(workDir, ignore_errors=True)
            raise
        env = process.child_environment({"PYTHONPATH": os.environ.get("PYTHONPATH", "")}, str(ENGINE_PARENT_DIR))

        def onLine(line):
            event = run.tracker.feed_line(line)
            if onEvent is not None:
                onEvent(event)

        def onDone(returncode):
            run.tracker.finish(returncode)
            if onFinished is not None:
                onFinished(run)

        logging.info("ContrastiveAnomaly: " + " ".join(args))
        # cwd = the engine's parent folder: "python -m" puts it first on sys.path even if a launcher rewrites
        # PYTHONPATH; all paths passed to the engine are absolute.
        run.handle = self._launcher().start(args, env, str(ENGINE_PARENT_DIR), onLine, onDone)
        return run

    def cancelDetection(self, run: DetectionRun) -> None:
        """Kill the child's process tree; the run then finishes as "cancelled" and its folder is discarded."""
        if run is None:
            return
        run.tracker.cancelled = True
        if run.handle is not None:
            run.handle.cancel()

    def discardRunFolder(self, run: DetectionRun) -> None:
        shutil.rmtree(run.workDir, ignore_errors=True)

    def loadResults(self, params, run: DetectionRun) -> None:
        """Bring a successful run's map and reconstruction into the scene and build the "Anomaly" segment."""
        scene = self._scene()
        result = run.tracker.result
        inputVolume = run.inputVolume
        baseName = inputVolume.GetName()
        created = []
        try:
            anomalyMap = slicer_bridge.load_result_volume(
                scene, result.outputs["anomaly_map"], appearance.ANOMALY_MAP_NAME.format(input=baseName), inputVolume)
            created.append(anomalyMap)
            reconstruction = slicer_bridge.load_result_volume(
                scene, result.outputs["reconstruction"], appearance.RECONSTRUCTION_NAME.format(input=baseName),
                inputVolume)
            created.append(reconstruction)
            segmentation = slicer_bridge.create_anomaly_segmentation(
                scene, inputVolume, appearance.SEGMENTATION_NAME.format(input=baseName))
            created.append(segmentation)
        except Exception:
            for node in created:
                scene.RemoveNode(node)
            raise
        for node in created:
            slicer_bridge.place_in_study(scene, node, inputVolume)
        threshold = result.threshold
        if threshold is None:
            section = model_registry.read_config_json(run.modelFolder).get("postprocess") or {}
            threshold = section.get("threshold") or section.get("default_threshold") or params.threshold
        params.anomalyMap = anomalyMap
        params.reconstruction = reconstruction
        params.segmentation = segmentation
        params.calibratedThreshold = float(threshold)
        params.threshold = float(threshold)
        slicer_bridge.style_anomaly_map(scene, anomalyMap, params.threshold)
        self.updateSegment(params)

    # --- threshold and findings ---------------------------------------------------------------------------------

    def _postprocessSettings(self, params) -> tuple[int, int]:
        """(largest removed component in voxels of the input grid, connectivity), from the model's config.json
        (the engine's defaults where it says nothing). The engine's limit is in model-grid voxels; it is converted to
        the same physical volume on the input grid."""
        from contrastive_anomaly.config import GridConfig, PostprocessConfig

        defaults = PostprocessConfig()
        entry = model_registry.find_model(params.modelName) if params.modelName else None
        config = model_registry.read_config_json(entry.folder) if entry and entry.installed else {}
        section = config.get("postprocess", {})
        spacing = config.get("grid", {}).get("spacing_mm", GridConfig().spacing_mm)
        maxRemoved = int(section.get("max_removed_component_voxels", defaults.max_removed_component_voxels))
        nativeVoxelMl = findings.voxel_volume_ml(slicer_bridge.ijk_to_ras(params.anomalyMap))
        return (findings.native_component_limit(maxRemoved, spacing, nativeVoxelMl),
                int(section.get("connectivity", defaults.connectivity)))

    def currentMask(self, params) -> np.ndarray:
        maxRemoved, connectivity = self._postprocessSettings(params)
        return findings.anomaly_mask(slicer.util.arrayFromVolume(params.anomalyMap), params.threshold, maxRemoved,
                                     connectivity)

    def updateSegment(self, params) -> None:
        """Make the "Anomaly" segment equal to the thresholded map (after the small-component filter)."""
        slicer_bridge.set_overlay_threshold(params.anomalyMap, params.threshold)
        slicer_bridge.set_segment_mask(self._scene(), self._segmentationsLogic(), params.segmentation,
                                       self.currentMask(params), params.inputVolume)

    def computeFindings(self, params):
        maxRemoved, connectivity = self._postprocessSettings(params)
        scores = slicer.util.arrayFromVolume(params.anomalyMap)
        mask = findings.anomaly_mask(scores, params.threshold, maxRemoved, connectivity)
        rows = findings.find_findings(scores, mask, slicer_bridge.ijk_to_ras(params.anomalyMap), connectivity)
        return rows, findings.summarize(rows)

    # --- export --------------------------------------------------------------------------------------------------

    def exportSegNrrd(self, params, path) -> Path:
        return slicer_bridge.save_segmentation(self._scene(), params.segmentation, path)

    def exportLabelmap(self, params, path) -> Path:
        return slicer_bridge.save_labelmap(self._scene(), self._segmentationsLogic(), params.segmentation,
                                           params.inputVolume, path)

    def exportDicomSeg(self, params, folder) -> None:
        """DICOM SEG through Slicer's DICOMSegmentationPlugin (core in 5.12, QuantitativeReporting before)."""
        scene = self._scene()
        hierarchy = scene.GetSubjectHierarchyNode()
        inputItem = hierarchy.GetItemByDataNode(params.inputVolume)
        if not hierarchy.GetItemUID(inputItem, "DICOM"):
            raise ValueError("DICOM SEG needs an input volume loaded from DICOM; save a .seg.nrrd instead")
        try:
            import DICOMSegmentationPlugin
        except ImportError:
            raise ValueError("DICOM SEG export needs Slicer 5.12 or the QuantitativeReporting extension; "
                             "save a .seg.nrrd instead") from None
        exporter = DICOMSegmentationPlugin.DICOMSegmentationPluginClass()
        exportables = exporter.examineForExport(hierarchy.GetItemByDataNode(params.segmentation))
        if not exportables:
            raise ValueError("the segmentation cannot be exported as DICOM SEG (is it in the input's study?)")
        for exportable in exportables:
            exportable.directory = str(folder)
        error = exporter.export(exportables)
        if error:
            raise ValueError(f"DICOM SEG export failed: {error}")

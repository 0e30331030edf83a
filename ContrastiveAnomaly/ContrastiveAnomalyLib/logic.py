"""The module's logic: write inputs, run the engine in the background, load and re-threshold its results, export.

``params`` is the module's parameter node (or any object with the same attributes); MRML work goes through
``slicer_bridge`` with the injected scene and segmentations logic.

Results belong to the volume that was analysed, not to whatever volume is selected later: the map, reconstruction
and segmentation carry the analysed volume's node ID and the run's settings as node attributes, sit under the same
parent transform, and ``params.analysedVolume`` names it. A rerun on the same volume reuses its three output nodes.
"""

import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import slicer
import slicer.util

from . import appearance, findings, process, slicer_bridge
from .launchers import defaultLauncher
from .paths import ENGINE_PARENT_DIR

ROLE_MAP, ROLE_RECONSTRUCTION, ROLE_SEGMENTATION = "map", "reconstruction", "segmentation"


class DetectionRun:
    """One child-process run: its work folder, output tracker, process handle and the settings it ran with."""

    def __init__(self, workDir: Path, inputVolume, modelName: str, settings: dict):
        self.workDir = workDir
        self.outDir = workDir / "out"
        self.inputVolume = inputVolume
        self.modelName = modelName
        self.settings = settings
        self.tracker = process.RunTracker()
        self.handle = None


class DetectionLogic:
    """All computation of the module; never touches widgets.

    Collaborators are constructor arguments (SlicerNNUnet style) so tests can run it on a slicer-core scene with a
    fake engine: ``launcher`` (see ``launchers.py``), ``scene``, ``segmentationsLogic`` and the Python executable
    that runs the engine. ``None`` means "the running Slicer's own". ``confirm(text) -> bool`` asks the user (before
    overwriting manual edits); the default answers yes.
    """

    def __init__(self, launcher=None, scene=None, segmentationsLogic=None, pythonExecutable=None, confirm=None):
        self.launcher = launcher
        self.scene = scene
        self.segmentationsLogic = segmentationsLogic
        self.pythonExecutable = pythonExecutable
        self.confirm = confirm or (lambda text: True)
        self._indexes = {}  # map node ID -> findings.ResultIndex (in memory; a reloaded scene needs a rerun)

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
        settings = {"model": model.name, "contrast": params.contrast, "device": params.device,
                    "fast": bool(params.fastMode)}
        run = DetectionRun(workDir, params.inputVolume, model.name, settings)
        try:
            # the voxels and their IJK-to-RAS matrix, without the parent transform: results come back in the same
            # local frame and are placed under the same transform (see loadResults)
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

    # --- results ------------------------------------------------------------------------------------------------

    def resultNodes(self, inputVolume) -> dict:
        """``{role: node}`` of the existing results of ``inputVolume`` (empty when it was never analysed)."""
        scene = self._scene()
        found = {}
        for className in ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode"):
            for index in range(scene.GetNumberOfNodesByClass(className)):
                node = scene.GetNthNodeByClass(index, className)
                role = node.GetAttribute(appearance.ROLE_ATTRIBUTE)
                if role and node.GetAttribute(appearance.INPUT_ATTRIBUTE) == inputVolume.GetID():
                    found.setdefault(role, node)
        return found

    def loadResults(self, params, run: DetectionRun) -> None:
        """Bring a successful run's map and reconstruction into the scene and build the "Anomaly" segment.

        Reuses this input's nodes from an earlier run; asks (``confirm``) before replacing a segment the user edited,
        and keeps the edited one (a new segmentation is made) when the answer is no.
        """
        scene = self._scene()
        result = run.tracker.result
        inputVolume = run.inputVolume
        baseName = inputVolume.GetName()
        index = findings.ResultIndex.load(result.outputs["threshold_index"], result.outputs["model_index"])
        existing = self.resultNodes(inputVolume)
        created = []
        try:
            anomalyMap = self._loadVolume(result.outputs["anomaly_map"],
                                          appearance.ANOMALY_MAP_NAME.format(input=baseName), inputVolume,
                                          existing.get(ROLE_MAP), created)
            reconstruction = self._loadVolume(result.outputs["reconstruction"],
                                              appearance.RECONSTRUCTION_NAME.format(input=baseName), inputVolume,
                                              existing.get(ROLE_RECONSTRUCTION), created)
            segmentation = existing.get(ROLE_SEGMENTATION)
            if segmentation is not None and self.segmentEdited(segmentation, inputVolume) and not self.confirm(
                    f"The segment in '{segmentation.GetName()}' was edited by hand. Replace it with the new "
                    "result? (No keeps your edits and adds a new segmentation.)"):
                segmentation.SetAttribute(appearance.ROLE_ATTRIBUTE, "")  # it stays, but is no longer ours
                segmentation = None
            if segmentation is None:
                segmentation = slicer_bridge.create_anomaly_segmentation(
                    scene, inputVolume, appearance.SEGMENTATION_NAME.format(input=baseName))
                created.append(segmentation)
        except Exception:
            for node in created:
                scene.RemoveNode(node)
            raise
        runInfo = {**run.settings, "threshold": result.threshold, "postprocess": result.postprocess,
                   "seed": result.seed, "precision": result.precision, "warnings": result.warnings}
        for role, node in ((ROLE_MAP, anomalyMap), (ROLE_RECONSTRUCTION, reconstruction),
                           (ROLE_SEGMENTATION, segmentation)):
            node.SetAttribute(appearance.ROLE_ATTRIBUTE, role)
            node.SetAttribute(appearance.INPUT_ATTRIBUTE, inputVolume.GetID())
            slicer_bridge.place_in_study(scene, node, inputVolume)
            slicer_bridge.place_under_same_transform(node, inputVolume)
        anomalyMap.SetAttribute(appearance.RUN_ATTRIBUTE, json.dumps(runInfo))
        self._indexes[anomalyMap.GetID()] = index
        threshold = float(result.threshold)
        params.analysedVolume = inputVolume
        params.anomalyMap = anomalyMap
        params.reconstruction = reconstruction
        params.segmentation = segmentation
        params.calibratedThreshold = threshold
        params.threshold = threshold
        slicer_bridge.style_anomaly_map(scene, anomalyMap, threshold)
        slicer_bridge.set_segment_style(segmentation, filled=bool(getattr(params, "segmentFilled", False)))
        self.updateSegment(params, force=True)

    def _loadVolume(self, path, name, inputVolume, reuse, created):
        node = slicer_bridge.load_result_volume(self._scene(), path, name, inputVolume)
        if reuse is None:
            created.append(node)
            return node
        reuse.SetAndObserveImageData(node.GetImageData())
        reuse.CopyOrientation(node)
        for index in range(node.GetNumberOfDisplayNodes()):
            self._scene().RemoveNode(node.GetNthDisplayNode(index))
        self._scene().RemoveNode(node)
        return reuse

    def runInfo(self, params) -> dict:
        """The settings the shown result was made with (empty when there is none)."""
        node = params.anomalyMap
        text = node.GetAttribute(appearance.RUN_ATTRIBUTE) if node is not None else None
        return json.loads(text) if text else {}

    # --- threshold and findings ---------------------------------------------------------------------------------

    def resultIndex(self, params):
        """The re-thresholding state of the shown result, or ``None`` (e.g. a scene saved and reloaded)."""
        return self._indexes.get(params.anomalyMap.GetID()) if params.anomalyMap is not None else None

    def segmentEdited(self, segmentation, referenceVolume) -> bool:
        """True when the segment no longer holds the mask the panel last wrote into it."""
        written = segmentation.GetAttribute(appearance.MASK_DIGEST_ATTRIBUTE)
        if not written:
            return False
        current = slicer_bridge.segment_mask(self._scene(), self._segmentationsLogic(), segmentation, referenceVolume)
        return slicer_bridge.mask_digest(current) != written

    def updateSegment(self, params, force: bool = False) -> bool:
        """Make the "Anomaly" segment the mask at ``params.threshold``; False when the user kept manual edits."""
        analysed = params.analysedVolume or params.inputVolume
        slicer_bridge.set_overlay_threshold(params.anomalyMap, params.threshold)
        index = self.resultIndex(params)
        if index is None:
            return False
        if not force and self.segmentEdited(params.segmentation, analysed) and not self.confirm(
                "The anomaly segment was edited by hand; moving the threshold replaces it. Replace it?"):
            return False
        # the engine's voxel order may differ from Slicer's for the same file (see in_volume_voxel_order)
        mask = slicer_bridge.in_volume_voxel_order(index.native_mask(params.threshold), index.native_ijk_to_ras,
                                                   analysed)
        slicer_bridge.set_segment_mask(self._scene(), self._segmentationsLogic(), params.segmentation, mask, analysed)
        params.segmentation.SetAttribute(appearance.MASK_DIGEST_ATTRIBUTE, slicer_bridge.mask_digest(mask))
        return True

    def computeFindings(self, params):
        """``(findings, summary)`` at ``params.threshold`` (empty when the result cannot be re-thresholded)."""
        index = self.resultIndex(params)
        if index is None:
            return [], None
        readout = index.readout(params.threshold)
        return readout.findings, readout.summary

    # --- export --------------------------------------------------------------------------------------------------

    def exportSegNrrd(self, params, path) -> Path:
        return slicer_bridge.save_segmentation(self._scene(), params.segmentation, path)

    def exportLabelmap(self, params, path) -> Path:
        return slicer_bridge.save_labelmap(self._scene(), self._segmentationsLogic(), params.segmentation,
                                           params.analysedVolume or params.inputVolume, path)

    def dicomExportState(self, params):
        """``(possible, reason)``: DICOM SEG needs the analysed volume to come from the DICOM database."""
        volume = params.analysedVolume or params.inputVolume
        if params.segmentation is None or volume is None:
            return False, "Run a detection first"
        if not volume.GetAttribute("DICOM.instanceUIDs"):
            return False, ("DICOM SEG needs an input loaded from Slicer's DICOM database; this volume was loaded "
                           "from a file. Save a .seg.nrrd or a labelmap instead.")
        return True, "Export the Anomaly segment as DICOM SEG (algorithm type AUTOMATIC) next to the input series"

    def exportDicomSeg(self, params, folder) -> None:
        """DICOM SEG through Slicer's DICOMSegmentationPlugin (core in 5.12, QuantitativeReporting before)."""
        possible, reason = self.dicomExportState(params)
        if not possible:
            raise ValueError(reason)
        hierarchy = self._scene().GetSubjectHierarchyNode()
        try:
            import DICOMSegmentationPlugin
        except ImportError:
            raise ValueError("DICOM SEG export needs Slicer 5.12, or the QuantitativeReporting extension on older "
                             "versions; save a .seg.nrrd instead") from None
        exporter = DICOMSegmentationPlugin.DICOMSegmentationPluginClass()
        exportables = exporter.examineForExport(hierarchy.GetItemByDataNode(params.segmentation))
        if not exportables:
            raise ValueError("the segmentation cannot be exported as DICOM SEG (is it in the input's study?)")
        for exportable in exportables:
            exportable.directory = str(folder)
        error = exporter.export(exportables)
        if error:
            raise ValueError(f"DICOM SEG export failed: {error}")

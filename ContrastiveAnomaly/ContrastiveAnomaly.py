"""3D Slicer module "Contrastive Anomaly": unsupervised brain-MRI anomaly detection (Patrício et al. 2024).

The heavy work (torch, MONAI) runs in a child process, ``PythonSlicer -m contrastive_anomaly.cli detect``; this file
only holds the thin Slicer layer (module metadata, parameter node, widget, logic, self-test). Decisions live in
``ContrastiveAnomalyLib`` (pure Python) and MRML operations in ``ContrastiveAnomalyLib/slicer_bridge.py``.
Nothing here imports torch or MONAI, so Slicer can load the module before those are installed.
"""

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Union

import numpy as np
import qt
import slicer
import vtk
from ContrastiveAnomalyLib import appearance, findings, install, model_registry, process, slicer_bridge, widget_state
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

MODULE_DIR = Path(__file__).resolve().parent
ENGINE_PARENT_DIR = MODULE_DIR  # the engine package contrastive_anomaly/ sits next to this file
REQUIREMENTS_FILE = MODULE_DIR / "Resources" / "requirements.txt"
SETTINGS_PREFIX = "ContrastiveAnomaly/"
SEGMENT_UPDATE_DEBOUNCE_MS = 300
POLL_INTERVAL_MS = 100
CONTRASTS = ["T1", "T2", "FLAIR", "PD"]
SELF_TEST_SEED = 5
SELF_TEST_LESION_RADIUS_VOX = 4.0
DEVICES = ["auto", "cpu", "cuda"]


def registryPath() -> Path:
    """``models/registry.json``: next to the module in a built extension, at the repository root in a checkout."""
    for candidate in (MODULE_DIR / "models" / "registry.json", MODULE_DIR.parent / "models" / "registry.json"):
        if candidate.is_file():
            return candidate
    return MODULE_DIR.parent / "models" / "registry.json"


def userModelsDir() -> Path:
    return model_registry.user_models_dir(qt.QSettings().value(SETTINGS_PREFIX + "ModelsDirectory") or None)


#
# Module
#


class ContrastiveAnomaly(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Contrastive Anomaly")
        self.parent.categories = [_("Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["ContrastiveAnomaly developers"]
        self.parent.helpText = _(
            "Highlights regions of a brain MRI that look unlike healthy brains: a diffusion model reconstructs a "
            "pseudo-healthy version of the scan and the difference is the anomaly map. Research software, "
            "not a medical device. See docs/SLICER_MODULE.md in the repository.")
        self.parent.acknowledgementText = _(
            "Method: Patrício et al., unsupervised brain-MRI anomaly detection with a contrastive encoder "
            "conditioning a diffusion model (arXiv 2406.00772). Built with 3D Slicer, MONAI and PyTorch.")


#
# Parameter node
#


@parameterNodeWrapper
class ContrastiveAnomalyParameterNode:
    """Everything the panel needs, saved with the scene.

    threshold / calibratedThreshold are in anomaly-map units (intensity differences in [0, 1]).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    brainMask: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]  # noqa: UP007 (the form parameterNodeWrapper documents)
    contrast: Annotated[str, Choice(CONTRASTS)] = "T1"
    modelName: str = ""
    device: Annotated[str, Choice(DEVICES)] = "auto"
    fastMode: bool = False
    threshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.1
    calibratedThreshold: float = 0.1
    anomalyMap: vtkMRMLScalarVolumeNode
    reconstruction: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode


#
# Process launchers (injected into the logic; tests inject fakes)
#


class ConsoleProcessLauncher:
    """Slicer 5.12+: ``slicer.util.launchConsoleProcess(blocking=False)``; cancel needs psutil to find the tree."""

    def start(self, args, env, cwd, onLine, onFinished):
        proc = slicer.util.launchConsoleProcess(args, updateEnvironment=env, cwd=cwd, blocking=False,
                                                logCallback=onLine, completedCallback=onFinished)
        return _ConsoleHandle(proc)


class _ConsoleHandle:
    def __init__(self, proc):
        self.proc = proc

    def cancel(self):
        process.kill_process_tree(self.proc.pid, own_process_group=False)


class PolledProcessLauncher:
    """Slicer 5.10 (and 5.12 without psutil): our own runner, polled by a ``qt.QTimer``."""

    def start(self, args, env, cwd, onLine, onFinished):
        runner = process.ChildProcessRunner(on_line=onLine, on_finished=onFinished)
        full_env = slicer.util.startupEnvironment()
        full_env.update(env)
        runner.start(args, env=full_env, cwd=cwd)
        timer = qt.QTimer()
        timer.setInterval(POLL_INTERVAL_MS)
        timer.connect("timeout()", lambda: runner.poll() or timer.stop())
        timer.start()
        return _PolledHandle(runner, timer)


class _PolledHandle:
    def __init__(self, runner, timer):
        self.runner, self.timer = runner, timer

    def cancel(self):
        self.runner.cancel()


def defaultLauncher():
    """launchConsoleProcess(blocking=False) where it exists and the process tree can be found; else our poller."""
    import inspect

    try:
        import psutil  # noqa: F401
        hasPsutil = True
    except ImportError:
        hasPsutil = False
    if hasPsutil and "blocking" in inspect.signature(slicer.util.launchConsoleProcess).parameters:
        return ConsoleProcessLauncher()
    return PolledProcessLauncher()


def defaultInstallApi(confirm) -> install.SlicerInstallApi:
    try:
        import slicer.packaging as packaging
        pipEnsure, loadRequirements = packaging.pip_ensure, packaging.load_requirements
    except (ImportError, AttributeError):
        pipEnsure = loadRequirements = None
    try:
        import PyTorchUtils
        torchFactory = PyTorchUtils.PyTorchUtilsLogic
    except ImportError:
        torchFactory = None
    return install.SlicerInstallApi(confirm=confirm, pip_install=slicer.util.pip_install, pip_ensure=pipEnsure,
                                    load_requirements=loadRequirements, torch_logic_factory=torchFactory,
                                    testing=slicer.app.testingEnabled())


#
# Widget
#


class ContrastiveAnomalyWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None, logic=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._cancelling = False
        self._findings: list[findings.Finding] = []
        self._models: dict[str, model_registry.ModelEntry] = {}

    # --- setup ---------------------------------------------------------------------------------------------------

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ContrastiveAnomaly.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        if self.logic is None:
            self.logic = ContrastiveAnomalyLogic()

        self.segmentUpdateTimer = qt.QTimer()
        self.segmentUpdateTimer.setSingleShot(True)
        self.segmentUpdateTimer.setInterval(SEGMENT_UPDATE_DEBOUNCE_MS)
        self.segmentUpdateTimer.connect("timeout()", self.updateSegmentFromThreshold)

        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModel)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.thresholdSlider.connect("valueChanged(double)", self.onThresholdMoved)
        self.ui.resetThresholdButton.connect("clicked(bool)", self.onResetThreshold)
        self.ui.sideBySideButton.connect("clicked(bool)", self.onSideBySide)
        self.ui.findingsTable.connect("cellClicked(int,int)", self.onFindingClicked)
        self.ui.exportSegNrrdButton.connect("clicked(bool)", self.onExportSegNrrd)
        self.ui.exportLabelmapButton.connect("clicked(bool)", self.onExportLabelmap)
        self.ui.exportDicomSegButton.connect("clicked(bool)", self.onExportDicomSeg)
        self.ui.findingsTable.setColumnCount(len(widget_state.FINDINGS_HEADERS))
        self.ui.findingsTable.setHorizontalHeaderLabels(widget_state.FINDINGS_HEADERS)
        self.ui.progressBar.hide()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.refreshModels()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._run is not None:
            self.cancelRun()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)

    def onSceneStartClose(self, caller, event) -> None:
        if self._run is not None:
            self.cancelRun()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.inputVolume = firstVolume

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
            self.selectModelInCombo(self._parameterNode.modelName)
            self.refreshFindings()
            self.updateGui()

    # --- state -> GUI --------------------------------------------------------------------------------------------

    def updateGui(self, caller=None, event=None) -> None:
        params = self._parameterNode
        if params is None:
            return
        state = widget_state.run_button_state(
            has_input=params.inputVolume is not None, has_model=bool(self.currentModel()),
            running=self._run is not None, cancelling=self._cancelling)
        self.ui.runButton.text = state.text
        self.ui.runButton.toolTip = state.tooltip
        self.ui.runButton.enabled = state.enabled
        hasResults = params.anomalyMap is not None and params.segmentation is not None
        for widget in (self.ui.thresholdSlider, self.ui.resetThresholdButton, self.ui.sideBySideButton,
                       self.ui.exportSegNrrdButton, self.ui.exportLabelmapButton, self.ui.exportDicomSegButton):
            widget.enabled = hasResults and self._run is None
        idle = self._run is None
        for widget in (self.ui.inputsCollapsibleButton,):
            widget.enabled = idle

    def refreshModels(self) -> None:
        self.ui.modelComboBox.blockSignals(True)
        self.ui.modelComboBox.clear()
        try:
            entries = model_registry.list_models(registryPath(), userModelsDir())
        except model_registry.ModelImportError as exc:
            entries = []
            self.showError(str(exc))
        for entry in entries:
            self.ui.modelComboBox.addItem(entry.label, entry.name)
        self.ui.modelComboBox.blockSignals(False)
        self._models = {entry.name: entry for entry in entries}
        if self._parameterNode:
            self.selectModelInCombo(self._parameterNode.modelName)

    def selectModelInCombo(self, name: str) -> None:
        index = self.ui.modelComboBox.findData(name) if name else -1
        if index < 0 and self.ui.modelComboBox.count > 0:
            index = 0
        self.ui.modelComboBox.setCurrentIndex(index)
        self.onModelChanged(index)

    def currentModel(self):
        name = self.ui.modelComboBox.currentData
        entry = self._models.get(name) if name else None
        return entry if entry is not None and entry.available else None

    def onModelChanged(self, index: int) -> None:
        if self._parameterNode is None:
            return
        entry = self._models.get(self.ui.modelComboBox.itemData(index)) if index >= 0 else None
        self._parameterNode.modelName = entry.name if entry else ""
        if entry is not None and entry.contrast in CONTRASTS:
            self._parameterNode.contrast = entry.contrast

    # --- run / cancel --------------------------------------------------------------------------------------------

    def onRunButton(self) -> None:
        if self._run is not None:
            self.cancelRun()
            return
        params = self._parameterNode
        model = self.currentModel()
        try:
            install.ensure_dependencies(defaultInstallApi(self.confirm), REQUIREMENTS_FILE)
        except install.DependencyError as exc:
            self.showError(str(exc))
            return
        notice = widget_state.cpu_time_notice(params.device, self.logic.gpuAvailable(), self.isFirstCpuRun(),
                                              params.fastMode)
        self.ui.statusLabel.text = notice or ""
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        try:
            self._run = self.logic.startDetection(params, model, onEvent=self.onRunEvent,
                                                  onFinished=self.onRunFinished)
        except Exception as exc:  # a bad input must end in a popup, never only in the console
            logging.exception("ContrastiveAnomaly: cannot start the detection")
            self._run = None
            self.ui.progressBar.hide()
            self.showError(f"cannot start the detection: {str(exc).splitlines()[0] if str(exc) else exc!r}")
        self.updateGui()

    def onRunEvent(self, event) -> None:
        if isinstance(event, process.ProgressEvent):
            percent, text = widget_state.progress_view(event)
            self.ui.progressBar.value = percent
            self.ui.statusLabel.text = text
        elif isinstance(event, process.WarningEvent):
            logging.warning(f"ContrastiveAnomaly: {event.message}")

    def onRunFinished(self, run) -> None:
        self._run = None
        self._cancelling = False
        self.ui.progressBar.hide()
        tracker = run.tracker
        if tracker.outcome == "cancelled":
            self.ui.statusLabel.text = "Cancelled; nothing was kept."
        elif tracker.outcome == "succeeded":
            qt.QSettings().setValue(SETTINGS_PREFIX + "FirstCpuRunDone", True)
            try:
                self.logic.loadResults(self._parameterNode, run)
                self.showOverlay()
                self.refreshFindings()
                warnings = f" ({len(tracker.warnings)} warning(s), see the Python console)" if tracker.warnings else ""
                self.ui.statusLabel.text = "Done in " + widget_state.format_duration(
                    sum(tracker.result.timings_s.values())) + warnings
            except Exception as exc:
                logging.exception("ContrastiveAnomaly: cannot load the results")
                self.showError(f"cannot load the results: {str(exc).splitlines()[0]}", tracker.details())
        else:
            self.ui.statusLabel.text = "Failed."
            self.showError(tracker.error_message(), tracker.details())
        self.logic.discardRunFolder(run)
        self.updateGui()

    def cancelRun(self) -> None:
        self._cancelling = True
        self.updateGui()
        self.ui.statusLabel.text = "Cancelling…"
        slicer.app.processEvents()
        self.logic.cancelDetection(self._run)

    def isFirstCpuRun(self) -> bool:
        return not slicer.util.toBool(qt.QSettings().value(SETTINGS_PREFIX + "FirstCpuRunDone", False))

    # --- threshold, findings, views ------------------------------------------------------------------------------

    def onThresholdMoved(self, value: float) -> None:
        params = self._parameterNode
        if params is None or params.anomalyMap is None:
            return
        slicer_bridge.set_overlay_threshold(params.anomalyMap, value)  # instant
        self.segmentUpdateTimer.start()  # the segment and table follow after a short pause

    def updateSegmentFromThreshold(self) -> None:
        params = self._parameterNode
        if params is None or params.anomalyMap is None or params.segmentation is None:
            return
        self.logic.updateSegment(params)
        self.refreshFindings()

    def onResetThreshold(self) -> None:
        self._parameterNode.threshold = self._parameterNode.calibratedThreshold

    def refreshFindings(self) -> None:
        params = self._parameterNode
        table = self.ui.findingsTable
        if params is None or params.anomalyMap is None:
            self._findings = []
            table.setRowCount(0)
            self.ui.summaryLabel.text = widget_state.summary_text(None, 0.0)
            return
        self._findings, summary = self.logic.computeFindings(params)
        self.ui.summaryLabel.text = widget_state.summary_text(summary, params.threshold)
        table.setRowCount(len(self._findings))
        for row, finding in enumerate(self._findings):
            cells = widget_state.finding_row(finding.label, finding.volume_ml, finding.peak_score,
                                             finding.mean_score, finding.centroid_ras_mm)
            for column, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
                table.setItem(row, column, item)

    def onFindingClicked(self, row: int, column: int) -> None:
        if 0 <= row < len(self._findings):
            x, y, z = self._findings[row].centroid_ras_mm
            slicer.modules.markups.logic().JumpSlicesToLocation(x, y, z, True)

    def showOverlay(self) -> None:
        params = self._parameterNode
        slicer.util.setSliceViewerLayers(background=params.inputVolume, foreground=params.anomalyMap,
                                         foregroundOpacity=appearance.MAP_OVERLAY_OPACITY, fit=True)
        try:  # colour legend in the slice views (Slicer >= 5.0)
            slicer.modules.colors.logic().AddDefaultColorLegendDisplayNode(params.anomalyMap)
        except AttributeError:
            pass

    def onSideBySide(self) -> None:
        """Input with the overlay on the left, the pseudo-healthy reconstruction on the right, linked."""
        params = self._parameterNode
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        for viewName, background, foreground in (("Red", params.inputVolume, params.anomalyMap),
                                                 ("Yellow", params.reconstruction, None)):
            sliceWidget = layoutManager.sliceWidget(viewName)
            if sliceWidget is None:
                continue
            composite = sliceWidget.mrmlSliceCompositeNode()
            composite.SetBackgroundVolumeID(background.GetID() if background else None)
            composite.SetForegroundVolumeID(foreground.GetID() if foreground else None)
            composite.SetForegroundOpacity(appearance.MAP_OVERLAY_OPACITY)
            composite.SetLinkedControl(True)
            sliceWidget.sliceLogic().FitSliceToAll()

    # --- models --------------------------------------------------------------------------------------------------

    def onImportModel(self) -> None:
        path = qt.QFileDialog.getOpenFileName(self.parent, "Import model weights", "",
                                              "Model weights (model.safetensors)")
        if not path:
            return
        try:
            registry = model_registry.load_registry(registryPath())
            entry = model_registry.import_model(Path(path), userModelsDir(), registry)
        except (model_registry.ModelImportError, OSError) as exc:
            self.showError(f"model not imported: {exc}")
            return
        self.refreshModels()
        self.selectModelInCombo(entry.name)
        slicer.util.infoDisplay(f"Model '{entry.name}' imported (checksum verified) into {entry.folder}.")

    # --- export --------------------------------------------------------------------------------------------------

    def onExportSegNrrd(self) -> None:
        path = qt.QFileDialog.getSaveFileName(self.parent, "Save segmentation", "anomalies.seg.nrrd",
                                              "Segmentation (*.seg.nrrd)")
        if path:
            self.runExport(lambda: self.logic.exportSegNrrd(self._parameterNode, path), path)

    def onExportLabelmap(self) -> None:
        path = qt.QFileDialog.getSaveFileName(self.parent, "Save labelmap", "anomalies.nii.gz", "NIfTI (*.nii.gz)")
        if path:
            self.runExport(lambda: self.logic.exportLabelmap(self._parameterNode, path), path)

    def onExportDicomSeg(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.parent, "Folder for the DICOM SEG")
        if folder:
            self.runExport(lambda: self.logic.exportDicomSeg(self._parameterNode, folder), folder)

    def runExport(self, action, target) -> None:
        try:
            action()
        except Exception as exc:
            logging.exception("ContrastiveAnomaly: export failed")
            self.showError(str(exc).splitlines()[0] if str(exc) else repr(exc))
            return
        self.ui.statusLabel.text = f"Saved {target}"

    # --- dialogs -------------------------------------------------------------------------------------------------

    def confirm(self, text: str) -> bool:
        return slicer.util.confirmOkCancelDisplay(text, windowTitle="Contrastive Anomaly")

    def showError(self, message: str, details: str = "") -> None:
        """A popup with the one-line cause and, behind "Show details", the full log."""
        logging.error(f"ContrastiveAnomaly: {message}")
        if slicer.app.testingEnabled():
            return
        extra = {"detailedText": details} if details else {}
        slicer.util.errorDisplay(message, windowTitle="Contrastive Anomaly", **extra)


#
# Logic
#


class DetectionRun:
    """One child-process run: its work folder, output tracker and process handle."""

    def __init__(self, workDir: Path, inputVolume, modelFolder: Path):
        self.workDir = workDir
        self.outDir = workDir / "out"
        self.inputVolume = inputVolume
        self.modelFolder = modelFolder
        self.tracker = process.RunTracker()
        self.handle = None


class ContrastiveAnomalyLogic(ScriptedLoadableModuleLogic):
    """All computation; never touches widgets. Collaborators are injectable for tests."""

    def __init__(self, launcher=None, scene=None, segmentationsLogic=None, pythonExecutable: str | None = None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.launcher = launcher
        self.scene = scene
        self.segmentationsLogic = segmentationsLogic
        self.pythonExecutable = pythonExecutable

    def getParameterNode(self):
        return ContrastiveAnomalyParameterNode(super().getParameterNode())

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
        if model is None or not model.available:
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
            threshold = model_registry.calibrated_threshold(run.modelFolder) or params.threshold
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
        entries = {e.name: e for e in model_registry.list_models(registryPath(), userModelsDir())}
        entry = entries.get(params.modelName)
        config = model_registry.read_model_config(entry.folder) if entry and entry.available else {}
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


#
# Self-test (runs in a real Slicer only)
#


class ContrastiveAnomalyTest(ScriptedLoadableModuleTest):
    """Whole-flow test on a synthetic phantom with a tiny model: detect, move the slider, export, cancel.

    Run it in Slicer with ``slicer.selfTests['ContrastiveAnomaly']()`` or through ctest. It needs a model folder from
    ``models/registry.json`` (the tiny test model) and the engine's dependencies installed.
    """

    TIMEOUT_S = 600

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_detect_threshold_export()
        self.setUp()
        self.test_cancel()

    def _phantomVolume(self):
        """The engine's synthetic brain on its model grid (2 mm, RAS = -LPS axes) with a bright sphere planted."""
        from contrastive_anomaly.config import GridConfig
        from contrastive_anomaly.phantom import make_phantom, plant_sphere_lesion

        grid = GridConfig()
        subject = make_phantom(grid.shape, seed=SELF_TEST_SEED)
        image, lesion = plant_sphere_lesion(subject.image, subject.brain_mask, SELF_TEST_LESION_RADIUS_VOX, 1.0,
                                            seed=SELF_TEST_SEED)
        spacing = grid.spacing_mm
        ijkToRas = np.diag([-spacing, -spacing, spacing, 1.0])
        volume = slicer.util.addVolumeFromArray(image, ijkToRas, name="phantom")
        return volume, lesion

    def _model(self):
        models = [m for m in model_registry.list_models(registryPath(), userModelsDir()) if m.available]
        tiny = [m for m in models if "tiny" in m.name] or models
        self.assertTrue(tiny, "no installed model: add the tiny test model to models/registry.json")
        return tiny[0]

    def _waitFor(self, run, logic):
        import time

        deadline = time.monotonic() + self.TIMEOUT_S
        while run.tracker.returncode is None and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertIsNotNone(run.tracker.returncode, "detect did not finish in time")

    def test_detect_threshold_export(self):
        self.delayDisplay("Detect on a phantom with the tiny model")
        logic = ContrastiveAnomalyLogic()
        params = logic.getParameterNode()
        volume, lesion = self._phantomVolume()
        model = self._model()
        params.inputVolume = volume
        params.modelName = model.name
        params.device = "cpu"
        params.fastMode = True
        run = logic.startDetection(params, model)
        self._waitFor(run, logic)
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
        # The tiny test model is barely trained, so the lesion is not asserted to be found; with a real model,
        # check the Dice here. The map must at least be highest somewhere and zero outside the head.
        scores = slicer.util.arrayFromVolume(params.anomalyMap)
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
        logic = ContrastiveAnomalyLogic()
        params = logic.getParameterNode()
        volume, _ = self._phantomVolume()
        model = self._model()
        params.inputVolume = volume
        params.device = "cpu"
        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        run = logic.startDetection(params, model)
        slicer.app.processEvents()
        logic.cancelDetection(run)
        self._waitFor(run, logic)
        self.assertEqual(run.tracker.outcome, "cancelled")
        logic.discardRunFolder(run)
        self.assertFalse(run.workDir.exists())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)
        self.assertIsNone(params.segmentation)
        self.delayDisplay("Test passed")


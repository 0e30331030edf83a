"""3D Slicer module "Contrastive Anomaly": unsupervised brain-MRI anomaly detection (Patrício et al. 2024).

The heavy work (torch, MONAI) runs in a child process, ``PythonSlicer -m contrastive_anomaly.cli.main detect``;
this file only holds the thin Slicer layer: module metadata, parameter node, widget, and the Logic and Test classes
Slicer looks up by name. The logic's body is ``ContrastiveAnomalyLib/logic.py``, MRML operations are in
``slicer_bridge.py``, panel decisions in ``widget_state.py`` (pure Python) and the self-test cases in
``self_test.py``.
Nothing here imports torch or MONAI, so Slicer can load the module before those are installed.
"""

import logging
from pathlib import Path
from typing import Annotated, Union

import qt
import slicer
import vtk
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

from contrastive_anomaly.config import CONTRASTS as ENGINE_CONTRASTS
from contrastive_anomaly.errors import ContrastiveAnomalyError
from contrastive_anomaly.storage import registry as model_registry
from ContrastiveAnomalyLib import appearance, findings, install, process, slicer_bridge, widget_state
from ContrastiveAnomalyLib.launchers import defaultInstallApi
from ContrastiveAnomalyLib.logic import DetectionLogic
from ContrastiveAnomalyLib.paths import REQUIREMENTS_FILE, SETTINGS_PREFIX
from ContrastiveAnomalyLib.self_test import SelfTestCases

SEGMENT_UPDATE_DEBOUNCE_MS = 300
CONTRASTS = list(ENGINE_CONTRASTS)  # the engine's Contrast type, so panel and engine never disagree
DEVICES = ["auto", "cpu", "cuda"]


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
            entries = model_registry.list_models()
        except ContrastiveAnomalyError as exc:
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
        return entry if entry is not None and entry.installed else None

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
            entry = model_registry.import_model(Path(path))
        except (ContrastiveAnomalyError, OSError) as exc:
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
# Logic and self-test: the classes Slicer looks up by name; their bodies live in ContrastiveAnomalyLib.
#


class ContrastiveAnomalyLogic(ScriptedLoadableModuleLogic, DetectionLogic):
    """See ``ContrastiveAnomalyLib.logic.DetectionLogic``; collaborators are injectable for tests."""

    def __init__(self, launcher=None, scene=None, segmentationsLogic=None, pythonExecutable: str | None = None):
        ScriptedLoadableModuleLogic.__init__(self)
        DetectionLogic.__init__(self, launcher, scene, segmentationsLogic, pythonExecutable)

    def getParameterNode(self):
        return ContrastiveAnomalyParameterNode(super().getParameterNode())


class ContrastiveAnomalyTest(ScriptedLoadableModuleTest, SelfTestCases):
    """Whole flow in a real Slicer on a synthetic brain with a tiny model: detect, move the slider, export, cancel.

    Run it with ``slicer.selfTests['ContrastiveAnomaly']()`` or ctest; the cases are in ``self_test.py``.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def makeLogic(self):
        return ContrastiveAnomalyLogic()

    def runTest(self):
        self.setUp()
        self.test_detect_threshold_export()
        self.setUp()
        self.test_cancel()

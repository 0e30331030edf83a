"""The module's panel: copies parameter-node state and the logic's results onto Qt widgets, nothing more.

Decisions (button states, texts, which volume to pre-select) are pure functions in ``widget_state.py``; MRML work is
in ``logic.py`` and ``slicer_bridge.py``. ``ContrastiveAnomaly.py`` subclasses :class:`PanelWidget` under the name
Slicer looks up.
"""

import logging
from pathlib import Path

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from contrastive_anomaly.config import CONTRASTS
from contrastive_anomaly.errors import ContrastiveAnomalyError
from contrastive_anomaly.storage import registry as model_registry

from . import appearance, install, process, slicer_bridge, widget_state
from .launchers import defaultInstallApi
from .paths import REQUIREMENTS_FILE, SETTINGS_PREFIX

SEGMENT_UPDATE_DEBOUNCE_MS = 300
DEVICES = ("auto", "cpu", "cuda")
COMPARE_VIEWS = ("Red", "Yellow")
LAST_DIRECTORY_SETTING = SETTINGS_PREFIX + "LastExportDirectory"


class PanelWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Subclasses set ``logicClass`` (the module's Logic class, which provides ``getParameterNode()``)."""

    logicClass = None

    def __init__(self, parent=None, logic=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._cancelling = False
        self._findings = []
        self._models = {}
        self._layoutBeforeCompare = None
        self._notice = ""
        self._mapMaximum = (None, 0.0)

    # --- setup ---------------------------------------------------------------------------------------------------

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ContrastiveAnomaly.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        if self.logic is None:
            self.logic = self.logicClass()
        self.logic.confirm = self.confirm
        loadTerminology()

        self.segmentUpdateTimer = qt.QTimer()
        self.segmentUpdateTimer.setSingleShot(True)
        self.segmentUpdateTimer.setInterval(SEGMENT_UPDATE_DEBOUNCE_MS)
        self.segmentUpdateTimer.connect("timeout()", self.updateSegmentFromThreshold)

        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModel)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChosen)
        self.ui.thresholdSlider.connect("valueChanged(double)", self.onThresholdMoved)
        self.ui.resetThresholdButton.connect("clicked(bool)", self.onResetThreshold)
        self.ui.sideBySideButton.connect("toggled(bool)", self.onCompare)
        self.ui.segmentFilledCheckBox.connect("toggled(bool)", self.onSegmentFilled)
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
            chosen = widget_state.pick_input([volumeFacts(node) for node in scalarVolumes()])
            if chosen is not None:
                self._parameterNode.inputVolume = slicer.mrmlScene.GetNodeByID(chosen)

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
            has_input=params.inputVolume is not None, has_model=self.currentModel() is not None,
            running=self._run is not None, cancelling=self._cancelling)
        self.ui.runButton.text = state.text
        self.ui.runButton.toolTip = state.tooltip
        self.ui.runButton.enabled = state.enabled
        idle = self._run is None
        hasResults = params.anomalyMap is not None and params.segmentation is not None
        for widget in (self.ui.thresholdSlider, self.ui.resetThresholdButton, self.ui.sideBySideButton,
                       self.ui.segmentFilledCheckBox, self.ui.exportSegNrrdButton, self.ui.exportLabelmapButton):
            widget.enabled = hasResults and idle
        if hasResults:
            self.ui.thresholdSlider.maximum = widget_state.slider_maximum(self.mapMaximum(params.anomalyMap),
                                                                          params.threshold)
        possible, reason = self.logic.dicomExportState(params)
        self.ui.exportDicomSegButton.enabled = possible and idle
        self.ui.exportDicomSegButton.toolTip = reason
        self.ui.inputsCollapsibleButton.enabled = idle

    def mapMaximum(self, mapNode) -> float:
        """The map's largest value, computed once per map (a 300 x 512 x 512 map takes tens of ms to scan)."""
        key = (mapNode.GetID(), mapNode.GetImageData().GetMTime() if mapNode.GetImageData() else 0)
        if self._mapMaximum[0] != key:
            self._mapMaximum = (key, float(slicer.util.arrayFromVolume(mapNode).max()))
        return self._mapMaximum[1]

    def refreshModels(self) -> None:
        combo = self.ui.modelComboBox
        combo.blockSignals(True)
        combo.clear()
        try:
            entries = model_registry.list_models()
        except ContrastiveAnomalyError as exc:
            entries = []
            self.showError(str(exc))
        for entry in entries:
            combo.addItem(entry.label, entry.name)
            combo.setItemData(combo.count - 1, model_registry.model_card_text(entry), qt.Qt.ToolTipRole)
        combo.blockSignals(False)
        self._models = {entry.name: entry for entry in entries}
        if self._parameterNode:
            self.selectModelInCombo(self._parameterNode.modelName)

    def selectModelInCombo(self, name: str) -> None:
        """Show ``name`` (else the default model) without touching the contrast the user chose."""
        combo = self.ui.modelComboBox
        index = combo.findData(name) if name else -1
        if index < 0:
            default = next((e.name for e in self._models.values() if e.default), None)
            index = combo.findData(default) if default else (0 if combo.count > 0 else -1)
        combo.blockSignals(True)
        combo.setCurrentIndex(index)
        combo.blockSignals(False)
        entry = self._models.get(combo.itemData(index)) if index >= 0 else None
        if self._parameterNode is not None and entry is not None and self._parameterNode.modelName != entry.name:
            self._parameterNode.modelName = entry.name

    def currentModel(self):
        entry = self._models.get(self.ui.modelComboBox.currentData)
        return entry if entry is not None and entry.installed else None

    def onModelChosen(self, index: int) -> None:
        """The user picked a model: remember it, and take its contrast as the scan's expected contrast."""
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
            install.ensure_dependencies(defaultInstallApi(self.confirm, busy=self.showBusy), REQUIREMENTS_FILE)
        except Exception as exc:  # every failure or decline: a popup and a status line that says what to do
            message = install.describe_install_failure(exc)
            logging.exception("ContrastiveAnomaly: dependencies")
            self.ui.progressBar.hide()
            self.ui.statusLabel.text = "Not started: " + message
            self.showError(message)
            return
        self.ui.progressBar.hide()
        self._notice = widget_state.cpu_time_notice(params.device, self.logic.gpuAvailable(), self.isFirstCpuRun(),
                                                    params.fastMode) or ""
        self.ui.statusLabel.text = self._notice
        self.ui.progressBar.setRange(0, 100)
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

    def showBusy(self, text: str) -> None:
        """A long step without progress of its own (the PyTorch download): busy bar and a status line."""
        self.ui.statusLabel.text = text
        self.ui.progressBar.setRange(0, 0)
        self.ui.progressBar.show()
        slicer.app.processEvents()

    def onRunEvent(self, event) -> None:
        if self._run is None:
            return
        percent, text = widget_state.progress_view(self._run.tracker)
        self.ui.progressBar.value = percent
        self.ui.progressBar.setFormat(f"%p%  {text}")  # the stage lives in the bar, the status line keeps notices
        if isinstance(event, process.WarningEvent):
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
                self.ui.statusLabel.text = widget_state.done_text(sum(tracker.result.timings_s.values()),
                                                                  tracker.warnings)
            except Exception as exc:
                logging.exception("ContrastiveAnomaly: cannot load the results")
                self.showError(f"cannot load the results: {str(exc).splitlines()[0]}", tracker.details())
        else:
            self.ui.statusLabel.text = "Failed: " + tracker.error_message()
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
        """Instant: the overlay threshold, the mL/region readout and the table (model-grid work, milliseconds).
        The segment follows after a short pause (a native-grid write).

        This slot is connected in ``setup()``, before ``connectGui`` binds the slider to ``threshold``, so Qt calls
        it first: the value is written here, or the readout would show the previous threshold."""
        params = self._parameterNode
        if params is None or params.anomalyMap is None:
            return
        if params.threshold != value:
            params.threshold = value
        slicer_bridge.set_overlay_threshold(params.anomalyMap, value)
        self.refreshFindings()
        self.segmentUpdateTimer.start()

    def updateSegmentFromThreshold(self) -> None:
        params = self._parameterNode
        if params is None or params.anomalyMap is None or params.segmentation is None:
            return
        self.logic.updateSegment(params)

    def onResetThreshold(self) -> None:
        self._parameterNode.threshold = self._parameterNode.calibratedThreshold

    def onSegmentFilled(self, filled: bool) -> None:
        if self._parameterNode is not None and self._parameterNode.segmentation is not None:
            slicer_bridge.set_segment_style(self._parameterNode.segmentation, filled)

    def refreshFindings(self) -> None:
        params = self._parameterNode
        table = self.ui.findingsTable
        rows, summary = self.logic.computeFindings(params) if params is not None and params.anomalyMap else ([], None)
        self._findings = rows
        self.ui.summaryLabel.text = widget_state.summary_text(summary, params.threshold if params else 0.0,
                                                              has_result=bool(params and params.anomalyMap))
        table.setRowCount(len(rows))
        for row, finding in enumerate(rows):
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
        slicer.util.setSliceViewerLayers(background=params.analysedVolume, foreground=params.anomalyMap,
                                         foregroundOpacity=appearance.MAP_OVERLAY_OPACITY, fit=True)
        addColorLegend(params.anomalyMap)

    def onCompare(self, checked: bool) -> None:
        """On: two linked axial views, input + map | reconstruction. Off: the layout from before comes back."""
        params = self._parameterNode
        layoutManager = slicer.app.layoutManager()
        if not checked:
            if self._layoutBeforeCompare is not None:
                layoutManager.setLayout(self._layoutBeforeCompare)
            self._layoutBeforeCompare = None
            return
        self._layoutBeforeCompare = layoutManager.layout
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        for viewName, background, foreground in ((COMPARE_VIEWS[0], params.analysedVolume, params.anomalyMap),
                                                 (COMPARE_VIEWS[1], params.reconstruction, None)):
            sliceWidget = layoutManager.sliceWidget(viewName)
            if sliceWidget is None:
                continue
            sliceWidget.mrmlSliceNode().SetOrientation("Axial")  # a layout's default applies only to new views
            composite = sliceWidget.mrmlSliceCompositeNode()
            composite.SetBackgroundVolumeID(background.GetID() if background else None)
            composite.SetForegroundVolumeID(foreground.GetID() if foreground else None)
            composite.SetForegroundOpacity(appearance.MAP_OVERLAY_OPACITY)
            composite.SetLinkedControl(True)
            sliceWidget.sliceLogic().FitSliceToAll()

    # --- models --------------------------------------------------------------------------------------------------

    def onImportModel(self) -> None:
        path = qt.QFileDialog.getExistingDirectory(self.parent, "Import a model folder (model.safetensors, "
                                                   "config.json, model.sha256)", str(Path.home()))
        if not path:
            return
        try:
            entry = model_registry.import_model(Path(path))
        except (ContrastiveAnomalyError, OSError) as exc:
            self.showError(f"model not imported: {exc}")
            return
        self.refreshModels()
        self.selectModelInCombo(entry.name)
        slicer.util.infoDisplay(f"Model '{entry.name}' ({entry.contrast}) imported, checksums verified, into "
                                f"{entry.folder}.", windowTitle="Contrastive Anomaly")

    # --- export --------------------------------------------------------------------------------------------------

    def startDirectory(self) -> str:
        """The last export folder, else the analysed volume's file folder, else the home folder."""
        params = self._parameterNode
        storage = params.analysedVolume.GetStorageNode() if params and params.analysedVolume else None
        fileName = storage.GetFileName() if storage is not None else None
        return widget_state.start_directory(qt.QSettings().value(LAST_DIRECTORY_SETTING), fileName, str(Path.home()))

    def onExportSegNrrd(self) -> None:
        path = qt.QFileDialog.getSaveFileName(self.parent, "Save segmentation",
                                              str(Path(self.startDirectory()) / "anomalies.seg.nrrd"),
                                              "Segmentation (*.seg.nrrd)")
        if path:
            self.runExport(lambda: self.logic.exportSegNrrd(self._parameterNode, path), path)

    def onExportLabelmap(self) -> None:
        path = qt.QFileDialog.getSaveFileName(self.parent, "Save labelmap",
                                              str(Path(self.startDirectory()) / "anomalies.nii.gz"), "NIfTI (*.nii.gz)")
        if path:
            self.runExport(lambda: self.logic.exportLabelmap(self._parameterNode, path), path)

    def onExportDicomSeg(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.parent, "Folder for the DICOM SEG", self.startDirectory())
        if folder:
            self.runExport(lambda: self.logic.exportDicomSeg(self._parameterNode, folder), folder)

    def runExport(self, action, target) -> None:
        try:
            action()
        except Exception as exc:
            logging.exception("ContrastiveAnomaly: export failed")
            self.showError(str(exc).splitlines()[0] if str(exc) else repr(exc))
            return
        folder = target if Path(target).is_dir() else str(Path(target).parent)
        qt.QSettings().setValue(LAST_DIRECTORY_SETTING, folder)
        self.ui.statusLabel.text = f"Saved {target}"

    # --- dialogs -------------------------------------------------------------------------------------------------

    def confirm(self, text: str) -> bool:
        if slicer.app.testingEnabled():
            return True
        return slicer.util.confirmOkCancelDisplay(text, windowTitle="Contrastive Anomaly")

    def showError(self, message: str, details: str = "") -> None:
        """A popup with the one-line cause and, behind "Show details", the full log."""
        logging.error(f"ContrastiveAnomaly: {message}")
        if slicer.app.testingEnabled():
            return
        extra = {"detailedText": details} if details else {}
        slicer.util.errorDisplay(message, windowTitle="Contrastive Anomaly", **extra)


def scalarVolumes():
    scene = slicer.mrmlScene
    return [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]


def volumeFacts(node) -> widget_state.VolumeFacts:
    image = node.GetImageData()
    dimensions = tuple(image.GetDimensions()) if image else (0, 0, 0)
    return widget_state.VolumeFacts(node_id=node.GetID(), dimensions=dimensions,
                                    is_labelmap=node.IsA("vtkMRMLLabelMapVolumeNode"),
                                    is_result=bool(node.GetAttribute(appearance.ROLE_ATTRIBUTE)))


def loadTerminology() -> None:
    """Make the "Anomaly" segment's terminology entry known to Slicer's terminology selector."""
    try:
        logic = slicer.modules.terminologies.logic()
        logic.LoadTerminologyFromFile(str(appearance.TERMINOLOGY_FILE))
    except (AttributeError, RuntimeError):
        logging.warning("ContrastiveAnomaly: the terminology file could not be loaded")


def addColorLegend(mapNode) -> None:
    """The map's colour legend in the slice views (Slicer's Colors module, 5.0+)."""
    try:
        legend = slicer.modules.colors.logic().AddDefaultColorLegendDisplayNode(mapNode)
        legend.SetTitleText("Anomaly score")
        legend.SetVisibility(True)
    except AttributeError:
        logging.warning("ContrastiveAnomaly: this Slicer has no colour legends")

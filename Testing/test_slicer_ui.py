"""The panel's .ui under PySide6 with QT_QPA_PLATFORM=offscreen, with stand-ins for the CTK/MRML widgets.

This proves that the .ui parses, that the names the module uses exist and that the parameter bindings survive
loading; it does not prove CTK/MRML behaviour or Slicer's PythonQt runtime (docs/SLICER_DEV.md §5).

``python Testing/test_slicer_ui.py`` regenerates the committed screenshot
Resources/Screenshots/ContrastiveAnomaly_panel.png.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "ContrastiveAnomaly"))
UI_FILE = REPO / "ContrastiveAnomaly" / "Resources" / "UI" / "ContrastiveAnomaly.ui"
SCREENSHOT = REPO / "Resources" / "Screenshots" / "ContrastiveAnomaly_panel.png"

QtCore = pytest.importorskip("PySide6.QtCore")
QtWidgets = pytest.importorskip("PySide6.QtWidgets")
QtUiTools = pytest.importorskip("PySide6.QtUiTools")

from contrastive_anomaly.scoring.threshold_index import ThresholdIndex  # noqa: E402
from ContrastiveAnomalyLib import findings, widget_state  # noqa: E402
from ContrastiveAnomalyLib.process import RunTracker  # noqa: E402

Property = QtCore.Property


class ctkCollapsibleButton(QtWidgets.QGroupBox):  # noqa: N801 (the name QUiLoader matches)
    """Stand-in: a group box whose ``text`` is the title."""

    def _get_text(self):
        return self.title()

    def _set_text(self, value):
        self.setTitle(value)

    def _get_collapsed(self):
        return False

    def _set_collapsed(self, value):
        pass

    text = Property(str, _get_text, _set_text)
    collapsed = Property(bool, _get_collapsed, _set_collapsed)


class qMRMLNodeComboBox(QtWidgets.QComboBox):  # noqa: N801
    """Stand-in: a combo box that accepts the MRML properties used in the .ui."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._types: list[str] = []
        self._flags = {"noneEnabled": False, "addEnabled": False, "removeEnabled": False, "renameEnabled": False}

    def _get_types(self):
        return self._types

    def _set_types(self, value):
        self._types = list(value)

    nodeTypes = Property("QStringList", _get_types, _set_types)
    noneEnabled = Property(bool, lambda self: self._flags["noneEnabled"],
                           lambda self, v: self._flags.__setitem__("noneEnabled", v))
    addEnabled = Property(bool, lambda self: self._flags["addEnabled"],
                          lambda self, v: self._flags.__setitem__("addEnabled", v))
    removeEnabled = Property(bool, lambda self: self._flags["removeEnabled"],
                             lambda self, v: self._flags.__setitem__("removeEnabled", v))
    renameEnabled = Property(bool, lambda self: self._flags["renameEnabled"],
                             lambda self, v: self._flags.__setitem__("renameEnabled", v))


class ctkSliderWidget(QtWidgets.QWidget):  # noqa: N801
    """Stand-in: a slider with a spin box, like CTK's."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.spin = QtWidgets.QDoubleSpinBox()
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.setRange(0, 1000)

    def _sync(self):
        span = self.spin.maximum() - self.spin.minimum() or 1.0
        self.slider.setValue(int(round(1000 * (self.spin.value() - self.spin.minimum()) / span)))

    def _set_value(self, value):
        self.spin.setValue(value)
        self._sync()

    decimals = Property(int, lambda self: self.spin.decimals(), lambda self, v: self.spin.setDecimals(v))
    singleStep = Property(float, lambda self: self.spin.singleStep(), lambda self, v: self.spin.setSingleStep(v))
    pageStep = Property(float, lambda self: 0.0, lambda self, v: None)
    minimum = Property(float, lambda self: self.spin.minimum(), lambda self, v: self.spin.setMinimum(v))
    maximum = Property(float, lambda self: self.spin.maximum(), lambda self, v: self.spin.setMaximum(v))
    value = Property(float, lambda self: self.spin.value(), _set_value)


class qMRMLWidget(QtWidgets.QWidget):  # noqa: N801
    pass


def application():
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


def load_panel():
    application()
    loader = QtUiTools.QUiLoader()
    for stand_in in (ctkCollapsibleButton, qMRMLNodeComboBox, ctkSliderWidget, qMRMLWidget):
        loader.registerCustomWidget(stand_in)
    file = QtCore.QFile(str(UI_FILE))
    assert file.open(QtCore.QFile.OpenModeFlag.ReadOnly)
    try:
        panel = loader.load(file)
    finally:
        file.close()
    assert panel is not None, loader.errorString()
    return panel


def child(panel, name):
    widget = panel.findChild(QtCore.QObject, name)
    assert widget is not None, f"{name} missing from the .ui"
    return widget


def fill_example_state(panel) -> None:
    """Show what a finished run looks like, with findings computed by the module's own code on the phantom."""
    child(panel, "inputVolumeSelector").addItem("sub-01_T1w")
    child(panel, "brainMaskSelector").addItem("None")
    child(panel, "modelComboBox").addItem("t1-compact-wholebrain (T1)")
    child(panel, "contrastComboBox").setCurrentText("T1")
    run = widget_state.run_button_state(True, True, running=False)
    child(panel, "runButton").setText(run.text)
    child(panel, "runButton").setEnabled(run.enabled)
    percent, status = widget_state.progress_view(RunTracker())
    child(panel, "progressBar").setValue(percent)
    child(panel, "progressBar").hide()
    child(panel, "statusLabel").setText("Done.")
    scores = np.zeros((50, 96, 96), dtype=np.float32)  # KJI, a 2 mm grid
    k, j, i = np.ogrid[:50, :96, :96]
    scores[(k - 30) ** 2 + (j - 40) ** 2 + (i - 60) ** 2 <= 16] = 0.4
    scores[(k - 12) ** 2 + (j - 70) ** 2 + (i - 30) ** 2 <= 4] = 0.25
    ijk_to_ras = np.diag([-2.0, -2.0, 2.0, 1.0])
    threshold = 0.15
    child(panel, "thresholdSlider").setProperty("value", threshold)
    model_index = np.arange(1, scores.size + 1, dtype=np.int32).reshape(scores.shape)
    index = ThresholdIndex.build(scores, model_index, np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_ras,
                                 max_removed_component_voxels=7, connectivity=26)
    rows = findings.ResultIndex(index, model_index).readout(threshold).findings
    child(panel, "summaryLabel").setText(widget_state.summary_text(findings.summarize(rows), threshold))
    table = child(panel, "findingsTable")
    table.setColumnCount(len(widget_state.FINDINGS_HEADERS))
    table.setHorizontalHeaderLabels(widget_state.FINDINGS_HEADERS)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        cells = widget_state.finding_row(row.label, row.volume_ml, row.peak_score, row.mean_score, row.centroid_ras_mm)
        for c, text in enumerate(cells):
            table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
    table.resizeColumnsToContents()


def save_screenshot(path: Path) -> Path:
    panel = load_panel()
    fill_example_state(panel)
    panel.resize(460, 800)
    panel.show()
    application().processEvents()
    path.parent.mkdir(parents=True, exist_ok=True)
    assert panel.grab().save(str(path))
    panel.close()
    return path


def test_ui_loads_with_names_and_bindings():
    panel = load_panel()
    for name in ("inputVolumeSelector", "brainMaskSelector", "contrastComboBox", "modelComboBox",
                 "importModelButton", "deviceComboBox", "fastModeCheckBox", "runButton", "progressBar",
                 "statusLabel", "thresholdSlider", "resetThresholdButton", "summaryLabel", "sideBySideButton",
                 "findingsTable", "exportSegNrrdButton", "exportLabelmapButton", "exportDicomSegButton",
                 "disclaimerLabel"):
        child(panel, name)
    assert isinstance(child(panel, "thresholdSlider"), ctkSliderWidget)
    assert child(panel, "thresholdSlider").property("SlicerParameterName") == "threshold"
    assert child(panel, "inputVolumeSelector").property("nodeTypes") == ["vtkMRMLScalarVolumeNode"]
    assert child(panel, "brainMaskSelector").property("SlicerParameterName") == "brainMask"
    assert child(panel, "inputsCollapsibleButton").title() == "Inputs"
    assert "not a medical device" in child(panel, "disclaimerLabel").text()
    assert [child(panel, "deviceComboBox").itemText(i) for i in range(3)] == ["auto", "cpu", "cuda"]


def test_screenshot_is_a_real_picture(tmp_path):
    from PySide6.QtGui import QImage

    path = save_screenshot(tmp_path / "panel.png")
    image = QImage(str(path))
    assert image.width() >= 400 and image.height() >= 600
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20  # text, frames and widgets, not a blank box


if __name__ == "__main__":
    print(save_screenshot(SCREENSHOT))

"""A ``qt`` module for tests: the names the Slicer module uses, mapped onto PySide6 with PythonQt's conventions.

Slicer's Python talks to Qt through PythonQt, which differs from PySide6 in ways the module relies on:

* Qt properties are Python attributes: ``button.text = "Run"``, ``combo.count``, ``bar.value = 3``; a property wins
  over a getter method of the same name (``label.text`` is a string, not a method); ``widget.name`` is the
  objectName.
* ``obj.connect("clicked(bool)", slot)`` connects by signature, and a Python slot that takes fewer arguments than
  the signal gets only the first ones.
* ``QFileDialog.getSaveFileName`` returns the path (PySide6 returns ``(path, filter)``).

:func:`make_module` builds such a module. Widgets created by :class:`QUiLoader` (the loader ``slicer.util.loadUI``
uses) are instances of the PythonQt-style subclasses below, the ``<connections>`` of the ``.ui`` file are wired
like Qt Designer's (PySide6 cannot match signatures such as ``vtkMRMLScene*``), and CTK/MRML widget classes come
from ``custom_widgets`` (see ``mrml_widgets.py``). File dialogs do not open: each call takes the next answer from
:attr:`QFileDialog.answers` and records its arguments in :attr:`QFileDialog.calls`.
Only the names listed in ``MAPPED_NAMES`` exist: a new ``qt.X`` in the module fails here until it is mapped.
"""

from __future__ import annotations

import inspect
import types
import xml.etree.ElementTree as ElementTree

from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets


class PythonQtStyle:
    """Mixin: Qt properties as attributes, ``name`` as objectName, and connect-by-signature, as in PythonQt."""

    def _qt_property(self, name: str) -> bool:
        if name.startswith("_") or name in _NOT_PROPERTIES:
            return False
        return QtCore.QObject.metaObject(self).indexOfProperty(name) >= 0

    def __getattribute__(self, name):
        if name == "name":
            return QtCore.QObject.objectName(self)
        if name == "connect":  # shiboken resolves "connect" itself; PythonQt's form takes precedence here
            return PythonQtStyle.connect.__get__(self)
        if PythonQtStyle._qt_property(self, name):
            return QtCore.QObject.property(self, name)
        return super().__getattribute__(name)

    def __setattr__(self, name, value):
        if name == "name":
            QtCore.QObject.setObjectName(self, value)
        elif PythonQtStyle._qt_property(self, name):
            if not QtCore.QObject.setProperty(self, name, value):
                raise AttributeError(f"cannot set the Qt property {name!r} to {value!r}")
        else:
            super().__setattr__(name, value)

    def connect(self, signature: str, slot) -> None:
        """PythonQt's ``obj.connect("signal(args)", callable)``."""
        signal_name = signature.split("(", 1)[0].strip()
        getattr(self, signal_name).connect(_trimmed(slot))


# Virtual methods that share their name with a Qt property: Qt calls them through Python, so they stay methods.
_NOT_PROPERTIES = frozenset({"sizeHint", "minimumSizeHint"})


def _trimmed(slot):
    """``slot`` called with at most as many arguments as it takes (PythonQt drops the extra signal arguments)."""
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return slot
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return slot
    count = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in parameters)

    def call(*args):
        return slot(*args[:count])

    return call


def _styled(base):
    return type(base.__name__, (PythonQtStyle, base), {"__module__": __name__})


WIDGET_CLASSES = {cls.__name__: _styled(cls) for cls in (
    QtWidgets.QWidget, QtWidgets.QLabel, QtWidgets.QPushButton, QtWidgets.QCheckBox, QtWidgets.QComboBox,
    QtWidgets.QProgressBar, QtWidgets.QTableWidget, QtWidgets.QGroupBox, QtWidgets.QFrame)}


class QTimer(PythonQtStyle, QtCore.QTimer):
    pass


class QFileDialog:
    """Scripted file dialogs: the test queues answers (a path, or "" for Cancel) and reads the calls."""

    answers: list[str] = []
    calls: list[tuple[str, tuple]] = []

    @classmethod
    def _answer(cls, kind: str, args: tuple) -> str:
        cls.calls.append((kind, args))
        if not cls.answers:
            raise AssertionError(f"unexpected file dialog {kind}{args}")
        return cls.answers.pop(0)

    @classmethod
    def getSaveFileName(cls, parent=None, caption="", directory="", filter=""):  # noqa: N802, A002 (Qt's names)
        return cls._answer("save", (caption, directory, filter))

    @classmethod
    def getExistingDirectory(cls, parent=None, caption="", directory=""):  # noqa: N802
        return cls._answer("directory", (caption, directory))


class QUiLoader(QtUiTools.QUiLoader):
    """Creates PythonQt-style widgets and the custom (CTK/MRML) widgets, then wires the .ui's connections."""

    custom_widgets: dict[str, type] = {}

    def createWidget(self, class_name, parent=None, name=""):  # noqa: N802 (Qt's name)
        factory = self.custom_widgets.get(class_name) or WIDGET_CLASSES.get(class_name)
        if factory is None:
            return super().createWidget(class_name, parent, name)
        widget = factory(parent)
        QtCore.QObject.setObjectName(widget, name)
        return widget

    def load(self, device, parent=None):
        data = bytes(device.readAll())
        tree = ElementTree.fromstring(data)
        for connections in tree.findall("connections"):  # wired below; PySide6 cannot match their signatures
            tree.remove(connections)
        buffer = QtCore.QBuffer()
        buffer.setData(QtCore.QByteArray(ElementTree.tostring(tree)))
        buffer.open(QtCore.QIODevice.OpenModeFlag.ReadOnly)
        widget = super().load(buffer, parent)
        if widget is not None:
            _wire_connections(widget, data)
        return widget


def _wire_connections(root, ui_xml: bytes) -> None:
    """Connect ``<connections>`` of the .ui by name, as Qt Designer's uic does in C++."""
    def find(name):
        if QtCore.QObject.objectName(root) == name:
            return root
        found = root.findChild(QtCore.QObject, name)
        if found is None:
            raise RuntimeError(f".ui connection names a missing object {name!r}")
        return found

    for connection in ElementTree.fromstring(ui_xml).iter("connection"):
        sender, signal = find(connection.findtext("sender")), connection.findtext("signal")
        receiver, slot = find(connection.findtext("receiver")), connection.findtext("slot")
        getattr(sender, signal.split("(")[0]).connect(getattr(receiver, slot.split("(")[0]))


def _namespace(name: str, **members) -> types.SimpleNamespace:
    space = types.SimpleNamespace(**members)
    space.__name__ = name
    return space


# PythonQt's flat enum names, as the module uses them.
Qt = _namespace("Qt", ToolTipRole=QtCore.Qt.ItemDataRole.ToolTipRole,
                ItemIsSelectable=QtCore.Qt.ItemFlag.ItemIsSelectable, ItemIsEnabled=QtCore.Qt.ItemFlag.ItemIsEnabled,
                ShiftModifier=QtCore.Qt.KeyboardModifier.ShiftModifier)


class QFile(QtCore.QFile):
    ReadOnly = QtCore.QIODevice.OpenModeFlag.ReadOnly


class QMessageBox(QtWidgets.QMessageBox):
    Ok = QtWidgets.QMessageBox.StandardButton.Ok
    Cancel = QtWidgets.QMessageBox.StandardButton.Cancel
    Yes = QtWidgets.QMessageBox.StandardButton.Yes
    No = QtWidgets.QMessageBox.StandardButton.No
    Retry = QtWidgets.QMessageBox.StandardButton.Retry
    Close = QtWidgets.QMessageBox.StandardButton.Close
    Information = QtWidgets.QMessageBox.Icon.Information
    Warning = QtWidgets.QMessageBox.Icon.Warning
    Critical = QtWidgets.QMessageBox.Icon.Critical
    Question = QtWidgets.QMessageBox.Icon.Question


MAPPED_NAMES = ("QWidget", "QLabel", "QPushButton", "QCheckBox", "QComboBox", "QProgressBar", "QTableWidget",
                "QTableWidgetItem", "QVBoxLayout", "QTimer", "QSettings", "QFileDialog", "QFile", "QUiLoader",
                "QMessageBox", "QProcessEnvironment", "QIcon", "Qt")


def make_module(custom_widgets: dict[str, type]) -> types.ModuleType:
    """The ``qt`` module (install it as ``sys.modules["qt"]``); ``custom_widgets`` maps .ui class names."""
    module = types.ModuleType("qt", __doc__)
    QUiLoader.custom_widgets = dict(custom_widgets)
    members = {**WIDGET_CLASSES, "QTableWidgetItem": QtWidgets.QTableWidgetItem, "QVBoxLayout": QtWidgets.QVBoxLayout,
               "QTimer": QTimer, "QSettings": QtCore.QSettings, "QFileDialog": QFileDialog, "QFile": QFile,
               "QUiLoader": QUiLoader, "QMessageBox": QMessageBox, "QProcessEnvironment": QtCore.QProcessEnvironment,
               "QIcon": QtGui.QIcon, "Qt": Qt}
    for name in MAPPED_NAMES:
        setattr(module, name, members[name])
    return module

"""Stand-ins for the CTK and MRML widget classes the panel's .ui uses, on PySide6 with PythonQt conventions.

Each keeps the behaviour the module and Slicer's parameter-node GUI connectors rely on, and nothing more:

* ``qMRMLWidget``: ``setMRMLScene(scene)`` emits ``mrmlSceneChanged(scene)`` (the .ui forwards it to the selectors).
* ``qMRMLNodeComboBox``: lists the scene's nodes of ``nodeTypes`` (exact classes unless ``showChildNodeTypes``;
  nodes hidden from editors are left out), a "None" entry when ``noneEnabled``; follows nodes added to and removed
  from the real MRML scene; ``currentNode()``/``setCurrentNode()``; ``currentNodeChanged(node)``. Like every
  QComboBox, it selects the first entry when the list stops being empty.
* ``ctkCollapsibleButton``: a group box whose ``text`` is its title; ``collapsed`` hides nothing here.
* ``ctkSliderWidget``: a float ``value`` kept within ``[minimum, maximum]``; lowering ``maximum`` below the value
  clamps it and emits ``valueChanged`` (as CTK does). Rounding to ``decimals`` is not modelled.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from .qt_shim import PythonQtStyle

Property, Signal = QtCore.Property, QtCore.Signal


class qMRMLWidget(PythonQtStyle, QtWidgets.QWidget):  # noqa: N801 (the .ui class name)
    mrmlSceneChanged = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = None

    def setMRMLScene(self, scene):  # noqa: N802
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):  # noqa: N802
        return self._scene


class qMRMLNodeComboBox(PythonQtStyle, QtWidgets.QComboBox):  # noqa: N801
    currentNodeChanged = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._types: list[str] = []
        self._flags = {"showChildNodeTypes": True, "noneEnabled": False, "addEnabled": True, "removeEnabled": True,
                       "renameEnabled": False}
        self._scene = None
        self._observers: list[int] = []
        self._emitted_id = None
        self.currentIndexChanged.connect(self._index_changed)

    def _flag(name):  # noqa: N805 (a property factory used in the class body)
        def setter(self, value):
            self._flags[name] = bool(value)
            self._refresh()
        return Property(bool, lambda self: self._flags[name], setter)

    def _get_types(self):
        return list(self._types)

    def _set_types(self, value):
        self._types = [str(v) for v in value]
        self._refresh()

    nodeTypes = Property("QStringList", _get_types, _set_types)
    showChildNodeTypes = _flag("showChildNodeTypes")
    noneEnabled = _flag("noneEnabled")
    addEnabled = _flag("addEnabled")
    removeEnabled = _flag("removeEnabled")
    renameEnabled = _flag("renameEnabled")

    def setMRMLScene(self, scene):  # noqa: N802
        if self._scene is not None:
            for tag in self._observers:
                self._scene.RemoveObserver(tag)
        self._scene, self._observers = scene, []
        if scene is not None:
            for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent):
                self._observers.append(scene.AddObserver(event, lambda caller, event: self._refresh()))
        self._refresh()

    def mrmlScene(self):  # noqa: N802
        return self._scene

    def _matches(self, node) -> bool:
        if node.GetHideFromEditors():
            return False
        if self._flags["showChildNodeTypes"]:
            return any(node.IsA(kind) for kind in self._types)
        return node.GetClassName() in self._types

    def nodes(self) -> list:
        if self._scene is None:
            return []
        scene = self._scene
        return [node for node in (scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())) if self._matches(node)]

    def _refresh(self):
        combo = QtWidgets.QComboBox
        current = self.currentNode()
        combo.blockSignals(self, True)
        combo.clear(self)
        if self._flags["noneEnabled"]:
            combo.addItem(self, "None", None)
        for node in self.nodes():
            combo.addItem(self, node.GetName(), node.GetID())
        index = combo.findData(self, current.GetID()) if current is not None else -1
        if index >= 0:
            combo.setCurrentIndex(self, index)
        combo.blockSignals(self, False)
        self._index_changed()

    def currentNode(self):  # noqa: N802
        node_id = QtWidgets.QComboBox.currentData(self)
        return self._scene.GetNodeByID(node_id) if node_id and self._scene is not None else None

    def setCurrentNode(self, node):  # noqa: N802
        combo = QtWidgets.QComboBox
        index = combo.findData(self, node.GetID()) if node is not None else (0 if self._flags["noneEnabled"] else -1)
        combo.setCurrentIndex(self, index)

    def _index_changed(self, *args):
        node = self.currentNode()
        node_id = node.GetID() if node is not None else None
        if node_id != self._emitted_id:
            self._emitted_id = node_id
            self.currentNodeChanged.emit(node)


class ctkCollapsibleButton(PythonQtStyle, QtWidgets.QGroupBox):  # noqa: N801
    def __init__(self, parent=None):
        super().__init__(parent)
        self._collapsed = False

    text = Property(str, lambda self: QtWidgets.QGroupBox.title(self),
                    lambda self, value: QtWidgets.QGroupBox.setTitle(self, value))
    collapsed = Property(bool, lambda self: self._collapsed, lambda self, value: setattr(self, "_collapsed", value))


class ctkSliderWidget(PythonQtStyle, QtWidgets.QWidget):  # noqa: N801
    valueChanged = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._range = [0.0, 99.0]
        self._value = 0.0
        self._decimals, self._single_step, self._page_step = 2, 1.0, 10.0

    def _set_value(self, value):
        low, high = self._range
        value = min(max(float(value), low), high)
        if value != self._value:
            self._value = value
            self.valueChanged.emit(value)

    def _set_minimum(self, value):
        self._range[0] = float(value)
        self._range[1] = max(self._range)
        self._set_value(self._value)

    def _set_maximum(self, value):
        self._range[1] = float(value)
        self._range[0] = min(self._range)
        self._set_value(self._value)

    value = Property(float, lambda self: self._value, _set_value)
    minimum = Property(float, lambda self: self._range[0], _set_minimum)
    maximum = Property(float, lambda self: self._range[1], _set_maximum)
    decimals = Property(int, lambda self: self._decimals, lambda self, v: setattr(self, "_decimals", int(v)))
    singleStep = Property(float, lambda self: self._single_step, lambda self, v: setattr(self, "_single_step", v))
    pageStep = Property(float, lambda self: self._page_step, lambda self, v: setattr(self, "_page_step", v))


def custom_widgets() -> dict[str, type]:
    return {cls.__name__: cls for cls in (qMRMLWidget, qMRMLNodeComboBox, ctkCollapsibleButton, ctkSliderWidget)}

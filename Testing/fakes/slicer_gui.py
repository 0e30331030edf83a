"""A Slicer application around PyPI slicer-core's real MRML, logics and ``slicer.util``, for constructing the module's
real widget in a test (``Testing/test_slicer_widget.py``).

Real (from slicer-core): the MRML scene, ``slicer.util`` (``loadUI``, ``childWidgetVariables``,
``setSliceViewerLayers``, ``launchConsoleProcess``, ``VTKObservationMixin``, the message functions), the
segmentations, subject-hierarchy, colors, volumes, terminologies and markups logics, ``vtkMRMLLayoutLogic`` (it
creates the slice view nodes for a layout, with the layout's default orientation for new views only) and one
``vtkMRMLSliceLogic`` per view.

Stand-ins (slicer-core has no Qt application): ``qt`` (``qt_shim.py``), ``ctk`` and the MRML widgets
(``mrml_widgets.py``), ``slicer.parameterNodeWrapper`` (``parameter_node.py``), ``slicer.ScriptedLoadableModule``
(below, written from Slicer's behaviour: module name from the class name, ``resourcePath`` from the module's path,
the singleton parameter node), ``slicer.app`` (temporary folder, testing mode, event processing, startup environment
and a layout manager over the real layout logic) and the module panel that Slicer gives the widget as its parent.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import slicer
import slicer.util
import vtk
from PySide6 import QtCore, QtWidgets

from . import mrml_widgets, parameter_node, qt_shim


class SliceWidget:
    """What the module uses of a ``qMRMLSliceWidget``: its slice node, composite node and slice logic."""

    def __init__(self, logic):
        self._logic = logic

    def mrmlSliceNode(self):  # noqa: N802 (Slicer's names)
        return self._logic.GetSliceNode()

    def mrmlSliceCompositeNode(self):  # noqa: N802
        return self._logic.GetSliceCompositeNode()

    def sliceLogic(self):  # noqa: N802
        return self._logic


class LayoutManager:
    """``qSlicerLayoutManager`` without views: the layout is the real layout node's arrangement; slice widgets exist
    for the slice view nodes the real ``vtkMRMLLayoutLogic`` created."""

    def __init__(self, scene, app_logic):
        self._scene, self._app_logic = scene, app_logic
        self._layout_logic = slicer.vtkMRMLLayoutLogic()
        self._layout_logic.SetMRMLApplicationLogic(app_logic)
        self._layout_logic.SetMRMLScene(scene)
        self._widgets: dict[str, SliceWidget] = {}
        self.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutConventionalView)  # Slicer's default layout

    @property
    def layoutNode(self):  # noqa: N802
        return self._layout_logic.GetLayoutNode()

    @property
    def layout(self) -> int:
        return self.layoutNode.GetViewArrangement()

    def setLayout(self, arrangement: int) -> None:  # noqa: N802
        """Switch the layout; like Slicer, every slice view of the layout gets its widget (and so its slice logic
        and composite node) at once."""
        self.layoutNode.SetViewArrangement(arrangement)
        for name in self.sliceViewNames():
            self.sliceWidget(name)

    def sliceViewNames(self) -> list[str]:  # noqa: N802
        scene = self._scene
        return [scene.GetNthNodeByClass(i, "vtkMRMLSliceNode").GetLayoutName()
                for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode"))]

    def sliceWidget(self, name: str):  # noqa: N802
        if name not in self._widgets:
            node = next((self._scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
                         for i in range(self._scene.GetNumberOfNodesByClass("vtkMRMLSliceNode"))
                         if self._scene.GetNthNodeByClass(i, "vtkMRMLSliceNode").GetLayoutName() == name), None)
            if node is None:
                return None
            logic = slicer.vtkMRMLSliceLogic()
            logic.SetMRMLApplicationLogic(self._app_logic)
            logic.SetMRMLScene(self._scene)
            logic.SetSliceNode(node)
            self._widgets[name] = SliceWidget(logic)
        return self._widgets[name]

    def mrmlSliceLogics(self):  # noqa: N802
        collection = vtk.vtkCollection()
        for name in self.sliceViewNames():
            collection.AddItem(self.sliceWidget(name).sliceLogic())
        return collection


class App:
    """``slicer.app`` as the module uses it."""

    applicationName = "Slicer"

    def __init__(self, temporary_path: Path, layout_manager: LayoutManager):
        self.temporaryPath = str(temporary_path)
        self._layout_manager = layout_manager

    def testingEnabled(self) -> bool:  # noqa: N802 (Slicer's names)
        return True

    def processEvents(self) -> None:  # noqa: N802
        QtWidgets.QApplication.processEvents()

    def layoutManager(self):  # noqa: N802
        return self._layout_manager

    def startupEnvironment(self):  # noqa: N802
        return QtCore.QProcessEnvironment.systemEnvironment()


class ModulePanel(mrml_widgets.qMRMLWidget):
    """The panel Slicer gives a scripted widget as ``parent`` (``qSlicerScriptedLoadableModuleWidget``)."""

    def __init__(self):
        super().__init__()
        self._entered = False
        QtWidgets.QWidget.setLayout(self, QtWidgets.QVBoxLayout())

    isEntered = QtCore.Property(bool, lambda self: self._entered,
                                lambda self, value: setattr(self, "_entered", bool(value)))


def scripted_loadable_module() -> types.ModuleType:
    """``slicer.ScriptedLoadableModule`` as far as the module's classes use it."""

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent
            self.moduleName = type(self).__name__

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            super().__init__()
            name = type(self).__name__
            self.moduleName = name[:-len("Widget")] if name.endswith("Widget") else name
            self.developerMode = False
            self.parent = parent if parent is not None else slicer.qMRMLWidget()
            if parent is None:
                self.parent.setLayout(QtWidgets.QVBoxLayout())
                self.parent.setMRMLScene(slicer.mrmlScene)
            self.layout = self.parent.layout()
            if parent is None:
                self.setup()

        def resourcePath(self, filename):  # noqa: N802
            return str(Path(slicer.util.modulePath(self.moduleName)).parent / "Resources" / filename)

        def setup(self):
            pass  # the developer section ("Reload & Test") only appears in developer mode

        def cleanup(self):
            pass

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            super().__init__()
            name = type(self).__name__
            self.moduleName = name[:-len("Logic")] if name.endswith("Logic") else name
            self.isSingletonParameterNode = True

        def getParameterNode(self):  # noqa: N802
            node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
            if node is not None:
                if node.GetAttribute("ModuleName") != self.moduleName:
                    node.SetAttribute("ModuleName", self.moduleName)
                return node
            return slicer.mrmlScene.AddNode(self.createParameterNode())

        def createParameterNode(self):  # noqa: N802
            node = slicer.mrmlScene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)
            node.SetHideFromEditors(True)
            node.SetSingletonTag(self.moduleName)
            node.SetName(slicer.mrmlScene.GenerateUniqueName(self.moduleName))
            node.SetAttribute("ModuleName", self.moduleName)
            return node

    class ScriptedLoadableModuleTest:
        pass

    module = types.ModuleType("slicer.ScriptedLoadableModule")
    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(module, cls.__name__, cls)
    return module


class Gui:
    """Everything installed for one test: the scene and its logics, the application, the panel."""

    def __init__(self, temporary_path: Path, module_file: Path):
        self.scene = slicer.vtkMRMLScene()
        self.app_logic = slicer.vtkSlicerApplicationLogic()
        self.app_logic.SetMRMLScene(self.scene)
        self.logics = {}
        for name, cls in (("colors", slicer.vtkSlicerColorLogic), ("volumes", slicer.vtkSlicerVolumesLogic),
                          ("segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
                          ("subjecthierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic),
                          ("terminologies", slicer.vtkSlicerTerminologiesModuleLogic),
                          ("markups", slicer.vtkSlicerMarkupsLogic)):
            logic = cls()
            if hasattr(logic, "SetMRMLApplicationLogic"):
                logic.SetMRMLApplicationLogic(self.app_logic)
            logic.SetMRMLScene(self.scene)
            self.logics[name] = logic
        self.layout_manager = LayoutManager(self.scene, self.app_logic)
        self.app = App(temporary_path, self.layout_manager)
        modules = {name: types.SimpleNamespace(logic=lambda logic=logic: logic) for name, logic in self.logics.items()}
        modules[module_file.stem.lower()] = types.SimpleNamespace(path=str(module_file))
        self.modules = types.SimpleNamespace(**modules)
        self.qt = qt_shim.make_module(mrml_widgets.custom_widgets())
        self.ctk = types.ModuleType("ctk")
        self.ctk.ctkCollapsibleButton = mrml_widgets.ctkCollapsibleButton
        self.ctk.ctkSliderWidget = mrml_widgets.ctkSliderWidget
        self.settings_dir = temporary_path / "settings"

    def install(self, monkeypatch) -> None:
        """Put everything in place for one test (monkeypatch restores it afterwards)."""
        QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        QtCore.QCoreApplication.setOrganizationName("ContrastiveAnomalyTests")
        QtCore.QCoreApplication.setApplicationName("WidgetTest")
        QtCore.QSettings.setDefaultFormat(QtCore.QSettings.Format.IniFormat)
        QtCore.QSettings.setPath(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope,
                                 str(self.settings_dir))
        i18n = types.ModuleType("slicer.i18n")
        i18n.tr = lambda text: text
        wrapper = parameter_node.make_module()
        scripted = scripted_loadable_module()
        for name, module in (("qt", self.qt), ("ctk", self.ctk), ("slicer.i18n", i18n),
                             ("slicer.parameterNodeWrapper", wrapper), ("slicer.ScriptedLoadableModule", scripted)):
            monkeypatch.setitem(sys.modules, name, module)
        for name, value in (("app", self.app), ("mrmlScene", self.scene), ("modules", self.modules),
                            ("i18n", i18n), ("parameterNodeWrapper", wrapper), ("ScriptedLoadableModule", scripted),
                            ("qMRMLWidget", mrml_widgets.qMRMLWidget),
                            ("qMRMLNodeComboBox", mrml_widgets.qMRMLNodeComboBox)):
            monkeypatch.setattr(slicer, name, value, raising=False)

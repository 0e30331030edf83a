"""A minimal stand-in for Slicer's ``slicer.parameterNodeWrapper``, which no PyPI package ships (checked:
slicer-core 5.12.4.0 and 5.11.0.6).

Written from the behaviour of Slicer's package (``Base/Python/slicer/parameterNodeWrapper/``, v5.6 to main), not
copied from it. What it keeps, because the panel depends on it:

* the serializer rules (:func:`serializable`, :func:`can_write`, shared with ``test_slicer_parameter_node.py``):
  decoration fails for a type Slicer cannot serialize, and writing a value Slicer would refuse raises
  ``TypeError``/``ValueError`` (including the ``None`` default of a Union of node types without ``None``);
* values live in a real ``vtkMRMLScriptedModuleNode``: plain values as parameters, nodes as node references, every
  write batched in one Modified event (``slicer.util.NodeModify``);
* ``connectGui``: every widget with a ``SlicerParameterName`` property gets a connector chosen by the widget's
  exact class, as Slicer's ``guiConnectors.py`` does: QCheckBox <-> bool; QComboBox <-> a ``Choice`` (the combo's
  items are replaced by the choices); ctkSliderWidget <-> float, which must be bounded (``WithinRange`` or both
  ``Minimum`` and ``Maximum``) and whose range is set from the bounds; qMRMLNodeComboBox <-> a node or Union of nodes
  (its ``nodeTypes`` are set from the annotation). Anything else raises ``RuntimeError``. Parameter-node changes
  update the widgets; widget changes write the parameter (not while the widgets are being updated).
Parameter packs, enums, paths, lists and GUI creation are not modelled.
"""

from __future__ import annotations

import pathlib
import types
import typing

import slicer
import slicer.util
import vtk

PLAIN_TYPES = (int, float, str, bool, pathlib.Path)
SlicerParameterNamePropertyName = "SlicerParameterName"


class Choice:
    def __init__(self, choices):
        self.choices = tuple(choices)

    def validate(self, value) -> None:
        if value not in self.choices:
            raise ValueError(f"Value {value!r} is not in the choices {self.choices}")


class Minimum:
    def __init__(self, minimum):
        self.minimum = minimum

    def validate(self, value) -> None:
        if value < self.minimum:
            raise ValueError(f"Value {value} is less than the minimum {self.minimum}")


class Maximum:
    def __init__(self, maximum):
        self.maximum = maximum

    def validate(self, value) -> None:
        if value > self.maximum:
            raise ValueError(f"Value {value} is greater than the maximum {self.maximum}")


class WithinRange:
    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def validate(self, value) -> None:
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"Value {value} is not within [{self.minimum}, {self.maximum}]")


# --- the serializer rules -------------------------------------------------------------------------------------------

def split(annotation):
    """(base type, annotations) of a possibly ``Annotated`` annotation."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, list(extras)
    return annotation, []


def is_node(kind) -> bool:
    return isinstance(kind, type) and issubclass(kind, slicer.vtkMRMLNode)


def node_types(kind) -> list:
    """The node classes of a node type or of a Union of node types."""
    if typing.get_origin(kind) is typing.Union:
        return [member for member in typing.get_args(kind) if is_node(member)]
    return [kind] if is_node(kind) else []


def default_of(kind):
    """The value Slicer writes on a fresh parameter node when the field has no default."""
    if typing.get_origin(kind) is typing.Union:
        members = typing.get_args(kind)
        if len(members) == 2 and members[1] is type(None):
            return None
        return default_of(members[0])
    return {int: 0, float: 0, str: "", bool: False}.get(kind, pathlib.Path() if kind is pathlib.Path else None)


def can_write(kind, validators, value) -> bool:
    """Whether Slicer's serializer for ``kind`` accepts ``value`` (validators included)."""
    for validator in validators:
        try:
            validator.validate(value)
        except (ValueError, TypeError):
            return False
    if typing.get_origin(kind) is typing.Union:
        # a member is chosen by the type of the value: a node member never takes None (only a None member does)
        return any(value is not None and isinstance(value, member) if is_node(member) else
                   can_write(member, [], value) for member in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if is_node(kind):
        return value is None or isinstance(value, kind)
    if kind in PLAIN_TYPES:
        return value is not None and isinstance(value, (int, float) if kind is float else kind)
    return False


def serializable(kind) -> bool:
    if isinstance(kind, types.UnionType):
        return False
    if typing.get_origin(kind) is typing.Union:
        return all(serializable(member) for member in typing.get_args(kind))
    return kind is type(None) or is_node(kind) or kind in PLAIN_TYPES


# --- storage in the MRML node ---------------------------------------------------------------------------------------

class _Field:
    def __init__(self, name: str, annotation, default):
        self.name = name
        self.annotation = annotation
        self.kind, self.validators = split(annotation)
        self.default = default
        self.nodes = bool(node_types(self.kind))

    def is_in(self, node) -> bool:
        if self.nodes:
            return node.GetNodeReferenceID(self.name) is not None or node.GetAttribute(self.name + ".set") == "1"
        return node.GetParameterNames() is not None and self.name in list(node.GetParameterNames())

    def write(self, node, value) -> None:
        if not can_write(self.kind, self.validators, value):
            if value is None:
                raise TypeError(f"Unable to write value '{value}'")
            raise ValueError(f"{self.name}: Slicer's serializer refuses {value!r}")
        if self.nodes:
            node.SetAttribute(self.name + ".set", "1")
            node.SetNodeReferenceID(self.name, value.GetID() if value is not None else None)
        elif self.kind is bool:
            node.SetParameter(self.name, "True" if value else "False")
        else:
            node.SetParameter(self.name, str(value))

    def read(self, node):
        if self.nodes:
            return node.GetNodeReference(self.name)
        text = node.GetParameter(self.name)
        if self.kind is bool:
            return text == "True"
        return self.kind(text)


class _Connector:
    """One widget <-> one parameter (see the module docstring for the rules)."""

    def __init__(self, widget, field: _Field):
        import ctk
        import qt

        self.widget, self.field = widget, field
        cls = type(widget)
        choice = next((v for v in field.validators if isinstance(v, Choice)), None)
        if cls is qt.QCheckBox and field.kind is bool:
            self.signal, self.read, self.write = widget.stateChanged, lambda: widget.checked, self._set("checked")
        elif cls is qt.QComboBox and field.kind in (int, float, str, bool):
            if choice is None:
                raise RuntimeError("ComboBoxToStringableConnector requires the Choice annotation to be used.")
            widget.clear()
            for value in choice.choices:
                widget.addItem(str(value))
            self.signal = widget.currentIndexChanged
            self.read = lambda: choice.choices[widget.currentIndex]
            self.write = lambda value: setattr(widget, "currentIndex", choice.choices.index(value))
        elif cls is ctk.ctkSliderWidget and field.kind is float:
            within = next((v for v in field.validators if isinstance(v, WithinRange)), None)
            low = next((v.minimum for v in field.validators if isinstance(v, Minimum)), None)
            high = next((v.maximum for v in field.validators if isinstance(v, Maximum)), None)
            if within is None and (low is None or high is None):
                raise RuntimeError("Cannot have a connection to ctkSliderWidget where the float types is unbounded.")
            widget.minimum, widget.maximum = (within.minimum, within.maximum) if within else (low, high)
            self.signal, self.read, self.write = widget.valueChanged, lambda: widget.value, self._set("value")
        elif cls is slicer.qMRMLNodeComboBox and field.nodes:
            widget.nodeTypes = [kind.__name__ for kind in node_types(field.kind)]
            self.signal, self.read, self.write = widget.currentNodeChanged, widget.currentNode, widget.setCurrentNode
        else:
            raise RuntimeError(f"Unable to create GUI connector from datatype '{field.annotation}' to widget type "
                               f"'{cls}'")

    def _set(self, name):
        return lambda value: setattr(self.widget, name, value)


def parameterNodeWrapper(cls=None):  # noqa: N802 (Slicer's name)
    """Class decorator: typed attributes stored in a ``vtkMRMLScriptedModuleNode``, plus ``connectGui``."""
    if cls is None:
        return parameterNodeWrapper
    fields = {}
    for name, annotation in typing.get_type_hints(cls, include_extras=True).items():
        kind, _ = split(annotation)
        if not serializable(kind):
            raise Exception(f"Unable to create serializer for {cls} member {name}")
        fields[name] = _Field(name, annotation, getattr(cls, name, default_of(kind)))

    def make_property(field):
        def getter(self):
            return field.read(self.parameterNode)

        def setter(self, value):
            with slicer.util.NodeModify(self.parameterNode):
                field.write(self.parameterNode, value)
        return property(getter, setter)

    def init(self, parameterNode):
        self.parameterNode = parameterNode
        self._guis = {}
        self._next_tag = 0
        self._updating = False
        for field in fields.values():
            if not field.is_in(parameterNode):
                field.write(parameterNode, field.default)

    def update_gui(self):
        if self._updating:
            return
        self._updating = True
        try:
            for connectors in self._guis.values():
                for connector in connectors:
                    connector.write(getattr(self, connector.field.name))
        finally:
            self._updating = False

    def connect_gui(self, gui):
        widgets = gui.findChildren(object) if hasattr(gui, "isWidgetType") else list(vars(gui).values())
        connectors = [_Connector(w, fields[w.property(SlicerParameterNamePropertyName)]) for w in widgets
                      if hasattr(w, "property") and w.property(SlicerParameterNamePropertyName)]
        tag, self._next_tag = self._next_tag, self._next_tag + 1
        self._guis[tag] = connectors
        for connector in connectors:
            connector.write(getattr(self, connector.field.name))

            def changed(*args, connector=connector):
                if not self._updating:
                    setattr(self, connector.field.name, connector.read())
            connector.callback = changed
            connector.signal.connect(changed)
        self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda caller, event: update_gui(self))
        return tag

    def disconnect_gui(self, tag):
        for connector in self._guis.pop(tag, []):
            connector.signal.disconnect(connector.callback)

    for name, field in fields.items():
        setattr(cls, name, make_property(field))
    cls.allParameters = fields
    cls.__init__ = init
    cls.connectGui = connect_gui
    cls.disconnectGui = disconnect_gui
    cls.AddObserver = lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(event, callback,
                                                                                                priority)
    cls.RemoveObserver = lambda self, tag: self.parameterNode.RemoveObserver(tag)
    cls.Modified = lambda self: self.parameterNode.Modified()
    cls.StartModify = lambda self: self.parameterNode.StartModify()
    cls.EndModify = lambda self, wasModified: self.parameterNode.EndModify(wasModified)
    return cls


def make_module() -> types.ModuleType:
    """The ``slicer.parameterNodeWrapper`` module."""
    module = types.ModuleType("slicer.parameterNodeWrapper", __doc__)
    for name in ("parameterNodeWrapper", "Choice", "Minimum", "Maximum", "WithinRange",
                 "SlicerParameterNamePropertyName"):
        setattr(module, name, globals()[name])
    return module

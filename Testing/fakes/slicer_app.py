"""Contract-test stand-ins for what ``ContrastiveAnomaly.py`` imports from the Slicer application.

PyPI ``slicer-core`` provides real MRML, ``slicer.util`` and the module logics, but not ``qt``, ``slicer.app``,
``slicer.i18n``, ``slicer.parameterNodeWrapper`` or ``slicer.ScriptedLoadableModule``. These fakes reproduce only the
names that are touched when the module file is imported and when its *logic* runs (the parameter-node wrapper is
the stand-in of ``parameter_node.py``); the widget is exercised with ``slicer_gui.py`` instead.
They cannot catch PythonQt, event-loop or parameter-node behaviour: the real self-test covers those in Slicer.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


class _Settings:
    store: dict[str, object] = {}

    def value(self, key, default=None):
        return self.store.get(key, default)

    def setValue(self, key, value):  # noqa: N802 (Qt's name)
        self.store[key] = value


class _Base:
    def __init__(self, *args, **kwargs):
        pass


class _App:
    def __init__(self, temporary_path: Path):
        self.temporaryPath = str(temporary_path)

    def testingEnabled(self):  # noqa: N802 (Slicer's name)
        return True

    def processEvents(self):  # noqa: N802
        return None


def fake_modules(temporary_path: Path) -> dict[str, types.ModuleType]:
    """Modules to put into ``sys.modules`` (with ``monkeypatch.setitem``) before importing ContrastiveAnomaly.py."""
    qt = types.ModuleType("qt")
    qt.QSettings = _Settings
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    from .parameter_node import make_module as parameter_node_wrapper

    wrapper = parameter_node_wrapper()
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                 "ScriptedLoadableModuleTest"):
        setattr(scripted, name, type(name, (_Base,), {}))
    return {"qt": qt, "slicer.i18n": i18n, "slicer.parameterNodeWrapper": wrapper,
            "slicer.ScriptedLoadableModule": scripted}


def install(monkeypatch, temporary_path: Path) -> None:
    """Install the fakes for one test (monkeypatch restores everything afterwards)."""
    import slicer

    for name, module in fake_modules(temporary_path).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(slicer, "app", _App(temporary_path), raising=False)
    monkeypatch.setattr(slicer, "i18n", sys.modules["slicer.i18n"], raising=False)

"""Slicer's parameter-node serializer rules, enforced on every annotated field of the module's parameter node.

No PyPI package ships ``slicer.parameterNodeWrapper`` (checked: slicer-core 5.12.4.0 and 5.11.0.6), so these rules
are written from Slicer's source (``Base/Python/slicer/parameterNodeWrapper/serializers.py`` and
``validators.py``, v5.6 to main), kept once in ``Testing/fakes/parameter_node.py`` (the wrapper stand-in that the
widget test runs on obeys the same rules) and checked against the real annotations and MRML node classes of
slicer-core:

* int/float/str/bool/pathlib types: a non-``None`` default of that type, which passes the field's validators;
* a single MRML node class: default ``None`` (allowed);
* ``typing.Union``: every member serializable; the serializer writes the *first* member's default on a fresh node,
  so a Union whose members are node classes must include ``None`` (else ``TypeError: Unable to write value
  'None'``, the bug that kept the panel dead); ``A | B`` (types.UnionType) is not matched by the Union serializer;
* anything else cannot be serialized.
Values the panel writes (a threshold above 1, each contrast and device) must pass the validators.
"""

from __future__ import annotations

import importlib.util
import sys
import typing
from pathlib import Path

import pytest

pytest.importorskip("slicer_core", reason="needs PyPI slicer-core")

import slicer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "ContrastiveAnomaly"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import slicer_app  # noqa: E402
from fakes.parameter_node import can_write, default_of, is_node, serializable, split  # noqa: E402

pytestmark = pytest.mark.slicer_core


@pytest.fixture()
def parameter_class(monkeypatch, tmp_path):
    slicer_app.install(monkeypatch, tmp_path)
    spec = importlib.util.spec_from_file_location("ContrastiveAnomaly", REPO / "ContrastiveAnomaly" /
                                                  "ContrastiveAnomaly.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ContrastiveAnomaly", module)
    spec.loader.exec_module(module)
    return module, module.ContrastiveAnomalyParameterNode


def test_every_field_follows_the_serializer_rules(parameter_class):
    _, cls = parameter_class
    fields = typing.get_type_hints(cls, include_extras=True)
    assert len(fields) >= 12
    for name, annotation in fields.items():
        kind, validators = split(annotation)
        assert serializable(kind), f"{name}: Slicer cannot serialize {kind}"
        default = cls.allParameters[name].default  # the class default, else what Slicer writes on a fresh node
        assert can_write(kind, validators, default), f"{name}: the default {default!r} cannot be written"
        if typing.get_origin(kind) is typing.Union and any(is_node(m) for m in typing.get_args(kind)):
            assert type(None) in typing.get_args(kind), f"{name}: a Union of node types must include None"


def test_values_the_panel_writes_pass(parameter_class):
    module, cls = parameter_class
    fields = typing.get_type_hints(cls, include_extras=True)
    for name, value in (("threshold", 1.7), ("threshold", 0.0), ("threshold", 25.0), ("calibratedThreshold", 2.5),
                        *(("contrast", c) for c in module.CONTRASTS), *(("device", d) for d in module.DEVICES),
                        ("brainMask", None), ("brainMask", slicer.vtkMRMLLabelMapVolumeNode()),
                        ("brainMask", slicer.vtkMRMLSegmentationNode()), ("segmentFilled", True)):
        kind, validators = split(fields[name])
        assert can_write(kind, validators, value), f"{name} = {value!r} would raise in Slicer"


def test_the_rules_catch_the_old_declaration():
    """The declaration that kept the panel dead, and a threshold bounded at 1, are refused by the same rules."""
    from fakes.parameter_node import WithinRange

    old = typing.Union[slicer.vtkMRMLSegmentationNode, slicer.vtkMRMLLabelMapVolumeNode]  # noqa: UP007
    assert not can_write(old, [], default_of(old))
    assert not serializable(slicer.vtkMRMLSegmentationNode | None)
    assert not can_write(float, [WithinRange(0.0, 1.0)], 1.7)


def test_every_lib_module_imports_without_torch_or_monai(tmp_path):
    """A fresh interpreter imports ContrastiveAnomaly.py and every ContrastiveAnomalyLib module (Slicer's own
    modules faked where slicer-core lacks them); torch and MONAI must stay unloaded."""
    import subprocess

    names = sorted(p.stem for p in (REPO / "ContrastiveAnomaly" / "ContrastiveAnomalyLib").glob("*.py"))
    module_file = REPO / "ContrastiveAnomaly" / "ContrastiveAnomaly.py"
    code = "\n".join([
        "import sys, importlib, importlib.util, types",
        f"sys.path[:0] = [{str(REPO / 'ContrastiveAnomaly')!r}, {str(Path(__file__).resolve().parent)!r}]",
        "from pathlib import Path",
        "from fakes import slicer_app",
        "import slicer",
        f"sys.modules.update(slicer_app.fake_modules(Path({str(tmp_path)!r})))",
        f"for name in {names!r}:",
        "    importlib.import_module('ContrastiveAnomalyLib' + ('' if name == '__init__' else '.' + name))",
        f"spec = importlib.util.spec_from_file_location('ContrastiveAnomaly', {str(module_file)!r})",
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))",
        "loaded = sorted(m for m in ('torch', 'monai') if m in sys.modules)",
        "assert not loaded, loaded",
        "print('ok', len(sys.modules))",
    ])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8")
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-3000:]

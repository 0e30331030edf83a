"""Static checks of the Slicer extension (docs/SLICER_DEV.md §5): CMake lists, .ui names, parameters, imports."""

from __future__ import annotations

import ast
import importlib.util
import py_compile
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULE_DIR = REPO / "ContrastiveAnomaly"
MODULE_FILE = MODULE_DIR / "ContrastiveAnomaly.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "ContrastiveAnomaly.ui"
SLICER_510_CMAKE = (3, 16, 3)  # the oldest CMake Slicer 5.10 builds with (Slicer's own cmake_minimum_required)
HEAVY_MODULES = {"torch", "monai", "contrastive_anomaly.scoring.inference",
                 "contrastive_anomaly.method.diffusion_model"}


def load_tool():
    spec = importlib.util.spec_from_file_location("update_cmake_lists", REPO / "tools" / "update_cmake_lists.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def module_tree() -> ast.Module:
    return ast.parse(MODULE_FILE.read_text(encoding="utf-8"))


def ui_root() -> ET.Element:
    return ET.parse(UI_FILE).getroot()


def test_cmake_scripts_list_every_python_file():
    tool = load_tool()
    listed = tool.parse_set((MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8"), "MODULE_PYTHON_SCRIPTS")
    on_disk = tool.expected_scripts(MODULE_DIR)
    assert "ContrastiveAnomaly.py" in on_disk and any(p.startswith("contrastive_anomaly/") for p in on_disk)
    missing, extra = sorted(set(on_disk) - set(listed)), sorted(set(listed) - set(on_disk))
    assert not missing and not extra, f"run python tools/update_cmake_lists.py (missing {missing}, extra {extra})"


def test_cmake_resources_exist_and_are_complete():
    tool = load_tool()
    listed = tool.parse_set((MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8"), "MODULE_PYTHON_RESOURCES")
    for required in ("Resources/Icons/ContrastiveAnomaly.png", "Resources/UI/ContrastiveAnomaly.ui",
                     "Resources/requirements.txt"):
        assert required in listed
    assert all((MODULE_DIR / name).is_file() for name in listed)
    assert sorted(listed) == tool.expected_resources(MODULE_DIR), "run python tools/update_cmake_lists.py"


def test_module_cmake_builds_a_scripted_module_with_tests():
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"set\(MODULE_NAME\s+ContrastiveAnomaly\)", text)
    assert "slicerMacroBuildScriptedModule(" in text and "WITH_GENERIC_TESTS" in text
    assert re.search(r"slicer_add_python_unittest\(\s*SCRIPT\s+\$\{MODULE_NAME\}\.py", text)


def test_top_level_cmake_has_metadata_in_order():
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    values = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', text))
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert values.get(key), key
    assert values["EXTENSION_DEPENDS"] == "PyTorch"
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        for url in values[key].split():
            assert url.startswith("https://") and "${" not in url and "OWNER" not in url, f"{key}: {url}"
    for key in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        for url in values[key].split():
            relative = url.split("/main/", 1)[1]
            assert (REPO / relative).is_file(), f"{key} points at a file missing from the repo: {relative}"
    assert re.search(r'set\(EXTENSION_LICENSE_FILE\s+"\$\{CMAKE_CURRENT_SOURCE_DIR\}/LICENSE"\)', text)
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")
    assert 'license = { text = "Apache-2.0" }' in (REPO / "pyproject.toml").read_text(encoding="utf-8")
    minimum = re.search(r"cmake_minimum_required\(VERSION (\d+\.\d+\.\d+)", text).group(1)
    assert tuple(int(p) for p in minimum.split(".")) <= SLICER_510_CMAKE, "must accept the CMake Slicer 5.10 uses"
    order = ["cmake_minimum_required(", "project(ContrastiveAnomaly)", "set(EXTENSION_HOMEPAGE",
             "find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(ContrastiveAnomaly)",
             "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"]
    positions = [text.index(token) for token in order]
    assert positions == sorted(positions)


def test_every_self_ui_name_exists_in_the_ui_file():
    names = {w.get("name") for w in ui_root().iter("widget")}
    tree = ast.parse((MODULE_DIR / "ContrastiveAnomalyLib" / "widget.py").read_text(encoding="utf-8"))
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id in
            ("self", "widget")}
    assert len(used) >= 10
    assert used <= names, f"not in the .ui: {sorted(used - names)}"


def parameter_node_fields() -> dict[str, ast.AnnAssign]:
    for node in ast.walk(module_tree()):
        if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list):
            return {item.target.id: item for item in node.body if isinstance(item, ast.AnnAssign)}
    pytest.fail("no @parameterNodeWrapper class in ContrastiveAnomaly.py")


def test_every_slicer_parameter_name_is_a_parameter_node_field():
    fields = parameter_node_fields()
    bound = {}
    for widget in ui_root().iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[widget.get("name")] = prop.find("string").text
    assert len(bound) >= 6
    unknown = {w: p for w, p in bound.items() if p not in fields}
    assert not unknown, f"SlicerParameterName without a parameter-node field: {unknown}"
    for required in ("inputVolume", "brainMask", "contrast", "device", "threshold"):
        assert required in bound.values()


def test_ui_declares_custom_widgets_and_scene_connections():
    root = ui_root()
    assert root.find("widget").get("class") == "qMRMLWidget"
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget") if w.get("class").startswith(("qMRML", "ctk"))}
    assert used <= declared
    receivers = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    mrml_widgets = {w.get("name") for w in root.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    assert mrml_widgets and mrml_widgets <= receivers


def top_level_imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", [MODULE_FILE, *sorted((MODULE_DIR / "ContrastiveAnomalyLib").glob("*.py"))],
                         ids=lambda p: p.name)
def test_no_heavy_import_at_module_top_level(path):
    imports = top_level_imports(ast.parse(path.read_text(encoding="utf-8")))
    heavy = {name for name in imports if name.split(".")[0] in {"torch", "monai"} or name in HEAVY_MODULES}
    assert not heavy, f"{path.name} imports {heavy} at top level; Slicer must load it before they are installed"
    py_compile.compile(str(path), doraise=True)


def test_module_metadata_and_self_test_exist():
    tree = module_tree()
    classes = {}
    for node in ast.walk(tree):  # the supported branch's classes come first
        if isinstance(node, ast.ClassDef):
            classes.setdefault(node.name, node)
    for name in ("ContrastiveAnomaly", "ContrastiveAnomalyWidget", "ContrastiveAnomalyLogic", "ContrastiveAnomalyTest"):
        assert name in classes
    methods = {f.name for f in classes["ContrastiveAnomalyTest"].body if isinstance(f, ast.FunctionDef)}
    assert {"setUp", "runTest", "makeLogic"} <= methods
    assert "SelfTestCases" in {b.id for b in classes["ContrastiveAnomalyTest"].bases if isinstance(b, ast.Name)}
    cases = ast.parse((MODULE_DIR / "ContrastiveAnomalyLib" / "self_test.py").read_text(encoding="utf-8"))
    case_methods = {f.name for node in cases.body if isinstance(node, ast.ClassDef) and node.name == "SelfTestCases"
                    for f in node.body if isinstance(f, ast.FunctionDef)}
    called = {n.func.attr for n in ast.walk(classes["ContrastiveAnomalyTest"])
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert "runAllCases" in called and "runAllCases" in case_methods
    run_all = next(f for node in cases.body if isinstance(node, ast.ClassDef) and node.name == "SelfTestCases"
                   for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "runAllCases")
    cases_called = {n.func.attr for n in ast.walk(run_all) if isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute) and n.func.attr.startswith("test_")}
    assert cases_called == {m for m in case_methods if m.startswith("test_")}, "runAllCases must run every case"
    assigned = {}
    for node in ast.walk(classes["ContrastiveAnomaly"]):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
            assigned[node.targets[0].attr] = node.value
    for key in ("title", "categories", "contributors", "helpText", "acknowledgementText"):
        assert key in assigned, key
    for key in ("categories", "contributors"):
        assert isinstance(assigned[key], ast.List) and assigned[key].elts


SLICER_SIDE_FILES = [MODULE_FILE, *sorted((MODULE_DIR / "ContrastiveAnomalyLib").glob("*.py"))]


def test_module_file_imports_on_python_39():
    """Slicer 5.6/5.8 run Python 3.9: ContrastiveAnomaly.py must parse there and evaluate no ``X | Y`` at def time
    (no ``from __future__`` either: the parameter-node wrapper reads real annotations), so that it can show its
    minimum-version message; the rest of the module is imported only on Python 3.11+."""
    text = MODULE_FILE.read_text(encoding="utf-8")
    tree = ast.parse(text, feature_version=(3, 9))
    assert "from __future__ import annotations" not in text
    supported = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "SUPPORTED")
    outside = [node for node in tree.body if node is not supported] + supported.orelse
    bad = [node.lineno for top in outside for node in ast.walk(top)
           if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)]
    assert not bad, f"X | Y evaluated at import time on lines {bad}"
    lib_imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)
                   and (node.module or "").startswith(("ContrastiveAnomalyLib", "contrastive_anomaly"))]
    assert not lib_imports, "engine/Lib imports must sit under 'if SUPPORTED:'"
    assert any(isinstance(n, ast.ImportFrom) and n.module.startswith("ContrastiveAnomalyLib")
               for n in ast.walk(supported))


@pytest.mark.parametrize("path", SLICER_SIDE_FILES, ids=lambda p: p.name)
def test_slicer_side_files_parse_on_their_minimum_python(path):
    ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9) if path == MODULE_FILE else (3, 11))

"""A non-editable install (from a wheel or from an sdist) still carries and finds the default model.

The project is built with setuptools' own PEP 517 hooks (no network, no build isolation) from a copy of the source
tree, installed with ``pip install --no-deps --target`` into a throwaway folder, and asked for the default model in a
fresh interpreter whose ``sys.path`` starts with that folder (numpy & co. still come from this environment).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# the built-in registry's default row (read from the file the package ships, not from the code under test)
DEFAULT_NAME = next(row["name"] for row in json.loads(
    (REPO / "ContrastiveAnomaly/contrastive_anomaly/resources/models/registry.json").read_text(encoding="utf-8"))
    ["models"] if row.get("default"))
SOURCE_PARTS = ("pyproject.toml", "README.md", "ContrastiveAnomaly/contrastive_anomaly")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")
pytestmark = pytest.mark.slow

PROBE = """
import sys
from pathlib import Path
import contrastive_anomaly
from contrastive_anomaly.storage.registry import resolve_model
folder = resolve_model(None)
assert Path(contrastive_anomaly.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), \
    contrastive_anomaly.__file__
assert folder.resolve().is_relative_to(Path(sys.argv[1]).resolve()), folder
print(folder.name)
"""


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8")
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory) -> Path:
    """Only what the build needs, so the build's own folders (build/, *.egg-info) never touch the checkout."""
    root = tmp_path_factory.mktemp("src")
    for part in SOURCE_PARTS:
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, root / part, ignore=IGNORED)
        else:
            shutil.copy2(REPO / part, root / part)
    return root


def build(source: Path, hook: str, out: Path) -> Path:
    out.mkdir()
    name = run([sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}))"],
               cwd=source).strip().splitlines()[-1]
    return out / name


@pytest.mark.parametrize("hook", ["build_wheel", "build_sdist"])
def test_installed_package_finds_the_default_model(source_copy, tmp_path, hook):
    artefact = build(source_copy, hook, tmp_path / "dist")
    target = tmp_path / "site"
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--target", str(target), str(artefact)], cwd=tmp_path)
    assert (target / "contrastive_anomaly" / "resources" / "models" / "registry.json").is_file()
    env = {**os.environ, "PYTHONPATH": str(target), "CONTRASTIVE_ANOMALY_MODELS": str(tmp_path / "no-user-models")}
    # -I would drop site-packages; -P keeps the working directory off sys.path, so only the install can answer
    assert run([sys.executable, "-P", "-c", PROBE, str(target)], cwd=tmp_path, env=env).strip() == DEFAULT_NAME


def test_slicer_extension_layout_finds_the_default_model(tmp_path):
    """What ``slicerMacroBuildScriptedModule`` installs: exactly the files CMake lists, relative to the module folder.

    The engine is then imported from that folder (as the panel and its ``PythonSlicer`` child do) and must find the
    default model there.
    """
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import update_cmake_lists as tool
    finally:
        sys.path.pop(0)
    module_dir = REPO / "ContrastiveAnomaly"
    cmake = (module_dir / "CMakeLists.txt").read_text(encoding="utf-8")
    installed = tmp_path / "qt-scripted-modules"
    for variable in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
        for relative in tool.parse_set(cmake, variable):
            (installed / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(module_dir / relative, installed / relative)
    env = {**os.environ, "PYTHONPATH": str(installed), "CONTRASTIVE_ANOMALY_MODELS": str(tmp_path / "none")}
    assert run([sys.executable, "-P", "-c", PROBE, str(installed)], cwd=tmp_path, env=env).strip() == DEFAULT_NAME

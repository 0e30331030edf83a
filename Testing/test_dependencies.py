"""The dependency lists agree: what the engine imports is declared in pyproject.toml, and what Slicer installs
(``ContrastiveAnomaly/Resources/requirements.txt``) matches pyproject's dependencies, package by package."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ContrastiveAnomalyLib.install import PROTECTED_PACKAGES

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "ContrastiveAnomaly" / "contrastive_anomaly"
SLICER_REQUIREMENTS = ROOT / "ContrastiveAnomaly" / "Resources" / "requirements.txt"

# pyproject dependencies that requirements.txt leaves out on purpose, with the reason.
NOT_INSTALLED_BY_SLICER = {
    **{canonicalize_name(name): "Slicer's own or the PyTorch extension's; never replaced (install.PROTECTED_PACKAGES)"
       for name in PROTECTED_PACKAGES},
    "matplotlib": "only demo and benchmark figures use it (lazy imports); the panel runs detect, which does not",
}
# requirements.txt entries that are not engine dependencies, with the reason; each must still be declared in an
# optional-dependency group of pyproject.toml.
SLICER_ONLY = {"psutil": "Cancel finds the whole engine process tree when Slicer launches it"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(line) for line in (raw.split("#")[0].strip() for raw in lines) if line]
    return {canonicalize_name(r.name): r for r in parsed}


def test_slicer_requirements_match_pyproject():
    engine = _requirements(_pyproject()["dependencies"])
    slicer = _requirements(SLICER_REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    extras = {name for group in _pyproject()["optional-dependencies"].values()
              for name in _requirements(group)}
    for name, requirement in engine.items():
        if name in NOT_INSTALLED_BY_SLICER:
            assert name not in slicer, f"{name} should not be in requirements.txt: {NOT_INSTALLED_BY_SLICER[name]}"
            continue
        assert name in slicer, f"pyproject dependency {name} is missing from {SLICER_REQUIREMENTS.name}"
        assert slicer[name].specifier == requirement.specifier, \
            f"{name}: pyproject says {requirement.specifier}, requirements.txt says {slicer[name].specifier}"
    for name in slicer:
        if name not in engine:
            assert name in SLICER_ONLY, f"{name} is installed in Slicer but is not a pyproject dependency"
            assert name in extras, f"{name} (Slicer only) should still be declared in a pyproject extra"


def _third_party_imports(folder: Path) -> dict[str, set[str]]:
    """Top-level names of every absolute import in ``folder`` that is neither stdlib nor the engine itself."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "contrastive_anomaly":
                    found.setdefault(top, set()).add(path.relative_to(folder).as_posix())
    return found


def test_every_engine_import_is_declared():
    """An undeclared import (Pillow once was) would fail only at run time, on someone else's machine."""
    project = _pyproject()
    declared = set(_requirements(project["dependencies"]))
    optional = {name for group in project["optional-dependencies"].values() for name in _requirements(group)}
    distributions = importlib.metadata.packages_distributions()
    for module, files in sorted(_third_party_imports(ENGINE).items()):
        owners = {canonicalize_name(d) for d in distributions.get(module, [module])}
        assert owners & (declared | optional), f"{module} (imported in {sorted(files)}) is not declared in pyproject"


def test_the_checks_can_fail():
    """The import scan sees a real third-party import, and the requirement parser reads comments away."""
    assert "torch" in _third_party_imports(ENGINE)
    assert set(_requirements(["# only a comment", "monai>=1.4  # why"])) == {"monai"}

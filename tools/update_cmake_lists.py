"""Regenerate the file lists in ContrastiveAnomaly/CMakeLists.txt from the files on disk.

``slicerMacroBuildScriptedModule`` packages only what ``MODULE_PYTHON_SCRIPTS`` and ``MODULE_PYTHON_RESOURCES`` name,
so every ``.py`` file of the module, of ``ContrastiveAnomalyLib`` and of the engine package ``contrastive_anomaly``
must be listed, and every resource (icon, ``.ui``, requirements, the engine's templates). The lists stay explicit in
CMake (CMake globbing would not re-run when files are added); this tool rewrites them, and
``Testing/test_slicer_static.py`` fails when they are out of date.

Usage: ``python tools/update_cmake_lists.py`` (rewrite) or ``--check`` (exit 1 if out of date).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULE_DIR = REPO_ROOT / "ContrastiveAnomaly"
CMAKE_FILE = MODULE_DIR / "CMakeLists.txt"
SCRIPT_ROOTS = ("ContrastiveAnomalyLib", "contrastive_anomaly")
RESOURCE_ROOTS = ("Resources", "contrastive_anomaly/resources")
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}


def _shipped(path: Path) -> bool:
    return path.is_file() and not (set(path.parts) & SKIPPED_PARTS) and path.suffix not in SKIPPED_SUFFIXES \
        and not path.name.startswith(".")


def expected_scripts(module_dir: Path = MODULE_DIR) -> list[str]:
    """Every .py file the module ships, relative to the module folder, sorted (POSIX separators)."""
    files = [module_dir / "ContrastiveAnomaly.py"]
    for root in SCRIPT_ROOTS:
        files += [p for p in (module_dir / root).rglob("*.py") if _shipped(p)]
    return sorted({p.relative_to(module_dir).as_posix() for p in files if _shipped(p)})


def expected_resources(module_dir: Path = MODULE_DIR) -> list[str]:
    """Every non-Python file under the resource folders, relative to the module folder, sorted."""
    files = []
    for root in RESOURCE_ROOTS:
        folder = module_dir / root
        if folder.is_dir():
            files += [p for p in folder.rglob("*") if _shipped(p) and p.suffix != ".py"]
    return sorted({p.relative_to(module_dir).as_posix() for p in files})


def render_set(variable: str, files: list[str]) -> str:
    body = "".join(f"  {name}\n" for name in files)
    return f"set({variable}\n{body}  )"


def parse_set(text: str, variable: str) -> list[str]:
    """The entries of ``set(<variable> ...)`` in CMake text (one file per line or space separated)."""
    match = re.search(rf"set\(\s*{re.escape(variable)}\s+(.*?)\)", text, flags=re.S)
    if not match:
        raise ValueError(f"set({variable} ...) not found")
    return [token for token in match.group(1).split() if not token.startswith("#")]


def updated_text(text: str, module_dir: Path = MODULE_DIR) -> str:
    for variable, files in (("MODULE_PYTHON_SCRIPTS", expected_scripts(module_dir)),
                            ("MODULE_PYTHON_RESOURCES", expected_resources(module_dir))):
        text = re.sub(rf"set\(\s*{variable}\s+.*?\)", lambda _m, v=variable, f=files: render_set(v, f), text,
                      count=1, flags=re.S)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the lists are up to date")
    args = parser.parse_args(argv)
    current = CMAKE_FILE.read_text(encoding="utf-8")
    wanted = updated_text(current)
    if current == wanted:
        print(f"{CMAKE_FILE.relative_to(REPO_ROOT)} is up to date")
        return 0
    if args.check:
        print(f"{CMAKE_FILE.relative_to(REPO_ROOT)} is out of date: run python tools/update_cmake_lists.py",
              file=sys.stderr)
        return 1
    CMAKE_FILE.write_text(wanted, encoding="utf-8")
    print(f"updated {CMAKE_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

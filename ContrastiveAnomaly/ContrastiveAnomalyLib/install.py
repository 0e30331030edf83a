"""Dependency installation at first use, without ever replacing the packages Slicer itself ships.

* torch: through the PyTorch extension's ``PyTorchUtilsLogic().installTorch`` (it picks the CUDA build that matches
  the driver).
* everything else (``Resources/requirements.txt``): ``slicer.packaging.pip_ensure`` on Slicer 5.12+, which asks for
  confirmation itself; ``slicer.util.pip_install`` on 5.10 after our own confirmation dialog.
* numpy, SimpleITK, scipy, requests and torch are protected: on 5.12 they are passed as ``skip_packages`` (when the
  running Slicer supports it) and on both versions a pip constraints file pins them to the installed versions, so pip
  fails cleanly instead of swapping them.

The Slicer functions are passed in (:class:`SlicerInstallApi`), so the decisions here are testable without Slicer.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROTECTED_PACKAGES = ("numpy", "SimpleITK", "scipy", "requests", "torch")
TORCH_REQUIREMENT = ">=2.8"  # the engine's own lower bound (pyproject.toml)
REQUESTER = "ContrastiveAnomaly"


class DependencyError(Exception):
    """One-line reason why the dependencies could not be installed."""


def requirement_lines(requirements_file: Path) -> list[str]:
    """Non-empty, non-comment lines of a requirements file."""
    lines = []
    for raw in requirements_file.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def requirement_name(line: str) -> str:
    """Distribution name of a requirement line (``"monai>=1.4"`` -> ``"monai"``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    if not match:
        raise DependencyError(f"cannot read requirement {line!r}")
    return match.group(1)


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets a PEP 440 ``specifier`` such as ``">=1.4"`` (``True`` when it cannot be judged)."""
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ImportError:  # packaging ships with pip, so with every Slicer; stay permissive without it
        return True
    try:
        return Version(version) in SpecifierSet(specifier)
    except (InvalidVersion, ValueError):
        return True


def missing_requirements(lines: list[str], version_of: Callable[[str], str | None] = installed_version) -> list[str]:
    """Requirement lines whose distribution is not installed, or installed in a version the line excludes."""
    missing = []
    for line in lines:
        name = requirement_name(line)
        version = version_of(name)
        specifier = line[len(name):].split(";", 1)[0].strip().lstrip("[").split("]")[-1].strip()
        if version is None or (specifier and not satisfies(version, specifier)):
            missing.append(line)
    return missing


def protective_constraints(version_of: Callable[[str], str | None] = installed_version) -> str:
    """pip constraints pinning every installed protected package to its current version."""
    pins = []
    for name in PROTECTED_PACKAGES:
        version = version_of(name)
        if version:
            pins.append(f"{name}=={version}")
    return "\n".join(pins) + "\n"


def supported_kwargs(function: Callable[..., Any], candidates: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``candidates`` that ``function`` accepts (pip_ensure gained parameters over releases)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(candidates)
    return {key: value for key, value in candidates.items() if key in parameters}


@dataclass
class SlicerInstallApi:
    """The Slicer entry points used for installation; ``None`` where the running Slicer lacks them."""

    confirm: Callable[[str], bool]
    pip_install: Callable[[str], Any] | None = None            # slicer.util.pip_install (5.10)
    pip_ensure: Callable[..., Any] | None = None               # slicer.packaging.pip_ensure (5.12+)
    load_requirements: Callable[[Path], Any] | None = None     # slicer.packaging.load_requirements (5.12+)
    torch_logic_factory: Callable[[], Any] | None = None       # PyTorchUtils.PyTorchUtilsLogic
    testing: bool = False
    busy: Callable[[str], None] | None = None                  # shows a long step is running (status + busy bar)


def ensure_torch(api: SlicerInstallApi) -> None:
    """Install torch through the PyTorch extension if it is missing; raise :class:`DependencyError` otherwise."""
    version = installed_version("torch")
    if version is not None:
        if not satisfies(version, TORCH_REQUIREMENT):
            raise DependencyError(f"PyTorch {version} is installed but ContrastiveAnomaly needs "
                                  f"torch{TORCH_REQUIREMENT}: update it in the PyTorch Utils module, restart "
                                  "Slicer and try again")
        return
    if api.torch_logic_factory is None:
        raise DependencyError("PyTorch is missing: install the 'PyTorch' extension from the Extensions Manager, "
                              "restart Slicer and try again")
    torch_logic = api.torch_logic_factory()
    if not torch_logic.torchInstalled():
        if api.testing:
            raise DependencyError("PyTorch is not installed and installs are disabled in testing mode")
        if api.busy is not None:
            api.busy("Installing PyTorch: a download of several hundred MB, this can take minutes…")
        try:
            torch = torch_logic.installTorch(askConfirmation=True, torchVersionRequirement=TORCH_REQUIREMENT)
        except Exception as exc:  # PyTorchUtils raises whatever pip raised
            raise DependencyError(f"installing PyTorch failed ({describe_install_failure(exc)})") from exc
        if torch is None:
            raise DependencyError("PyTorch was not installed; the detection needs it")


def ensure_requirements(api: SlicerInstallApi, requirements_file: Path) -> None:
    """Install the missing packages of ``requirements_file`` without touching the protected ones."""
    lines = requirement_lines(requirements_file)
    missing = missing_requirements(lines)
    if not missing:
        return
    with tempfile.TemporaryDirectory(prefix="contrastive-anomaly-pip-") as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text(protective_constraints(), encoding="utf-8")
        if api.pip_ensure is not None and api.load_requirements is not None:
            options = supported_kwargs(api.pip_ensure, {
                "constraints": str(constraints), "skip_packages": list(PROTECTED_PACKAGES),
                "requester": REQUESTER, "skip_in_testing": True, "prompt_install": True,
            })
            api.pip_ensure(api.load_requirements(requirements_file), **options)
            return
        if api.pip_install is None:
            raise DependencyError("this Slicer cannot install Python packages; use Slicer 5.10 or newer")
        if api.testing:
            raise DependencyError(f"missing packages in testing mode: {', '.join(missing)}")
        names = ", ".join(requirement_name(line) for line in missing)
        if not api.confirm(f"ContrastiveAnomaly needs these Python packages: {names}.\n\nInstall them now? This "
                           "needs an internet connection once and may take a few minutes."):
            raise DependencyError("the required Python packages were not installed (installation declined)")
        quoted = " ".join(f'"{line}"' for line in missing)
        api.pip_install(f'{quoted} -c "{constraints}"')
    still_missing = missing_requirements(lines)
    if still_missing:
        raise DependencyError(f"installation finished but these packages are still missing: {', '.join(still_missing)}")


def ensure_dependencies(api: SlicerInstallApi, requirements_file: Path) -> None:
    """torch first (other packages such as MONAI must see the right torch), then the rest."""
    ensure_torch(api)
    ensure_requirements(api, requirements_file)


def describe_install_failure(exc: BaseException) -> str:
    """One line for the popup and status bar: what failed during installation and what to do next."""
    import subprocess

    if isinstance(exc, DependencyError):
        return str(exc)
    if isinstance(exc, subprocess.CalledProcessError):
        return (f"pip failed (exit code {exc.returncode}) while installing the Python packages: check the internet "
                "connection (or proxy) and the Python console, then press Detect again")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, RuntimeError) and ("declin" in text.lower() or "cancel" in text.lower()):
        return "the required Python packages were not installed (installation declined); press Detect to be asked again"
    return f"installing the dependencies failed ({text}); see the Python console, then press Detect to retry"

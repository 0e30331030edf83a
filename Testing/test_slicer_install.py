"""Dependency-install decisions of the Slicer module (the model registry is tested in test_model_registry.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ContrastiveAnomaly"))

from ContrastiveAnomalyLib import install  # noqa: E402


def test_requirements_never_include_protected_packages():
    requirements = Path(__file__).resolve().parent.parent / "ContrastiveAnomaly" / "Resources" / "requirements.txt"
    names = {install.requirement_name(line).lower() for line in install.requirement_lines(requirements)}
    assert names and not names & {p.lower() for p in install.PROTECTED_PACKAGES}


def test_constraints_pin_installed_protected_packages():
    versions = {"numpy": "2.1.0", "SimpleITK": "2.4.0", "requests": "2.32.0"}
    text = install.protective_constraints(versions.get)
    assert set(text.split()) == {"numpy==2.1.0", "SimpleITK==2.4.0", "requests==2.32.0"}
    assert install.missing_requirements(["numpy>=1", "monai>=1.4"], versions.get) == ["monai>=1.4"]


def test_pip_ensure_gets_only_the_arguments_it_supports(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nnot-a-real-package-xyz>=1\n")
    calls = []

    def pip_ensure(requirements, constraints=None, requester=None, skip_in_testing=True):
        calls.append((requirements, constraints, requester, skip_in_testing))

    api = install.SlicerInstallApi(confirm=lambda _: pytest.fail("pip_ensure asks by itself"),
                                   pip_ensure=pip_ensure, load_requirements=lambda path: ["parsed", str(path)])
    install.ensure_requirements(api, requirements)
    (parsed, constraints, requester, skip_in_testing), = calls
    assert parsed == ["parsed", str(requirements)] and requester == install.REQUESTER and skip_in_testing
    assert constraints.endswith("constraints.txt")


def test_slicer_510_path_asks_first_and_respects_a_no(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("not-a-real-package-xyz>=1\n")
    installs = []
    api = install.SlicerInstallApi(confirm=lambda text: False, pip_install=installs.append)
    with pytest.raises(install.DependencyError, match="declined"):
        install.ensure_requirements(api, requirements)
    assert installs == []
    api = install.SlicerInstallApi(confirm=lambda text: "not-a-real-package-xyz" in text, pip_install=installs.append)
    with pytest.raises(install.DependencyError, match="still missing"):
        install.ensure_requirements(api, requirements)
    assert len(installs) == 1 and installs[0].startswith('"not-a-real-package-xyz>=1" -c ')


def test_torch_comes_from_the_pytorch_extension(monkeypatch):
    monkeypatch.setattr(install, "installed_version", lambda name: None)
    with pytest.raises(install.DependencyError, match="PyTorch"):
        install.ensure_torch(install.SlicerInstallApi(confirm=lambda _: True))

    class FakeTorchLogic:
        asked = []

        def torchInstalled(self):
            return False

        def installTorch(self, askConfirmation, torchVersionRequirement):
            self.asked.append((askConfirmation, torchVersionRequirement))
            return object()

    install.ensure_torch(install.SlicerInstallApi(confirm=lambda _: True, torch_logic_factory=FakeTorchLogic))
    assert FakeTorchLogic.asked == [(True, install.TORCH_REQUIREMENT)]

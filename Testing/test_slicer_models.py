"""Model registry, checksum-verified model import and dependency-install decisions of the Slicer module."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ContrastiveAnomaly"))

from ContrastiveAnomalyLib import install, model_registry  # noqa: E402


def make_model_folder(folder: Path, name: str = "tiny-t1", weights: bytes = b"weights-v1",
                      manifest: bool = True) -> str:
    """A model folder with fake weights; returns the weights' sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text(json.dumps({"name": name, "contrast": "T1",
                                                    "postprocess": {"threshold": 0.173, "default_threshold": 0.1}}))
    digest = hashlib.sha256(weights).hexdigest()
    if manifest:
        config_digest = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
        (folder / "model.sha256").write_text(f"{digest}  model.safetensors\n{config_digest}  config.json\n")
    return digest


def write_registry(root: Path, entries: list[dict]) -> Path:
    path = root / "models" / "registry.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"models": entries}))
    return path


def test_registry_lists_installed_and_missing_models(tmp_path):
    digest = make_model_folder(tmp_path / "models" / "tiny")
    registry = write_registry(tmp_path, [
        {"name": "tiny-t1", "contrast": "T1", "grid": [96, 96, 50], "size_mb": 1, "sha256": digest, "path": "tiny"},
        {"name": "paper-t2", "contrast": "T2", "path": "models/paper", "url": "https://example.org/paper.zip"},
    ])
    entries = model_registry.list_models(registry, tmp_path / "user")
    assert [e.name for e in entries] == ["tiny-t1", "paper-t2"]
    assert entries[0].available and not entries[1].available
    assert "not installed" in entries[1].label
    assert model_registry.calibrated_threshold(entries[0].folder) == pytest.approx(0.173)


def test_missing_registry_is_empty_and_malformed_is_an_error(tmp_path):
    assert model_registry.load_registry(tmp_path / "nope.json") == []
    bad = tmp_path / "registry.json"
    bad.write_text("{]")
    with pytest.raises(model_registry.ModelImportError, match="malformed"):
        model_registry.load_registry(bad)


def test_import_verifies_and_copies(tmp_path):
    make_model_folder(tmp_path / "download")
    user = tmp_path / "user"
    entry = model_registry.import_model(tmp_path / "download" / "model.safetensors", user)
    assert entry.folder == user / "tiny-t1" and entry.available
    assert {p.name for p in entry.folder.iterdir()} == {"model.safetensors", "config.json", "model.sha256"}
    assert [e.name for e in model_registry.imported_models(user)] == ["tiny-t1"]
    again = model_registry.import_model(tmp_path / "download" / "model.safetensors", user)  # idempotent
    assert again.folder == entry.folder


def test_import_rejects_tampered_weights_and_leaves_nothing(tmp_path):
    make_model_folder(tmp_path / "download")
    (tmp_path / "download" / "model.safetensors").write_bytes(b"tampered")
    user = tmp_path / "user"
    with pytest.raises(model_registry.ModelImportError, match="checksum mismatch"):
        model_registry.import_model(tmp_path / "download" / "model.safetensors", user)
    assert not user.exists() or not any(user.iterdir())


def test_import_rejects_registry_mismatch(tmp_path):
    make_model_folder(tmp_path / "download")
    registry = [model_registry.ModelEntry("tiny-t1", "T1", tmp_path / "x", "0" * 64, "registry")]
    with pytest.raises(model_registry.ModelImportError, match="registry"):
        model_registry.import_model(tmp_path / "download" / "model.safetensors", tmp_path / "user", registry)


def test_import_refuses_unverifiable_weights(tmp_path):
    make_model_folder(tmp_path / "download", manifest=False)
    with pytest.raises(model_registry.ModelImportError, match="unverified"):
        model_registry.import_model(tmp_path / "download" / "model.safetensors", tmp_path / "user")
    with pytest.raises(model_registry.ModelImportError, match="model.safetensors"):
        model_registry.import_model(tmp_path / "download" / "config.json", tmp_path / "user")


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

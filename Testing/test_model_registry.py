"""The model registry shared by the CLI and the panel: built-in + user registry, trust rules, import/remove/register,
and the ``models`` command. No torch is needed for any of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contrastive_anomaly.cli.main import main
from contrastive_anomaly.errors import CheckpointError, UsageError
from contrastive_anomaly.storage import registry
from contrastive_anomaly.storage.integrity import sha256_of

REPO = Path(__file__).resolve().parent.parent


def make_model_folder(folder: Path, weights: bytes = b"weights-v1", contrast: str = "T2",
                      manifest: bool = True) -> str:
    """A model folder with fake weights (the registry never parses them); returns the weights' sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text(json.dumps({"name": "compact", "contrast": contrast,
                                                    "postprocess": {"threshold": 0.173}}))
    if manifest:
        (folder / "model.sha256").write_text("".join(f"{sha256_of(folder / n)}  {n}\n"
                                                     for n in ("model.safetensors", "config.json")))
    return sha256_of(folder / "model.safetensors")


@pytest.fixture()
def dirs(tmp_path):
    builtin = tmp_path / "builtin"
    digest = make_model_folder(builtin / "base", contrast="T1")
    (builtin / "registry.json").write_text(json.dumps({"models": [
        {"name": "base", "path": "base", "contrast": "T1", "sha256": digest, "default": True},
        {"name": "remote", "path": "remote", "contrast": "FLAIR", "url": "https://example.org/remote.zip"}]}))
    return {"builtin_dir": builtin, "user_dir": tmp_path / "user"}


def test_builtin_default_resolves_and_missing_folder_names_its_url(dirs):
    assert registry.resolve_model(None, **dirs) == dirs["builtin_dir"] / "base"
    entries = registry.list_models(**dirs)
    assert [(e.name, e.source, e.installed) for e in entries] == [("base", "built-in", True),
                                                                   ("remote", "built-in", False)]
    with pytest.raises(CheckpointError, match="example.org"):
        registry.resolve_model("remote", **dirs)
    with pytest.raises(CheckpointError, match="neither a folder nor a registered"):
        registry.resolve_model("nope", **dirs)


def test_registry_digest_must_match_the_manifest(dirs):
    rows = json.loads((dirs["builtin_dir"] / "registry.json").read_text())
    rows["models"][0]["sha256"] = "0" * 64
    (dirs["builtin_dir"] / "registry.json").write_text(json.dumps(rows))
    with pytest.raises(CheckpointError, match="not the model the registry names"):
        registry.resolve_model("base", **dirs)
    with pytest.raises(CheckpointError, match="not the model the registry names"):
        registry.resolve_model("base", verify=False, **dirs)


def test_a_folder_without_manifest_is_refused_even_with_a_registry_digest(dirs, tmp_path):
    (dirs["builtin_dir"] / "base" / "model.sha256").unlink()
    with pytest.raises(CheckpointError, match="model.sha256"):
        registry.resolve_model("base", **dirs)
    bare = tmp_path / "bare"
    make_model_folder(bare, manifest=False)
    with pytest.raises(CheckpointError, match="refusing unverified"):
        registry.resolve_model(bare, **dirs)
    with pytest.raises(CheckpointError, match="refusing unverified"):
        registry.import_model(bare, **dirs)
    assert not dirs["user_dir"].exists() or not any(dirs["user_dir"].iterdir())


def test_import_copies_verifies_lists_and_removes(dirs, tmp_path):
    source = tmp_path / "download" / "my-t2"
    digest = make_model_folder(source)
    (source / "MODEL_CARD.md").write_text("# my-t2\ntrained on our controls\n")
    entry = registry.import_model(source / "model.safetensors", **dirs)
    assert entry.folder == dirs["user_dir"] / "my-t2" and entry.installed and entry.sha256 == digest
    assert entry.contrast == "T2" and entry.threshold == pytest.approx(0.173)
    assert entry.card is not None and "our controls" in registry.model_card_text(entry)
    assert registry.import_model(source, **dirs) == entry  # the same model again: no-op
    listed = {e.name: e for e in registry.list_models(**dirs)}
    assert listed["my-t2"].source == "user" and registry.resolve_model("my-t2", **dirs) == entry.folder
    removed = registry.remove_model("my-t2", **dirs)
    assert removed.name == "my-t2" and not entry.folder.exists()
    assert "my-t2" not in {e.name for e in registry.list_models(**dirs)}
    assert not [p for p in dirs["user_dir"].iterdir() if p.name.startswith(".")], "no staging folder left"


def test_import_refuses_tampered_files_and_taken_names(dirs, tmp_path):
    source = tmp_path / "m"
    make_model_folder(source)
    (source / "model.safetensors").write_bytes(b"weights-v2")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        registry.import_model(source, **dirs)
    assert not (dirs["user_dir"] / "m").exists()
    make_model_folder(source)
    registry.import_model(source, **dirs)
    other = tmp_path / "other" / "m"
    make_model_folder(other, weights=b"different")
    with pytest.raises(UsageError, match="already registered"):
        registry.import_model(other, **dirs)
    with pytest.raises(UsageError, match="built-in"):
        registry.import_model(other, name="base", **dirs)
    with pytest.raises(UsageError, match="not allowed"):
        registry.import_model(other, name="../evil", **dirs)
    with pytest.raises(UsageError, match="built-in"):
        registry.remove_model("base", **dirs)


def test_register_in_place_keeps_files_on_remove(dirs, tmp_path):
    fitted = tmp_path / "runs" / "fit-out"
    make_model_folder(fitted, contrast="FLAIR")
    entry = registry.register_model(fitted, name="site-flair", **dirs)
    assert entry.folder == fitted.resolve() and entry.contrast == "FLAIR"
    assert registry.resolve_model("site-flair", **dirs) == fitted.resolve()
    registry.remove_model("site-flair", **dirs)
    assert (fitted / "model.safetensors").is_file(), "a model registered in place keeps its files"


def test_one_variable_one_meaning(monkeypatch, tmp_path):
    monkeypatch.setenv(registry.USER_MODELS_ENV, str(tmp_path / "u"))
    assert registry.user_models_dir() == tmp_path / "u"
    monkeypatch.delenv(registry.USER_MODELS_ENV)
    assert registry.user_models_dir() == Path.home() / ".contrastive_anomaly" / "models"


def test_shipped_default_lives_inside_the_package():
    folder = registry.resolve_model(None)
    assert folder.parent == registry.BUILTIN_MODELS_DIR
    assert REPO / "ContrastiveAnomaly" / "contrastive_anomaly" / "resources" / "models" in folder.parents


def test_models_command_list_show_import_remove(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(registry.USER_MODELS_ENV, str(tmp_path / "user"))
    source = tmp_path / "mine"
    make_model_folder(source)
    assert main(["models", "import", str(source), "--name", "mine-t2"]) == 0
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert {row["name"]: row["contrast"] for row in listed}["mine-t2"] == "T2"
    assert main(["models", "show", "mine-t2"]) == 0
    assert "checksums verified" in capsys.readouterr().out
    (tmp_path / "user" / "mine-t2" / "config.json").write_text("{}")
    assert main(["models", "show", "mine-t2"]) == 3  # CheckpointError: tampered after import
    assert "checksum mismatch" in capsys.readouterr().err
    assert main(["models", "remove", "mine-t2"]) == 0
    assert main(["models", "remove", "mine-t2"]) == 2


def test_registry_and_models_command_do_not_import_torch(tmp_path):
    code = ("import sys; from contrastive_anomaly.storage import registry; registry.resolve_model(None); "
            "from contrastive_anomaly.cli.main import main; main(['models', 'list']); "
            "assert 'torch' not in sys.modules and 'monai' not in sys.modules, 'torch imported'")
    env = {**os.environ, registry.USER_MODELS_ENV: str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, encoding="utf-8")
    assert done.returncode == 0, done.stderr

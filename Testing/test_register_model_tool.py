"""tools/register_model.py: the built-in registry row of a model folder (the one 'models list' and detect read)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from contrastive_anomaly.storage.checkpoint import WEIGHTS_FILE, sha256_of

TOOL = Path(__file__).resolve().parents[1] / "tools" / "register_model.py"


def _register(folder: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, str(TOOL), str(folder), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_rows_carry_the_checksum_keep_their_description_and_one_default(trained_tiny_model, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(trained_tiny_model, first)
    shutil.copytree(trained_tiny_model, second)
    _register(first, "--name", "first", "--default", "--description", "the first model")
    _register(second, "--name", "second", "--default")
    _register(first, "--name", "first")  # re-registered after retraining, with no description given
    rows = {row["name"]: row for row in json.loads((tmp_path / "registry.json").read_text())["models"]}
    assert rows["first"]["description"] == "the first model"
    assert rows["first"]["sha256"] == sha256_of(first / WEIGHTS_FILE) and rows["first"]["path"] == "first"
    assert [name for name, row in rows.items() if row["default"]] == ["second"]

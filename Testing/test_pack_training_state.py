"""A checkpoint packed for the repository (optimiser moments in bf16) resumes the run with the same weights."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from contrastive_anomaly.cli.main import main
from contrastive_anomaly.storage.checkpoint import OPTIMIZER_FILE, load_model_folder
from engine_fixtures import small_config

TOOL = Path(__file__).resolve().parents[1] / "tools" / "pack_training_state.py"
# bf16 moments change each Adam step by a few per cent of its size (the ratio m / sqrt(v) of two rounded numbers);
# a packed resume must stay within half a learning-rate step per weight, per resumed step, of the straight run
PACKED_RESUME_STEP_FRACTION = 0.5


def test_packed_state_is_smaller_and_resumes(tmp_path):
    cfg = small_config()
    cfg.diffusion_training.steps = 6
    cfg.diffusion_training.validate_every = 3
    config = tmp_path / "config.json"
    cfg.save(config)
    common = ["train", "--config", str(config), "--phantoms", "4", "--progress", "none"]
    assert main([*common, "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--out", str(tmp_path / "first"), "--steps", "3"]) == 0
    packed = tmp_path / "packed"
    subprocess.run([sys.executable, str(TOOL), str(tmp_path / "first" / "last"), str(packed)], check=True)
    moments = load_file(str(packed / OPTIMIZER_FILE))
    assert any(t.dtype == torch.bfloat16 for t in moments.values())
    original = (tmp_path / "first" / "last" / OPTIMIZER_FILE).stat().st_size
    assert (packed / OPTIMIZER_FILE).stat().st_size < 0.6 * original
    resumed = tmp_path / "resumed"
    shutil.copytree(packed, resumed / "last")
    assert main([*common, "--out", str(resumed), "--resume"]) == 0
    straight = load_model_folder(tmp_path / "straight" / "last")[1]
    after = load_model_folder(resumed / "last")[1]
    difference = max(float((straight[k] - after[k]).abs().max()) for k in straight if straight[k].is_floating_point())
    resumed_steps = cfg.diffusion_training.steps - 3
    assert difference < PACKED_RESUME_STEP_FRACTION * cfg.diffusion_training.learning_rate * resumed_steps


def test_a_folder_without_trainer_state_is_refused(tmp_path):
    completed = subprocess.run([sys.executable, str(TOOL), str(tmp_path), str(tmp_path / "out")],
                               capture_output=True, text=True)
    assert completed.returncode != 0 and "not a resumable checkpoint" in completed.stderr

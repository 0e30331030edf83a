"""Model folders: round trip, checksum tamper detection, config/weight mismatch, optimizer resume state."""

from __future__ import annotations

import json

import pytest
import torch

from contrastive_anomaly.errors import CheckpointError
from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.storage.checkpoint import (
    CHECKSUM_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_model_folder,
    load_state_strict,
    load_trainer_state,
    save_model,
    save_trainer_state,
    verify_model_folder,
)
from engine_fixtures import small_config


@pytest.fixture()
def saved(tmp_path):
    cfg = small_config()
    model = AnomalyDiffusionModel(cfg)
    folder = save_model(tmp_path / "m", model.state_dict(), cfg, kind="diffusion", metadata={"step": 3})
    return folder, model, cfg


def test_round_trip_restores_identical_weights_and_config(saved):
    folder, model, cfg = saved
    loaded_cfg, state, meta = load_model_folder(folder, expected_kind="diffusion")
    assert loaded_cfg.unet == cfg.unet and loaded_cfg.grid == cfg.grid
    assert meta["step"] == 3 and meta["kind"] == "diffusion"
    fresh = AnomalyDiffusionModel(loaded_cfg)
    load_state_strict(fresh, state, folder)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, fresh.state_dict()[name]), name


def test_half_precision_weights_load_as_float32(tmp_path):
    cfg = small_config()
    model = AnomalyDiffusionModel(cfg)
    folder = save_model(tmp_path / "h", model.state_dict(), cfg, kind="diffusion", half=True)
    _, state, meta = load_model_folder(folder)
    assert meta["dtype"] == "float16"
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())
    assert (folder / WEIGHTS_FILE).stat().st_size < 0.6 * sum(t.numel() * 4 for t in state.values())


@pytest.mark.parametrize("victim", [WEIGHTS_FILE, CONFIG_FILE])
def test_tampered_file_is_refused(saved, victim):
    folder, _, _ = saved
    data = bytearray((folder / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / victim).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        verify_model_folder(folder)


def test_missing_manifest_and_missing_folder_are_refused(saved, tmp_path):
    folder, _, _ = saved
    (folder / CHECKSUM_FILE).unlink()
    with pytest.raises(CheckpointError, match="no model.sha256"):
        load_model_folder(folder)
    with pytest.raises(CheckpointError, match="not found"):
        load_model_folder(tmp_path / "nowhere")


def test_weights_that_do_not_match_config_give_one_line(saved):
    folder, _, cfg = saved
    data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    data["unet"]["channels"] = [8, 16, 16]
    data["unet"]["norm_num_groups"] = 4
    state_cfg = type(cfg).from_dict({k: v for k, v in data.items() if k != "checkpoint"})
    _, state, _ = load_model_folder(folder)
    with pytest.raises(CheckpointError, match="do not match their config.json") as info:
        load_state_strict(AnomalyDiffusionModel(state_cfg), state, folder)
    assert "\n" not in str(info.value)


def test_wrong_kind_is_refused(saved):
    folder, _, _ = saved
    with pytest.raises(CheckpointError, match="expected 'encoder'"):
        load_model_folder(folder, expected_kind="encoder")


def test_optimizer_state_round_trip(tmp_path):
    layer = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    layer(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    save_trainer_state(tmp_path, optimizer, {"step": 7})
    other = torch.optim.AdamW(torch.nn.Linear(4, 2).parameters(), lr=1e-3)
    state = load_trainer_state(tmp_path, other)
    assert state["step"] == 7
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(optimizer.state_dict()["state"][0][key], other.state_dict()["state"][0][key])

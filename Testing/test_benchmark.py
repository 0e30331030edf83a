"""The synthetic-lesion benchmark: z-score baseline on a hand-made case, and a tiny end-to-end run on phantoms."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from contrastive_anomaly.config import BenchmarkConfig, PostprocessConfig
from contrastive_anomaly.data.volumes import Subject
from contrastive_anomaly.errors import InputError
from contrastive_anomaly.jobs.lesion_benchmark.baselines import ZScoreBaseline
from contrastive_anomaly.jobs.lesion_benchmark.protocol import Fold, check_folds, fold_cases
from contrastive_anomaly.jobs.lesion_benchmark.runner import BenchmarkRequest, run_benchmark
from engine_fixtures import small_config, small_subjects

SHAPE_KJI = (8, 12, 12)


def _flat_subject(name: str, value: float) -> Subject:
    return Subject(name=name, image=np.full(SHAPE_KJI, value, np.float32), brain_mask=np.ones(SHAPE_KJI, np.uint8))


def test_zscore_map_matches_hand_computation():
    settings = BenchmarkConfig(zscore_min_std=0.05, zscore_map_divisor=2.0)
    # Two training subjects at 0.4 and 0.6: mean 0.5, std 0.1 everywhere.
    baseline = ZScoreBaseline.fit([_flat_subject("a", 0.4), _flat_subject("b", 0.6)], settings)
    assert np.allclose(baseline.mean_kji, 0.5) and np.allclose(baseline.std_kji, 0.1)
    image = np.full(SHAPE_KJI, 0.5, np.float32)
    image[4, 6, 6] = 0.9  # z = 4 -> map 2
    image[2, 3, 3] = 0.3  # z = -2 -> map 1
    anomaly = baseline.anomaly_map(image)
    assert anomaly[4, 6, 6] == pytest.approx(2.0, abs=1e-5)
    assert anomaly[2, 3, 3] == pytest.approx(1.0, abs=1e-5)
    assert anomaly[0, 0, 0] == pytest.approx(0.0, abs=1e-6)
    # Identical training subjects: the std floor keeps the map finite.
    floored = ZScoreBaseline.fit([_flat_subject("a", 0.5), _flat_subject("b", 0.5)], settings)
    assert floored.anomaly_map(image)[4, 6, 6] == pytest.approx(0.4 / 0.05 / 2.0, rel=1e-5)


def test_zscore_scorer_flags_a_bright_block():
    postprocess = PostprocessConfig(erosion_iterations=0, median_size=1, max_removed_component_voxels=0)
    rng = np.random.default_rng(0)
    train = [Subject(name=f"t{i}", image=(0.5 + 0.05 * rng.standard_normal(SHAPE_KJI)).astype(np.float32),
                     brain_mask=np.ones(SHAPE_KJI, np.uint8)) for i in range(6)]
    baseline = ZScoreBaseline.fit(train, BenchmarkConfig())
    image = np.full(SHAPE_KJI, 0.5, np.float32)
    image[3:5, 4:7, 4:7] = 1.0
    score = baseline.scorer(postprocess)(Subject(name="x", image=image, brain_mask=np.ones(SHAPE_KJI, np.uint8)))
    inside, outside = score.filtered[3:5, 4:7, 4:7], score.filtered.copy()
    outside[3:5, 4:7, 4:7] = 0
    assert inside.min() > outside.max()
    assert np.array_equal(score.reconstruction, baseline.mean_kji)


def _folds() -> list[Fold]:
    train = small_subjects(3, first_seed=0)
    held_out = small_subjects(2, first_seed=50)
    return [Fold(name="rot0", train=train, val=held_out[0], test=held_out[1]),
            Fold(name="rot1", train=train, val=held_out[1], test=held_out[0])]


def test_lesion_seeds_are_disjoint_and_leaks_are_refused():
    fold = _folds()[0]
    settings = BenchmarkConfig(lesion_kinds=("ms", "control_intensity"), lesions_per_kind=2)
    val, test = fold_cases(fold, settings, "T1")
    val_seeds = {c.metadata["lesion"]["seed"] for cases in val.values() for c in cases}
    test_seeds = {c.metadata["lesion"]["seed"] for cases in test.values() for c in cases}
    assert len(val_seeds) == 4 and len(test_seeds) == 4 and not val_seeds & test_seeds
    assert all(c.label.any() for cases in test.values() for c in cases)
    leaky = Fold(name="leak", train=[*fold.train, Subject(name=f"{fold.test.name}-aug000", image=fold.test.image,
                                                            brain_mask=fold.test.brain_mask)],
                 val=fold.val, test=fold.test)
    with pytest.raises(InputError, match="held-out"):
        check_folds([leaky])


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(tmp_path):
    torch.set_num_threads(1)
    settings = BenchmarkConfig(lesion_kinds=("ms", "control_intensity"), lesions_per_kind=1,
                               montage_kind="control_intensity")
    request = BenchmarkRequest(methods=("ddpm", "zscore"), base_cfg=small_config(), out_dir=tmp_path / "bench",
                               settings=settings, device="cpu", command="pytest")
    outputs = run_benchmark(_folds(), request)
    out = tmp_path / "bench"
    for name in ("results.csv", "results.md", "summary.png", "montage_ddpm.png", "montage_zscore.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert set(outputs) == {"results", "summary", "montage_ddpm", "montage_zscore"}
    assert (tmp_path / "bench" / "models" / "ddpm" / "model" / "config.json").is_file()
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    # 2 methods x 2 kinds x (2 folds + mean)
    assert len(rows) == 12
    assert {(r["method"], r["fold"], r["lesion_kind"]) for r in rows} == {
        (m, f, k) for m in ("ddpm", "zscore") for f in ("rot0", "rot1", "mean") for k in ("ms", "control_intensity")}
    for column in ("dice_rule_a", "dice_rule_b", "auprc", "auroc", "healthy_fp_ml_rule_a", "healthy_fp_ml_rule_b",
                   "seconds_per_volume", "detect_0-0.1mL", "detect_>=10mL"):
        assert column in rows[0], column
    for row in rows:
        assert 0.0 <= float(row["dice_rule_a"]) <= 1.0 and float(row["seconds_per_volume"]) > 0
        assert float(row["healthy_fp_ml_rule_b"]) >= 0
    for method in ("ddpm", "zscore"):
        fold_dice = [float(r["dice_rule_a"]) for r in rows if r["method"] == method and r["lesion_kind"] == "ms"
                     and r["fold"] != "mean"]
        mean = next(float(r["dice_rule_a"]) for r in rows if r["method"] == method and r["lesion_kind"] == "ms"
                    and r["fold"] == "mean")
        assert mean == pytest.approx(np.mean(fold_dice))
    markdown = (out / "results.md").read_text(encoding="utf-8")
    assert "proof of method" in markdown and markdown.count("| ddpm | rot0 |") == 2
    # A second run reuses the trained model instead of training again.
    stamp = (tmp_path / "bench" / "models" / "ddpm" / "model" / "model.safetensors").stat().st_mtime_ns
    run_benchmark(_folds(), request)
    assert (tmp_path / "bench" / "models" / "ddpm" / "model" / "model.safetensors").stat().st_mtime_ns == stamp


def test_unknown_method_is_refused(tmp_path):
    request = BenchmarkRequest(methods=("magic",), base_cfg=small_config(), out_dir=tmp_path / "b")
    with pytest.raises(InputError, match="unknown benchmark methods"):
        run_benchmark(_folds(), request)
    assert not (tmp_path / "b").exists()


def test_benchmark_command_parses_and_refuses_a_missing_corpus(tmp_path):
    import argparse

    from contrastive_anomaly.errors import ContrastiveAnomalyError
    from contrastive_anomaly.jobs.lesion_benchmark.command import add_benchmark_parser, run_benchmark_command
    from contrastive_anomaly.runtime.progress import ProgressReporter

    parser = argparse.ArgumentParser()
    add_benchmark_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["benchmark", "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                              "--kinds", "tumour,stroke", "--subjects", "robex_subject,colin27",
                              "--lesions-per-kind", "1"])
    assert args.kinds == "tumour,stroke" and args.lesions_per_kind == 1 and args.model is None
    with pytest.raises(ContrastiveAnomalyError, match="manifest"):
        run_benchmark_command(args, ProgressReporter("none"))
    assert not (tmp_path / "o").exists()
    bad = parser.parse_args(["benchmark", "--corpus", str(tmp_path), "--out", str(tmp_path / "o"),
                             "--kinds", "tumor"])
    with pytest.raises(ContrastiveAnomalyError, match="unknown lesion kinds"):
        run_benchmark_command(bad, ProgressReporter("none"))

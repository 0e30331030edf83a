"""Synthetic lesions: exact masks, reproducibility per seed, sizes within the docs/DATA_PIPELINE.md §4 ranges."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.data.lesions import LESION_KINDS, plant_lesion, save_case
from contrastive_anomaly.data.lesions.common import LesionConfig
from engine_fixtures import phantom_arrays

CFG = LesionConfig()
INTENSITY_KINDS = ("ms", "stroke", "control_intensity")


@pytest.fixture(scope="module")
def phantom():
    return phantom_arrays((96, 96, 50), seed=0)


@pytest.mark.parametrize("kind", INTENSITY_KINDS)
@pytest.mark.parametrize("contrast", ["T1", "T2"])
def test_intensity_lesion_mask_is_exactly_the_changed_voxels(phantom, kind, contrast):
    image, brain, tissue = phantom
    case = plant_lesion(image, brain, kind, contrast, seed=11, tissue=tissue)
    assert case.mask_kji.dtype == np.uint8 and case.mask_kji.any()
    assert np.array_equal(case.background_kji, image)
    assert np.array_equal(case.image_kji != image, case.mask_kji == 1)
    assert not np.any(case.mask_kji[brain == 0])
    assert case.image_kji.min() >= 0.0 and case.image_kji.max() <= 1.0
    change = float((case.image_kji - image)[case.mask_kji == 1].mean())
    if kind != "control_intensity":
        assert (change < 0) if contrast == "T1" else (change > 0), change
    assert case.params["seed"] == 11 and case.params["kind"] == kind and case.params["contrast"] == contrast
    assert case.params["mask_voxels"] == int(case.mask_kji.sum())


def test_tumour_mask_matches_paint_on_the_displaced_image(phantom):
    image, brain, tissue = phantom
    case = plant_lesion(image, brain, "tumour", "T2", seed=5, tissue=tissue)
    gen = case.params["generator"]
    assert np.array_equal(case.image_kji != case.background_kji, case.mask_kji == 1)
    outside = case.mask_kji == 0
    assert np.any(case.background_kji[outside] != image[outside]), "mass effect must move tissue outside the mask"
    assert set(np.unique(case.zones_kji)) == {0, 1, 2, 3}
    assert np.array_equal(case.zones_kji > 0, case.mask_kji == 1)
    assert CFG.tumour_volume_ml[0] <= gen["volume_ml"] <= CFG.tumour_volume_ml[1]
    assert CFG.tumour_rim_mm[0] <= gen["rim_mm"] <= CFG.tumour_rim_mm[1]
    assert CFG.tumour_oedema_mm[0] <= gen["oedema_mm"] <= CFG.tumour_oedema_mm[1]
    assert CFG.tumour_mass_effect_mm[0] <= gen["mass_effect_mm"] <= CFG.tumour_mass_effect_mm[1]
    # ventricles are pushed away from the tumour centre
    centre = np.array(gen["centre_kji"], dtype=float)[:, None]

    def mean_csf_distance(csf_map: np.ndarray) -> float:
        index = np.array(np.nonzero(csf_map > 0.5), dtype=float)
        distance = np.sqrt(((index - centre) ** 2).sum(0)) * 2.0
        return float(distance[distance < 40].mean())

    assert mean_csf_distance(case.tissue[0]) > mean_csf_distance(tissue[0])
    core = case.zones_kji == 1
    assert case.image_kji[core].mean() > case.image_kji[case.zones_kji == 3].mean()


def test_shape_control_changes_only_inside_its_mask(phantom):
    image, brain, tissue = phantom
    case = plant_lesion(image, brain, "control_shape", "T1", seed=2, tissue=tissue)
    changed = case.image_kji != image
    assert changed.any() and not np.any(changed & (case.mask_kji == 0))
    assert case.mask_kji.sum() <= brain.sum()
    gen = case.params["generator"]
    assert CFG.control_shape_radius_mm[0] <= gen["radius_mm"] <= CFG.control_shape_radius_mm[1]


@pytest.mark.parametrize("kind", LESION_KINDS)
def test_reproducible_per_seed_and_seed_dependent(phantom, kind):
    image, brain, tissue = phantom
    a = plant_lesion(image, brain, kind, "FLAIR", seed=21, tissue=tissue)
    b = plant_lesion(image, brain, kind, "FLAIR", seed=21, tissue=tissue)
    c = plant_lesion(image, brain, kind, "FLAIR", seed=22, tissue=tissue)
    assert np.array_equal(a.image_kji, b.image_kji) and np.array_equal(a.mask_kji, b.mask_kji)
    assert json.dumps(a.params, sort_keys=True) == json.dumps(b.params, sort_keys=True)
    assert not np.array_equal(a.mask_kji, c.mask_kji)


def test_ms_counts_volumes_and_placement(phantom):
    image, brain, tissue = phantom
    locations = []
    for seed in range(3):
        gen = plant_lesion(image, brain, "ms", "T2", seed=seed, tissue=tissue).params["generator"]
        assert CFG.ms_count[0] <= gen["count"] <= CFG.ms_count[1] and len(gen["lesions"]) == gen["count"]
        for lesion in gen["lesions"]:
            assert CFG.ms_volume_ml[0] <= lesion["volume_ml"] <= CFG.ms_volume_ml[1]
            ratio = lesion["semi_axes_mm"][2] / lesion["semi_axes_mm"][0]
            assert CFG.ms_axis_ratio[0] - 1e-6 <= ratio <= CFG.ms_axis_ratio[1] + 1e-6
            assert CFG.ms_change_hyper[0] <= lesion["relative_change"] <= CFG.ms_change_hyper[1]
            locations.append(lesion["location"])
    assert "periventricular" in locations and "deep_wm" in locations
    assert not any(loc.endswith("fallback") for loc in locations)


def test_stroke_volume_and_single_hemisphere(phantom):
    image, brain, tissue = phantom
    for seed in (0, 1):
        case = plant_lesion(image, brain, "stroke", "T2", seed=seed, tissue=tissue)
        gen = case.params["generator"]
        assert CFG.stroke_volume_ml[0] <= gen["target_volume_ml"] <= CFG.stroke_volume_ml[1]
        assert abs(case.params["mask_volume_ml"] - gen["target_volume_ml"]) < 0.15 * gen["target_volume_ml"] + 1
        cols = np.nonzero(case.mask_kji)[2]
        midline = (brain.shape[2] - 1) / 2
        assert np.all(cols > midline) or np.all(cols < midline)


def test_intensity_control_sweep_option(phantom):
    image, brain, tissue = phantom
    case = plant_lesion(image, brain, "control_intensity", "T2", seed=4, tissue=tissue,
                        options={"intensity_change": 0.25})
    mask = case.mask_kji == 1
    assert case.params["generator"]["relative_change"] == 0.25
    inner = case.image_kji[mask] / image[mask] - 1.0
    assert inner.max() == pytest.approx(0.25, abs=1e-5) and inner.min() > 0


def test_any_grid_and_gmm_tissue(phantom):
    image, brain, _ = phantom_arrays((64, 64, 24), seed=3)
    case = plant_lesion(image, brain, "ms", "T1", seed=9, spacing_mm=(3.0, 1.5, 1.5))
    assert case.params["tissue_source"] == "gmm" and case.params["spacing_mm_kji"] == [3.0, 1.5, 1.5]
    assert np.array_equal(case.image_kji != image, case.mask_kji == 1)
    assert case.params["mask_volume_ml"] == pytest.approx(case.mask_kji.sum() * 3.0 * 1.5 * 1.5 / 1000)


def test_save_case_writes_image_mask_and_params(tmp_path, phantom):
    image, brain, tissue = phantom
    case = plant_lesion(image, brain, "ms", "T2", seed=13, tissue=tissue)
    reference = sitk.GetImageFromArray(image)
    reference.SetSpacing((2.0, 2.0, 2.0))
    reference.SetOrigin((-90.0, -126.0, -72.0))
    paths = save_case(case, tmp_path / "cases", reference, name="ms_13")
    saved = sitk.ReadImage(str(paths["mask"]))
    assert saved.GetOrigin() == (-90.0, -126.0, -72.0)
    assert np.array_equal(sitk.GetArrayFromImage(saved), case.mask_kji)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(paths["image"]))), case.image_kji)
    params = json.loads(paths["params"].read_text(encoding="utf-8"))
    assert params["seed"] == 13 and params["kind"] == "ms" and params["generator"]["count"] >= 5
    plain = save_case(case, tmp_path / "plain")
    assert sitk.ReadImage(str(plain["image"])).GetSpacing() == (2.0, 2.0, 2.0)


def test_bad_arguments(phantom):
    image, brain, tissue = phantom
    with pytest.raises(ValueError, match="unknown lesion kind"):
        plant_lesion(image, brain, "cyst", "T2", seed=0, tissue=tissue)
    with pytest.raises(ValueError, match="unknown contrast"):
        plant_lesion(image, brain, "ms", "CT", seed=0, tissue=tissue)
    with pytest.raises(ValueError, match="empty"):
        plant_lesion(image, np.zeros_like(brain), "ms", "T2", seed=0, tissue=tissue)


def test_intensity_control_stays_visible_on_bright_tissue():
    # WM at 0.9: brightening by up to 60 % used to be clipped at 1.0 (a change of at most 0.1, i.e. nearly
    # invisible); the control now darkens instead, so the painted change is the sampled fraction.
    image, brain, tissue = phantom_arrays((96, 96, 50), seed=0)
    image = np.where(brain > 0, np.clip(image * 0.9 / np.median(image[tissue[2] > 0.9]), 0, 1), 0).astype(np.float32)
    for seed in range(4):
        case = plant_lesion(image, brain, "control_intensity", "T1", seed=seed, tissue=tissue)
        params = case.params["generator"]
        inner = case.mask_kji == 1
        relative = float(np.median(case.image_kji[inner] / np.maximum(image[inner], 1e-6) - 1.0))
        full = (case.image_kji - image)[inner]
        weight_one = np.abs(full) >= 0.9 * abs(params["relative_change"]) * image[inner]
        assert weight_one.mean() > 0.2, "the sphere core gets the full change"
        assert abs(relative) >= 0.5 * abs(params["relative_change"]) >= 0.05
        if np.median(image[inner]) * (1 + abs(params["relative_change"])) > 1.0:
            assert params["direction"] == "darker" and relative < 0


def test_tumour_core_mask_excludes_the_oedema(phantom):
    image, brain, tissue = phantom
    case = plant_lesion(image, brain, "tumour", "T1", seed=5, tissue=tissue)
    whole, core = case.mask_kji > 0, case.core_mask_kji > 0
    assert core.any() and np.all(whole[core]), "the core lies inside the whole lesion"
    assert np.array_equal(core, whole & np.isin(case.zones_kji, (1, 2)))
    assert np.any(whole & ~core) and not np.any(core & (case.zones_kji == 3))
    stroke = plant_lesion(image, brain, "stroke", "T1", seed=5, tissue=tissue)
    assert np.array_equal(stroke.core_mask_kji, stroke.mask_kji)

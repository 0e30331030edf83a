"""Synthetic T2/PD/FLAIR from tissue maps: contrast ordering, labels everywhere, GMM tissue maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.data.augment import RealismAugmentation
from contrastive_anomaly.data.synth_contrast import (
    class_means,
    save_synthetic,
    synthesize_contrast,
    tissue_maps_from_gm_wm,
    tissue_maps_from_image,
)
from engine_fixtures import phantom_arrays

SHAPE_IJK = (40, 40, 16)
SHAPE = SHAPE_IJK[::-1]  # KJI


@pytest.fixture(scope="module")
def phantom():
    return phantom_arrays(SHAPE_IJK, seed=1)


@pytest.mark.parametrize(("contrast", "order"), [("T2", ("WM", "GM", "CSF")), ("PD", ("WM", "GM", "CSF")),
                                                 ("FLAIR", ("CSF", "WM", "GM")), ("T1", ("CSF", "GM", "WM"))])
def test_class_ordering_and_label(phantom, contrast, order):
    _, brain, tissue = phantom
    result = synthesize_contrast(tissue, contrast, seed=4, brain_mask_kji=brain)
    assert result.label == f"synthetic-{contrast}"
    assert result.metadata()["synthetic"] is True and result.metadata()["label"] == result.label
    assert result.image_kji.min() >= 0 and result.image_kji.max() <= 1 and np.all(result.image_kji[brain == 0] == 0)
    means = class_means(result.image_kji, tissue, threshold=0.6)
    assert sorted(means, key=means.get) == list(order), means


def test_reproducible_and_seed_dependent(phantom):
    _, brain, tissue = phantom
    a = synthesize_contrast(tissue, "T2", seed=1, brain_mask_kji=brain)
    b = synthesize_contrast(tissue, "T2", seed=1, brain_mask_kji=brain)
    c = synthesize_contrast(tissue, "T2", seed=2, brain_mask_kji=brain)
    assert np.array_equal(a.image_kji, b.image_kji) and a.params == b.params
    assert not np.array_equal(a.image_kji, c.image_kji)
    assert 2.5 <= a.params["class_means_rel_wm"]["CSF"] <= 3.5
    assert 1.3 <= a.params["class_means_rel_wm"]["GM"] <= 1.6
    with_aug = synthesize_contrast(tissue, "T2", seed=1, brain_mask_kji=brain, augmentation=RealismAugmentation())
    assert with_aug.params["intensity_augmentation"] and not np.array_equal(with_aug.image_kji, a.image_kji)
    with pytest.raises(ValueError, match="unknown contrast"):
        synthesize_contrast(tissue, "CT", seed=0)


def test_label_is_written_into_saved_files(tmp_path, phantom):
    _, brain, tissue = phantom
    result = synthesize_contrast(tissue, "FLAIR", seed=0, brain_mask_kji=brain)
    reference = sitk.GetImageFromArray(np.zeros(SHAPE, dtype=np.float32))
    reference.SetSpacing((2.0, 2.0, 2.0))
    path = save_synthetic(result, tmp_path / "flair.nii.gz", reference)
    assert sitk.ReadImage(str(path)).GetMetaData("descrip") == "synthetic-FLAIR"
    sidecar = json.loads((tmp_path / "flair.json").read_text(encoding="utf-8"))
    assert sidecar["label"] == "synthetic-FLAIR" and sidecar["seed"] == 0


def test_gmm_tissue_maps_recover_the_phantom_classes(phantom):
    image, brain, tissue = phantom
    estimated = tissue_maps_from_image(image, brain, "T1", seed=0)
    truth = tissue.argmax(0)[brain > 0]
    guess = estimated.argmax(0)[brain > 0]
    assert (truth == guess).mean() > 0.85
    t2 = synthesize_contrast(tissue, "T2", seed=3, brain_mask_kji=brain).image_kji
    from_t2 = tissue_maps_from_image(t2, brain, "T2", seed=0)
    assert (from_t2.argmax(0)[brain > 0] == truth).mean() > 0.8


def test_csf_from_gm_wm_maps():
    brain = np.ones((2, 2, 2), dtype=np.uint8)
    gm = np.full((2, 2, 2), 0.3, dtype=np.float32)
    wm = np.full((2, 2, 2), 0.9, dtype=np.float32)
    wm[0] = 0.5
    maps = tissue_maps_from_gm_wm(gm, wm, brain)
    assert np.allclose(maps[0][0], 0.2) and np.allclose(maps[0][1], 0.0)

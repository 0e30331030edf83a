"""Subject splits (never by slice) and the axial slice dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastive_anomaly.data.slices import SliceDataset
from contrastive_anomaly.data.splits import LINKED_CORPUS_SUBJECTS, check_disjoint, corpus_roles, split_by_subject


def test_fraction_split_is_disjoint_complete_and_seeded():
    subjects = [f"s{i:02d}" for i in range(20)]
    slices = [s for s in subjects for _ in range(5)]  # one id per slice: duplicates must not leak across sides
    train, val, test = split_by_subject(slices, val_fraction=0.2, test_fraction=0.1, seed=1)
    assert (len(train), len(val), len(test)) == (14, 4, 2)
    assert sorted(train + val + test) == subjects
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert (train, val, test) == split_by_subject(slices, val_fraction=0.2, test_fraction=0.1, seed=1)
    assert (train, val, test) != split_by_subject(slices, val_fraction=0.2, test_fraction=0.1, seed=2)


def test_linked_subjects_stay_together():
    subjects = ["a", "b", "c", "d", "e", "f"]
    for seed in range(20):
        train, val, test = split_by_subject(subjects, val_fraction=0.4, test_fraction=0.2, linked=[("a", "b")],
                                            seed=seed)
        side = [name for name, part in (("train", train), ("val", val), ("test", test)) if "a" in part]
        assert ("b" in {"train": train, "val": val, "test": test}[side[0]])


def test_explicit_roles_and_errors():
    roles = {"x": "train", "y": "val", "z": "test"}
    assert split_by_subject(["x", "y", "z", "x"], roles=roles) == (["x"], ["y"], ["z"])
    with pytest.raises(ValueError, match="no split role"):
        split_by_subject(["x", "w"], roles=roles)
    with pytest.raises(ValueError, match="unknown split roles"):
        split_by_subject(["x"], roles={"x": "holdout"})
    with pytest.raises(ValueError, match="different sides"):
        split_by_subject(["p", "q"], roles={"p": "train", "q": "test"}, linked=[("p", "q")])
    with pytest.raises(ValueError, match="both the train and the test side"):
        check_disjoint(["a", "b"], [], ["b"])


def test_corpus_roles_follow_data_md_and_rotate():
    roles = corpus_roles()
    assert roles["itk_kmeans"] == "val" and roles["robex_subject"] == "test" and "dipy_b0" not in roles
    rotated = corpus_roles(rotation=1)
    assert rotated["itk_kmeans"] == "test" and rotated["robex_subject"] == "val"
    train, val, test = split_by_subject(list(roles), roles=roles, linked=LINKED_CORPUS_SUBJECTS)
    assert "icbm152_2009a" in train and "mni152nlin6asym" in train


def _volumes(n: int, shape=(6, 8, 10)) -> list[np.ndarray]:
    ramp = np.linspace(0.5, 1, shape[0], dtype=np.float32)[:, None, None]
    return [(np.full(shape, (v + 1) / (n + 1), dtype=np.float32) * ramp).astype(np.float32) for v in range(n)]


def test_slice_dataset_all_slices():
    volumes = _volumes(3)
    dataset = SliceDataset(volumes, ["a", "b", "c"])
    assert len(dataset) == 18
    item = dataset[7]
    assert isinstance(item, torch.Tensor) and item.shape == (1, 8, 10) and item.dtype == torch.float32
    assert dataset.item_info(7) == ("b", 1)
    assert torch.equal(item[0], torch.from_numpy(volumes[1][1]))


def test_slice_dataset_random_slices_per_epoch_and_augmentation_seed():
    calls: list[int] = []

    def augment(volume: np.ndarray, seed: int) -> np.ndarray:
        calls.append(seed)
        return volume + 2.0  # out of range on purpose: the dataset clips to [0, 1]

    dataset = SliceDataset(_volumes(2, (20, 4, 4)), ["a", "b"], augment=augment, slices_per_volume=3, seed=5)
    assert len(dataset) == 6
    first = [dataset.item_info(i) for i in range(6)]
    items = [dataset[i] for i in range(6)]
    assert all(float(x.max()) <= 1.0 and float(x.min()) >= 0.0 for x in items)
    assert len(calls) == 2, "each volume is augmented once per epoch"
    dataset.set_epoch(1)
    second = [dataset.item_info(i) for i in range(6)]
    dataset[0]
    assert calls[2] != calls[0], "a new epoch draws a new augmentation seed"
    again = SliceDataset(_volumes(2, (20, 4, 4)), ["a", "b"], slices_per_volume=3, seed=5)
    assert [again.item_info(i) for i in range(6)] == first
    again.set_epoch(1)
    assert [again.item_info(i) for i in range(6)] == second != first


def test_slice_dataset_rejects_bad_input():
    with pytest.raises(ValueError, match="subject ids"):
        SliceDataset(_volumes(2), ["a"])
    with pytest.raises(ValueError, match="3-D"):
        SliceDataset([np.zeros((4, 4), dtype=np.float32)], ["a"])
    with pytest.raises(ValueError, match="slices_per_volume"):
        SliceDataset(_volumes(1), ["a"], slices_per_volume=0)

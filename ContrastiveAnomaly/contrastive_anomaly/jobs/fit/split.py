"""Step 2 of ``fit``: split the usable scans by subject, and freeze that split once training has data to use.

Subjects (not scans) are shuffled with the fit's seed and ``round(fraction * n)`` of them, at least one, are held out
for validation and threshold calibration; at least one trains. Every scan of a subject lands on its subject's side.
The split and the scan list are written to ``MODEL_DIR/training/plan.json`` before training starts. A rerun must find
the same usable scans (ids and contents); otherwise the saved checkpoints belong to other data and the rerun stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...data.splits import split_by_subject
from ...errors import InputError
from .cache import CachedScan
from .files import read_json, write_json

PLAN_FILE = "plan.json"
MIN_SUBJECTS = 2


@dataclass
class FitPlan:
    """Which cached scans train and which are held out (lists of :class:`CachedScan`, sorted by scan id)."""

    train: list[CachedScan]
    held_out: list[CachedScan]

    @property
    def train_subjects(self) -> list[str]:
        return sorted({c.scan.subject for c in self.train})

    @property
    def held_out_subjects(self) -> list[str]:
        return sorted({c.scan.subject for c in self.held_out})

    def role_of(self, scan_id: str) -> str:
        return "held-out" if any(c.scan.scan_id == scan_id for c in self.held_out) else "train"

    def to_dict(self) -> dict[str, Any]:
        return {"train": {c.scan.scan_id: c.sha256 for c in self.train},
                "held_out": {c.scan.scan_id: c.sha256 for c in self.held_out},
                "train_subjects": self.train_subjects, "held_out_subjects": self.held_out_subjects}


def split_scans(usable: list[CachedScan], *, fraction: float, seed: int) -> FitPlan:
    """Split ``usable`` scans by subject; raises :class:`InputError` when fewer than two subjects are usable."""
    subjects = sorted({c.scan.subject for c in usable})
    if len(subjects) < MIN_SUBJECTS:
        raise InputError(f"need usable scans of at least {MIN_SUBJECTS} subjects to train and calibrate, found "
                         f"{len(subjects)}{' (' + subjects[0] + ')' if subjects else ''}")
    held_out_count = min(max(1, round(fraction * len(subjects))), len(subjects) - 1)
    _, held_out, _ = split_by_subject(subjects, val_fraction=held_out_count / len(subjects), seed=seed)
    held = set(held_out)
    return FitPlan(train=[c for c in usable if c.scan.subject not in held],
                   held_out=[c for c in usable if c.scan.subject in held])


def freeze_plan(plan: FitPlan, run_dir: Path) -> FitPlan:
    """Write ``plan.json`` the first time; later, check that the data still match it (one-line error if not)."""
    path = Path(run_dir) / PLAN_FILE
    saved = read_json(path)
    current = plan.to_dict()
    if saved is None:
        write_json(path, current)
        return plan
    before = {**saved["train"], **saved["held_out"]}
    now = {**current["train"], **current["held_out"]}
    if before != now:
        added = sorted(set(now) - set(before))
        removed = sorted(set(before) - set(now))
        changed = sorted(k for k in set(now) & set(before) if now[k] != before[k])
        raise InputError(f"the usable scans changed since this fit started ({len(added)} added, {len(removed)} gone, "
                         f"{len(changed)} modified); use a new --out folder, or delete {run_dir} to train again")
    if saved["held_out"] != current["held_out"]:
        raise InputError(f"{path} holds another split of the same scans; delete {run_dir} to train again")
    return plan

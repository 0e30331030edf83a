"""Benchmark folds from the registry corpus (``contrastive-anomaly data fetch`` output; docs/DATA.md §5).

One fold per real T1 subject (``registry_corpus.REAL_T1_SUBJECTS``). Arrays are KJI on the model grid,
intensities in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

from ...data.corpus_manifest import load_manifest
from ...data.corpus_preprocess import load_preprocessed, load_tissue
from ...data.volumes import Subject
from ...errors import InputError
from .protocol import Fold

ROTATIONS = (0, 1)


def _subjects(volumes: dict, spacing_mm: float) -> list[Subject]:
    return [Subject(name=name, image=image, brain_mask=mask, spacing_mm=(spacing_mm,) * 3)
            for name, (image, mask) in sorted(volumes.items())]


def corpus_folds(corpus_dir: Path, spacing_mm: float, train: list[Subject] | None = None
                 ) -> tuple[list[Fold], list[Subject]]:
    """``(folds, corpus training subjects)``: one fold per held-out real T1 subject (leave-one-real-subject-out).

    The validation subject of a fold is the next real subject in name order. ``train`` replaces the training
    subjects of every fold when given (e.g. an augmented bank); the corpus templates are returned either way.
    """
    manifest = load_manifest(corpus_dir)
    templates = _subjects(load_preprocessed(corpus_dir, manifest, roles=("train",)), spacing_mm)
    if not templates:
        raise InputError(f"no preprocessed training subjects in {corpus_dir}; run 'contrastive-anomaly data fetch'")
    real = _subjects(load_preprocessed(corpus_dir, manifest, roles=("test",)), spacing_mm)
    if len(real) < 2:
        raise InputError(f"{corpus_dir}: need at least two preprocessed real subjects, found {len(real)}")
    tissue = {s.name: _tissue_or_none(corpus_dir, manifest, s.name) for s in real}
    folds = []
    for index, test in enumerate(real):
        val = real[(index + 1) % len(real)]
        folds.append(Fold(name=f"test-{test.name}", train=train or templates, val=val, test=test,
                          val_tissue=tissue[val.name], test_tissue=tissue[test.name]))
    return folds, templates


def _tissue_or_none(corpus_dir: Path, manifest: dict, subject: str):
    """The subject's (CSF, GM, WM) maps ``[3, K, J, I]`` if the corpus has them, else ``None`` (GMM estimate)."""
    if "tissue" not in manifest["preprocessed"].get(subject, {}):
        return None
    return load_tissue(corpus_dir, manifest, subject)

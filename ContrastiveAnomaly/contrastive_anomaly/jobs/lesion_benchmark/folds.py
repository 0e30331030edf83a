"""Benchmark folds from the registry corpus (``contrastive-anomaly data fetch`` output; docs/DATA.md §5).

Rotation 0: validation = ITK k-means subject, test = ROBEX subject; rotation 1 swaps them
(:func:`contrastive_anomaly.data.splits.corpus_roles`). Arrays are KJI on the model grid, intensities in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

from ...data.corpus_preprocess import load_preprocessed, load_tissue
from ...data.fetch import load_manifest
from ...data.volumes import Subject
from ...errors import InputError
from .protocol import Fold

ROTATIONS = (0, 1)


def _subjects(volumes: dict, spacing_mm: float) -> list[Subject]:
    return [Subject(name=name, image=image, brain_mask=mask, spacing_mm=(spacing_mm,) * 3)
            for name, (image, mask) in sorted(volumes.items())]


def corpus_folds(corpus_dir: Path, spacing_mm: float, train: list[Subject] | None = None
                 ) -> tuple[list[Fold], list[Subject]]:
    """``(folds, corpus training subjects)``; ``train`` replaces the training subjects of every fold when given
    (e.g. an augmented bank), the corpus templates are returned either way (checkpoint choice, z-score)."""
    manifest = load_manifest(corpus_dir)
    templates = _subjects(load_preprocessed(corpus_dir, manifest, roles=("train",)), spacing_mm)
    if not templates:
        raise InputError(f"no preprocessed training subjects in {corpus_dir}; run 'contrastive-anomaly data fetch'")
    folds = []
    for rotation in ROTATIONS:
        val = _subjects(load_preprocessed(corpus_dir, manifest, roles=("val",), rotation=rotation), spacing_mm)
        test = _subjects(load_preprocessed(corpus_dir, manifest, roles=("test",), rotation=rotation), spacing_mm)
        if len(val) != 1 or len(test) != 1:
            raise InputError(f"{corpus_dir}: expected one preprocessed validation and one test subject, found "
                             f"{len(val)} and {len(test)}")
        tissue = {s.name: _tissue_or_none(corpus_dir, manifest, s.name) for s in (val[0], test[0])}
        folds.append(Fold(name=f"rotation{rotation}-test-{test[0].name}", train=train or templates, val=val[0],
                          test=test[0], val_tissue=tissue[val[0].name], test_tissue=tissue[test[0].name]))
    return folds, templates


def _tissue_or_none(corpus_dir: Path, manifest: dict, subject: str):
    """The subject's (CSF, GM, WM) maps ``[3, K, J, I]`` if the corpus has them, else ``None`` (GMM estimate)."""
    if "tissue" not in manifest["preprocessed"].get(subject, {}):
        return None
    return load_tissue(corpus_dir, manifest, subject)

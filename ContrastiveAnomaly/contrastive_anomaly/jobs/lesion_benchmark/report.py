"""Benchmark outputs: ``results.csv``, ``results.md`` (table + caveat + command), PNG montages and a summary plot.

Rows are plain dicts as produced by :func:`.protocol.fold_rows` / :func:`.protocol.mean_over_folds`; every row has
``method``, ``fold`` and ``lesion_kind`` and then numeric columns (Dice and AUPRC/AUROC are fractions, volumes in
mL, time in seconds).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ...data.volumes import Subject
from ...scoring.volume_score import VolumeScore
from ...storage.files import atomic_write, write_csv_atomic, write_text_atomic
from ..figures import overview_figure
from ..radiological import MODEL_GRID_DIRECTION

CAVEAT = ("**Caveat: proof of method, not a clinical result.** Training used population templates (and augmented "
          "copies of them); the held-out data are two real T1 subjects (ITK k-means, ROBEX), rotated as "
          "validation/test, with synthetic lesions of exact masks. With two real individuals every number here is "
          "a check that the pipeline works and how the methods rank on this data, not an estimate of clinical "
          "accuracy.")

KEY_COLUMNS = ("method", "fold", "lesion_kind")


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """All column names in first-seen order (key columns first)."""
    names = list(KEY_COLUMNS)
    for row in rows:
        names += [name for name in row if name not in names]
    return names


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """One line per row; numbers at full precision, ``nan`` where a metric is undefined."""
    return write_csv_atomic(rows, columns_of(rows), path)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A GitHub Markdown table of ``rows`` (floats with 3 decimals, ``–`` for undefined values)."""
    names = columns_of(rows)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(row.get(name, float("nan"))) for name in names) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(rows: list[dict[str, Any]], path: Path, command: str, notes: list[str]) -> Path:
    """``results.md``: the caveat, how it was produced, the mean-over-folds table, then the per-fold table."""
    means = [r for r in rows if r["fold"] == "mean"]
    per_fold = [r for r in rows if r["fold"] != "mean"]
    parts = ["# Synthetic-lesion benchmark", "", CAVEAT, "", f"Command: `{command}`", ""]
    parts += [f"* {note}" for note in notes]
    parts += ["", "Columns: Dice at rule A (best Dice on validation lesions of the same kind) and rule B "
              "(healthy validation voxel FPR); AUPRC/AUROC of the filtered map over all voxels; detection rate per "
              "lesion size (rule A); false-positive volume (mL) on the healthy held-out scan; seconds per volume.",
              "", "## Mean of the folds", "", markdown_table(means), "", "## Per fold", "", markdown_table(per_fold),
              ""]
    return write_text_atomic("\n".join(parts), path)


def summary_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars of the mean-over-folds Dice (rule A) and AUPRC per lesion kind, one bar colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = [r for r in rows if r["fold"] == "mean"]
    methods = list(dict.fromkeys(r["method"] for r in means))
    kinds = list(dict.fromkeys(r["lesion_kind"] for r in means))
    value = {(r["method"], r["lesion_kind"]): r for r in means}
    width = 0.8 / max(len(methods), 1)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    for axis, metric, title in zip(axes, ("dice_rule_a", "auprc"), ("Dice (rule A)", "AUPRC"), strict=True):
        for index, method in enumerate(methods):
            heights = [float(value[(method, kind)][metric]) if (method, kind) in value else np.nan for kind in kinds]
            positions = np.arange(len(kinds)) + (index - (len(methods) - 1) / 2) * width
            axis.bar(positions, np.nan_to_num(heights), width, label=method)
        axis.set_xticks(np.arange(len(kinds)), kinds)
        axis.set_ylim(0, 1)
        axis.set_title(f"{title}, mean of folds")
    axes[0].legend()
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=90)
    plt.close(figure)
    return path


def montage(case: Subject, score: VolumeScore, threshold: float, postprocess_mask: np.ndarray, path: Path,
            title: str) -> Path:
    """input | reconstruction | map | predicted (at ``threshold``) vs true mask, for one model-grid test case
    (drawn in radiological convention from the model grid's direction)."""
    return overview_figure(case.image, score.reconstruction, score.filtered, postprocess_mask, case.label, path,
                           title=title, threshold=threshold, direction=MODEL_GRID_DIRECTION)

"""Files of the leave-one-real-subject-out benchmark: ``results.csv`` (every row) and ``results.md`` (tables)."""

from __future__ import annotations

import csv
import math
import platform
from pathlib import Path
from typing import Any

from ...runtime.precision import cpu_description

CAVEAT = ("**Proof of method, not a clinical result.** Synthetic lesions with exact masks planted in real T1 brains "
          "from registry packages; each real subject is held out in turn and thresholds are calibrated on the "
          "others. Five people cannot give clinical accuracy; the numbers rank methods and measure progress.")
TABLE_COLUMNS = (("auroc", "in-brain AUROC"), ("auprc", "in-brain AUPRC"), ("prevalence", "prevalence"),
                 ("dice_rule_a", "Dice rule A"), ("dice_rule_b", "Dice rule B"), ("floor", "floor"),
                 ("ceiling", "ceiling"), ("healthy_fp_ml_rule_a", "healthy FP mL (A)"),
                 ("healthy_fp_ml_rule_b", "healthy FP mL (B)"), ("lesion_ml", "lesion mL"))


def _cell(value: Any, column: str = "") -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.1f}" if column.endswith("_ml") or "ml_rule" in column else f"{value:.3f}"
    return str(value)


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    names: list[str] = []
    for row in rows:
        names += [n for n in row if n not in names]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _table(rows: list[dict[str, Any]], first: str) -> list[str]:
    lines = ["| " + first + " | " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
             "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for row in rows:
        label = row["method"] if first == "method" else f"{row['fold']} ({row['method']})"
        lines.append("| " + label + " | " + " | ".join(_cell(row.get(c, float("nan")), c) for c, _ in TABLE_COLUMNS)
                     + " |")
    return lines


def write_markdown(means: list[dict[str, Any]], rows: list[dict[str, Any]], path: Path, request: Any,
                   detector: Any, real: list[Any], templates: list[Any], diagnostics: dict[str, Any]) -> Path:
    timing = diagnostics["timing"]
    parts = ["# Leave-one-real-subject-out synthetic-lesion benchmark", "", CAVEAT, "",
             f"Command: `{request.command}`", "",
             f"* model: `{detector.folder}` (grid {list(detector.cfg.grid.shape)} IJK at "
             f"{detector.cfg.grid.spacing_mm:g} mm, levels {list(detector.cfg.inference.timestep_indices)}, "
             f"{detector.cfg.inference.noise_seeds} noise draw(s) per level, {timing['precision']})",
             f"* real subjects (each held out once): {[s.name for s in real]}; templates (z-score statistics): "
             f"{[s.name for s in templates]}",
             f"* {request.lesions_per_kind} lesions of each kind per subject ({timing['lesion_cases']} cases); "
             f"rule A = best pooled Dice (dense sweep) on the other subjects' cases of the same kind; rule B = "
             f"{request.settings.rule_b_fpr:g} voxel FPR on the other subjects' healthy scans",
             f"* machine: {cpu_description()}, Python {platform.python_version()}; wall time "
             f"{timing['total_s']:.0f} s (model {timing['model_s']:.0f} s: {timing['healthy_volumes']} healthy "
             f"volumes + {timing['lesion_slices_reconstructed']} re-run lesion slices)",
             "", "Columns: AUROC/AUPRC over brain voxels (AUPRC of a random map = prevalence); Dice after threshold "
             "and component filter; floor = Dice of flagging the whole brain; ceiling = Dice of a perfect "
             "reconstruction (the clean image) through the model's pipeline at the model's rule-A threshold; "
             "healthy FP mL = volume flagged on the held-out subject's scan without a lesion. "
             "`tumour_core` scores the tumour without its "
             "oedema.", ""]
    for key in dict.fromkeys(r["lesion_kind"] for r in means):
        parts += [f"## {key} (mean of {len(real)} folds)", ""]
        parts += _table([r for r in means if r["lesion_kind"] == key], "method") + [""]
    parts += ["## Diagnostics of the model", "",
              f"healthy error (mean abs, in brain): templates {diagnostics['healthy_error']['templates']['mean']:.4f},"
              f" real brains {diagnostics['healthy_error']['real']['mean']:.4f}; edge-energy ratio: templates "
              f"{diagnostics['edge_energy_ratio']['templates']['mean']:.3f}, real "
              f"{diagnostics['edge_energy_ratio']['real']['mean']:.3f}; copied lesion contrast: "
              + ", ".join(f"t={t} {v['mean']:.1%}" for t, v in diagnostics["copied_contrast"]["per_level"].items())
              + f", ensemble {diagnostics['copied_contrast']['ensemble']['mean']:.1%} (diagnostics.json)", ""]
    parts += ["## Per fold", ""]
    for key in dict.fromkeys(r["lesion_kind"] for r in rows):
        parts += [f"### {key}", ""] + _table([r for r in rows if r["lesion_kind"] == key], "fold") + [""]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path

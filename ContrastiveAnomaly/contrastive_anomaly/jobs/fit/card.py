"""Step 5 of ``fit`` (text part): the generated ``MODEL_CARD.md`` of a fitted model.

The card states what a reader needs to judge the model: the data (every scan used, with its subject, its role and
the sha256 of its content; every scan left out, with its reason), the configuration and steps, the wall time of each
phase and the hardware, the calibrated threshold with the healthy false-positive rate it gives on the held-out
subjects and the healthy residual statistics. Numbers only come from this fit's own records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import __version__
from ...config import ModelConfig
from ...data.sources import Discovery
from .cache import CachedScan
from .calibrate import Calibration
from .hardware import describe
from .split import FitPlan
from .train import StageResults


@dataclass
class CardFacts:
    """Everything the card reports (collected by :func:`contrastive_anomaly.jobs.fit.run.fit`)."""

    name: str
    cfg: ModelConfig
    discovery: Discovery
    cached: list[CachedScan]
    plan: FitPlan
    stages: StageResults
    calibration: Calibration
    allow_qc_warnings: bool
    hardware: dict[str, Any]
    training_hardware: dict[str, str]
    preprocess_seconds: float
    command: str


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _qc_cell(cached: CachedScan) -> str:
    metric, dice = cached.qc.get("registration_metric"), cached.qc.get("template_dice")
    if metric is None or dice is None:
        return ""
    return f"MI {metric:.2f}, Dice {dice:.2f}"


def _data_section(facts: CardFacts) -> list[str]:
    plan, discovery = facts.plan, facts.discovery
    lines = ["## Training data", "",
             f"- Source: `{discovery.source}` (recognised as {discovery.kind}); contrast {discovery.contrast}.",
             f"- Used: {_count(len(plan.train) + len(plan.held_out), 'scan')} of "
             f"{_count(len(plan.train_subjects) + len(plan.held_out_subjects), 'subject')}; "
             f"{_count(len(plan.train), 'scan')} of {_count(len(plan.train_subjects), 'subject')} train, "
             f"{_count(len(plan.held_out), 'scan')} of {_count(len(plan.held_out_subjects), 'subject')} held out "
             "(validation loss, checkpoint choice and threshold calibration).",
             "- Preprocessing: the `detect` pipeline (brain extraction, N4, affine registration to ICBM152 2009a, "
             "percentile normalisation) onto the model grid "
             f"{'x'.join(str(n) for n in facts.cfg.grid.shape)} voxels (IJK) at {facts.cfg.grid.spacing_mm:g} mm.",
             ]
    if discovery.other_contrasts:
        others = ", ".join(f"{n} {c}" for c, n in discovery.other_contrasts.items())
        lines.append(f"- Not of this contrast, not used: {others}.")
    lines += ["", "| scan | subject | role | content sha256 | QC (registration) |", "|---|---|---|---|---|"]
    for cached in plan.train + plan.held_out:
        lines.append(f"| {cached.scan.scan_id} | {cached.scan.subject} | {plan.role_of(cached.scan.scan_id)} | "
                     f"`{cached.sha256}` | {_qc_cell(cached)} |")
    skipped = [c for c in facts.cached if not c.usable(facts.allow_qc_warnings)]
    if skipped:
        lines += ["", f"Left out ({len(skipped)}):", "", "| scan | reason |", "|---|---|"]
        lines += [f"| {c.scan.scan_id} | {c.skip_reason(facts.allow_qc_warnings).replace('|', '/')} |"
                  for c in skipped]
    return lines


def _training_section(facts: CardFacts) -> list[str]:
    cfg, stages = facts.cfg, facts.stages
    rows = [("stage 1 (encoder)", cfg.encoder_training, stages.encoder),
            ("stage 2 (diffusion)", cfg.diffusion_training, stages.diffusion)]
    lines = ["## Training", "", f"Preset `{cfg.name}`-sized model, seed {cfg.diffusion_training.seed}.", "",
             "| stage | steps | batch | learning rate | best validation loss | wall time |",
             "|---|---|---|---|---|---|"]
    for label, train_cfg, result in rows:
        lines.append(f"| {label} | {result.steps} | {train_cfg.batch_size} | {train_cfg.learning_rate:g} | "
                     f"{result.best_val_loss:.5f} | {_minutes(result.wall_time_s)} |")
    total = facts.preprocess_seconds + stages.encoder.wall_time_s + stages.diffusion.wall_time_s
    lines += ["", f"- Preprocessing: {_minutes(facts.preprocess_seconds)} in total "
                  f"({facts.preprocess_seconds / max(len(facts.cached), 1):.1f} s per scan).",
              f"- Wall time, preprocessing and both stages (summed over resumed runs): {_minutes(total)}.",
              f"- Hardware of this run: {describe(facts.hardware)}."]
    for label, hardware in facts.training_hardware.items():
        lines.append(f"- Hardware recorded by the {label} checkpoint: {hardware}.")
    lines.append(f"- Command: `{facts.command}`")
    return lines


def _calibration_section(calibration: Calibration) -> list[str]:
    percentiles = ", ".join(f"{k} {v:.4f}" for k, v in calibration.residual_percentiles.items())
    fp = ", ".join(f"{name} {ml:.2f} mL" for name, ml in calibration.false_positive_ml.items())
    return ["## Threshold and healthy behaviour", "",
            f"- Threshold {calibration.threshold:.5f} (normalised-intensity units): healthy false-positive rule "
            f"(rule B) at a target voxel FPR of {calibration.target_fpr:g}, on "
            f"{_count(len(calibration.scans), 'held-out scan')}.",
            f"- Healthy voxel FPR inside the brain: {calibration.voxel_fpr_raw:.4f} on the filtered map, "
            f"{calibration.voxel_fpr_final_mask:.4f} in the final mask (after the small-component filter).",
            f"- False-positive volume per held-out scan: {fp}.",
            f"- Healthy filtered residual inside the brain: mean {calibration.residual_mean:.4f}, {percentiles}, "
            f"max {calibration.residual_max:.4f}.",
            "- The held-out subjects also chose the checkpoint (lowest validation loss), so these numbers are "
            "optimistic; judge the model on scans it has never seen."]


def model_card(facts: CardFacts) -> str:
    """The Markdown text of ``MODEL_CARD.md``."""
    lines = [f"# Model card: {facts.name}", "",
             f"A {facts.cfg.contrast} anomaly-detection model trained with `contrastive-anomaly fit` (engine "
             f"{__version__}) on healthy scans only. Use it on {facts.cfg.contrast} brain MRI: "
             f"`contrastive-anomaly detect SCAN --model {facts.name}`.", "",
             "> Not a medical device. A model fitted on a few subjects or on one scanner learns their appearance; "
             "anything else (another scanner, protocol or age group) can look anomalous.", ""]
    lines += _data_section(facts) + [""] + _training_section(facts) + [""] + _calibration_section(facts.calibration)
    return "\n".join(lines) + "\n"

"""Step 3 of ``fit``: stage 1 (encoder) then stage 2 (conditional diffusion), each continuing from its last checkpoint.

Run folders: ``MODEL_DIR/training/encoder/{last,best}`` and ``MODEL_DIR/training/diffusion/{last,best}``, written by
:mod:`contrastive_anomaly.training.loops`. A stage whose ``last`` checkpoint exists resumes from it (weights,
optimiser, step; the loops derive every random draw from (seed, step), so the continuation follows the same
trajectory as an uninterrupted run). A stage already at its step count only reloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...config import ModelConfig
from ...data.volumes import Subject
from ...errors import CheckpointError
from ...runtime.distributed import DistContext
from ...runtime.progress import ProgressReporter
from ...training.loops import TrainingResult, train_diffusion, train_encoder

TRAINING_DIR = "training"
ENCODER_DIR = "encoder"
DIFFUSION_DIR = "diffusion"
TRAINER_STATE_FILE = "trainer_state.json"


@dataclass
class StageResults:
    """Both stages' results (steps, best validation loss, wall time accumulated over resumed runs)."""

    encoder: TrainingResult
    diffusion: TrainingResult


def can_resume(stage_dir: Path) -> bool:
    """A stage has a checkpoint to continue from."""
    return (Path(stage_dir) / "last" / TRAINER_STATE_FILE).is_file()


def _damaged(stage_dir: Path, error: CheckpointError) -> CheckpointError:
    return CheckpointError(f"cannot continue from {stage_dir / 'last'} ({error}); delete {stage_dir} to redo "
                           "this stage")


def train_stages(cfg: ModelConfig, train: list[Subject], held_out: list[Subject], run_dir: Path, ctx: DistContext,
                 progress: ProgressReporter) -> StageResults:
    """Train (or continue) both stages on ``train``, validating on ``held_out``; returns both results."""
    encoder_dir, diffusion_dir = Path(run_dir) / ENCODER_DIR, Path(run_dir) / DIFFUSION_DIR
    try:
        encoder = train_encoder(cfg, train, held_out, encoder_dir, ctx, progress, resume=can_resume(encoder_dir))
    except CheckpointError as exc:
        raise _damaged(encoder_dir, exc) from None
    try:
        diffusion = train_diffusion(cfg, train, held_out, diffusion_dir, encoder_folder=encoder.best, ctx=ctx,
                                    progress=progress, resume=can_resume(diffusion_dir))
    except CheckpointError as exc:
        raise _damaged(diffusion_dir, exc) from None
    return StageResults(encoder=encoder, diffusion=diffusion)

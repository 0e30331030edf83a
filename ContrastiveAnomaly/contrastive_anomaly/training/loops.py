"""Training loops for both stages, single-process or under ``torchrun`` (DDP).

Stage 1 (:func:`train_encoder`) optimises the masked-image-modelling + EpsInfoNCE objective of
:class:`~contrastive_anomaly.method.masking.MaskedImageModel`; stage 2 (:func:`train_diffusion`) optimises the x0
L1 loss of :class:`~contrastive_anomaly.method.diffusion_model.AnomalyDiffusionModel`, with the encoder initialised
from stage 1 and fine-tuned or frozen (``TrainConfig.encoder_mode``).

Reproducibility: every random quantity of a step (timesteps, noise field, augmentation) is drawn from a generator
seeded by ``(seed, step)`` for the *global* batch, and each rank takes its own samples from it. A run therefore
resumes exactly from its last checkpoint, and N ranks with a global batch B follow the same trajectory as one
process with batch B (up to floating-point summation order), as long as no layer depends on batch statistics.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..config import ModelConfig, SliceAugmentationConfig, TrainConfig
from ..data.volumes import Subject
from ..errors import CheckpointError, InputError
from ..method.diffusion_model import AnomalyDiffusionModel
from ..method.encoder import load_stage1_trunk
from ..method.masking import MaskedImageModel
from ..method.noise import NoiseSampler
from ..runtime.distributed import DistContext, all_reduce_sum, barrier
from ..runtime.precision import autocast, cpu_description, resolve_precision
from ..runtime.progress import ProgressReporter
from ..storage.checkpoint import (
    TRAINER_STATE_FILE,
    load_model_folder,
    load_online_weights,
    load_state_strict,
    load_trainer_state,
    save_model,
    save_trainer_state,
)
from .ema import WeightAverage

MAX_VALIDATION_SLICES = 256


class SliceTable(Dataset):
    """All axial slices with brain tissue from a list of subjects; item = tensor [1, H, W] in [0, 1]."""

    def __init__(self, subjects: list[Subject], min_brain_pixels: int) -> None:
        self.subjects = subjects
        self.index: list[tuple[int, int]] = []
        for s, subject in enumerate(subjects):
            counts = subject.brain_mask.reshape(subject.brain_mask.shape[0], -1).sum(axis=1)
            self.index += [(s, int(k)) for k in np.flatnonzero(counts >= min_brain_pixels)]
        if not self.index:
            raise InputError("no slice with brain tissue in the training data")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> torch.Tensor:
        s, k = self.index[item]
        return torch.from_numpy(np.ascontiguousarray(self.subjects[s].image[k], dtype=np.float32))[None]


@dataclass
class TrainingResult:
    """Where the checkpoints went and how the run went (losses are means over the validation slices)."""

    last: Path
    best: Path
    steps: int
    best_val_loss: float
    wall_time_s: float
    history: list[dict[str, float]]


def _hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{cpu_description()}, {torch.get_num_threads()} threads"


def _local_part(values: torch.Tensor | np.ndarray, ctx: DistContext) -> Any:
    """The samples of a global-batch array that belong to this rank (global position p = j * W + rank)."""
    return values[ctx.rank::ctx.world_size]


def _batches(dataset: Dataset, local_batch: int, seed: int, ctx: DistContext, start_step: int
             ) -> Iterator[tuple[int, torch.Tensor]]:
    """Endless (step, local batch) pairs with a DistributedSampler, reshuffled per epoch via ``set_epoch``."""
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=local_batch, sampler=sampler, drop_last=True)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise InputError(f"too few training slices ({len(dataset)}) for a batch of {local_batch * ctx.world_size}")
    epoch, skip = divmod(start_step, steps_per_epoch)
    step = start_step
    while True:
        sampler.set_epoch(epoch)
        for position, batch in enumerate(loader):
            if position < skip:
                continue
            yield step, batch
            step += 1
        skip = 0
        epoch += 1


@functools.cache
def _slice_intensity_transform(values: tuple) -> Any:
    """Per-slice gamma, bias field and blur (MONAI transforms), built once per ``SliceAugmentationConfig`` (whose
    field values, in declaration order, are ``values``: a hashable cache key)."""
    from monai.transforms import Compose, RandAdjustContrast, RandBiasField, RandGaussianSmooth

    settings = SliceAugmentationConfig(*values)
    return Compose([RandAdjustContrast(prob=settings.gamma_prob, gamma=settings.gamma),
                    RandBiasField(prob=settings.bias_prob, coeff_range=settings.bias_coeff),
                    RandGaussianSmooth(prob=settings.blur_prob, sigma_x=settings.blur_sigma,
                                       sigma_y=settings.blur_sigma)])


def _intensity_augment(batch: torch.Tensor, seeds: np.ndarray, settings: SliceAugmentationConfig) -> torch.Tensor:
    """Augment each slice of ``batch`` [B, 1, H, W] with its own seed (reproducible per global sample)."""
    transform = _slice_intensity_transform(dataclasses.astuple(settings))
    out = []
    for image, seed in zip(batch, seeds, strict=True):
        transform.set_random_state(seed=int(seed))
        out.append(torch.as_tensor(transform(image)).clamp(0.0, 1.0))
    return torch.stack(out)


class _DiffusionObjective(torch.nn.Module):
    """Puts the stage-2 loss behind ``forward`` so that DistributedDataParallel synchronises its gradients."""

    def __init__(self, model: AnomalyDiffusionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x01: torch.Tensor, k: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.model.training_loss(x01, k, noise)


@dataclass
class _Stage:
    """What differs between the two stages for the shared loop :func:`_fit`.

    ``network`` is what runs forward (wrapped by DDP), ``trainable`` what is optimised, averaged and saved;
    ``loss_of_batch(engine, batch, step)`` is the training loss; ``validation_loss(module)`` returns (sum, count)
    over this rank's validation slices for a module shaped like ``trainable`` (the EMA copy when there is one);
    ``save(folder, module, meta)`` writes a model folder.
    """

    name: str
    network: torch.nn.Module
    trainable: torch.nn.Module
    train_cfg: TrainConfig
    loss_of_batch: Callable[[torch.nn.Module, torch.Tensor, int], torch.Tensor]
    validation_loss: Callable[[torch.nn.Module], tuple[float, int]]
    save: Callable[[Path, torch.nn.Module, dict[str, Any]], None]
    train_data: Dataset
    after_train_mode: Callable[[], None] = lambda: None


def _previous(folder: Path) -> Path:
    return folder.with_name(folder.name + ".previous")


def _replace_folder(staging: Path, folder: Path) -> None:
    """Put a complete checkpoint folder in place of ``folder``: two renames, so a kill at any moment leaves either
    the old or the new checkpoint complete under ``folder`` or, between the renames, under ``folder.previous``."""
    previous = _previous(folder)
    shutil.rmtree(previous, ignore_errors=True)
    if folder.exists():
        os.replace(folder, previous)
    os.replace(staging, folder)
    shutil.rmtree(previous, ignore_errors=True)


def _recover_folder(folder: Path) -> None:
    """Undo a kill between the two renames of :func:`_replace_folder` (the previous checkpoint is complete)."""
    if not folder.exists() and _previous(folder).is_dir():
        os.replace(_previous(folder), folder)


def _restore(stage: _Stage, last: Path, optimizer: torch.optim.Optimizer, average: WeightAverage | None
             ) -> dict[str, Any]:
    """Load a resumable checkpoint: online weights, EMA weights and update count, optimiser and loop state."""
    _recover_folder(last)
    if not (last / TRAINER_STATE_FILE).is_file():
        raise CheckpointError(f"nothing to resume in {last}")
    _, saved, _ = load_model_folder(last)
    online = load_online_weights(last)
    stage.trainable.load_state_dict(saved if online is None else online)
    state = load_trainer_state(last, optimizer)
    if average is not None:
        average.restore(saved, state.get("ema_updates", state["step"]))
    return state


def _fit(stage: _Stage, out_dir: Path, ctx: DistContext, progress: ProgressReporter, resume: bool
         ) -> TrainingResult:
    """The loop shared by both stages: step, EMA, log, validate, checkpoint (rank 0), resume.

    Every random quantity of a step derives from ``(seed, step)`` and the data order from the step, so the
    checkpoint's step is the whole RNG and data-order state; ``trainer_state.json`` records it with the curves.
    """
    train_cfg = stage.train_cfg
    if train_cfg.batch_size % ctx.world_size:
        raise InputError(f"batch size {train_cfg.batch_size} is not divisible by {ctx.world_size} ranks")
    local_batch = train_cfg.batch_size // ctx.world_size
    parameters = [p for p in stage.trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=train_cfg.learning_rate, betas=train_cfg.betas,
                                  weight_decay=train_cfg.weight_decay)
    average = WeightAverage(stage.trainable, train_cfg.ema_decay) if train_cfg.ema_decay > 0 else None
    state: dict[str, Any] = {"step": 0, "best_val_loss": float("inf"), "history": [], "train_curve": [],
                             "wall_time_s": 0.0}
    last, best = out_dir / "last", out_dir / "best"
    if resume:
        state.update(_restore(stage, last, optimizer, average))
    engine = DistributedDataParallel(stage.network) if ctx.enabled else stage.network
    dtype = resolve_precision("auto", ctx.device) if train_cfg.mixed_precision else torch.float32
    checkpoint_every = train_cfg.checkpoint_every or train_cfg.validate_every
    started = time.perf_counter() - state["wall_time_s"]
    recent_losses: list[float] = []

    def checkpoint(meta: dict[str, Any], *, is_best: bool) -> None:
        """Write ``last`` (and ``best``) complete in a staging folder, then swap it in (a kill leaves no mix)."""
        if not ctx.is_main:
            return
        evaluated = stage.trainable if average is None else average.module
        state["ema_updates"] = 0 if average is None else average.updates
        staging = out_dir / ".last.partial"
        shutil.rmtree(staging, ignore_errors=True)
        stage.save(staging, evaluated, meta)
        save_trainer_state(staging, optimizer, state,
                           online_weights=None if average is None else stage.trainable.state_dict())
        _replace_folder(staging, last)
        if is_best:
            staging = out_dir / ".best.partial"
            shutil.rmtree(staging, ignore_errors=True)
            stage.save(staging, evaluated, meta)
            _replace_folder(staging, best)

    with progress.stage(stage.name, total=train_cfg.steps, start=state["step"]) as reporter:
        batches: Iterator = iter(())
        if state["step"] < train_cfg.steps:
            batches = _batches(stage.train_data, local_batch, train_cfg.seed, ctx, state["step"])
        for step, batch in batches:
            engine.train()
            stage.after_train_mode()
            with autocast(ctx.device, dtype):
                loss = stage.loss_of_batch(engine, batch.to(ctx.device), step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(stage.trainable)
            state["step"] = step + 1
            recent_losses.append(loss.item())
            final = state["step"] == train_cfg.steps
            if state["step"] % train_cfg.log_every == 0 or final:
                mean_loss = float(np.mean(recent_losses))
                state["train_curve"].append({"step": state["step"], "train_loss": mean_loss})
                recent_losses.clear()
                reporter.advance(state["step"], loss=round(mean_loss, 5))
            state["wall_time_s"] = time.perf_counter() - started
            meta = {"step": state["step"], "wall_time_s": state["wall_time_s"], "hardware": _hardware(),
                    "world_size": ctx.world_size, "ema_decay": train_cfg.ema_decay}
            if state["step"] % train_cfg.validate_every == 0 or final:
                evaluated = stage.trainable if average is None else average.module
                evaluated.eval()
                total, count = all_reduce_sum(list(stage.validation_loss(evaluated)), ctx)
                val_loss = total / max(count, 1)
                state["history"].append({"step": state["step"], "train_loss": loss.item(), "val_loss": val_loss,
                                         "wall_time_s": round(state["wall_time_s"], 1)})
                is_best = val_loss < state["best_val_loss"]
                state["best_val_loss"] = min(state["best_val_loss"], val_loss)
                checkpoint(dict(meta, val_loss=val_loss), is_best=is_best)
                barrier(ctx)
            elif state["step"] % checkpoint_every == 0:
                checkpoint(meta, is_best=False)
                barrier(ctx)
            if state["step"] >= train_cfg.steps:
                break
    return TrainingResult(last=last, best=best, steps=state["step"], best_val_loss=state["best_val_loss"],
                          wall_time_s=time.perf_counter() - started, history=state["history"])


def _validation_batches(val_data: Dataset, batch_size: int, ctx: DistContext) -> list[torch.Tensor]:
    """This rank's share of (at most MAX_VALIDATION_SLICES) validation slices, in fixed batches."""
    count = min(len(val_data), MAX_VALIDATION_SLICES)
    mine = list(range(count))[ctx.rank::ctx.world_size]
    return [torch.stack([val_data[i] for i in mine[s:s + batch_size]]) for s in range(0, len(mine), batch_size)]


def train_encoder(cfg: ModelConfig, train: list[Subject], val: list[Subject], out_dir: str | Path,
                  ctx: DistContext | None = None, progress: ProgressReporter | None = None,
                  resume: bool = False) -> TrainingResult:
    """Stage 1: train the target-invariant encoder on healthy slices; checkpoints go to ``out_dir/{last,best}``."""
    ctx, progress, out_dir = ctx or DistContext(), progress or ProgressReporter("none"), Path(out_dir)
    train_cfg = cfg.encoder_training
    torch.manual_seed(train_cfg.seed)
    network = MaskedImageModel(cfg.encoder).to(ctx.device)
    val_batches = _validation_batches(SliceTable(val, cfg.inference.min_brain_pixels), train_cfg.batch_size, ctx)

    def loss_of_batch(engine: torch.nn.Module, batch: torch.Tensor, step: int) -> torch.Tensor:
        generator = torch.Generator(device="cpu").manual_seed(train_cfg.seed * 1_000_003 + step * 97 + ctx.rank)
        return engine(batch, generator=generator)["loss"]

    @torch.no_grad()
    def validation_loss(module: torch.nn.Module) -> tuple[float, int]:
        total, count = 0.0, 0
        for index, batch in enumerate(val_batches):
            generator = torch.Generator(device="cpu").manual_seed(train_cfg.seed + index)
            total += float(module(batch.to(ctx.device), generator=generator)["loss"]) * len(batch)
            count += len(batch)
        return total, count

    def save(folder: Path, module: torch.nn.Module, meta: dict[str, Any]) -> None:
        save_model(folder, module.state_dict(), cfg, kind="encoder", metadata=meta)

    stage = _Stage("train-encoder", network, network, train_cfg, loss_of_batch, validation_loss, save,
                   SliceTable(train, cfg.inference.min_brain_pixels))
    return _fit(stage, out_dir, ctx, progress, resume)


def _timestep_bounds(cfg: ModelConfig) -> tuple[int, int]:
    """Inclusive 0-based index range that stage-2 training samples (``TrainConfig.timestep_range``)."""
    last_index = cfg.diffusion.num_timesteps - 1
    low, high = cfg.diffusion_training.timestep_range or (0, last_index)
    if not 0 <= low <= high <= last_index:
        raise InputError(f"timestep_range {(low, high)} must lie within 0..{last_index}")
    return int(low), int(high)


def train_diffusion(cfg: ModelConfig, train: list[Subject], val: list[Subject], out_dir: str | Path,
                    encoder_folder: str | Path | None = None, ctx: DistContext | None = None,
                    progress: ProgressReporter | None = None, resume: bool = False,
                    init_from: str | Path | None = None) -> TrainingResult:
    """Stage 2: train the conditional DDPM (encoder from ``encoder_folder`` when given) on healthy slices.

    ``init_from``: a stage-2 model folder whose weights start the run (warm start, e.g. continuing a shipped model
    on new data with a fresh optimiser); ignored when resuming, since the checkpoint has its own weights.
    """
    ctx, progress, out_dir = ctx or DistContext(), progress or ProgressReporter("none"), Path(out_dir)
    train_cfg = cfg.diffusion_training
    torch.manual_seed(train_cfg.seed)
    model = AnomalyDiffusionModel(cfg)
    if init_from is not None and not resume:
        _, weights, _ = load_model_folder(init_from, expected_kind="diffusion")
        load_state_strict(model, weights, init_from)
    elif encoder_folder is not None and model.encoder is not None:
        _, stage1, _ = load_model_folder(encoder_folder, expected_kind="encoder")
        load_stage1_trunk(model.encoder, stage1)  # raises unless every trunk tensor matched (docs/METHOD.md §4.1)
    frozen = train_cfg.encoder_mode == "frozen" and model.encoder is not None
    model.set_encoder_frozen(frozen)
    model.to(ctx.device)
    val_batches = _validation_batches(SliceTable(val, cfg.inference.min_brain_pixels), train_cfg.batch_size, ctx)
    height, width = cfg.grid.slice_shape
    low, high = _timestep_bounds(cfg)

    def random_inputs(seed_words: list[int], batch: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        rng = np.random.default_rng(seed_words)
        timesteps = torch.from_numpy(rng.integers(low, high + 1, size=batch))
        noise = NoiseSampler(cfg.diffusion.noise, rng).sample(batch, height, width)
        return timesteps, noise, rng.integers(0, 2**31 - 1, size=batch)

    def loss_of_batch(engine: torch.nn.Module, batch: torch.Tensor, step: int) -> torch.Tensor:
        timesteps, noise, aug_seeds = random_inputs([train_cfg.seed, step], train_cfg.batch_size)
        if train_cfg.intensity_augmentation:
            batch = _intensity_augment(batch.cpu(), _local_part(aug_seeds, ctx), train_cfg.augmentation)
            batch = batch.to(ctx.device)
        k = _local_part(timesteps, ctx).to(ctx.device)
        return engine(batch, k, _local_part(noise, ctx).to(ctx.device))

    @torch.no_grad()
    def validation_loss(module: torch.nn.Module) -> tuple[float, int]:
        total, count = 0.0, 0
        for index, batch in enumerate(val_batches):
            timesteps, noise, _ = random_inputs([train_cfg.seed, 10**9 + index + ctx.rank], len(batch))
            loss = module.training_loss(batch.to(ctx.device), timesteps.to(ctx.device), noise.to(ctx.device))
            total += float(loss) * len(batch)
            count += len(batch)
        return total, count

    def save(folder: Path, module: torch.nn.Module, meta: dict[str, Any]) -> None:
        save_model(folder, module.state_dict(), cfg, kind="diffusion", metadata=meta)

    def keep_frozen_encoder_in_eval() -> None:
        if frozen:
            model.set_encoder_frozen(True)

    stage = _Stage("train", _DiffusionObjective(model), model, train_cfg, loss_of_batch, validation_loss, save,
                   SliceTable(train, cfg.inference.min_brain_pixels), after_train_mode=keep_frozen_encoder_in_eval)
    return _fit(stage, out_dir, ctx, progress, resume)

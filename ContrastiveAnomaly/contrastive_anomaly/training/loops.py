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

import functools
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

from ..config import ModelConfig, TrainConfig
from ..data.volumes import Subject
from ..errors import CheckpointError, InputError
from ..method.diffusion_model import AnomalyDiffusionModel
from ..method.encoder import load_stage1_trunk
from ..method.masking import MaskedImageModel
from ..method.noise import NoiseSampler
from ..runtime.distributed import DistContext, all_reduce_sum, barrier
from ..runtime.precision import autocast, cpu_description, resolve_precision
from ..runtime.progress import ProgressReporter
from ..storage.checkpoint import load_model_folder, load_trainer_state, save_model, save_trainer_state

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
def _slice_intensity_transform():
    """Per-slice gamma, bias field and blur (MONAI transforms; METHOD.md §2 lists the S2 augmentation); built once."""
    from monai.transforms import Compose, RandAdjustContrast, RandBiasField, RandGaussianSmooth

    return Compose([RandAdjustContrast(prob=0.5, gamma=(0.7, 1.5)),
                    RandBiasField(prob=0.25, coeff_range=(0.0, 0.2)),
                    RandGaussianSmooth(prob=0.25, sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0))])


def _intensity_augment(batch: torch.Tensor, seeds: np.ndarray) -> torch.Tensor:
    """Augment each slice of ``batch`` [B, 1, H, W] with its own seed (reproducible per global sample)."""
    transform = _slice_intensity_transform()
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


def _fit(name: str, network: torch.nn.Module, trainable: torch.nn.Module, train_cfg: TrainConfig,
         loss_of_batch: Callable[[torch.nn.Module, torch.Tensor, int], torch.Tensor],
         validation_loss: Callable[[], tuple[float, int]], save: Callable[[Path, dict[str, Any]], None],
         train_data: Dataset, out_dir: Path, ctx: DistContext, progress: ProgressReporter, resume: bool,
         after_train_mode: Callable[[], None] = lambda: None) -> TrainingResult:
    """The loop shared by both stages: step, log, validate, checkpoint (rank 0), resume."""
    if train_cfg.batch_size % ctx.world_size:
        raise InputError(f"batch size {train_cfg.batch_size} is not divisible by {ctx.world_size} ranks")
    local_batch = train_cfg.batch_size // ctx.world_size
    parameters = [p for p in trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=train_cfg.learning_rate, betas=train_cfg.betas,
                                  weight_decay=train_cfg.weight_decay)
    state: dict[str, Any] = {"step": 0, "best_val_loss": float("inf"), "history": [], "wall_time_s": 0.0}
    last, best = out_dir / "last", out_dir / "best"
    if resume:
        if not (last / "trainer_state.json").is_file():
            raise CheckpointError(f"nothing to resume in {last}")
        _, weights, _ = load_model_folder(last)
        trainable.load_state_dict(weights)
        state.update(load_trainer_state(last, optimizer))
    engine = DistributedDataParallel(network) if ctx.enabled else network
    dtype = resolve_precision("auto", ctx.device) if train_cfg.mixed_precision else torch.float32
    started = time.perf_counter() - state["wall_time_s"]
    with progress.stage(name, total=train_cfg.steps) as stage:
        stage.advance(state["step"])
        if state["step"] >= train_cfg.steps:
            batches: Iterator = iter(())
        else:
            batches = _batches(train_data, local_batch, train_cfg.seed, ctx, state["step"])
        for step, batch in batches:
            engine.train()
            after_train_mode()
            with autocast(ctx.device, dtype):
                loss = loss_of_batch(engine, batch.to(ctx.device), step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state["step"] = step + 1
            if state["step"] % train_cfg.log_every == 0 or state["step"] == train_cfg.steps:
                stage.advance(state["step"], loss=round(loss.item(), 5))
            if state["step"] % train_cfg.validate_every == 0 or state["step"] == train_cfg.steps:
                network.eval()
                total, count = all_reduce_sum(list(validation_loss()), ctx)
                val_loss = total / max(count, 1)
                state["history"].append({"step": state["step"], "train_loss": loss.item(), "val_loss": val_loss})
                state["wall_time_s"] = time.perf_counter() - started
                if ctx.is_main:
                    meta = {"step": state["step"], "val_loss": val_loss, "wall_time_s": state["wall_time_s"],
                            "hardware": _hardware(), "world_size": ctx.world_size}
                    save(last, meta)
                    save_trainer_state(last, optimizer, state)
                    if val_loss < state["best_val_loss"]:
                        save(best, meta)
                state["best_val_loss"] = min(state["best_val_loss"], val_loss)
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
    train_data = SliceTable(train, cfg.inference.min_brain_pixels)
    val_batches = _validation_batches(SliceTable(val, cfg.inference.min_brain_pixels), train_cfg.batch_size, ctx)

    def loss_of_batch(engine: torch.nn.Module, batch: torch.Tensor, step: int) -> torch.Tensor:
        generator = torch.Generator(device="cpu").manual_seed(train_cfg.seed * 1_000_003 + step * 97 + ctx.rank)
        return engine(batch, generator=generator)["loss"]

    @torch.no_grad()
    def validation_loss() -> tuple[float, int]:
        total, count = 0.0, 0
        for index, batch in enumerate(val_batches):
            generator = torch.Generator(device="cpu").manual_seed(train_cfg.seed + index)
            total += float(network(batch.to(ctx.device), generator=generator)["loss"]) * len(batch)
            count += len(batch)
        return total, count

    def save(folder: Path, meta: dict[str, Any]) -> None:
        save_model(folder, network.state_dict(), cfg, kind="encoder", metadata=meta)

    return _fit("train-encoder", network, network, train_cfg, loss_of_batch, validation_loss, save, train_data,
                out_dir, ctx, progress, resume)


def train_diffusion(cfg: ModelConfig, train: list[Subject], val: list[Subject], out_dir: str | Path,
                    encoder_folder: str | Path | None = None, ctx: DistContext | None = None,
                    progress: ProgressReporter | None = None, resume: bool = False) -> TrainingResult:
    """Stage 2: train the conditional DDPM (encoder from ``encoder_folder`` when given) on healthy slices."""
    ctx, progress, out_dir = ctx or DistContext(), progress or ProgressReporter("none"), Path(out_dir)
    train_cfg = cfg.diffusion_training
    torch.manual_seed(train_cfg.seed)
    model = AnomalyDiffusionModel(cfg)
    if encoder_folder is not None and model.encoder is not None:
        _, stage1, _ = load_model_folder(encoder_folder, expected_kind="encoder")
        load_stage1_trunk(model.encoder, stage1)  # raises unless every trunk tensor matched (METHOD.md §4.1)
    frozen = train_cfg.encoder_mode == "frozen" and model.encoder is not None
    model.set_encoder_frozen(frozen)
    model.to(ctx.device)
    objective = _DiffusionObjective(model)
    train_data = SliceTable(train, cfg.inference.min_brain_pixels)
    val_batches = _validation_batches(SliceTable(val, cfg.inference.min_brain_pixels), train_cfg.batch_size, ctx)
    steps, height, width = cfg.diffusion.num_timesteps, *cfg.grid.slice_shape

    def random_inputs(seed_words: list[int], batch: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        rng = np.random.default_rng(seed_words)
        timesteps = torch.from_numpy(rng.integers(0, steps, size=batch))
        noise = NoiseSampler(cfg.diffusion.noise, rng).sample(batch, height, width)
        return timesteps, noise, rng.integers(0, 2**31 - 1, size=batch)

    def loss_of_batch(engine: torch.nn.Module, batch: torch.Tensor, step: int) -> torch.Tensor:
        timesteps, noise, aug_seeds = random_inputs([train_cfg.seed, step], train_cfg.batch_size)
        if train_cfg.intensity_augmentation:
            batch = _intensity_augment(batch.cpu(), _local_part(aug_seeds, ctx)).to(ctx.device)
        k = _local_part(timesteps, ctx).to(ctx.device)
        return engine(batch, k, _local_part(noise, ctx).to(ctx.device))

    @torch.no_grad()
    def validation_loss() -> tuple[float, int]:
        total, count = 0.0, 0
        for index, batch in enumerate(val_batches):
            timesteps, noise, _ = random_inputs([train_cfg.seed, 10**9 + index + ctx.rank], len(batch))
            loss = model.training_loss(batch.to(ctx.device), timesteps.to(ctx.device), noise.to(ctx.device))
            total += float(loss) * len(batch)
            count += len(batch)
        return total, count

    def save(folder: Path, meta: dict[str, Any]) -> None:
        save_model(folder, model.state_dict(), cfg, kind="diffusion", metadata=meta)

    def keep_frozen_encoder_in_eval() -> None:
        if frozen:
            model.set_encoder_frozen(True)

    return _fit("train", objective, model, train_cfg, loss_of_batch, validation_loss, save, train_data, out_dir,
                ctx, progress, resume, after_train_mode=keep_frozen_encoder_in_eval)

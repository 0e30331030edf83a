"""Pseudo-healthy reconstruction of a whole volume on the model grid (docs/METHOD.md §5).

For each axial slice x (in [0, 1]) and each noise level k in ``InferenceConfig.timestep_indices`` the model
predicts x0 from one noised copy in a single forward pass; the reconstruction is the mean of those predictions.
One simplex field per level is drawn for the whole volume (shared by all slices) from a generator seeded with
``InferenceConfig.seed``, so a given volume always gives the same map.

Speed (docs/PERFORMANCE.md §4): the levels of several slices go through the UNet in one batch; slices with almost no
brain are skipped (their reconstruction is the input, so their residual is 0); the batch size follows a memory
budget; bf16 autocast is used where it is faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import ModelConfig
from ..method.diffusion_model import AnomalyDiffusionModel
from ..method.noise import NoiseSampler
from ..runtime.precision import autocast, resolve_precision
from ..runtime.progress import ProgressReporter

# Live activation tensors per network input, in units of (channels x pixels) of each level: the skip tensors
# kept for the decoder (num_res_blocks + 2 per level) plus a working set of a few tensors. Measured peaks
# (benchmarks/bench_inference.py) stay below this estimate.
WORKING_SET_TENSORS = 6
SAFETY_FACTOR = 2.0
# The model stage reports progress once per batch; a volume is split into at least this many batches (when it has
# that many slices) so the bar moves steadily instead of jumping from 0 to the end in one step. The split depends
# only on the slice count, so the same scan always runs in the same batches (repeatable maps).
MIN_PROGRESS_STEPS = 8


@dataclass
class Reconstruction:
    """Result of :func:`reconstruct_volume`; arrays are KJI on the model grid, intensities in [0, 1]."""

    reconstruction: np.ndarray
    processed_slices: np.ndarray  # indices (K) of the slices that went through the network
    batch_size: int
    dtype: str


def activation_bytes_per_input(cfg: ModelConfig, dtype: torch.dtype) -> int:
    """Estimated peak activation memory (bytes) of one UNet input of the model's slice size, at inference."""
    rows, cols = cfg.grid.slice_shape
    element = torch.finfo(dtype).bits // 8
    total = 0.0
    for level, channels in enumerate(cfg.unet.channels):
        pixels = rows * cols / 4**level
        total += (cfg.unet.num_res_blocks + 2) * channels * pixels
    total += WORKING_SET_TENSORS * cfg.unet.channels[0] * rows * cols
    return int(total * element * SAFETY_FACTOR)


def inputs_per_batch(cfg: ModelConfig, dtype: torch.dtype, budget_mb: int | None = None) -> int:
    """How many UNet inputs (slice x level pairs) fit the memory budget at once (at least 1)."""
    budget = (budget_mb if budget_mb is not None else cfg.inference.memory_budget_mb) * 2**20
    return max(1, int(budget // activation_bytes_per_input(cfg, dtype)))


def slices_per_step(slice_count: int, budget_slices: int) -> int:
    """Slices per batch: the memory budget's, but small enough for :data:`MIN_PROGRESS_STEPS` batches (>= 1)."""
    steady = -(-int(slice_count) // MIN_PROGRESS_STEPS)  # ceil division
    return max(1, min(int(budget_slices), steady))


def brain_slices(brain_mask_kji: np.ndarray, min_pixels: int) -> np.ndarray:
    """Indices K of the axial slices with at least ``min_pixels`` brain pixels."""
    counts = (brain_mask_kji > 0).reshape(brain_mask_kji.shape[0], -1).sum(axis=1)
    return np.flatnonzero(counts >= min_pixels)


@torch.inference_mode()
def reconstruct_volume(model: AnomalyDiffusionModel, image_kji: np.ndarray, brain_mask_kji: np.ndarray | None,
                       cfg: ModelConfig, device: torch.device, progress: ProgressReporter | None = None,
                       precision: torch.dtype | None = None, timestep_indices: tuple[int, ...] | None = None,
                       ) -> Reconstruction:
    """Reconstruct every brain slice of ``image_kji`` (shape (D, H, W), values in [0, 1]).

    ``timestep_indices`` overrides the config's levels (e.g. ``(499,)`` for the one-level fast mode).
    """
    inference = cfg.inference
    levels = tuple(timestep_indices or inference.timestep_indices)
    dtype = precision or resolve_precision(inference.precision, device)
    model.eval()
    if brain_mask_kji is not None and inference.skip_empty_slices:
        selected = brain_slices(brain_mask_kji, inference.min_brain_pixels)
    else:
        selected = np.arange(image_kji.shape[0])
    reconstruction = image_kji.astype(np.float32, copy=True)
    height, width = image_kji.shape[1:]
    level_noise = []  # one field per (noise draw, level); draw d uses seed + d, so one draw is the method itself
    for draw in range(max(1, inference.noise_seeds)):
        sampler = NoiseSampler(cfg.diffusion.noise, np.random.default_rng(inference.seed + draw))
        level_noise += [sampler.sample(1, height, width, device=device) for _ in levels]
    levels = levels * max(1, inference.noise_seeds)
    slices_per_batch = slices_per_step(len(selected), inputs_per_batch(cfg, dtype) // len(levels))
    done = 0
    if progress is not None:
        progress.advance(0, total=len(selected))
    for start in range(0, len(selected), slices_per_batch):
        indices = selected[start:start + slices_per_batch]
        x01 = torch.from_numpy(image_kji[indices]).to(device=device, dtype=torch.float32)[:, None]
        count = x01.shape[0]
        with autocast(device, dtype):
            condition = model.condition(x01)
            inputs = x01.repeat(len(levels), 1, 1, 1)
            k = torch.tensor(levels, device=device).repeat_interleave(count)
            noise = torch.cat([n.expand(count, -1, -1, -1) for n in level_noise])
            repeated = None if condition is None else condition.repeat(len(levels), 1)
            x0_hat = model.predict_x0(inputs, k, noise, condition=repeated)
        x0_hat = x0_hat.float().reshape(len(levels), count, height, width).mean(dim=0)
        reconstruction[indices] = x0_hat.cpu().numpy()
        done += count
        if progress is not None:
            progress.advance(done)
    return Reconstruction(reconstruction=reconstruction, processed_slices=selected,
                          batch_size=slices_per_batch * len(levels), dtype=str(dtype).replace("torch.", ""))

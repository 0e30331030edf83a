"""Voxel-wise healthy residual statistics, and the residual normalisation they allow (beyond the paper).

Even a good reconstruction leaves a residual on healthy tissue, larger at cortical edges and ventricle borders than
in deep white matter. Estimated on healthy scans on the model grid, the mean ``m_v`` and standard deviation ``s_v``
of that residual per voxel turn the residual ``r`` into ``max(r - m_v, 0) * ref / s_v`` (``ref`` = median ``s_v``
in the brain), so a voxel scores by how unusual its residual is *for that place*. The map keeps residual-like units.

Arrays are KJI on the model grid, intensities and residuals in normalised units ([0, 1] images). The statistics are
stored beside a model's weights as ``healthy_residual_stats.safetensors`` and covered by its ``model.sha256``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..config import PostprocessConfig
from ..errors import InputError
from ..storage.integrity import HEALTHY_STATS_FILE

STATS_FILE = HEALTHY_STATS_FILE
MIN_SUBJECTS = 2  # a standard deviation needs at least two healthy residuals per voxel
PLAIN_MAP_LABEL = "|input - reconstruction|"
NORMALISED_MAP_LABEL = "|input - reconstruction| / healthy spread"


def map_label(residual_normalisation: str) -> str:
    """A short axis or legend label for the anomaly map of a model with this ``residual_normalisation``."""
    return PLAIN_MAP_LABEL if residual_normalisation == "none" else NORMALISED_MAP_LABEL


def map_units(residual_normalisation: str) -> str:
    """One sentence on what the anomaly map's values mean (``summary.json``'s ``units``)."""
    plain = "|input - reconstruction| in normalised intensity (brain 1st-99th percentile -> 0-1)"
    if residual_normalisation == "none":
        return f"anomaly scores are {plain}"
    return (f"anomaly scores are {plain}, minus the healthy mean residual at that voxel and scaled by the healthy "
            "spread there relative to the brain's median spread (unbounded above)")


@dataclass(frozen=True)
class HealthyResidualStats:
    """``mean_kji`` and ``std_kji`` (float32 KJI, residual units; std already smoothed and floored) and
    ``reference_std`` (the median std inside the brains the statistics came from)."""

    mean_kji: np.ndarray
    std_kji: np.ndarray
    reference_std: float

    def normalise(self, residual_kji: np.ndarray) -> np.ndarray:
        """``max(r - mean, 0) * reference_std / std`` as float32 KJI; the grid must match the statistics."""
        residual = np.asarray(residual_kji, dtype=np.float32)
        if residual.shape != self.mean_kji.shape:
            raise InputError(f"residual grid {residual.shape} (KJI) differs from the healthy statistics' "
                             f"{self.mean_kji.shape}")
        excess = np.maximum(residual - self.mean_kji, 0.0)
        return (excess * (self.reference_std / self.std_kji)).astype(np.float32)

    @classmethod
    def fit(cls, residuals_kji: Sequence[np.ndarray], brain_masks_kji: Sequence[np.ndarray],
            settings: PostprocessConfig) -> HealthyResidualStats:
        """Statistics of healthy residual maps (one per subject, each with its brain mask).

        Mean and variance are smoothed by normalised convolution (a Gaussian of
        ``settings.normalisation_smoothing_vox`` voxels over the voxels inside each brain), so that a voxel covered
        by few brains borrows from its neighbours; voxels covered by none get the brain-wide values.
        """
        if len(residuals_kji) < MIN_SUBJECTS or len(residuals_kji) != len(brain_masks_kji):
            raise InputError(f"healthy residual statistics need at least {MIN_SUBJECTS} subjects with brain masks")
        residuals = np.stack([np.asarray(r, dtype=np.float64) for r in residuals_kji])
        masks = np.stack([np.asarray(m) > 0 for m in brain_masks_kji]).astype(np.float64)
        sigma = float(settings.normalisation_smoothing_vox)

        def smooth(volume: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(volume, sigma) if sigma > 0 else volume

        weight = smooth(masks.sum(axis=0))
        total = smooth((residuals * masks).sum(axis=0))
        total_sq = smooth((residuals**2 * masks).sum(axis=0))
        inside = masks.sum(axis=0) > 0
        global_mean = float((residuals * masks).sum() / masks.sum())
        global_var = float((residuals**2 * masks).sum() / masks.sum()) - global_mean**2
        covered = weight > 1e-3
        mean = np.where(covered, total / np.maximum(weight, 1e-12), global_mean)
        variance = np.where(covered, total_sq / np.maximum(weight, 1e-12) - mean**2, global_var)
        std = np.sqrt(np.maximum(variance, 0.0))
        reference = float(np.median(std[inside]))
        if reference <= 0:
            raise InputError("healthy residuals are all equal; cannot normalise by their spread")
        std = np.maximum(std, settings.normalisation_min_std_fraction * reference)
        return cls(mean_kji=mean.astype(np.float32), std_kji=std.astype(np.float32), reference_std=reference)

    def save(self, folder: str | Path) -> Path:
        """Write ``STATS_FILE`` into ``folder`` (safetensors; the caller updates the folder's checksums)."""
        import torch
        from safetensors.torch import save_file

        from ..storage.files import atomic_write

        path = Path(folder) / STATS_FILE
        tensors = {"mean_kji": torch.from_numpy(self.mean_kji), "std_kji": torch.from_numpy(self.std_kji),
                   "reference_std": torch.tensor([self.reference_std], dtype=torch.float64)}
        with atomic_write(path) as tmp:
            save_file(tensors, str(tmp))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> HealthyResidualStats | None:
        """The statistics stored in a model folder, or ``None`` when it has none."""
        path = Path(folder) / STATS_FILE
        if not path.is_file():
            return None
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        return cls(mean_kji=tensors["mean_kji"].astype(np.float32), std_kji=tensors["std_kji"].astype(np.float32),
                   reference_std=float(tensors["reference_std"][0]))


def held_out_normalised(residuals_kji: Sequence[np.ndarray], brain_masks_kji: Sequence[np.ndarray],
                        settings: PostprocessConfig) -> list[np.ndarray]:
    """Each healthy residual normalised by statistics fitted on the **other** subjects (leave one out).

    A threshold calibrated on these maps meets the normalisation as a new scan does; statistics fitted on a scan
    and then applied to it shrink its own residual and would put the threshold too low. Needs at least
    ``MIN_SUBJECTS + 1`` subjects. Arrays are float32 KJI on the model grid, residual units.
    """
    if len(residuals_kji) < MIN_SUBJECTS + 1:
        raise InputError(f"held-out normalisation needs at least {MIN_SUBJECTS + 1} healthy subjects")
    maps = []
    for held_out, residual in enumerate(residuals_kji):
        others = [i for i in range(len(residuals_kji)) if i != held_out]
        stats = HealthyResidualStats.fit([residuals_kji[i] for i in others], [brain_masks_kji[i] for i in others],
                                         settings)
        maps.append(stats.normalise(residual))
    return maps

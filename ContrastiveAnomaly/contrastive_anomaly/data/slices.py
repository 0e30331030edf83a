"""A torch Dataset of axial slices taken from model-grid volumes (METHOD.md §2: slices of the 96×96×50 grid).

Volumes are KJI float32 arrays (slices, rows, cols) with intensities in [0, 1]; one item is one axial slice
``volume[k]`` as a tensor of shape ``[1, rows, cols]`` in [0, 1]. With an augmentation, each volume is augmented in
3D once per epoch (seed derived from ``(seed, epoch, volume index)``), then sliced, as the reference method does.
Call :meth:`SliceDataset.set_epoch` at the start of every epoch to draw fresh augmentations and slice indices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

VolumeAugment = Callable[[np.ndarray, int], np.ndarray]


class SliceDataset(Dataset):
    """Axial slices of several subjects' volumes.

    ``slices_per_volume="all"`` yields every slice of every volume; an integer ``n`` yields ``n`` slices per volume
    per epoch, drawn uniformly at random (with replacement) from ``seed`` and the epoch (the reference trains on one
    random slice per volume per epoch). ``augment(volume_kji, seed) -> volume_kji`` is applied to the whole volume.
    """

    def __init__(self, volumes: Sequence[np.ndarray], subjects: Sequence[str], augment: VolumeAugment | None = None,
                 slices_per_volume: Literal["all"] | int = "all", seed: int = 0) -> None:
        if len(volumes) != len(subjects):
            raise ValueError(f"{len(volumes)} volumes but {len(subjects)} subject ids")
        if not volumes:
            raise ValueError("SliceDataset needs at least one volume")
        for volume in volumes:
            if volume.ndim != 3:
                raise ValueError(f"volumes must be 3-D KJI arrays; got shape {volume.shape}")
        if slices_per_volume != "all" and (not isinstance(slices_per_volume, int) or slices_per_volume < 1):
            raise ValueError(f"slices_per_volume must be 'all' or a positive int, not {slices_per_volume!r}")
        self.volumes = [np.asarray(v, dtype=np.float32) for v in volumes]
        self.subjects = list(subjects)
        self.augment = augment
        self.slices_per_volume = slices_per_volume
        self.seed = int(seed)
        self.epoch = 0
        self._index: list[tuple[int, int]] = []
        self._augmented: dict[int, np.ndarray] = {}
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's slice indices and forget last epoch's augmented volumes."""
        self.epoch = int(epoch)
        self._augmented = {}
        if self.slices_per_volume == "all":
            self._index = [(v, k) for v, volume in enumerate(self.volumes) for k in range(volume.shape[0])]
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        self._index = [(v, int(k)) for v, volume in enumerate(self.volumes)
                       for k in rng.integers(0, volume.shape[0], size=self.slices_per_volume)]

    def __len__(self) -> int:
        return len(self._index)

    def volume_seed(self, volume_index: int) -> int:
        """The augmentation seed of one volume in the current epoch."""
        return int(np.random.default_rng([self.seed, self.epoch, volume_index]).integers(0, 2**31 - 1))

    def _volume(self, volume_index: int) -> np.ndarray:
        if self.augment is None:
            return self.volumes[volume_index]
        if volume_index not in self._augmented:
            augmented = self.augment(self.volumes[volume_index], self.volume_seed(volume_index))
            self._augmented[volume_index] = np.clip(np.asarray(augmented, dtype=np.float32), 0.0, 1.0)
        return self._augmented[volume_index]

    def item_info(self, index: int) -> tuple[str, int]:
        """(subject id, axial slice index k) of item ``index`` in the current epoch."""
        volume_index, k = self._index[index]
        return self.subjects[volume_index], k

    def __getitem__(self, index: int) -> torch.Tensor:
        volume_index, k = self._index[index]
        return torch.from_numpy(np.ascontiguousarray(self._volume(volume_index)[k]))[None]

"""Re-thresholding a finished result fast, with one definition of the mask and its regions for ``detect`` and the panel.

The anomaly decision is made on the **model grid** (``filtered > threshold``, then components of at most
``max_removed_component_voxels`` voxels removed, :func:`~.postprocess.binarize`). The scan's own (native) grid gets
that decision by nearest-neighbour lookup: every native voxel knows which model voxel it samples
(``model_index``, 1-based, 0 = outside the model grid), so the native mask is ``model_mask.flat[model_index - 1]``.

A **region** is a connected component of the model-grid mask (the grid the decision is made on). Its native
volume, peak and mean score and centroid are aggregated over the native voxels that sample it, from per-model-voxel
sums computed once (:meth:`ThresholdIndex.build`). Re-thresholding then costs a labelling of the model grid
(~10^6 voxels) whatever the scan's size, so the panel's slider stays fast on a 300 x 512 x 512 scan, and
``summary.json`` (written with the same class) and the panel report the same numbers for the same threshold.

Arrays are **KJI**. ``native_ijk_to_lps`` is the scan's 4x4 IJK-to-LPS matrix (mm). numpy/scipy only, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .postprocess import neighbourhood, remove_small_components
from .regions import LPS_TO_RAS, MM3_PER_ML, Region, label_regions

OUTSIDE = 0  # model_index value of a native voxel that samples no model voxel
INDEX_FILE_KEYS = ("filtered_kji", "native_count", "native_map_sum", "native_map_max", "native_ijk_sum",
                   "native_ijk_to_lps", "settings")


@dataclass(frozen=True)
class ThresholdIndex:
    """Everything needed to answer "mask and regions at threshold t" without touching native-sized arrays.

    ``filtered_kji``: the filtered map on the model grid (float32, intensity units). ``native_count[m]``: native
    voxels sampling model voxel ``m`` (flat, C order); ``native_map_sum/max[m]``: sum / max of the native map over
    them; ``native_ijk_sum[m]``: sum of their (I, J, K) indices. ``native_ijk_to_lps``: 4x4 matrix (mm).
    """

    filtered_kji: np.ndarray
    max_removed_component_voxels: int
    connectivity: int
    native_count: np.ndarray
    native_map_sum: np.ndarray
    native_map_max: np.ndarray
    native_ijk_sum: np.ndarray
    native_ijk_to_lps: np.ndarray

    @classmethod
    def build(cls, filtered_kji: np.ndarray, model_index_kji: np.ndarray, native_map_kji: np.ndarray,
              native_ijk_to_lps: np.ndarray, *, max_removed_component_voxels: int,
              connectivity: int) -> ThresholdIndex:
        """Aggregate the native grid per model voxel (one pass over the native voxels that sample the model grid)."""
        filtered = np.ascontiguousarray(filtered_kji, dtype=np.float32)
        index = np.asarray(model_index_kji)
        scores = np.asarray(native_map_kji, dtype=np.float64)
        if index.shape != scores.shape:
            raise ValueError(f"model index {index.shape} and native map {scores.shape} differ in shape")
        inside = np.nonzero(index.ravel() != OUTSIDE)[0]
        slot = index.ravel()[inside].astype(np.int64) - 1
        size = filtered.size
        if slot.size and (slot.min() < 0 or slot.max() >= size):
            raise ValueError("model index refers to voxels outside the model grid")
        count = np.bincount(slot, minlength=size)
        values = scores.ravel()[inside]
        map_sum = np.bincount(slot, weights=values, minlength=size)
        map_max = np.full(size, -np.inf)
        np.maximum.at(map_max, slot, values)  # int64 slots, float64 values: numpy's fast ufunc.at path
        kji = np.unravel_index(inside, index.shape)
        ijk_sum = np.stack([np.bincount(slot, weights=kji[axis], minlength=size) for axis in (2, 1, 0)], axis=1)
        return cls(filtered, int(max_removed_component_voxels), int(connectivity), count, map_sum, map_max, ijk_sum,
                   np.asarray(native_ijk_to_lps, dtype=np.float64))

    @property
    def native_voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.native_ijk_to_lps[:3, :3]))) / MM3_PER_ML

    def model_mask(self, threshold: float) -> np.ndarray:
        """Bool KJI mask on the model grid: the engine's decision at ``threshold`` (see :func:`binarize`)."""
        return remove_small_components(self.filtered_kji > float(threshold), self.max_removed_component_voxels,
                                       self.connectivity)

    def mask_and_regions(self, threshold: float) -> tuple[np.ndarray, list[Region]]:
        """:meth:`model_mask` and :meth:`regions` with one labelling of the model grid: the filtered mask's
        components are exactly the raw mask's components of more than ``max_removed_component_voxels`` voxels."""
        labels, count = ndimage.label(self.filtered_kji > float(threshold), structure=neighbourhood(self.connectivity))
        if count:
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            keep = sizes > self.max_removed_component_voxels
            keep[0] = False
            order = np.nonzero(keep)[0]
            order = order[np.argsort(-sizes[order], kind="stable")]  # largest first, ties in label order
            renumber = np.zeros(count + 1, dtype=np.int32)
            renumber[order] = np.arange(1, order.size + 1, dtype=np.int32)
            labels, count = renumber[labels], int(order.size)
        return labels > 0, self._measure(labels, count)

    def regions(self, threshold: float, model_mask: np.ndarray | None = None) -> list[Region]:
        """One :class:`Region` per component of the model-grid mask, measured on the native grid, largest first.

        Components that no native voxel samples are dropped (they are not visible on the scan).
        """
        mask = self.model_mask(threshold) if model_mask is None else model_mask
        labels, count = label_regions(mask, self.connectivity)
        return self._measure(labels, count)

    def _measure(self, labels: np.ndarray, count: int) -> list[Region]:
        if count == 0:
            return []
        flat = labels.ravel()
        chosen = np.nonzero(flat)[0]
        slot = flat[chosen] - 1
        voxels = np.bincount(slot, weights=self.native_count[chosen], minlength=count)
        sums = np.bincount(slot, weights=self.native_map_sum[chosen], minlength=count)
        peaks = np.full(count, -np.inf)
        np.maximum.at(peaks, slot, self.native_map_max[chosen])
        ijk = np.stack([np.bincount(slot, weights=self.native_ijk_sum[chosen, axis], minlength=count)
                        for axis in range(3)], axis=1)
        visible = np.nonzero(voxels > 0)[0]
        volume_ml = self.native_voxel_ml
        rows = []
        for n in visible[np.argsort(-voxels[visible], kind="stable")]:
            centroid_ijk = ijk[n] / voxels[n]
            lps = self.native_ijk_to_lps[:3, :3] @ centroid_ijk + self.native_ijk_to_lps[:3, 3]
            rows.append((int(voxels[n]), float(peaks[n]), float(sums[n] / voxels[n]), centroid_ijk, lps))
        return [Region(label=number, voxel_count=count_n, volume_ml=count_n * volume_ml, peak_score=peak,
                       mean_score=mean, centroid_ijk=tuple(float(v) for v in centroid),
                       centroid_lps_mm=tuple(float(v) for v in lps),
                       centroid_ras_mm=tuple(float(v) for v in lps * LPS_TO_RAS))
                for number, (count_n, peak, mean, centroid, lps) in enumerate(rows, start=1)]

    def save(self, path: str | Path) -> Path:
        """Write the index as a compressed ``.npz`` (model-grid sized: a few MB)."""
        settings = np.array([self.max_removed_component_voxels, self.connectivity], dtype=np.int64)
        with open(path, "wb") as handle:
            np.savez_compressed(handle, filtered_kji=self.filtered_kji, native_count=self.native_count,
                                native_map_sum=self.native_map_sum, native_map_max=self.native_map_max,
                                native_ijk_sum=self.native_ijk_sum, native_ijk_to_lps=self.native_ijk_to_lps,
                                settings=settings)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ThresholdIndex:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in INDEX_FILE_KEYS if key not in data]
            if missing:
                raise ValueError(f"{Path(path).name} is not a threshold index (missing {', '.join(missing)})")
            max_removed, connectivity = (int(v) for v in data["settings"])
            return cls(data["filtered_kji"], max_removed, connectivity, data["native_count"], data["native_map_sum"],
                       data["native_map_max"], data["native_ijk_sum"], data["native_ijk_to_lps"])


def native_mask(model_mask_kji: np.ndarray, model_index_kji: np.ndarray) -> np.ndarray:
    """The model-grid decision on the native grid: bool array shaped like ``model_index_kji``."""
    lookup = np.concatenate([[False], np.asarray(model_mask_kji, dtype=bool).ravel()])
    return lookup[np.asarray(model_index_kji)]


def ijk_to_lps_of(spacing: tuple[float, ...], origin: tuple[float, ...], direction: tuple[float, ...]) -> np.ndarray:
    """4x4 IJK-to-LPS matrix from SimpleITK-style geometry (spacing and origin in IJK order, row-major direction)."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(direction, dtype=np.float64).reshape(3, 3) @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix

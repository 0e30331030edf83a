"""Re-thresholding a finished result fast, with one definition of the mask and its regions for ``detect`` and the panel.

The anomaly decision is made on the **model grid** (``filtered > threshold``, then components of at most
``max_removed_component_voxels`` voxels removed, :func:`~.postprocess.binarize`). The scan's own (native) grid gets
that decision by nearest-neighbour lookup: every native voxel knows which model voxel it samples
(``model_index``, 1-based, 0 = outside the model grid), so the native mask is ``model_mask.flat[model_index - 1]``.

A **region** is a connected component of the model-grid mask (the grid the decision is made on). Its native
volume and centroid are aggregated over the native voxels that sample it, and so are its peak and mean score, from
the **model-grid values each native voxel samples** (the values that decided the mask; a linearly resampled map would
mix a flagged voxel with its unflagged neighbours and could report a peak below the threshold that flagged it). Two
ways, same numbers (up to float summation order):

* ``detect`` measures one threshold once: :meth:`ThresholdIndex.regions_from_native` aggregates only the native voxels
  inside the mask (one lookup over the native grid), so the CLI pays almost nothing for the index. The file it
  writes (:meth:`ThresholdIndex.save`) holds only the model-grid part (a few MB).
* The panel's slider measures many thresholds: :meth:`ThresholdIndex.with_native` adds per-model-voxel sums over
  the whole native grid once, when the result is loaded (chunked over slices), after which a move costs a labelling
  of the model grid (~10^6 voxels) whatever the scan's size.

Arrays are **KJI**. ``native_ijk_to_lps`` is the scan's 4x4 IJK-to-LPS matrix (mm). numpy/scipy only, no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .postprocess import neighbourhood, remove_small_components
from .regions import LPS_TO_RAS, MM3_PER_ML, Region, label_regions

OUTSIDE = 0  # model_index value of a native voxel that samples no model voxel
MODEL_GRID_KEYS = ("filtered_kji", "native_ijk_to_lps", "settings")
NATIVE_KEYS = ("native_count", "native_map_sum", "native_map_max", "native_ijk_sum")
INDEX_FILE_KEYS = MODEL_GRID_KEYS  # what every threshold index file holds (the native sums are optional)
CHUNK_SLICES = 16  # native slices aggregated per step in with_native (bounds the temporaries to ~16 slices)


@dataclass(frozen=True)
class NativeSums:
    """Per-model-voxel sums over the native voxels that sample each model voxel (flat, C order, model-grid size).

    ``count[m]``: how many; ``map_sum/map_max[m]``: sum / max of the native map over them; ``ijk_sum[m]``: sum of
    their (I, J, K) indices, shape (size, 3).
    """

    count: np.ndarray
    map_sum: np.ndarray
    map_max: np.ndarray
    ijk_sum: np.ndarray


@dataclass(frozen=True)
class ThresholdIndex:
    """What answers "mask and regions at threshold t" without touching native-sized arrays once ``native`` is set.

    ``filtered_kji``: the filtered map on the model grid (float32, intensity units). ``native_ijk_to_lps``: the
    scan's 4x4 IJK-to-LPS matrix (mm). ``native``: the per-model-voxel native sums (:meth:`with_native`), or ``None``
    (then :meth:`regions_from_native` measures one threshold from the native arrays).
    """

    filtered_kji: np.ndarray
    max_removed_component_voxels: int
    connectivity: int
    native_ijk_to_lps: np.ndarray
    native: NativeSums | None = None

    @classmethod
    def on_model_grid(cls, filtered_kji: np.ndarray, native_ijk_to_lps: np.ndarray, *,
                      max_removed_component_voxels: int, connectivity: int) -> ThresholdIndex:
        """The model-grid part only (what ``detect`` writes): no pass over the native grid."""
        return cls(np.ascontiguousarray(filtered_kji, dtype=np.float32), int(max_removed_component_voxels),
                   int(connectivity), np.asarray(native_ijk_to_lps, dtype=np.float64))

    @classmethod
    def build(cls, filtered_kji: np.ndarray, model_index_kji: np.ndarray, native_ijk_to_lps: np.ndarray, *,
              max_removed_component_voxels: int, connectivity: int) -> ThresholdIndex:
        """The model-grid part plus the native sums (:meth:`with_native`)."""
        model_part = cls.on_model_grid(filtered_kji, native_ijk_to_lps, connectivity=connectivity,
                                       max_removed_component_voxels=max_removed_component_voxels)
        return model_part.with_native(model_index_kji)

    def with_native(self, model_index_kji: np.ndarray) -> ThresholdIndex:
        """A copy with the per-model-voxel native sums, for many re-thresholdings (the panel's slider).

        One pass over the native voxels, ``CHUNK_SLICES`` slices at a time; each chunk's bincounts cover only the
        model voxels it touches. ``model_index_kji``: int, native grid (KJI), the 1-based model voxel each native
        voxel samples (0 outside). Scores are the model-grid values those voxels sample (see the module docstring).
        """
        index = np.asarray(model_index_kji)
        size = self.filtered_kji.size
        count = np.zeros(size, dtype=np.int64)
        ijk_sum = np.zeros((size, 3))
        _, rows, cols = index.shape
        for k0 in range(0, index.shape[0], CHUNK_SLICES):
            flat = index[k0:k0 + CHUNK_SLICES].ravel()
            inside = np.flatnonzero(flat != OUTSIDE)
            if inside.size == 0:
                continue
            slot = flat[inside].astype(np.intp) - 1
            low, high = int(slot.min()), int(slot.max())
            if low < 0 or high >= size:
                raise ValueError("model index refers to voxels outside the model grid")
            local, span = slot - low, high - low + 1
            count[low:high + 1] += np.bincount(local, minlength=span)
            plane = rows * cols
            for axis, coordinate in enumerate((inside % cols, (inside // cols) % rows, inside // plane + k0)):
                ijk_sum[low:high + 1, axis] += np.bincount(local, weights=coordinate, minlength=span)
        # every native voxel of model voxel m scores filtered[m], so the map's sum and peak follow from the count
        scores = self.filtered_kji.ravel().astype(np.float64)
        map_sum = count * scores
        map_max = np.where(count > 0, scores, -np.inf)
        return dataclasses.replace(self, native=NativeSums(count, map_sum, map_max, ijk_sum))

    @property
    def native_voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.native_ijk_to_lps[:3, :3]))) / MM3_PER_ML

    def model_mask(self, threshold: float) -> np.ndarray:
        """Bool KJI mask on the model grid: the engine's decision at ``threshold`` (see :func:`binarize`)."""
        return remove_small_components(self.filtered_kji > float(threshold), self.max_removed_component_voxels,
                                       self.connectivity)

    def _labels(self, threshold: float) -> tuple[np.ndarray, int]:
        """Model-grid labels of the kept components (1 = largest, ties in label order) with one labelling: the
        filtered mask's components are exactly the raw mask's components of more than the size limit."""
        labels, count = ndimage.label(self.filtered_kji > float(threshold), structure=neighbourhood(self.connectivity))
        if count:
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            keep = sizes > self.max_removed_component_voxels
            keep[0] = False
            order = np.nonzero(keep)[0]
            order = order[np.argsort(-sizes[order], kind="stable")]
            renumber = np.zeros(count + 1, dtype=np.int32)
            renumber[order] = np.arange(1, order.size + 1, dtype=np.int32)
            labels, count = renumber[labels], int(order.size)
        return labels, count

    def mask_and_regions(self, threshold: float) -> tuple[np.ndarray, list[Region]]:
        """:meth:`model_mask` and :meth:`regions` with one labelling of the model grid (needs the native sums)."""
        labels, count = self._labels(threshold)
        return labels > 0, self._measure(labels, count)

    def regions(self, threshold: float, model_mask: np.ndarray | None = None) -> list[Region]:
        """One :class:`Region` per component of the model-grid mask, measured on the native grid, largest first
        (needs the native sums). Components that no native voxel samples are dropped (not visible on the scan)."""
        mask = self.model_mask(threshold) if model_mask is None else model_mask
        labels, count = label_regions(mask, self.connectivity)
        return self._measure(labels, count)

    def regions_from_native(self, model_mask: np.ndarray, model_index_kji: np.ndarray) -> list[Region]:
        """:meth:`regions` for one mask, aggregated directly over the native voxels inside it (no native sums
        needed; what ``detect`` uses). Same numbers as :meth:`regions` up to float summation order.

        ``model_mask``: bool, model grid (KJI); ``model_index_kji``: native grid (KJI), 1-based model voxel per
        native voxel (0 outside)."""
        labels, count = label_regions(model_mask, self.connectivity)
        if count == 0:
            return []
        lookup = np.concatenate([[0], labels.ravel()]).astype(np.int32)
        model_index = np.asarray(model_index_kji).ravel()
        native_labels = lookup[model_index]
        chosen = np.flatnonzero(native_labels)
        slot = native_labels[chosen].astype(np.intp) - 1
        values = self.filtered_kji.ravel()[model_index[chosen].astype(np.intp) - 1].astype(np.float64)
        peaks = np.full(count, -np.inf)
        np.maximum.at(peaks, slot, values)
        _, rows, cols = np.shape(model_index_kji)
        coordinates = (chosen % cols, (chosen // cols) % rows, chosen // (rows * cols))
        ijk = np.stack([np.bincount(slot, weights=c, minlength=count) for c in coordinates], axis=1)
        return self._rows(np.bincount(slot, minlength=count).astype(np.float64),
                          np.bincount(slot, weights=values, minlength=count), peaks, ijk)

    def _measure(self, labels: np.ndarray, count: int) -> list[Region]:
        if count == 0:
            return []
        if self.native is None:
            raise ValueError("this threshold index has no native sums; call with_native(model_index)")
        native = self.native
        flat = labels.ravel()
        chosen = np.nonzero(flat)[0]
        slot = flat[chosen] - 1
        peaks = np.full(count, -np.inf)
        np.maximum.at(peaks, slot, native.map_max[chosen])
        ijk = np.stack([np.bincount(slot, weights=native.ijk_sum[chosen, axis], minlength=count)
                        for axis in range(3)], axis=1)
        return self._rows(np.bincount(slot, weights=native.count[chosen], minlength=count),
                          np.bincount(slot, weights=native.map_sum[chosen], minlength=count), peaks, ijk)

    def _rows(self, voxels: np.ndarray, sums: np.ndarray, peaks: np.ndarray, ijk: np.ndarray) -> list[Region]:
        """Regions from per-label native voxel counts, map sums, peaks and (I, J, K) sums; largest first."""
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
        """Write the index as a compressed ``.npz`` (model-grid sized: a few MB; the native sums when present)."""
        settings = np.array([self.max_removed_component_voxels, self.connectivity], dtype=np.int64)
        arrays = {"filtered_kji": self.filtered_kji, "native_ijk_to_lps": self.native_ijk_to_lps, "settings": settings}
        if self.native is not None:
            arrays.update(native_count=self.native.count, native_map_sum=self.native.map_sum,
                          native_map_max=self.native.map_max, native_ijk_sum=self.native.ijk_sum)
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ThresholdIndex:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in INDEX_FILE_KEYS if key not in data]
            if missing:
                raise ValueError(f"{Path(path).name} is not a threshold index (missing {', '.join(missing)})")
            max_removed, connectivity = (int(v) for v in data["settings"])
            native = None
            if all(key in data for key in NATIVE_KEYS):
                native = NativeSums(*(data[key] for key in NATIVE_KEYS))
            return cls(data["filtered_kji"], max_removed, connectivity, data["native_ijk_to_lps"], native)


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

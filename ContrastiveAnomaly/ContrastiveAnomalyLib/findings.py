"""The mask and the findings table at the slider's threshold, from a finished result (no engine run, no torch).

Re-thresholding uses the engine's own :class:`~contrastive_anomaly.scoring.threshold_index.ThresholdIndex`: the
decision is made on the model grid (about 10^6 voxels, whatever the scan's size) and looked up on the scan's grid,
exactly as ``detect`` made the mask and regions in ``summary.json``. So at the engine's threshold the panel shows the
engine's numbers, and at any threshold the mL, the region count and the table describe the mask in the segment.

Arrays are **KJI** ``(slices, rows, cols)``; centroids come out in **RAS** mm (the space of Slicer's views).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contrastive_anomaly.scoring.regions import Region
from contrastive_anomaly.scoring.threshold_index import OUTSIDE, ThresholdIndex

Finding = Region  # one connected anomaly region; label 1 is the largest


@dataclass(frozen=True)
class FindingsSummary:
    """What the panel shows under the slider."""

    total_volume_ml: float
    region_count: int


def summarize(findings: list[Finding]) -> FindingsSummary:
    """Total volume (mL) and number of regions."""
    return FindingsSummary(total_volume_ml=float(sum(f.volume_ml for f in findings)), region_count=len(findings))


@dataclass(frozen=True)
class Readout:
    """Everything shown for one threshold."""

    threshold: float
    model_mask: np.ndarray
    findings: list[Finding]
    summary: FindingsSummary


class ResultIndex:
    """One result's re-thresholding state: the engine's threshold index plus the native-to-model voxel lookup.

    ``model_index_kji``: int32 on the scan's grid, 1-based model voxel per native voxel, 0 outside. It is cropped to
    the box where it is non-zero once, so building a native mask touches only that box.
    """

    def __init__(self, index: ThresholdIndex, model_index_kji: np.ndarray) -> None:
        self.index = index
        self.native_shape = tuple(np.shape(model_index_kji))
        inside = np.asarray(model_index_kji) != OUTSIDE
        box = []
        for axis in range(3):
            hit = np.nonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))[0]
            box.append(slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, 0))
        self.box = tuple(box)
        self.model_index_box = np.ascontiguousarray(np.asarray(model_index_kji)[self.box])
        self._last: Readout | None = None

    @classmethod
    def load(cls, index_file: str | Path, model_index_file: str | Path) -> ResultIndex:
        """From ``detect``'s ``threshold_index.npz`` and ``model_index.nii.gz``.

        ``detect`` writes only the model-grid part of the index; the per-model-voxel native sums that make every
        slider move cheap are added here, once per result (one chunked pass over the scan's voxels).
        """
        import SimpleITK as sitk

        model_index = sitk.GetArrayFromImage(sitk.ReadImage(str(model_index_file))).astype(np.int32, copy=False)
        index = ThresholdIndex.load(index_file)
        if index.native is None:
            index = index.with_native(model_index)
        return cls(index, model_index)

    @property
    def native_ijk_to_ras(self) -> np.ndarray:
        """The scan's 4x4 IJK-to-RAS matrix (mm) as the engine read it: the geometry of :meth:`native_mask`."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.index.native_ijk_to_lps

    def readout(self, threshold: float) -> Readout:
        """Mask (model grid), findings and summary at ``threshold``; the last one is cached."""
        threshold = float(threshold)
        if self._last is not None and self._last.threshold == threshold:
            return self._last
        model_mask, rows = self.index.mask_and_regions(threshold)
        self._last = Readout(threshold, model_mask, rows, summarize(rows))
        return self._last

    def native_mask(self, threshold: float) -> np.ndarray:
        """Bool KJI mask on the scan's grid at ``threshold`` (what the "Anomaly" segment holds)."""
        lookup = np.concatenate([[False], self.readout(threshold).model_mask.ravel()])
        mask = np.zeros(self.native_shape, dtype=bool)
        mask[self.box] = lookup[self.model_index_box]
        return mask

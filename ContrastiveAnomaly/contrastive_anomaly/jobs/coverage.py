"""Which part of the scan's brain the model actually scored (reported in ``summary.json`` and the result event).

The model sees only the axial slices of its grid that hold enough brain (``InferenceConfig.min_brain_pixels``);
brain outside the grid's field of view, or in skipped slices, is never scored. The count is done on the scan's own
grid: a native brain voxel is scored when the model-grid point it maps to lies in a processed slice. The decision
is geometric (whole slices are mapped back, not the model-grid brain mask), so partial-volume differences between
the two brain masks at the brain's surface do not count as unscored brain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from ..preprocess import to_native
from ..preprocess.pipeline import PreparedVolume
from ..runtime.events import scored_fraction

# Unscored brain below this volume (mL) is rounding noise at the grid's first/last slice, not a gap worth a warning.
UNSCORED_WARNING_MIN_ML = 0.05


def scored_coverage(prepared: PreparedVolume, processed_slices: np.ndarray) -> dict[str, Any]:
    """The :func:`scored_fraction` dict for ``prepared`` when the model processed ``processed_slices`` (K indices).

    Volumes are in mL on the scan's grid.
    """
    shape_kji = prepared.brain_mask_kji.shape
    slice_kji = np.zeros(shape_kji, dtype=np.uint8)
    slice_kji[np.asarray(processed_slices, dtype=int)] = 1
    # a copy, not a view: a view of a temporary image would point at freed memory
    scored_native = sitk.GetArrayFromImage(to_native(prepared, slice_kji, "nearest")) > 0
    brain = sitk.GetArrayViewFromImage(prepared.native_brain_mask) > 0
    voxel_ml = float(np.prod(prepared.native_reference.GetSpacing())) / 1000.0
    return scored_fraction(float(brain.sum()) * voxel_ml, float((brain & scored_native).sum()) * voxel_ml)


def coverage_warning(coverage: dict[str, Any]) -> str | None:
    """One line when part of the brain was not scored, else ``None``."""
    if coverage["unscored_ml"] < UNSCORED_WARNING_MIN_ML:
        return None
    return (f"{coverage['unscored_ml']:.1f} mL ({coverage['unscored_percent']:.1f} %) of the brain was not scored: "
            "it lies outside the model grid's slices (typically the vertex, the cerebellum or the inferior temporal "
            "lobes); no anomaly can be reported there")

"""Pictures people would rather look at than read: the detection overview (input | reconstruction | map | masks).

Every panel is an axial slice in radiological convention (anterior up, the patient's right on the image's left,
sides labelled), whatever the orientation of the input grid: the arrays are reoriented with
:mod:`.radiological` from the grid's direction before drawing, and pixels keep the voxels' aspect ratio. Uses
matplotlib's non-interactive Agg backend, so no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..scoring.normalisation import PLAIN_MAP_LABEL
from ..storage.files import atomic_write
from .radiological import label_axial_sides, radiological_kji


def _slice_through(mask_kji: np.ndarray | None, fallback_kji: np.ndarray) -> int:
    """The axial slice with the most mask voxels, else the one with the most non-zero input voxels."""
    source = mask_kji if mask_kji is not None and mask_kji.any() else fallback_kji
    return int(np.argmax((source > 0).reshape(source.shape[0], -1).sum(axis=1)))


def overview_figure(image_kji: np.ndarray, reconstruction_kji: np.ndarray, score_kji: np.ndarray,
                    predicted_kji: np.ndarray, truth_kji: np.ndarray | None, path: str | Path, title: str = "",
                    threshold: float | None = None, *, direction: Sequence[float],
                    spacing: Sequence[float] = (1.0, 1.0, 1.0), map_label: str = PLAIN_MAP_LABEL) -> Path:
    """Write a one-row PNG for the axial slice that shows the most anomaly (truth if given, else prediction).

    All arrays are KJI on one grid whose LPS ``direction`` (9 cosines) and IJK ``spacing`` (mm) are given.
    Panels: input, pseudo-healthy reconstruction (same grey scale), anomaly map (heat scale), and the input with
    the predicted mask (filled) and the true mask (outline) if known. ``map_label`` names the map's units
    (:func:`~contrastive_anomaly.scoring.normalisation.map_label`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def upright(array: np.ndarray) -> np.ndarray:
        return radiological_kji(array, direction, spacing)[0]

    image_kji, reconstruction_kji, score_kji, predicted_kji = (
        upright(a) for a in (image_kji, reconstruction_kji, score_kji, predicted_kji))
    truth_kji = None if truth_kji is None else upright(truth_kji)
    spacing_i, spacing_j, _ = radiological_kji(np.zeros((1, 1, 1), np.uint8), direction, spacing)[1]
    aspect = spacing_j / spacing_i

    k = _slice_through(truth_kji if truth_kji is not None else predicted_kji, image_kji)
    low, high = np.percentile(image_kji[k], (1, 99.5)) if image_kji[k].any() else (0.0, 1.0)
    figure, axes = plt.subplots(1, 4, figsize=(14, 4), constrained_layout=True)
    axes[0].imshow(image_kji[k], cmap="gray", vmin=low, vmax=high, aspect=aspect)
    axes[0].set_title("input")
    axes[1].imshow(reconstruction_kji[k], cmap="gray", vmin=0, vmax=1, aspect=aspect)
    axes[1].set_title("pseudo-healthy reconstruction")
    heat = axes[2].imshow(score_kji[k], cmap="inferno", vmin=0, vmax=max(float(score_kji.max()), 1e-6),
                          aspect=aspect)
    axes[2].set_title("anomaly map" + (f" (threshold {threshold:.3f})" if threshold is not None else ""))
    figure.colorbar(heat, ax=axes[2], fraction=0.046, label=map_label)
    axes[3].imshow(image_kji[k], cmap="gray", vmin=low, vmax=high, aspect=aspect)
    axes[3].imshow(np.ma.masked_where(predicted_kji[k] == 0, predicted_kji[k]), cmap="autumn", alpha=0.55,
                   vmin=0, vmax=1, aspect=aspect)
    if truth_kji is not None and truth_kji[k].any():
        axes[3].contour(truth_kji[k] > 0, levels=[0.5], colors="cyan", linewidths=1.2)
    axes[3].set_title("predicted (filled)" + (" vs true (cyan outline)" if truth_kji is not None else ""))
    for axis in axes:
        axis.set_axis_off()
        label_axial_sides(axis)
    figure.suptitle(f"{title}  (axial slice {k + 1} of {image_kji.shape[0]} from inferior; radiological view)")
    path = Path(path)
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=90)
    plt.close(figure)
    return path

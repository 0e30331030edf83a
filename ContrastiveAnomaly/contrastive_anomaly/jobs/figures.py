"""Pictures people would rather look at than read: the detection overview (input | reconstruction | map | masks).

Images are drawn from KJI arrays as axial slices (``array[k]``), rows = J, columns = I, with the first row at the
top. Uses matplotlib's non-interactive Agg backend, so no display is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..storage.files import atomic_write


def _slice_through(mask_kji: np.ndarray | None, fallback_kji: np.ndarray) -> int:
    """The axial slice with the most mask voxels, else the one with the most non-zero input voxels."""
    source = mask_kji if mask_kji is not None and mask_kji.any() else fallback_kji
    return int(np.argmax((source > 0).reshape(source.shape[0], -1).sum(axis=1)))


def overview_figure(image_kji: np.ndarray, reconstruction_kji: np.ndarray, score_kji: np.ndarray,
                    predicted_kji: np.ndarray, truth_kji: np.ndarray | None, path: str | Path, title: str = "",
                    threshold: float | None = None) -> Path:
    """Write a one-row PNG for the axial slice that shows the most anomaly (truth if given, else prediction).

    Panels: input, pseudo-healthy reconstruction (same grey scale), anomaly map (heat scale), and the input with
    the predicted mask (filled) and the true mask (outline) if known.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = _slice_through(truth_kji if truth_kji is not None else predicted_kji, image_kji)
    low, high = np.percentile(image_kji[k], (1, 99.5)) if image_kji[k].any() else (0.0, 1.0)
    figure, axes = plt.subplots(1, 4, figsize=(14, 4), constrained_layout=True)
    axes[0].imshow(image_kji[k], cmap="gray", vmin=low, vmax=high)
    axes[0].set_title("input")
    axes[1].imshow(reconstruction_kji[k], cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("pseudo-healthy reconstruction")
    heat = axes[2].imshow(score_kji[k], cmap="inferno", vmin=0, vmax=max(float(score_kji.max()), 1e-6))
    axes[2].set_title("anomaly map" + (f" (threshold {threshold:.3f})" if threshold is not None else ""))
    figure.colorbar(heat, ax=axes[2], fraction=0.046, label="|input - reconstruction|")
    axes[3].imshow(image_kji[k], cmap="gray", vmin=low, vmax=high)
    axes[3].imshow(np.ma.masked_where(predicted_kji[k] == 0, predicted_kji[k]), cmap="autumn", alpha=0.55,
                   vmin=0, vmax=1)
    if truth_kji is not None and truth_kji[k].any():
        axes[3].contour(truth_kji[k] > 0, levels=[0.5], colors="cyan", linewidths=1.2)
    axes[3].set_title("predicted (filled)" + (" vs true (cyan outline)" if truth_kji is not None else ""))
    for axis in axes:
        axis.set_axis_off()
    figure.suptitle(f"{title}  (axial slice {k})")
    path = Path(path)
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=90)
    plt.close(figure)
    return path

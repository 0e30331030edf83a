"""Per-model diagnostics of the reconstruction (written by the benchmark as ``diagnostics.json`` and ``.md``).

* Healthy reconstruction error: mean ``|x - x_hat|`` inside the brain, on training templates and on held-out real
  brains. A large error on the training templates means the model underfits its own data.
* Edge-energy ratio: in-plane Laplacian energy of the reconstruction over that of the input, inside the eroded
  brain (1 = as sharp as the input; a blurry reconstruction flags every edge).
* Copied lesion contrast: the share of a planted lesion's contrast that reappears in the reconstruction,
  ``mean over lesion voxels of (x_hat_lesioned - x_hat_clean) / (x_lesioned - x_clean)``, per noise level and for
  the method's ensemble. 0 = a perfect pseudo-healthy reconstruction, 1 = the lesion is copied (identity). Voxels
  whose painted contrast is below :data:`MIN_COPY_CONTRAST` are left out (the ratio is noise there).

Arrays are KJI on the model grid, intensities in [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ...scoring.postprocess import erode_brain_mask

MIN_COPY_CONTRAST = 0.05  # intensity units on [0, 1] images: 5 % of the range
EDGE_EROSION_ITERATIONS = 3  # keep the brain outline (a mask edge, not anatomy) out of the edge energy
# 2-D Laplacian applied to each axial slice (the model reconstructs slices).
_LAPLACE_2D = np.array([[[0, 1, 0], [1, -4, 1], [0, 1, 0]]], dtype=np.float32)


def healthy_error(image: np.ndarray, reconstruction: np.ndarray, brain_mask: np.ndarray) -> float:
    """Mean ``|x - x_hat|`` over brain voxels (intensity units)."""
    brain = np.asarray(brain_mask) > 0
    return float(np.abs(np.asarray(image, np.float32) - np.asarray(reconstruction, np.float32))[brain].mean())


def edge_energy_ratio(image: np.ndarray, reconstruction: np.ndarray, brain_mask: np.ndarray) -> float:
    """Sum of squared in-plane Laplacian of the reconstruction / of the input, inside the eroded brain."""
    inner = erode_brain_mask(brain_mask, EDGE_EROSION_ITERATIONS)
    energy = [float((ndimage.convolve(np.asarray(a, np.float32), _LAPLACE_2D, mode="nearest")[inner] ** 2).sum())
              for a in (reconstruction, image)]
    return energy[0] / energy[1] if energy[1] > 0 else float("nan")


def copied_share(lesioned: np.ndarray, clean: np.ndarray, recon_lesioned: np.ndarray, recon_clean: np.ndarray,
                 lesion_mask: np.ndarray) -> float:
    """Mean over lesion voxels (painted contrast >= :data:`MIN_COPY_CONTRAST`) of the copied fraction; ``nan``
    when no voxel qualifies."""
    contrast = np.asarray(lesioned, np.float32) - np.asarray(clean, np.float32)
    voxels = (np.asarray(lesion_mask) > 0) & (np.abs(contrast) >= MIN_COPY_CONTRAST)
    if not voxels.any():
        return float("nan")
    copied = np.asarray(recon_lesioned, np.float32) - np.asarray(recon_clean, np.float32)
    return float((copied[voxels] / contrast[voxels]).mean())


def summarise(values: dict[str, float]) -> dict[str, Any]:
    """``{"per_subject": values, "mean": nan-mean}``."""
    finite = [v for v in values.values() if np.isfinite(v)]
    return {"per_subject": values, "mean": float(np.mean(finite)) if finite else float("nan")}


def diagnostics_markdown(diagnostics: dict[str, Any]) -> str:
    """A short Markdown summary of :func:`summarise`-style diagnostics."""
    lines = ["# Reconstruction diagnostics", "", f"Model: `{diagnostics.get('model', '')}`", "",
             "| quantity | value |", "|---|---|"]
    fit = diagnostics["healthy_error"]
    lines.append(f"| healthy error, training templates (mean abs, in brain) | {fit['templates']['mean']:.4f} |")
    lines.append(f"| healthy error, real brains | {fit['real']['mean']:.4f} |")
    edges = diagnostics["edge_energy_ratio"]
    lines.append(f"| edge-energy ratio (recon / input), templates | {edges['templates']['mean']:.3f} |")
    lines.append(f"| edge-energy ratio, real brains | {edges['real']['mean']:.3f} |")
    for level, value in diagnostics["copied_contrast"]["per_level"].items():
        lines.append(f"| copied lesion contrast, t = {level} | {value['mean']:.1%} |")
    lines.append(f"| copied lesion contrast, ensemble | {diagnostics['copied_contrast']['ensemble']['mean']:.1%} |")
    lines += ["", f"Copied contrast measured on {diagnostics['copied_contrast']['cases']} lesion cases "
              f"(kinds {', '.join(diagnostics['copied_contrast']['kinds'])}; voxels with painted contrast "
              f">= {MIN_COPY_CONTRAST}). Per-subject values are in diagnostics.json.", ""]
    return "\n".join(lines)

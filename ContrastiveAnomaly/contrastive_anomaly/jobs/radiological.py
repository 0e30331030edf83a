"""Putting volumes the right way up for pictures: radiological convention for axial views.

Radiological convention: looking up from the patient's feet, so on an axial slice **anterior is at the top** and
**the patient's right is on the image's left**. A KJI array drawn with ``imshow(array[k])`` puts row J = 0 at the
top and column I = 0 on the left, so the volume is first reoriented (ITK's ``DICOMOrient``) so that I runs towards
the patient's left, J towards posterior and K towards superior (orientation code ``LPS``). Any input orientation
(LPS, RAS, LAS, oblique: the nearest axes are used) then draws the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

# DICOMOrient code for radiological axial display: +I -> patient Left, +J -> Posterior, +K -> Superior.
RADIOLOGICAL_ORIENTATION = "LPS"
# The model grid's direction (LPS direction cosines): the ICBM152 template is stored RAS, i.e. diag(-1, -1, 1) in
# LPS (preprocess.templates.model_grid); tested against it so the two cannot drift apart.
MODEL_GRID_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
# Side labels of an axial panel in radiological convention: (text, x, y) in axes fractions.
AXIAL_SIDE_LABELS = (("R", 0.02, 0.5), ("L", 0.98, 0.5), ("A", 0.5, 0.98), ("P", 0.5, 0.02))


def radiological_image(image: sitk.Image) -> sitk.Image:
    """``image`` resampled-free (axes permuted and flipped only) into :data:`RADIOLOGICAL_ORIENTATION`."""
    return sitk.DICOMOrient(image, RADIOLOGICAL_ORIENTATION)


def radiological_kji(array_kji: np.ndarray, direction: Sequence[float],
                     spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A KJI array on a grid with LPS ``direction`` (9 cosines) and IJK ``spacing`` (mm), reordered so that
    ``imshow(result[k])`` is an axial slice in radiological convention (k from inferior to superior).

    Returns the array (same dtype; bool stays bool) and its IJK spacing after the reorientation.
    """
    array = np.asarray(array_kji)
    source = array.astype(np.uint8) if array.dtype == bool else array
    image = sitk.GetImageFromArray(np.ascontiguousarray(source))
    image.SetDirection(tuple(float(v) for v in direction))
    image.SetSpacing(tuple(float(v) for v in spacing))
    oriented = radiological_image(image)
    out = sitk.GetArrayFromImage(oriented)
    return (out.astype(bool) if array.dtype == bool else out), tuple(oriented.GetSpacing())


def label_axial_sides(axis) -> None:
    """Write R/L and A/P on the edges of a radiological axial panel (a matplotlib ``Axes``)."""
    import matplotlib.patheffects as effects

    outline = [effects.withStroke(linewidth=2.5, foreground="black")]
    for text, x, y in AXIAL_SIDE_LABELS:
        axis.text(x, y, text, transform=axis.transAxes, color="white", fontsize=11, fontweight="bold",
                  ha="left" if x < 0.5 else "right" if x > 0.5 else "center",
                  va="bottom" if y < 0.5 else "top" if y > 0.5 else "center", path_effects=outline)

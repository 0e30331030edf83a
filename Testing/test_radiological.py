"""Every figure is drawn in radiological convention (anterior up, patient's right on the image's left), whatever
the orientation the scan is stored in: one asymmetric phantom stored as LPS, RAS and LAS draws identically."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.jobs.figures import overview_figure
from contrastive_anomaly.jobs.radiological import MODEL_GRID_DIRECTION, radiological_kji

ORIENTATIONS = ("LPS", "RAS", "LAS")


def _phantom_lps() -> sitk.Image:
    """A head-sized box with a bright block at the patient's right-anterior and a dim one at left-posterior.

    Identity direction = LPS: +I towards the patient's left, +J towards posterior, +K towards superior.
    """
    array = np.full((12, 40, 32), 0.2, np.float32)  # K, J, I
    array[:, 2:8, 2:8] = 1.0  # I small = patient right, J small = anterior
    array[:, 30:38, 20:30] = 0.6  # left-posterior, larger
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.5, 2.0))
    return image


def _stored_as(orientation: str) -> sitk.Image:
    """The same physical phantom stored in another orientation (axes permuted/flipped, no resampling)."""
    return sitk.DICOMOrient(_phantom_lps(), orientation)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_right_anterior_marker_is_drawn_top_left(orientation):
    image = _stored_as(orientation)
    array, spacing = radiological_kji(sitk.GetArrayFromImage(image), image.GetDirection(), image.GetSpacing())
    axial = array[array.shape[0] // 2]
    rows, cols = axial.shape
    assert axial[: rows // 4, : cols // 4].max() == 1.0, "patient right-anterior must be at the image's top-left"
    assert axial[: rows // 4, -cols // 4:].max() < 1.0
    assert axial[-rows // 4:, -cols // 2:].max() == pytest.approx(0.6), "left-posterior at the bottom right"
    assert spacing == (1.0, 1.5, 2.0)


def test_the_three_storages_give_one_picture(tmp_path):
    import matplotlib.image

    pixels = []
    for orientation in ORIENTATIONS:
        image = _stored_as(orientation)
        array = sitk.GetArrayFromImage(image)
        mask = (array == 1.0).astype(np.uint8)
        path = overview_figure(array, array * 0.5, np.abs(array - 0.2), mask, mask, tmp_path / f"{orientation}.png",
                               title="phantom", threshold=0.3, direction=image.GetDirection(),
                               spacing=image.GetSpacing())
        pixels.append(matplotlib.image.imread(path))
    assert np.array_equal(pixels[0], pixels[1]) and np.array_equal(pixels[0], pixels[2])


def test_stored_rows_are_not_drawn_as_is_for_a_ras_grid():
    """Guards the bug: a RAS-stored array drawn as stored has posterior at the top."""
    image = _stored_as("RAS")
    stored = sitk.GetArrayFromImage(image)[6]
    upright = radiological_kji(sitk.GetArrayFromImage(image), image.GetDirection())[0][6]
    assert not np.array_equal(stored, upright)
    assert stored[-8:, -8:].max() == 1.0  # as stored, right-anterior sits bottom-right


def test_model_grid_direction_constant_matches_the_template():
    from contrastive_anomaly.config import GridConfig
    from contrastive_anomaly.preprocess.templates import model_grid

    np.testing.assert_allclose(model_grid(GridConfig()).GetDirection(), MODEL_GRID_DIRECTION, atol=1e-9)

"""The model grid covers the whole brain by default; the paper's central 100 mm slab stays a named protocol."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.config import GridConfig, ModelConfig
from contrastive_anomaly.preprocess.templates import MODEL_BRAIN_MASK_1MM, TEMPLATE_DIR, model_grid


def _template_brain_on(grid: GridConfig) -> tuple[float, float]:
    """(mL of the ICBM152 brain mask inside the grid, mL of the whole mask)."""
    mask = sitk.ReadImage(str(TEMPLATE_DIR / MODEL_BRAIN_MASK_1MM), sitk.sitkUInt8)
    on_grid = sitk.Resample(mask, model_grid(grid), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    # resampling to 2 mm: each 2 mm voxel is 8 mL/1000; compare volumes in mL
    inside = float(sitk.GetArrayViewFromImage(on_grid).sum()) * grid.spacing_mm**3 / 1000.0
    whole = float(sitk.GetArrayViewFromImage(mask).sum()) / 1000.0
    return inside, whole


def test_default_grid_holds_the_whole_template_brain():
    grid = GridConfig()
    assert grid.protocol == "whole-brain" and grid.shape == (96, 96, 88)
    inside, whole = _template_brain_on(grid)
    assert inside == pytest.approx(whole, rel=0.01)
    # and no brain touches the first or last axial slice: there is margin for registration error
    mask = sitk.ReadImage(str(TEMPLATE_DIR / MODEL_BRAIN_MASK_1MM), sitk.sitkUInt8)
    on_grid = sitk.GetArrayFromImage(sitk.Resample(mask, model_grid(grid), sitk.Transform(),
                                                   sitk.sitkNearestNeighbor, 0))
    assert on_grid[0].sum() == 0 and on_grid[-1].sum() == 0


def test_paper_protocol_keeps_the_central_slab_and_misses_part_of_the_brain():
    grid = GridConfig.for_protocol("paper-central-100")
    assert grid.protocol == "paper-central-100" and grid.shape == (96, 96, 50)
    inside, whole = _template_brain_on(grid)
    assert inside < 0.95 * whole


def test_protocol_is_read_from_the_crop_of_an_old_config():
    data = ModelConfig().to_dict()
    data["grid"]["crop_shape_1mm"] = [192, 192, 100]
    data["grid"]["shape"] = [96, 96, 50]
    assert ModelConfig.from_dict(data).grid.protocol == "paper-central-100"
    assert np.array_equal(ModelConfig.from_dict(data).grid.crop_shape_1mm, (192, 192, 100))


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="grid protocol"):
        GridConfig.for_protocol("half-brain")  # type: ignore[arg-type]

"""Shared helpers for the engine tests: a small model grid, tiny trained models, phantom subjects."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from contrastive_anomaly.config import GridConfig, ModelConfig, tiny_config
from contrastive_anomaly.data.phantoms import brain_phantom
from contrastive_anomaly.data.volumes import Subject, phantom_subjects

SMALL_GRID = GridConfig(crop_shape_1mm=(64, 64, 32), spacing_mm=2.0, shape=(32, 32, 16))


def small_config() -> ModelConfig:
    """The tiny preset on a 32 x 32 x 16 grid (IJK), so that tests train in seconds on a CPU."""
    cfg = tiny_config()
    cfg.grid = SMALL_GRID
    cfg.preprocess.min_extent_mm = 20.0
    cfg.inference.min_brain_pixels = 4
    cfg.encoder_training.steps = 6
    cfg.encoder_training.validate_every = 3
    cfg.diffusion_training.steps = 8
    cfg.diffusion_training.validate_every = 4
    return cfg


def small_subjects(count: int, first_seed: int = 0) -> list[Subject]:
    return phantom_subjects(count, SMALL_GRID.shape, first_seed=first_seed)


def phantom_arrays(shape_ijk: tuple[int, int, int], seed: int = 0):
    """(image, brain mask, tissue maps) of the synthetic brain on a grid of ``shape_ijk`` voxels, all KJI."""
    phantom = brain_phantom(shape_ijk, seed=seed)
    return phantom.image, phantom.brain_mask, phantom.tissue


def write_model_grid_image(array_kji, path: Path, spacing: float = 2.0) -> Path:
    image = sitk.GetImageFromArray(array_kji)
    image.SetSpacing((spacing,) * 3)
    sitk.WriteImage(image, str(path))
    return path

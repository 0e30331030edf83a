"""The model-grid result carried back onto the scan's own grid: map, reconstruction, mask and regions.

The anomaly decision is made on the model grid and looked up natively by nearest neighbour (one model voxel per
native voxel, :func:`~contrastive_anomaly.preprocess.native_space.model_index_to_native`). Region scores (peak and
mean) are taken from the **same** lookup: the model-grid values that decided the mask (``ThresholdIndex``), for
``detect`` and the panel alike. The linearly resampled native map mixes a flagged voxel with its unflagged
neighbours, so a thin region would report a peak below the threshold that flagged it (e.g. a 1-voxel-thick line
at 0.30 sampled a quarter voxel off its centre reads 0.30 x 0.75 x 0.75 = 0.17). The written ``anomaly_map``
stays linearly resampled for viewing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..config import ModelConfig
from ..preprocess import PreparedVolume, to_native
from ..preprocess.native_space import model_index_to_native
from ..scoring.regions import Region
from ..scoring.threshold_index import ThresholdIndex, ijk_to_lps_of, native_mask
from ..scoring.volume_score import VolumeScore
from ..storage.files import image_from_array


@dataclass
class NativeOutputs:
    """Images on the scan's grid (LPS geometry copied from it) and the regions at the result's threshold."""

    anomaly_map: sitk.Image
    reconstruction: sitk.Image
    mask_kji: np.ndarray
    mask: sitk.Image
    model_index_kji: np.ndarray
    index: ThresholdIndex
    regions: list[Region]


def native_outputs(prepared: PreparedVolume, scored: VolumeScore, cfg: ModelConfig) -> NativeOutputs:
    """Resample the scored volume onto the scan's grid and measure its regions there."""
    anomaly_map = to_native(prepared, scored.filtered, "linear")
    # outside the brain the model reconstructs nothing; zero it so the side-by-side view shows only the brain
    reconstruction = to_native(prepared, scored.reconstruction * prepared.brain_mask_kji, "linear")
    reference = prepared.native_reference
    model_index = model_index_to_native(prepared.model_grid, reference, prepared.model_to_native_transform)
    index = ThresholdIndex.on_model_grid(scored.filtered, ijk_to_lps_of(reference.GetSpacing(), reference.GetOrigin(),
                                                                       reference.GetDirection()),
                                         max_removed_component_voxels=cfg.postprocess.max_removed_component_voxels,
                                         connectivity=cfg.postprocess.connectivity)
    mask_kji = native_mask(scored.mask, model_index)
    return NativeOutputs(anomaly_map=anomaly_map, reconstruction=reconstruction, mask_kji=mask_kji,
                         mask=image_from_array(mask_kji.astype(np.uint8), reference), model_index_kji=model_index,
                         index=index, regions=index.regions_from_native(scored.mask, model_index))

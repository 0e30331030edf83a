"""``plant_lesion``: one entry point for every lesion kind (docs/DATA_PIPELINE.md §4), exact masks, recorded seeds.

Arrays are KJI ``(slices, rows, cols)``; ``spacing_mm`` is (K, J, I) in mm (the model grid is 2 mm isotropic).
See :mod:`.common` for the mask rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...config import CONTRASTS
from ..synth_contrast import tissue_maps_from_image
from .common import LesionCase, LesionConfig, intensity_scale, paint, voxel_volume_ml
from .controls import intensity_control, shape_control
from .ms import ms_alpha_and_change
from .stroke import stroke_alpha_and_change
from .tumour import tumour_lesion

LESION_KINDS = ("ms", "tumour", "stroke", "control_intensity", "control_shape")


def plant_lesion(image_kji: np.ndarray, brain_mask_kji: np.ndarray, kind: str, contrast: str, seed: int,
                 spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0), tissue: np.ndarray | None = None,
                 cfg: LesionConfig | None = None, options: Mapping[str, Any] | None = None) -> LesionCase:
    """Insert one synthetic lesion of ``kind`` into a KJI image, returning the case with its exact mask.

    ``contrast`` (T1/T2/FLAIR/PD) sets the sign of the intensity change (hyperintense on T2/FLAIR/PD, hypointense
    on T1). ``tissue``: (CSF, GM, WM) probability maps ``[3, K, J, I]``; when ``None`` they are estimated with a
    3-class GMM on the image. Intensity lesions are painted at WM median + unit·change (see
    :func:`.common.intensity_scale`) with a small texture. The
    same inputs and seed give the same case; ``params`` records the seed and every sampled value.
    """
    if kind not in LESION_KINDS:
        raise ValueError(f"unknown lesion kind {kind!r}; choose one of {LESION_KINDS}")
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}; choose one of {CONTRASTS}")
    cfg = cfg or LesionConfig()
    options = dict(options or {})
    image = np.asarray(image_kji, dtype=np.float32)
    brain = np.asarray(brain_mask_kji) > 0
    if image.ndim != 3 or brain.shape != image.shape:
        raise ValueError(f"image and brain mask must be 3-D KJI arrays of one shape; got {image.shape}, {brain.shape}")
    if not brain.any():
        raise ValueError("the brain mask is empty")
    spacing = tuple(float(s) for s in spacing_mm)
    tissue_source = "given" if tissue is not None else "gmm"
    if tissue is None:
        tissue = tissue_maps_from_image(image, brain, contrast, seed)
    tissue = np.asarray(tissue, dtype=np.float32)
    rng = np.random.default_rng(seed)
    wm_ref, unit = intensity_scale(image, brain, tissue, contrast, cfg)
    background, zones, extra = image, None, {}

    if kind == "control_shape":
        new, mask, generator_params = shape_control(image, brain, spacing, rng, cfg)
    else:
        if kind == "tumour":
            background, brain, tissue, alpha, change, zones, generator_params = tumour_lesion(
                image, brain, tissue, contrast, spacing, rng, cfg)
            wm_ref, unit = intensity_scale(background, brain, tissue, contrast, cfg)
        elif kind == "ms":
            alpha, change, generator_params = ms_alpha_and_change(image, brain, tissue, contrast, spacing, rng, cfg)
        elif kind == "stroke":
            alpha, change, generator_params = stroke_alpha_and_change(image, brain, tissue, contrast, spacing, rng,
                                                                      cfg)
        if kind == "control_intensity":
            alpha, target, generator_params = intensity_control(image, brain, tissue, spacing, rng, cfg, options)
        else:
            texture = 1.0 + cfg.texture_fraction * rng.standard_normal(image.shape).astype(np.float32)
            target = ((wm_ref + unit * change) * texture).astype(np.float32)
        new, mask = paint(background, alpha, target, brain)
        if zones is not None:
            zones = (zones * mask).astype(np.uint8)

    params = {"kind": kind, "contrast": contrast, "seed": int(seed), "spacing_mm_kji": list(spacing),
              "tissue_source": tissue_source, "wm_reference": wm_ref, "intensity_unit": unit,
              "mask_voxels": int(mask.sum()),
              "mask_volume_ml": float(mask.sum() * voxel_volume_ml(spacing)), "options": options,
              "generator": generator_params}
    return LesionCase(image_kji=new, mask_kji=mask.astype(np.uint8), params=params, background_kji=background,
                      brain_mask_kji=brain.astype(np.uint8), tissue=tissue, zones_kji=zones, extra=extra)

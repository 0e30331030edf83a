"""SynthSeg-style synthetic T2 / PD / FLAIR (and T1) from tissue probability maps (docs/DATA_PIPELINE.md §3).

No registry package ships a real T2 brain volume, so T2-like training and test images are synthesised:
intensity = Σ_class p_class · (μ_class + texture_class), with class means relative to WM = 1 and a per-class
Gaussian texture of σ = 3–8 % of the class mean. Every result carries the label ``"synthetic-<contrast>"``, which
is written into every file and sidecar saved from it: never present these as real T2 results.

Tissue maps are ``[3, K, J, I]`` float32 arrays in the order (CSF, GM, WM), KJI on the same grid as the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from sklearn.mixture import GaussianMixture

from ..config import CONTRASTS
from ..storage.files import image_from_array, write_image_atomic, write_json_atomic
from .augment import RealismAugmentation

TISSUE_CLASSES = ("CSF", "GM", "WM")


@dataclass
class SynthContrastConfig:
    """Class-mean ranges relative to WM = 1 (docs/DATA_PIPELINE.md §3; T1: optional extra domain), texture range."""

    gm_mean: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "T2": (1.3, 1.6), "PD": (1.1, 1.25), "FLAIR": (1.1, 1.3), "T1": (0.6, 0.75)})
    csf_mean: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "T2": (2.5, 3.5), "PD": (1.3, 1.6), "FLAIR": (0.1, 0.3), "T1": (0.15, 0.3)})
    texture_fraction: tuple[float, float] = (0.03, 0.08)
    percentiles: tuple[float, float] = (1.0, 99.0)
    gmm_max_voxels: int = 50_000  # voxels sampled to fit the 3-class GMM on a real T1 (speed; enough for 3 classes)


@dataclass
class SyntheticContrast:
    """A synthetic image (KJI float32 in [0, 1], zero outside the brain) with its label and the sampled parameters."""

    image_kji: np.ndarray
    label: str
    params: dict[str, Any]

    def metadata(self) -> dict[str, Any]:
        return {"label": self.label, "synthetic": True, **self.params}


def tissue_maps_from_gm_wm(gm_kji: np.ndarray, wm_kji: np.ndarray, brain_mask_kji: np.ndarray) -> np.ndarray:
    """(CSF, GM, WM) maps from GM and WM probabilities: CSF = brain − GM − WM, clipped at 0
    (docs/DATA_PIPELINE.md §3)."""
    brain = (np.asarray(brain_mask_kji) > 0).astype(np.float32)
    gm = np.clip(np.asarray(gm_kji, dtype=np.float32), 0.0, 1.0) * brain
    wm = np.clip(np.asarray(wm_kji, dtype=np.float32), 0.0, 1.0) * brain
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    return np.stack([csf, gm, wm]).astype(np.float32)


# Tissue classes in ascending intensity order per contrast (SynthContrastConfig means, docs/DATA_PIPELINE.md §3).
INTENSITY_ORDER = {"T1": ("CSF", "GM", "WM"), "T2": ("WM", "GM", "CSF"), "PD": ("WM", "GM", "CSF"),
                   "FLAIR": ("CSF", "WM", "GM")}


def tissue_maps_from_image(image_kji: np.ndarray, brain_mask_kji: np.ndarray, contrast: str = "T1", seed: int = 0,
                           cfg: SynthContrastConfig | None = None) -> np.ndarray:
    """(CSF, GM, WM) posterior maps of a 3-class Gaussian mixture on the brain intensities (docs/DATA.md §5).

    The mixture components are sorted by mean intensity and named with the contrast's expected ordering
    (:data:`INTENSITY_ORDER`; e.g. T1: CSF < GM < WM). Outside the brain all maps are 0.
    """
    cfg = cfg or SynthContrastConfig()
    if contrast not in INTENSITY_ORDER:
        raise ValueError(f"unknown contrast {contrast!r}; choose one of {sorted(INTENSITY_ORDER)}")
    brain = np.asarray(brain_mask_kji) > 0
    values = np.asarray(image_kji, dtype=np.float64)[brain]
    if values.size < len(TISSUE_CLASSES):
        raise ValueError("the brain mask has too few voxels to fit tissue classes")
    rng = np.random.default_rng(seed)
    sample = values if values.size <= cfg.gmm_max_voxels else rng.choice(values, cfg.gmm_max_voxels, replace=False)
    gmm = GaussianMixture(n_components=3, random_state=seed).fit(sample[:, None])
    ascending = np.argsort(gmm.means_[:, 0])
    posteriors = gmm.predict_proba(values[:, None])
    maps = np.zeros((3, *brain.shape), dtype=np.float32)
    for rank, name in enumerate(INTENSITY_ORDER[contrast]):
        maps[TISSUE_CLASSES.index(name)][brain] = posteriors[:, ascending[rank]]
    return maps


def tissue_maps_from_t1(image_kji: np.ndarray, brain_mask_kji: np.ndarray, seed: int = 0,
                        cfg: SynthContrastConfig | None = None) -> np.ndarray:
    """(CSF, GM, WM) maps of a real T1 by a 3-class GMM (see :func:`tissue_maps_from_image`)."""
    return tissue_maps_from_image(image_kji, brain_mask_kji, "T1", seed, cfg)


def synthesize_contrast(tissue_cjki: np.ndarray, contrast: str, seed: int, brain_mask_kji: np.ndarray | None = None,
                        cfg: SynthContrastConfig | None = None,
                        augmentation: RealismAugmentation | None = None) -> SyntheticContrast:
    """Synthesise one ``contrast`` image from (CSF, GM, WM) maps ``[3, K, J, I]``.

    Class means are drawn from the config ranges, texture is per-voxel Gaussian noise per class, then (with
    ``augmentation``) bias field, gamma, blur/thick slices and noise; finally percentile normalisation inside the
    brain (default: voxels where the maps sum to > 0.5) to [0, 1]. Same seed, same result.
    """
    cfg = cfg or SynthContrastConfig()
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}; choose one of {CONTRASTS}")
    tissue = np.asarray(tissue_cjki, dtype=np.float32)
    if tissue.ndim != 4 or tissue.shape[0] != 3:
        raise ValueError(f"tissue maps must be [3, K, J, I] (CSF, GM, WM); got {tissue.shape}")
    brain = tissue.sum(0) > 0.5 if brain_mask_kji is None else np.asarray(brain_mask_kji) > 0
    rng = np.random.default_rng(seed)
    means = {"CSF": rng.uniform(*cfg.csf_mean[contrast]), "GM": rng.uniform(*cfg.gm_mean[contrast]), "WM": 1.0}
    textures = {name: rng.uniform(*cfg.texture_fraction) for name in TISSUE_CLASSES}
    image = np.zeros(tissue.shape[1:], dtype=np.float32)
    for c, name in enumerate(TISSUE_CLASSES):
        texture = rng.normal(0.0, textures[name] * means[name], size=image.shape).astype(np.float32)
        image += tissue[c] * (means[name] + texture)
    if augmentation is not None:
        image = augmentation.intensity(image, brain, rng)
    if brain.any():
        low, high = np.percentile(image[brain], cfg.percentiles)
        image = (np.clip(image, low, high) - low) / max(float(high - low), np.finfo(np.float32).eps)
    image = (image * brain).astype(np.float32)
    params = {"contrast": contrast, "seed": int(seed), "class_means_rel_wm": {k: float(v) for k, v in means.items()},
              "texture_fraction": {k: float(v) for k, v in textures.items()},
              "intensity_augmentation": augmentation is not None}
    return SyntheticContrast(image, f"synthetic-{contrast}", params)


def class_means(image_kji: np.ndarray, tissue_cjki: np.ndarray, threshold: float = 0.9) -> dict[str, float]:
    """Mean intensity of voxels whose class probability exceeds ``threshold``, per class (contrast-order check)."""
    return {name: float(np.asarray(image_kji)[tissue_cjki[c] > threshold].mean())
            for c, name in enumerate(TISSUE_CLASSES) if (tissue_cjki[c] > threshold).any()}


def save_synthetic(result: SyntheticContrast, path: Path, reference: sitk.Image) -> Path:
    """Write the image (geometry of ``reference``, LPS) with its label in the NIfTI description and a JSON sidecar."""
    path = Path(path)
    image = image_from_array(result.image_kji, reference)
    image.SetMetaData("ITK_FileNotes", result.label)  # ITK writes this key into the NIfTI descrip field
    write_image_atomic(image, path)
    sidecar = path.with_name(path.name.removesuffix(".gz").removesuffix(".nii") + ".json")
    write_json_atomic(result.metadata(), sidecar, sort_keys=True)
    return path

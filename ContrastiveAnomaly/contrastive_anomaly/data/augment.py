"""3D realism augmentation of model-grid volumes, built from MONAI transforms (docs/DATA_PIPELINE.md §3).

The training volumes are population averages: too smooth and noise-free. Each call warps and degrades one volume
so that the model sees a new "subject": random affine, elastic deformation, multiplicative bias field, gamma,
Gaussian blur or thick-slice resampling, Rician noise, then percentile renormalisation inside the (warped) brain.

Arrays are KJI ``(slices, rows, cols)`` float32 on a grid of ``spacing_mm`` isotropic voxels (2 mm on the model
grid); all ranges in :class:`AugmentationConfig` are in mm or relative units, converted to voxels here. The same
seed gives the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import (
    Rand3DElastic,
    RandAdjustContrast,
    RandAffine,
    RandBiasField,
    RandGaussianSmooth,
    RandRicianNoise,
    Resize,
)

MASK_THRESHOLD = 0.5


@dataclass
class AugmentationConfig:
    """Ranges of the realism augmentation; each range is sampled uniformly per call (docs/DATA_PIPELINE.md §3).

    The affine ranges are not in docs/DATA.md; they are kept small (head position varies little after registration).
    ``elastic_amplitude_mm`` is the per-axis RMS displacement of the smoothed random field.
    ``bias_amplitude`` is the largest
    relative deviation of the multiplicative field from its mean (0.25 = ±25 %). ``snr_range`` is the brain mean
    intensity over the Rician noise σ. The resolution step picks thick-slice resampling with probability
    ``thick_slice_fraction``, otherwise Gaussian blur.
    """

    spacing_mm: float = 2.0
    affine_probability: float = 1.0
    rotation_deg: float = 8.0
    scale_fraction: float = 0.06
    translation_mm: float = 4.0
    elastic_probability: float = 0.9
    elastic_sigma_mm: tuple[float, float] = (8.0, 16.0)
    elastic_amplitude_mm: tuple[float, float] = (2.0, 6.0)
    bias_probability: float = 0.7
    bias_degree: int = 3
    bias_amplitude: tuple[float, float] = (0.20, 0.30)
    gamma_probability: float = 0.7
    gamma_range: tuple[float, float] = (0.7, 1.5)
    resolution_probability: float = 0.6
    thick_slice_fraction: float = 0.5
    blur_sigma_mm: tuple[float, float] = (0.5, 1.5)
    slice_thickness_mm: tuple[float, float] = (1.0, 4.0)
    noise_probability: float = 0.8
    snr_range: tuple[float, float] = (15.0, 40.0)
    renormalise_percentiles: tuple[float, float] | None = (1.0, 99.0)


def _smoothed_uniform_noise_rms(sigma_vox: float) -> float:
    """RMS of uniform(-1, 1) white noise after a 3D Gaussian filter of ``sigma_vox`` voxels.

    Rand3DElastic smooths uniform noise and multiplies by ``magnitude``; dividing the wanted RMS displacement by
    this factor turns "amplitude in mm" into MONAI's magnitude. Var(U(-1,1)) = 1/3 and the sum of squared weights
    of a normalised 3D Gaussian is (2·sqrt(pi)·sigma)^-3.
    """
    return math.sqrt(1.0 / 3.0) * (2.0 * math.sqrt(math.pi) * sigma_vox) ** -1.5


class RealismAugmentation:
    """Callable ``(volume_kji, seed, brain_mask_kji=None, extra_kji=None) -> volume_kji`` (see :meth:`__call__`)."""

    def __init__(self, cfg: AugmentationConfig | None = None) -> None:
        self.cfg = cfg or AugmentationConfig()

    # -- spatial ---------------------------------------------------------------------------------------------
    def spatial(self, channels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Warp ``[C, K, J, I]`` channels with one random affine + elastic field (bilinear, zero padding)."""
        cfg = self.cfg
        data = torch.from_numpy(np.ascontiguousarray(channels, dtype=np.float32))
        if rng.random() < cfg.affine_probability:
            affine = RandAffine(prob=1.0, rotate_range=(math.radians(cfg.rotation_deg),) * 3,
                                scale_range=(cfg.scale_fraction,) * 3,
                                translate_range=(cfg.translation_mm / cfg.spacing_mm,) * 3,
                                mode="bilinear", padding_mode="zeros")
            affine.set_random_state(seed=int(rng.integers(2**31 - 1)))
            data = affine(data)
        if rng.random() < cfg.elastic_probability:
            sigma_vox = rng.uniform(*cfg.elastic_sigma_mm) / cfg.spacing_mm
            amplitude_vox = rng.uniform(*cfg.elastic_amplitude_mm) / cfg.spacing_mm
            magnitude = amplitude_vox / _smoothed_uniform_noise_rms(sigma_vox)
            elastic = Rand3DElastic(sigma_range=(sigma_vox, sigma_vox), magnitude_range=(magnitude, magnitude),
                                    prob=1.0, mode="bilinear", padding_mode="zeros")
            elastic.set_random_state(seed=int(rng.integers(2**31 - 1)))
            data = elastic(data)
        return np.asarray(data, dtype=np.float32)

    # -- intensity -------------------------------------------------------------------------------------------
    def bias_field(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """A smooth multiplicative KJI field (MONAI RandBiasField, Legendre polynomials) scaled to ±amplitude.

        docs/DATA.md asks for an order-3 B-spline field; MONAI's smooth polynomial field of degree 3 is used instead."""
        cfg = self.cfg
        generator = RandBiasField(degree=cfg.bias_degree, coeff_range=(-1.0, 1.0), prob=1.0)
        generator.set_random_state(seed=int(rng.integers(2**31 - 1)))
        log_field = np.log(np.asarray(generator(np.ones((1, *shape), dtype=np.float32)), dtype=np.float64)[0])
        log_field -= log_field.mean()
        peak = np.abs(log_field).max()
        amplitude = rng.uniform(*cfg.bias_amplitude)
        if peak > 0:
            log_field *= math.log1p(amplitude) / peak
        return np.exp(log_field).astype(np.float32)

    def resolution(self, volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Gaussian blur, or thick slices along one random axis (down- then up-sampling, trilinear)."""
        cfg = self.cfg
        channel = torch.from_numpy(volume[None])
        if rng.random() < cfg.thick_slice_fraction:
            axis = int(rng.integers(3))
            thickness = rng.uniform(*cfg.slice_thickness_mm)
            n_thick = max(1, round(volume.shape[axis] * cfg.spacing_mm / thickness))
            low_shape = list(volume.shape)
            low_shape[axis] = min(n_thick, volume.shape[axis])
            low = Resize(spatial_size=low_shape, mode="area")(channel)
            return np.asarray(Resize(spatial_size=volume.shape, mode="trilinear")(low), dtype=np.float32)[0]
        sigma_vox = rng.uniform(*cfg.blur_sigma_mm) / cfg.spacing_mm
        blur = RandGaussianSmooth(sigma_x=(sigma_vox, sigma_vox), sigma_y=(sigma_vox, sigma_vox),
                                  sigma_z=(sigma_vox, sigma_vox), prob=1.0)
        blur.set_random_state(seed=int(rng.integers(2**31 - 1)))
        return np.asarray(blur(channel), dtype=np.float32)[0]

    def intensity(self, volume: np.ndarray, brain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Bias field, gamma, blur/thick slices and Rician noise on a KJI volume in [0, 1] (brain: bool KJI)."""
        cfg = self.cfg
        out = volume.astype(np.float32, copy=True)
        if rng.random() < cfg.bias_probability:
            out *= self.bias_field(out.shape, rng)
        if rng.random() < cfg.gamma_probability:
            gamma = RandAdjustContrast(prob=1.0, gamma=cfg.gamma_range)
            gamma.set_random_state(seed=int(rng.integers(2**31 - 1)))
            out = np.asarray(gamma(out[None]), dtype=np.float32)[0]
        if rng.random() < cfg.resolution_probability:
            out = self.resolution(out, rng)
        if rng.random() < cfg.noise_probability and brain.any():
            snr = rng.uniform(*cfg.snr_range)
            sigma = float(out[brain].mean()) / snr
            noise = RandRicianNoise(prob=1.0, mean=0.0, std=sigma, sample_std=False)
            noise.set_random_state(seed=int(rng.integers(2**31 - 1)))
            out = np.asarray(noise(out[None]), dtype=np.float32)[0]
        return out

    def renormalise(self, volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
        """Clip to the configured percentiles inside the brain, min-max to [0, 1], zero outside (docs/METHOD.md §2)."""
        if self.cfg.renormalise_percentiles is None or not brain.any():
            return np.clip(volume, 0.0, 1.0) * brain
        low, high = np.percentile(volume[brain], self.cfg.renormalise_percentiles)
        scaled = (np.clip(volume, low, high) - low) / max(float(high - low), np.finfo(np.float32).eps)
        return (scaled * brain).astype(np.float32)

    def __call__(self, volume_kji: np.ndarray, seed: int, brain_mask_kji: np.ndarray | None = None,
                 extra_kji: np.ndarray | None = None) -> np.ndarray:
        """Augment one KJI volume in [0, 1]; returns a new KJI float32 volume in [0, 1], zero outside the brain.

        ``brain_mask_kji`` defaults to ``volume > 0``. Use :meth:`augment_with` to also warp extra channels
        (tissue maps) with the same spatial field.
        """
        return self.augment_with(volume_kji, seed, brain_mask_kji)[0]

    def augment_with(self, volume_kji: np.ndarray, seed: int, brain_mask_kji: np.ndarray | None = None,
                     extra_kji: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Like :meth:`__call__`, also returning the warped brain mask (uint8) and the warped ``[C, K, J, I]``
        extra channels (e.g. tissue probability maps; bilinear), which get no intensity changes."""
        rng = np.random.default_rng(seed)
        volume = np.asarray(volume_kji, dtype=np.float32)
        brain = volume > 0 if brain_mask_kji is None else np.asarray(brain_mask_kji) > 0
        stack = [volume[None], brain[None].astype(np.float32)]
        if extra_kji is not None:
            stack.append(np.asarray(extra_kji, dtype=np.float32))
        warped = self.spatial(np.concatenate(stack, axis=0), rng)
        warped_volume, warped_brain = warped[0], warped[1] > MASK_THRESHOLD
        extra = warped[2:] if extra_kji is not None else None
        out = self.renormalise(self.intensity(warped_volume, warped_brain, rng), warped_brain)
        return out, warped_brain.astype(np.uint8), extra

"""Typed settings: the single source of truth for every number the method uses.

A model folder stores one :class:`ModelConfig` as ``config.json`` next to its weights, so a checkpoint always
carries the grid, the intensity normalisation, the architecture and the inference/post-processing settings it was
trained and calibrated with.

Conventions used throughout the package:

* Volumes on the model grid are numpy/torch arrays in **KJI** order ``(slices, rows, cols)``, i.e. the order
  ``SimpleITK.GetArrayFromImage`` returns. Axial slices are ``array[k]``.
* Image intensities on the model grid are in ``[0, 1]`` (percentile-normalised inside the brain).
* Diffusion time indices are **0-based** (``k = 0 … T-1``). The paper's test levels t = 250, 500, 750 are the
  indices 249, 499, 749 (docs/METHOD.md §5).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .atomic import write_text_atomic

Contrast = Literal["T1", "T2", "FLAIR", "PD"]
CONTRASTS: tuple[Contrast, ...] = typing.get_args(Contrast)  # the one list of contrasts (CLI choices, panel, checks)
Precision = Literal["auto", "bf16", "fp32"]


# The ICBM152 2009a brain mask spans 145 x 181 x 155 mm (LR x AP x SI, 1 mm voxels). The whole-brain grid keeps the
# paper's 192 x 192 mm axial field of view and extends the axial extent to 176 mm, i.e. the brain plus about 10 mm
# above the vertex and below the cerebellum for subject-to-template variation after affine registration.
WHOLE_BRAIN_CROP_1MM = (192, 192, 176)
PAPER_CROP_1MM = (192, 192, 100)
GridProtocol = Literal["whole-brain", "paper-central-100"]
GRID_PROTOCOL_CROPS: dict[str, tuple[int, int, int]] = {"whole-brain": WHOLE_BRAIN_CROP_1MM,
                                                        "paper-central-100": PAPER_CROP_1MM}


@dataclass
class GridConfig:
    """The model's voxel grid.

    ``crop_shape_1mm`` is the crop/pad applied at 1 mm in the atlas space (IJK order, voxels), centred on the
    template's brain bounding box, and ``shape`` the final grid after resampling to ``spacing_mm`` (IJK order,
    voxels). The axial axis is K. ``protocol`` names the choice: ``"whole-brain"`` (default: every axial slice that
    holds brain, 96 x 96 x 88 at 2 mm) or ``"paper-central-100"`` (the paper's central 100 mm slab, 96 x 96 x 50,
    kept so that paper reproductions remain possible; it never scores the vertex, most of the cerebellum and the
    inferior temporal lobes).
    """

    template: str = "icbm152_2009a"
    crop_shape_1mm: tuple[int, int, int] = WHOLE_BRAIN_CROP_1MM
    spacing_mm: float = 2.0
    shape: tuple[int, int, int] = (96, 96, 88)
    crop_center_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def protocol(self) -> str:
        """The named protocol whose crop this grid uses, or ``"custom"``."""
        for name, crop in GRID_PROTOCOL_CROPS.items():
            if tuple(self.crop_shape_1mm) == crop:
                return name
        return "custom"

    @property
    def slice_shape(self) -> tuple[int, int]:
        """(rows, cols) of one axial slice, i.e. (J, I)."""
        return (self.shape[1], self.shape[0])

    @classmethod
    def for_protocol(cls, protocol: GridProtocol, spacing_mm: float = 2.0) -> GridConfig:
        """The grid of a named protocol at ``spacing_mm`` (the crop divided by the spacing, rounded)."""
        if protocol not in GRID_PROTOCOL_CROPS:
            raise ValueError(f"unknown grid protocol {protocol!r}; choose one of {sorted(GRID_PROTOCOL_CROPS)}")
        crop = GRID_PROTOCOL_CROPS[protocol]
        shape = tuple(int(round(n / spacing_mm)) for n in crop)
        return cls(crop_shape_1mm=crop, spacing_mm=spacing_mm, shape=shape)


@dataclass
class IntensityConfig:
    """Intensity steps applied inside the brain mask before the model sees a volume (docs/METHOD.md §2)."""

    lower_percentile: float = 1.0
    upper_percentile: float = 99.0
    curvature_flow_iterations: int = 3
    curvature_flow_time_step: float = 0.125
    n4_bias_correction: bool = True
    n4_shrink_factor: int = 4
    n4_iterations: tuple[int, ...] = (50, 50, 30)


@dataclass
class EncoderConfig:
    """Stage 1: the 1-channel ResNet condition encoder and its self-supervised objective (docs/METHOD.md §3, §4.1).

    ``block``/``layers``/``widths`` are passed to MONAI's ``ResNet``. The embedding used by the contrastive loss is
    the globally averaged last feature map (``widths[-1] * expansion`` channels), ℓ2-normalised; the diffusion
    stage adds a fresh ``Linear(features, condition_dim)`` on top.
    """

    block: Literal["basic", "bottleneck"] = "bottleneck"
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    conv1_stride: int = 2
    condition_dim: int = 128
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    mask_grid: int = 3
    mask_ratio: float = 0.65
    temperature: float = 0.07
    epsilon: float = 0.5
    mim_weight: float = 1.0
    contrastive_weight: float = 1.0
    second_view: Literal["dense", "masked"] = "dense"


@dataclass
class UNetConfig:
    """Stage 2 denoiser: MONAI ``DiffusionModelUNet`` arguments plus how the condition enters (docs/METHOD.md §4.2–4.3).

    ``conditioning``: ``"concat"`` (the paper: [e_t; e_c] reaches every residual block), ``"add"`` (e_t + e_c) or
    ``"none"`` (the unconditioned DDPM baseline).
    """

    channels: tuple[int, ...] = (128, 256, 256)
    attention_levels: tuple[bool, ...] = (False, False, False)
    num_res_blocks: int = 3
    num_head_channels: int = 64
    norm_num_groups: int = 32
    resblock_updown: bool = True
    conditioning: Literal["concat", "add", "none"] = "concat"


@dataclass
class NoiseConfig:
    """Forward-process noise (docs/METHOD.md §4.5). ``kind="simplex"`` is the method; ``"gaussian"`` is an ablation."""

    kind: Literal["simplex", "gaussian"] = "simplex"
    octaves: int = 6
    persistence: float = 0.8
    feature_size: float = 64.0
    shared_across_batch: bool = True


@dataclass
class DiffusionConfig:
    """The diffusion process (docs/METHOD.md §4.4)."""

    num_timesteps: int = 1000
    schedule: Literal["cosine"] = "cosine"
    cosine_s: float = 0.008
    max_beta: float = 0.999
    prediction: Literal["x0"] = "x0"
    loss: Literal["l1", "l2"] = "l1"
    noise: NoiseConfig = field(default_factory=NoiseConfig)


@dataclass
class InferenceConfig:
    """How a volume is reconstructed (docs/METHOD.md §5). ``timestep_indices`` are 0-based.

    ``noise_seeds``: how many independent noise draws (seeds ``seed``, ``seed + 1``, ...) are reconstructed and
    averaged; 1 is the method. Each extra draw costs one more model stage.
    """

    timestep_indices: tuple[int, ...] = (249, 499, 749)
    precision: Precision = "auto"
    memory_budget_mb: int = 2048
    skip_empty_slices: bool = True
    min_brain_pixels: int = 16
    seed: int = 0
    noise_seeds: int = 1


@dataclass
class PostprocessConfig:
    """Residual-map post-processing and the calibrated threshold (docs/METHOD.md §6).

    ``threshold`` is in residual units (intensity in [0, 1]); ``None`` until calibrated. Components with at most
    ``max_removed_component_voxels`` voxels are removed.

    ``residual_normalisation="healthy_voxel_stats"`` (beyond the paper) turns the residual ``r`` into
    ``max(r - mean_v, 0) * ref / std_v`` with voxel-wise statistics of healthy residuals on the model grid (stored
    beside the weights; see :mod:`contrastive_anomaly.scoring.normalisation`): voxels where healthy brains already
    reconstruct poorly (cortical edges, ventricle borders) count less. ``ref`` is the median ``std_v`` in the brain,
    so the map keeps residual-like units. The statistics are smoothed with a Gaussian of
    ``normalisation_smoothing_vox`` voxels and ``std_v`` is floored at ``normalisation_min_std_fraction * ref``.
    """

    erosion_iterations: int = 3
    median_size: int = 5
    max_removed_component_voxels: int = 7
    connectivity: Literal[6, 18, 26] = 26
    threshold: float | None = None
    threshold_rule: Literal["dice", "fpr", "default"] = "default"
    target_fpr: float = 0.01
    default_threshold: float = 0.1
    residual_normalisation: Literal["none", "healthy_voxel_stats"] = "none"
    normalisation_smoothing_vox: float = 1.5
    normalisation_min_std_fraction: float = 0.25


@dataclass
class SliceAugmentationConfig:
    """Stage-2 per-slice intensity augmentation (MONAI ``RandAdjustContrast``, ``RandBiasField``,
    ``RandGaussianSmooth``), applied to the clean slice, which is both the condition and the reconstruction target.

    Each transform fires with its ``*_prob``. ``gamma`` is the exponent range of the contrast change, ``bias_coeff``
    the coefficient range of the smooth multiplicative bias field (MONAI's parameterisation) and ``blur_sigma`` the
    Gaussian sigma range in pixels. The first model used gamma 0.7-1.5 (p 0.5), bias 0-0.2 (p 0.25); the defaults are
    weaker because scans reach the model N4-corrected and percentile-normalised, and a model taught that smooth
    intensity changes are healthy also passes smooth lesions (oedema) through.
    """

    gamma: tuple[float, float] = (0.85, 1.2)
    gamma_prob: float = 0.3
    bias_coeff: tuple[float, float] = (0.0, 0.08)
    bias_prob: float = 0.15
    blur_sigma: tuple[float, float] = (0.25, 1.0)
    blur_prob: float = 0.25


@dataclass
class TrainConfig:
    """Optimisation settings for one stage.

    ``ema_decay``: exponential moving average of the weights (0 disables it). The average warms up as
    ``min(ema_decay, (1 + n) / (10 + n))`` after ``n`` updates, so short runs are not dominated by the initial
    weights. When enabled, validation, checkpoint selection and the exported model use the averaged weights.
    ``timestep_range``: 0-based diffusion indices (inclusive) that stage-2 training samples uniformly; ``None`` is
    the whole chain (the paper); e.g. ``(149, 849)`` covers the inference levels 249-749 with a 100-step margin.
    ``checkpoint_every``: steps between resumable checkpoints of ``OUT/last`` (0: at every validation).
    """

    batch_size: int = 32
    steps: int = 14400
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    validate_every: int = 200
    checkpoint_every: int = 0
    log_every: int = 10
    seed: int = 3141
    mixed_precision: bool = True
    encoder_mode: Literal["finetune", "frozen"] = "finetune"
    intensity_augmentation: bool = True
    augmentation: SliceAugmentationConfig = field(default_factory=SliceAugmentationConfig)
    ema_decay: float = 0.999
    timestep_range: tuple[int, int] | None = None


@dataclass
class PreprocessConfig:
    """From a clinical scan to the model grid and back (docs/PREPROCESSING.md).

    Registration runs on a copy of the scan resampled to ``registration_spacing_mm`` (isotropic, mm); the pyramid
    ``shrink_factors``/``smoothing_sigmas_mm`` apply on top of that copy. Mutual information is Mattes with
    ``mi_bins`` histogram bins on a ``sampling_fraction`` random sample (fixed ``seed``). QC thresholds are on the
    final Mattes metric value (negative; closer to 0 = weaker alignment), the brain-mask volume (mL) and the Dice
    between the warped brain mask and the template brain mask.
    """

    registration_spacing_mm: float = 3.0
    mi_bins: int = 32
    sampling_fraction: float = 0.05
    seed: int = 1234
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (4.0, 2.0, 1.0)
    iterations: tuple[int, ...] = (60, 40, 20)
    learning_rate: float = 1.0
    min_step: float = 1e-3
    deformable_brain_extraction: bool = False
    deformable_mesh_size: int = 4
    deformable_iterations: int = 15
    brain_focus_dilation_mm: float = 16.0
    mask_closing_radius_mm: float = 4.0
    crop_margin_mm: float = 10.0
    qc_metric_warn: float = -0.35
    qc_metric_fail: float = -0.15
    qc_head_metric_fail: float = -0.25
    qc_min_brain_ml: float = 800.0
    qc_max_brain_ml: float = 2200.0
    qc_template_dice_warn: float = 0.85
    qc_template_dice_fail: float = 0.6
    max_slice_thickness_mm: float = 8.0  # no longer read; kept so older config.json files still load
    thick_slice_warning_mm: float = 5.0  # warn above this slice thickness (the model is trained at 1-2 mm)
    min_extent_mm: float = 100.0
    ct_air_threshold: float = -500.0
    ct_air_fraction: float = 0.02
    working_bytes_per_voxel: int = 40


@dataclass
class BenchmarkConfig:
    """The synthetic-lesion benchmark protocol (docs/DATA.md §5, docs/BENCHMARK.md). Not stored in model folders.

    Validation lesions use seeds ``val_seed_start + i`` and test lesions ``test_seed_start + i`` with
    ``i < seed_range``, so the two ranges never overlap. ``rule_b_fpr`` is the healthy voxel FPR of rule B.
    ``detection_bins_ml`` are the lesion-size bucket edges (mL) of the detection rate. The z-score baseline divides
    by ``max(std, zscore_min_std)`` (intensity units) and reports ``|z| / zscore_map_divisor`` so its map has a
    range like a residual map (the threshold rules are invariant to this scale). ``ddpm_timestep_indices`` is the
    plain DDPM baseline's single reconstruction level (0-based; t = 500).
    """

    lesion_kinds: tuple[str, ...] = ("ms", "tumour", "stroke", "control_intensity")
    lesions_per_kind: int = 2
    val_seed_start: int = 100_000
    test_seed_start: int = 200_000
    seed_range: int = 100_000
    rule_b_fpr: float = 0.01
    detection_bins_ml: tuple[float, ...] = (0.1, 1.0, 10.0)
    zscore_min_std: float = 0.02
    zscore_map_divisor: float = 10.0
    ddpm_timestep_indices: tuple[int, ...] = (499,)
    montage_kind: str = "tumour"


@dataclass
class ModelConfig:
    """Everything needed to rebuild, run and interpret a trained model."""

    name: str = "paper"
    contrast: Contrast = "T2"
    grid: GridConfig = field(default_factory=GridConfig)
    intensity: IntensityConfig = field(default_factory=IntensityConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    encoder_training: TrainConfig = field(
        default_factory=lambda: TrainConfig(betas=(0.9, 0.95), weight_decay=0.05, intensity_augmentation=False,
                                            ema_decay=0.0)
    )
    diffusion_training: TrainConfig = field(default_factory=TrainConfig)
    training_data: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        """Write ``config.json`` atomically (never half-written)."""
        write_text_atomic(self.to_json() + "\n", path)

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _is_tuple_hint(hint: Any) -> bool:
    """True for ``tuple[...]`` and ``tuple[...] | None`` annotations."""
    if typing.get_origin(hint) is tuple:
        return True
    return any(typing.get_origin(arg) is tuple for arg in typing.get_args(hint))


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) dataclass from plain JSON data; unknown keys raise ``ValueError``."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = _from_dict(hint, value)
        elif isinstance(value, list) and _is_tuple_hint(hint):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def paper_config() -> ModelConfig:
    """The paper's sizes: ResNet-50 encoder, UNet 128·(1,2,2), 3 residual blocks, attention in the middle only."""
    return ModelConfig(name="paper", contrast="T2")


def compact_config() -> ModelConfig:
    """A CPU-sized model: ResNet-18-like encoder at half width and a UNet 32·(1,2,2) with 2 residual blocks."""
    return ModelConfig(
        name="compact",
        contrast="T1",
        encoder=EncoderConfig(
            block="basic", layers=(2, 2, 2, 2), widths=(32, 64, 128, 256), decoder_channels=(128, 64, 32, 16, 16)
        ),
        unet=UNetConfig(channels=(32, 64, 64), num_res_blocks=2, num_head_channels=32, norm_num_groups=16),
    )


def tiny_config() -> ModelConfig:
    """A model that trains in seconds on a CPU, for tests and smoke runs. Not meant to be useful clinically."""
    return ModelConfig(
        name="tiny",
        contrast="T1",
        encoder=EncoderConfig(
            block="basic", layers=(1, 1, 1, 1), widths=(8, 16, 32, 64), condition_dim=32, decoder_channels=(32, 16, 8)
        ),
        unet=UNetConfig(channels=(16, 32, 32), num_res_blocks=1, num_head_channels=16, norm_num_groups=8),
        encoder_training=TrainConfig(
            batch_size=8, steps=30, learning_rate=1e-3, betas=(0.9, 0.95), weight_decay=0.05, validate_every=10,
            mixed_precision=False, intensity_augmentation=False, ema_decay=0.0,
        ),
        diffusion_training=TrainConfig(batch_size=8, steps=30, learning_rate=1e-3, validate_every=10,
                                       mixed_precision=False),
    )


PRESETS = {"paper": paper_config, "compact": compact_config, "tiny": tiny_config}


def preset(name: str) -> ModelConfig:
    """Return a fresh copy of a named preset (``paper``, ``compact`` or ``tiny``)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}") from None

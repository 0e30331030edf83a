"""The 1-channel 2D ResNet encoder shared by stage 1 (self-supervised) and stage 2 (condition encoder f).

Implementation decisions (docs/METHOD.md §3, §4.1, §12):

* The trunk is MONAI's ``monai.networks.nets.ResNet`` (2D, 1 input channel, ``conv1_t_stride`` from the config, max
  pool on, no fc), so with the paper's ``conv1_stride=2`` the four stages have strides 4, 8, 16, 32 and a 96×96
  slice gives a 3×3 last map, as the reference timm ResNet-50 does.
* MONAI's ResNet has no stochastic depth, so the reference drop-path rate 0.05 is **not** reproduced.
* SparK's sparse convolutions are out of scope. The masked view of stage 1 is the *dense* encoder applied to the
  image with the masked cells set to 0 (the "mask-as-zero" approximation): features near cell borders see the zeros
  and BatchNorm statistics include the masked positions. The light decoder (:mod:`masking`) then replaces the masked
  positions of every pyramid level by a learned mask token, the pixel mask being resized to each level.
* The stage-2 condition is ``head(global_mean(last stage))``: a fresh ``Linear(out_features, condition_dim)``, raw
  output (no normalisation, no activation). :func:`load_stage1_trunk` copies a stage-1 trunk into it and checks that
  every trunk tensor (weights and BatchNorm statistics) was matched.
"""

from __future__ import annotations

from monai.networks.nets import ResNet
from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck
from torch import Tensor, nn

from ..config import EncoderConfig

STAGE1_TRUNK_PREFIX = "encoder."  # where MaskedImageModel keeps its ResNetEncoder in a state dict


class ResNetEncoder(ResNet):
    """MONAI 2D ResNet trunk with a feature-pyramid and a global-average embedding interface.

    ``out_features`` is the channel count of the last stage (``widths[-1] * expansion``); ``pyramid_channels`` the
    channel counts of the four stages and ``pyramid_strides`` their strides in pixels. Inputs are [B, 1, H, W] slices
    (KJI slice planes, rows × cols) with intensities in [0, 1].
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__(
            block=cfg.block,
            layers=list(cfg.layers),
            block_inplanes=list(cfg.widths),
            spatial_dims=2,
            n_input_channels=1,
            conv1_t_stride=cfg.conv1_stride,
            feed_forward=False,
        )
        expansion = (ResNetBottleneck if cfg.block == "bottleneck" else ResNetBlock).expansion
        self.pyramid_channels: list[int] = [int(w) * expansion for w in cfg.widths]
        first_stride = int(cfg.conv1_stride) * 2  # conv1 then the 3×3/2 max pool
        self.pyramid_strides: list[int] = [first_stride * 2**i for i in range(4)]
        self.out_features: int = self.pyramid_channels[-1]

    def pyramid(self, x: Tensor) -> list[Tensor]:
        """The four stage outputs [B, C_i, H/s_i, W/s_i], finest first (strides ``pyramid_strides``)."""
        h = self.act(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            h = self.maxpool(h)
        levels = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            h = stage(h)
            levels.append(h)
        return levels

    def embed(self, x: Tensor) -> Tensor:
        """Global average of the last stage: [B, out_features], not normalised."""
        return self.pyramid(x)[-1].mean(dim=(-2, -1))

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(x)


class ConditionEncoder(nn.Module):
    """Condition encoder f of stage 2: ``head(trunk.embed(x01))`` → [B, condition_dim], raw (docs/METHOD.md §4.1)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.trunk = ResNetEncoder(cfg)
        self.head = nn.Linear(self.trunk.out_features, cfg.condition_dim)

    def forward(self, x01: Tensor) -> Tensor:
        """``x01``: [B, 1, H, W] clean slices in [0, 1] → condition [B, condition_dim]."""
        return self.head(self.trunk.embed(x01))


def load_stage1_trunk(condition_encoder: ConditionEncoder, stage1_state_dict: dict[str, Tensor]) -> int:
    """Copy a stage-1 encoder into ``condition_encoder.trunk`` and re-initialise the head.

    ``stage1_state_dict`` is a :class:`masking.MaskedImageModel` state dict (trunk keys prefixed ``"encoder."``) or a
    bare trunk state dict. Every trunk tensor, BatchNorm running statistics included, must be present with the right
    shape; otherwise ``ValueError`` is raised and the encoder is left unchanged. Returns the number of tensors copied.
    """
    cut = len(STAGE1_TRUNK_PREFIX)
    prefixed = {k[cut:]: v for k, v in stage1_state_dict.items() if k.startswith(STAGE1_TRUNK_PREFIX)}
    source = prefixed if prefixed else dict(stage1_state_dict)
    expected = condition_encoder.trunk.state_dict()
    missing = [k for k in expected if k not in source]
    wrong_shape = [k for k in expected if k in source and tuple(source[k].shape) != tuple(expected[k].shape)]
    if missing or wrong_shape:
        raise ValueError(
            f"stage-1 weights do not fit the encoder: {len(expected) - len(missing) - len(wrong_shape)} of "
            f"{len(expected)} trunk tensors matched ({len(missing)} missing, {len(wrong_shape)} with another shape)"
        )
    condition_encoder.trunk.load_state_dict({k: source[k] for k in expected}, strict=True)
    condition_encoder.head.reset_parameters()
    return len(expected)

"""Stage 1 (docs/METHOD.md §3): random cell masking, the SparK-style light decoder and the masked-image model.

Implementation decisions:

* **Mask-as-zero instead of SparK.** SparK's sparse convolutions (every conv/pool output multiplied by the mask,
  BatchNorm over visible positions only) are out of scope. The masked view is the dense :class:`ResNetEncoder` run on
  ``x * mask`` (masked cells set to 0); the decoder fills the masked positions of every pyramid level with a learned
  per-level mask token, the pixel mask being resized (nearest) to each level.
* **Second view** (decision D1): ``cfg.second_view == "dense"`` encodes the unmasked slice (the project default);
  ``"masked"`` reproduces the official code's defect 2 (view B under view A's mask). Under mask-as-zero the masked
  second view is *exactly* view A, so its embedding is reused rather than recomputed.
* **Decoder widths.** ``cfg.decoder_channels`` are the output widths of the ×2 upsampling stages, coarse to fine.
  The number of stages is fixed by the encoder's total stride (5 for stride 32); a shorter list has its last width
  repeated. Each level is projected by a 1×1 conv to the width entering the stage at its resolution (the coarsest to
  ``decoder_channels[0]``), added to the running decoder state, and a final 1×1 conv gives one channel.
* MONAI's ResNet has no drop-path, so the reference drop-path 0.05 is not reproduced.
* ``contrastive_weight == 0`` gives the MIM-only (cDDPM-style) encoder; view B is then not computed at all.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import Tensor, nn

from ..config import EncoderConfig
from .encoder import ResNetEncoder
from .losses import cell_edges, eps_infonce, masked_patch_mse

MASK_TOKEN_INIT_STD = 0.02  # SparK's truncated-normal init of the mask tokens


def cells_to_pixels(cell_values: Tensor, height: int, width: int) -> Tensor:
    """Expand per-cell values [B, grid, grid] to a pixel map [B, 1, height, width] using :func:`cell_edges`."""
    grid = cell_values.shape[-1]
    row_cell = torch.cat([torch.full((r1 - r0,), i) for i, (r0, r1) in enumerate(cell_edges(height, grid))])
    col_cell = torch.cat([torch.full((c1 - c0,), i) for i, (c0, c1) in enumerate(cell_edges(width, grid))])
    row_cell, col_cell = row_cell.to(cell_values.device), col_cell.to(cell_values.device)
    return cell_values[:, row_cell][:, :, col_cell].unsqueeze(1)


def random_cell_mask(
    batch: int,
    height: int,
    width: int,
    grid: int,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random visibility mask [B, 1, height, width] float32: 1 = visible, 0 = masked.

    Each image keeps ``round(grid² · (1 − mask_ratio))`` of its ``grid × grid`` cells (3 of 9 for the defaults),
    chosen uniformly and independently per image. Cells are ``height // grid`` × ``width // grid`` pixels, the
    remainder going to the last row/column of cells. ``generator`` must live on the CPU; the mask is moved to
    ``device`` afterwards.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    num_cells = grid * grid
    keep = max(1, round(num_cells * (1.0 - mask_ratio)))
    order = torch.rand(batch, num_cells, generator=generator).argsort(dim=1)
    visible = torch.zeros(batch, num_cells)
    visible.scatter_(1, order[:, :keep], 1.0)
    return cells_to_pixels(visible.view(batch, grid, grid), height, width).to(device=device, dtype=torch.float32)


class LightDecoder(nn.Module):
    """SparK-style light decoder: 4-level feature pyramid + pixel mask → [B, 1, H, W] reconstruction.

    ``pyramid_channels``: channels of the encoder levels, finest first; ``decoder_channels``: output widths of the ×2
    upsampling stages, coarse to fine (the last repeated up to ``num_upsamplings``).
    """

    def __init__(self, pyramid_channels: list[int], decoder_channels: tuple[int, ...], num_upsamplings: int) -> None:
        super().__init__()
        if len(decoder_channels) == 0 or len(decoder_channels) > num_upsamplings:
            raise ValueError(f"need 1 to {num_upsamplings} decoder widths, got {len(decoder_channels)}")
        if num_upsamplings < len(pyramid_channels):
            raise ValueError("the decoder needs at least one upsampling stage per pyramid level")
        widths = list(decoder_channels) + [decoder_channels[-1]] * (num_upsamplings - len(decoder_channels))
        stage_inputs = [widths[0]] + widths[:-1]
        coarse_first = list(reversed(pyramid_channels))
        self.mask_tokens = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, c, 1, 1)) for c in coarse_first]
        )
        for token in self.mask_tokens:
            nn.init.trunc_normal_(token, std=MASK_TOKEN_INIT_STD)
        self.projections = nn.ModuleList(
            [nn.Conv2d(c, stage_inputs[i], kernel_size=1) for i, c in enumerate(coarse_first)]
        )
        self.stages = nn.ModuleList(
            [
                nn.Sequential(
                    Convolution(2, c_in, c_out, strides=2, kernel_size=2, padding=0, is_transposed=True,
                                act="RELU", norm="BATCH"),
                    Convolution(2, c_out, c_out, kernel_size=3, act="RELU", norm="BATCH"),
                )
                for c_in, c_out in zip(stage_inputs, widths, strict=True)
            ]
        )
        self.head = nn.Conv2d(widths[-1], 1, kernel_size=1)

    def forward(self, pyramid: list[Tensor], visible_mask: Tensor) -> Tensor:
        """``pyramid``: encoder levels finest first; ``visible_mask``: [B, 1, H, W] (1 visible) → [B, 1, H, W]."""
        levels = list(reversed(pyramid))
        h: Tensor | None = None
        for i, stage in enumerate(self.stages):
            if i < len(levels):
                level = levels[i]
                keep = F.interpolate(visible_mask.to(level.dtype), size=level.shape[-2:], mode="nearest")
                filled = level * keep + self.mask_tokens[i].to(level.dtype) * (1.0 - keep)
                projected = self.projections[i](filled)
                if h is None:
                    h = projected
                else:
                    if h.shape[-2:] != projected.shape[-2:]:  # odd input sizes: align to the encoder level
                        h = F.interpolate(h, size=projected.shape[-2:], mode="nearest")
                    h = h + projected
            h = stage(h)
        if h.shape[-2:] != visible_mask.shape[-2:]:
            h = F.interpolate(h, size=visible_mask.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(h)


class MaskedImageModel(nn.Module):
    """Stage-1 model: masked image modelling + ε-InfoNCE between a masked and a second view (docs/METHOD.md §3)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = ResNetEncoder(cfg)
        total_stride = self.encoder.pyramid_strides[-1]
        num_upsamplings = int(round(math.log2(total_stride)))
        if 2**num_upsamplings != total_stride:
            raise ValueError(f"the encoder stride {total_stride} must be a power of two")
        self.decoder = LightDecoder(self.encoder.pyramid_channels, tuple(cfg.decoder_channels), num_upsamplings)

    def forward(self, x01: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``x01``: [B, 1, H, W] slices in [0, 1]. Returns scalars ``loss``, ``mim``, ``contrastive`` and, for
        previews, ``reconstruction`` [B, 1, H, W] and ``visible_mask`` [B, 1, H, W]."""
        cfg = self.cfg
        batch, _, height, width = x01.shape
        visible_mask = random_cell_mask(
            batch, height, width, cfg.mask_grid, cfg.mask_ratio, generator=generator, device=x01.device
        ).to(x01.dtype)
        pyramid_a = self.encoder.pyramid(x01 * visible_mask)
        reconstruction = self.decoder(pyramid_a, visible_mask)
        mim = masked_patch_mse(reconstruction, x01, visible_mask, cfg.mask_grid)
        if cfg.contrastive_weight > 0:
            z_a = F.normalize(pyramid_a[-1].float().mean(dim=(-2, -1)), dim=1)
            if cfg.second_view == "dense":
                z_b = F.normalize(self.encoder.embed(x01).float(), dim=1)
            else:  # parity with the official code: view B under view A's mask, identical under mask-as-zero
                z_b = z_a
            contrastive = eps_infonce(z_a, z_b, cfg.temperature, cfg.epsilon)
        else:
            contrastive = torch.zeros((), device=x01.device)
        loss = cfg.mim_weight * mim + cfg.contrastive_weight * contrastive
        return {
            "loss": loss,
            "mim": mim.detach(),
            "contrastive": contrastive.detach(),
            "reconstruction": reconstruction,
            "visible_mask": visible_mask,
        }

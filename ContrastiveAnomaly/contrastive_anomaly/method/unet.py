"""Stage-2 denoiser: MONAI ``DiffusionModelUNet`` with a continuous condition (docs/METHOD.md §4.2–4.3, §12 route 2).

Implementation decisions:

* **Concatenation route** (``conditioning="concat"``, the paper): the condition c ∈ R^condition_dim goes through
  ``condition_embed`` = Linear(condition_dim, E) → SiLU → Linear(E, E), E = 4·channels[0] (the time-embedding width),
  and every residual block (down, middle, up and the up/down-sampling resblocks) receives e = [e_t; e_c] (2E wide):
  its ``time_emb_proj`` is replaced by ``Linear(2E, out_channels)``. ``"add"`` uses e = e_t + e_c with MONAI's
  original projections (route 1); ``"none"`` ignores the condition (the unconditioned DDPM baseline).
* **Additive, not scale-shift.** MONAI's residual blocks *add* the projected embedding after the first conv, where
  the reference OpenAI UNet uses scale-shift GroupNorm; GroupNorm eps is MONAI's 1e-6 (reference 1e-5).
* The forward pass is written here (not delegated to MONAI's ``forward``) so the condition is an explicit argument:
  no state is stashed on the module before a call.
* The output is the x0 prediction in the network scale [−1, 1] (not clamped); the output conv is zero-initialised
  by MONAI, so an untrained model returns 0.
"""

from __future__ import annotations

import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock, get_timestep_embedding
from torch import Tensor, nn

from ..config import UNetConfig

TIME_EMBED_MULTIPLIER = 4  # MONAI: time-embedding width E = 4 * channels[0]


class ConditionalDiffusionUNet(DiffusionModelUNet):
    """2D MONAI diffusion UNet, 1 → 1 channel, conditioned on a [B, condition_dim] vector per ``cfg.conditioning``.

    Attributes: ``conditioning`` (the mode), ``embed_dim`` (E), ``condition_embed`` (absent for ``"none"``) and
    ``replaced_projections`` (how many residual-block embedding projections were widened for ``"concat"``).
    """

    def __init__(self, cfg: UNetConfig, condition_dim: int) -> None:
        super().__init__(
            spatial_dims=2,
            in_channels=1,
            out_channels=1,
            channels=tuple(cfg.channels),
            attention_levels=tuple(cfg.attention_levels),
            num_res_blocks=cfg.num_res_blocks,
            num_head_channels=cfg.num_head_channels,
            resblock_updown=cfg.resblock_updown,
            norm_num_groups=cfg.norm_num_groups,
        )
        if cfg.conditioning not in ("concat", "add", "none"):
            raise ValueError(f"unknown conditioning {cfg.conditioning!r}; use 'concat', 'add' or 'none'")
        self.conditioning = cfg.conditioning
        self.condition_dim = int(condition_dim)
        self.embed_dim = TIME_EMBED_MULTIPLIER * int(cfg.channels[0])
        self.replaced_projections = 0
        if self.conditioning == "none":
            return
        self.condition_embed = nn.Sequential(
            nn.Linear(self.condition_dim, self.embed_dim), nn.SiLU(), nn.Linear(self.embed_dim, self.embed_dim)
        )
        if self.conditioning == "concat":
            for block in self.modules():
                if isinstance(block, DiffusionUNetResnetBlock):
                    block.time_emb_proj = nn.Linear(2 * self.embed_dim, block.out_channels)
                    block.emb_channels = 2 * self.embed_dim
                    self.replaced_projections += 1

    def embedding(self, timesteps: Tensor, condition: Tensor | None, dtype: torch.dtype) -> Tensor:
        """The vector every residual block receives: [B, E] (``add``/``none``) or [B, 2E] (``concat``)."""
        t_emb = get_timestep_embedding(timesteps, self.block_out_channels[0]).to(dtype=dtype)
        e_t = self.time_embed(t_emb)
        if self.conditioning == "none":
            return e_t
        if condition is None:
            raise ValueError(f"this UNet is conditioned ({self.conditioning}); pass a [B, {self.condition_dim}] tensor")
        if condition.dim() != 2 or condition.shape != (timesteps.shape[0], self.condition_dim):
            raise ValueError(
                f"condition must have shape [{timesteps.shape[0]}, {self.condition_dim}], got {tuple(condition.shape)}"
            )
        e_c = self.condition_embed(condition.to(dtype=e_t.dtype))
        if self.conditioning == "concat":
            return torch.cat([e_t, e_c.to(e_t.dtype)], dim=1)
        return e_t + e_c.to(e_t.dtype)

    def forward(self, x: Tensor, timesteps: Tensor, condition: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """``x``: noised slices [B, 1, H, W] in the [−1, 1] scale; ``timesteps``: 0-based indices [B] (int);
        ``condition``: [B, condition_dim] or None for ``"none"`` → x0 prediction [B, 1, H, W] in the [−1, 1] scale.
        H and W must be divisible by 2^(len(channels) − 1)."""
        emb = self.embedding(timesteps, condition, x.dtype)
        h = self.conv_in(x)
        skips: list[Tensor] = [h]
        for down_block in self.down_blocks:
            h, block_skips = down_block(hidden_states=h, temb=emb, context=None)
            skips.extend(block_skips)
        h = self.middle_block(hidden_states=h, temb=emb, context=None)
        for up_block in self.up_blocks:
            count = len(up_block.resnets)
            h = up_block(hidden_states=h, res_hidden_states_list=skips[-count:], temb=emb, context=None)
            skips = skips[:-count]
        return self.out(h)

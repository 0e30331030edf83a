"""Network building blocks: cell masks, encoder, light decoder, masked-image model, conditional UNet and the
stage-2 model (docs/METHOD.md §3, §4, §12). Uses the ``tiny`` preset except for the paper-size UNet checks."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock
from torch.utils.flop_counter import FlopCounterMode

from contrastive_anomaly.config import ModelConfig, UNetConfig, paper_config, tiny_config
from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.method.encoder import ConditionEncoder, ResNetEncoder, load_stage1_trunk
from contrastive_anomaly.method.masking import MaskedImageModel, random_cell_mask
from contrastive_anomaly.method.unet import ConditionalDiffusionUNet

SIZE = 32  # tiny slices: 32 px still gives a 1×1 last encoder map (stride 32) and a 3×3 mask grid


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def slices(batch: int, seed: int = 0, size: int = SIZE) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=generator)


def perturb_zero_initialised_convs(unet: ConditionalDiffusionUNet, std: float = 0.05) -> None:
    """MONAI zero-initialises the output conv and every resblock's conv2, so at init neither the time nor the condition
    embedding reaches the output. Give them small random weights so that gradients and output changes can be seen."""
    with torch.no_grad():
        for module in [unet.out] + [m.conv2 for m in unet.modules() if isinstance(m, DiffusionUNetResnetBlock)]:
            for p in module.parameters():
                p.normal_(0, std)


def with_conditioning(cfg: ModelConfig, mode: str) -> ModelConfig:
    cfg.unet.conditioning = mode  # type: ignore[assignment]
    return cfg


# --- masking -------------------------------------------------------------------------------------------------------


def test_random_cell_mask_keeps_three_of_nine_cells_per_image() -> None:
    mask = random_cell_mask(16, 96, 96, grid=3, mask_ratio=0.65, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (16, 1, 96, 96) and mask.dtype == torch.float32
    cells = mask[:, 0, ::32, ::32]  # one pixel per 32-px cell
    blocks = mask.view(16, 3, 32, 3, 32)
    assert torch.equal(blocks.amax(dim=(2, 4)), blocks.amin(dim=(2, 4)))  # constant on every cell
    assert cells.sum(dim=(1, 2)).tolist() == [3.0] * 16
    assert len({tuple(c.flatten().tolist()) for c in cells}) > 1  # drawn per image


def test_random_cell_mask_is_reproducible_and_handles_remainders() -> None:
    a = random_cell_mask(4, 35, 40, 3, 0.65, generator=torch.Generator().manual_seed(5))
    b = random_cell_mask(4, 35, 40, 3, 0.65, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    # rows: 11, 11, 13 px; cols: 13, 13, 14 px -> the kept area is a sum of whole cells
    row_sizes, col_sizes = [11, 11, 13], [13, 13, 14]
    areas = {r * c for r in row_sizes for c in col_sizes}
    for image in a:
        kept = int(image.sum())
        assert kept in {x + y + z for x in areas for y in areas for z in areas}
    with pytest.raises(ValueError):
        random_cell_mask(1, 32, 32, 3, 1.0)


# --- encoder and stage 1 ---------------------------------------------------------------------------------------------


def test_resnet_encoder_pyramid_strides_and_embedding() -> None:
    cfg = tiny_config().encoder
    encoder = ResNetEncoder(cfg)
    levels = encoder.pyramid(slices(2, size=96))
    assert [tuple(level.shape) for level in levels] == [
        (2, c, 96 // s, 96 // s) for c, s in zip(encoder.pyramid_channels, (4, 8, 16, 32), strict=True)
    ]
    assert encoder.pyramid_strides == [4, 8, 16, 32]
    embedding = encoder.embed(slices(2, size=96))
    assert embedding.shape == (2, encoder.out_features) and encoder.out_features == cfg.widths[-1]
    assert not torch.allclose(embedding.norm(dim=1), torch.ones(2))  # not normalised


def test_decoder_ignores_features_at_masked_positions() -> None:
    model = MaskedImageModel(tiny_config().encoder).eval()
    x = slices(2, size=96)
    mask = random_cell_mask(2, 96, 96, 3, 0.65, generator=torch.Generator().manual_seed(1))
    pyramid = model.encoder.pyramid(x * mask)
    changed = []
    for level in pyramid:
        keep = torch.nn.functional.interpolate(mask, size=level.shape[-2:], mode="nearest")
        changed.append(level + 10.0 * (1 - keep) * torch.randn_like(level))
    with torch.no_grad():
        reference, perturbed = model.decoder(pyramid, mask), model.decoder(changed, mask)
    assert reference.shape == (2, 1, 96, 96)
    assert torch.allclose(reference, perturbed, atol=1e-5)
    visible_change = [level + 1.0 for level in pyramid]
    with torch.no_grad():
        assert not torch.allclose(reference, model.decoder(visible_change, mask), atol=1e-3)


def test_masked_image_model_losses_and_views(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config().encoder
    torch.manual_seed(0)
    model = MaskedImageModel(cfg)
    out = model(slices(4), generator=torch.Generator().manual_seed(3))
    assert {"loss", "mim", "contrastive"} <= set(out)
    assert all(out[k].dim() == 0 and torch.isfinite(out[k]) for k in ("loss", "mim", "contrastive"))
    assert out["loss"].item() == pytest.approx(out["mim"].item() + out["contrastive"].item(), rel=1e-5)
    out["loss"].backward()
    assert model.encoder.conv1.weight.grad is not None and model.decoder.head.weight.grad is not None

    cfg.contrastive_weight = 0.0
    mim_only = MaskedImageModel(cfg)
    calls = []
    monkeypatch.setattr(mim_only.encoder, "embed", lambda x: calls.append(x) or torch.zeros(1))
    out = mim_only(slices(4), generator=torch.Generator().manual_seed(3))
    assert calls == [] and out["contrastive"].item() == 0.0
    assert out["loss"].item() == pytest.approx(cfg.mim_weight * out["mim"].item())


def test_masked_second_view_parity_flag_changes_the_contrastive_term() -> None:
    cfg = tiny_config().encoder
    torch.manual_seed(0)
    dense = MaskedImageModel(cfg).eval()
    cfg_masked = tiny_config().encoder
    cfg_masked.second_view = "masked"
    masked = MaskedImageModel(cfg_masked).eval()
    masked.load_state_dict(dense.state_dict())
    x = slices(4)
    a = dense(x, generator=torch.Generator().manual_seed(2))
    b = masked(x, generator=torch.Generator().manual_seed(2))
    assert a["mim"].item() == pytest.approx(b["mim"].item())
    assert b["contrastive"].item() < a["contrastive"].item()  # identical views: positives at maximal similarity


def test_load_stage1_trunk_matches_all_tensors_and_rejects_mismatch() -> None:
    cfg = tiny_config().encoder
    torch.manual_seed(0)
    stage1 = MaskedImageModel(cfg)
    stage1(slices(4))  # update BatchNorm running statistics so they differ from a fresh encoder
    condition_encoder = ConditionEncoder(cfg)
    matched = load_stage1_trunk(condition_encoder, stage1.state_dict())
    trunk_state = condition_encoder.trunk.state_dict()
    assert matched == len(trunk_state)
    for key, value in trunk_state.items():
        assert torch.equal(value, stage1.state_dict()[f"encoder.{key}"]), key

    other = tiny_config().encoder
    other.widths = (8, 16, 32, 32)
    with pytest.raises(ValueError, match="trunk tensors matched"):
        load_stage1_trunk(ConditionEncoder(cfg), MaskedImageModel(other).state_dict())
    partial = {k: v for k, v in stage1.state_dict().items() if "layer4" not in k}
    before = condition_encoder.trunk.layer4[0].conv1.weight.clone()
    with pytest.raises(ValueError):
        load_stage1_trunk(condition_encoder, partial)
    assert torch.equal(before, condition_encoder.trunk.layer4[0].conv1.weight)  # left unchanged


# --- conditional UNet ------------------------------------------------------------------------------------------------


def test_every_resblock_receives_the_condition() -> None:
    cfg = tiny_config()
    torch.manual_seed(0)
    unet = ConditionalDiffusionUNet(cfg.unet, cfg.encoder.condition_dim).eval()
    resblocks = [m for m in unet.modules() if isinstance(m, DiffusionUNetResnetBlock)]
    assert unet.replaced_projections == len(resblocks) > 0
    assert all(block.time_emb_proj.in_features == 2 * unet.embed_dim for block in resblocks)
    x, t = slices(2) * 2 - 1, torch.tensor([10, 700])
    c1, c2 = torch.randn(2, cfg.encoder.condition_dim), torch.randn(2, cfg.encoder.condition_dim)
    with torch.no_grad():
        assert torch.equal(unet(x, t, c1), torch.zeros(2, 1, SIZE, SIZE))  # zero-initialised output conv
        perturb_zero_initialised_convs(unet)
        base = unet(x, t, c1)
        assert not torch.allclose(base, unet(x, t, c2), atol=1e-6)
        # silence the condition half of one projection at a time: the output must move each time
        for block in resblocks:
            saved = block.time_emb_proj.weight[:, unet.embed_dim:].clone()
            block.time_emb_proj.weight[:, unet.embed_dim:] = 0
            assert not torch.allclose(base, unet(x, t, c1), atol=1e-7)
            block.time_emb_proj.weight[:, unet.embed_dim:] = saved


def test_unconditioned_forward_equals_monai_forward() -> None:
    cfg = tiny_config()
    torch.manual_seed(0)
    ours = ConditionalDiffusionUNet(with_conditioning(cfg, "none").unet, cfg.encoder.condition_dim).eval()
    for p in ours.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    x, t = slices(2) * 2 - 1, torch.tensor([5, 900])
    with torch.no_grad():
        expected = DiffusionModelUNet.forward(ours, x, t)
        assert torch.allclose(ours(x, t, None), expected, atol=1e-6)
        assert torch.allclose(ours(x, t, torch.randn(2, 32)), expected, atol=1e-6)  # condition ignored


def test_add_conditioning_and_missing_condition() -> None:
    cfg = with_conditioning(tiny_config(), "add")
    unet = ConditionalDiffusionUNet(cfg.unet, cfg.encoder.condition_dim)
    assert unet.replaced_projections == 0
    x, t = slices(2) * 2 - 1, torch.tensor([1, 2])
    assert unet(x, t, torch.randn(2, cfg.encoder.condition_dim)).shape == (2, 1, SIZE, SIZE)
    with pytest.raises(ValueError):
        unet(x, t, None)
    with pytest.raises(ValueError):
        unet(x, t, torch.randn(2, cfg.encoder.condition_dim + 1))


def test_paper_unet_size_and_flops() -> None:
    cfg = paper_config()
    unet = ConditionalDiffusionUNet(cfg.unet, cfg.encoder.condition_dim).eval()
    parameters = sum(p.numel() for p in unet.parameters())
    assert 35e6 <= parameters <= 45e6
    x, t, c = torch.zeros(1, 1, 96, 96), torch.tensor([499]), torch.zeros(1, cfg.encoder.condition_dim)
    counter = FlopCounterMode(display=False)  # no timing assertion here: speed is measured in benchmarks/
    with torch.no_grad(), counter:
        unet(x, t, c)
    assert 140e9 <= counter.get_total_flops() <= 165e9


def test_unet_config_rejects_unknown_conditioning() -> None:
    with pytest.raises(ValueError):
        ConditionalDiffusionUNet(UNetConfig(channels=(16, 32, 32), norm_num_groups=8, conditioning="film"), 8)  # type: ignore[arg-type]


# --- stage-2 model ---------------------------------------------------------------------------------------------------


def test_model_shapes_and_determinism() -> None:
    cfg = tiny_config()
    torch.manual_seed(7)
    a = AnomalyDiffusionModel(cfg).eval()
    torch.manual_seed(7)
    b = AnomalyDiffusionModel(cfg).eval()
    x, k = slices(3), torch.tensor([249, 499, 749])
    noise = torch.randn(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        condition = a.condition(x)
        assert condition.shape == (3, cfg.encoder.condition_dim)
        out_a, out_b = a.predict_x0(x, k, noise), b.predict_x0(x, k, noise)
        assert out_a.shape == (3, 1, SIZE, SIZE)
        assert torch.equal(out_a, out_b)
        assert torch.equal(out_a, a.predict_x0(x, k, noise, condition=condition))
        assert torch.allclose(out_a, torch.full_like(out_a, 0.5))  # untrained: zero output conv → (0 + 1) / 2
    loss = a.training_loss(x, k, noise)
    assert loss.dim() == 0 and loss.item() == pytest.approx((2 * x - 1).abs().mean().item(), rel=1e-5)


def test_unconditioned_model_has_no_encoder() -> None:
    model = AnomalyDiffusionModel(with_conditioning(tiny_config(), "none"))
    assert model.encoder is None and model.condition(slices(1)) is None
    assert model.predict_x0(slices(2), torch.tensor([0, 1]), torch.zeros(1, 1, SIZE, SIZE)).shape == (2, 1, SIZE, SIZE)
    model.set_encoder_frozen(True)  # a no-op, not an error


def test_frozen_encoder_trains_head_only_and_finetune_trains_trunk() -> None:
    cfg = tiny_config()
    torch.manual_seed(0)
    model = AnomalyDiffusionModel(cfg)
    perturb_zero_initialised_convs(model.unet)  # let gradients reach the condition path
    x, k, noise = slices(4), torch.tensor([100, 300, 500, 900]), torch.randn(1, 1, SIZE, SIZE)

    model.set_encoder_frozen(True)
    model.train()
    assert not model.encoder.trunk.training and model.encoder.head.training
    assert all(not p.requires_grad for p in model.encoder.trunk.parameters())
    assert all(p.requires_grad for p in model.encoder.head.parameters())
    running_mean = model.encoder.trunk.bn1.running_mean.clone()
    model.training_loss(x, k, noise).backward()
    assert all(p.grad is None for p in model.encoder.trunk.parameters())
    assert model.encoder.head.weight.grad is not None and model.encoder.head.weight.grad.abs().sum() > 0
    assert torch.equal(running_mean, model.encoder.trunk.bn1.running_mean)  # eval-mode BatchNorm

    model.zero_grad(set_to_none=True)
    model.set_encoder_frozen(False)
    model.train()
    assert model.encoder.trunk.training
    model.training_loss(x, k, noise).backward()
    grads = [p.grad for p in model.encoder.trunk.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_tiny_model_overfits_four_slices() -> None:
    cfg = tiny_config()
    torch.manual_seed(0)
    model = AnomalyDiffusionModel(cfg).train()
    generator = torch.Generator().manual_seed(0)
    levels = torch.tensor([0.2, 0.4, 0.6, 0.8]).view(4, 1, 1, 1)
    x = levels + 0.02 * torch.randn(4, 1, SIZE, SIZE, generator=generator)
    eval_k = torch.tensor([249, 499, 749, 999])
    eval_noise = torch.randn(1, 1, SIZE, SIZE, generator=generator)

    def evaluation_loss() -> float:
        model.eval()
        with torch.no_grad():
            value = model.training_loss(x, eval_k, eval_noise).item()
        model.train()
        return value

    before = evaluation_loss()
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.diffusion_training.learning_rate)
    for _ in range(20):
        k = torch.randint(0, cfg.diffusion.num_timesteps, (4,), generator=generator)
        noise = torch.randn(1, 1, SIZE, SIZE, generator=generator)
        optimiser.zero_grad()
        model.training_loss(x, k, noise).backward()
        optimiser.step()
    after = evaluation_loss()
    assert after < 0.7 * before, (before, after)

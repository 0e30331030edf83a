"""Sizes, FLOPs and CPU forward times of the model blocks for a preset (not a test; run by hand).

Usage: ``python benchmarks/bench_model_blocks.py [--preset paper] [--batch 4] [--threads 2] [--repeats 2]``.
FLOPs use 2 FLOP per multiply-add (``torch.utils.flop_counter``); times are wall-clock ms per slice, 96×96.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from contrastive_anomaly.config import preset
from contrastive_anomaly.method.diffusion_model import AnomalyDiffusionModel
from contrastive_anomaly.method.masking import MaskedImageModel


def count(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def flops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return counter.get_total_flops() / 1e9


def ms_per_slice(fn, batch: int, repeats: int, bf16: bool) -> float:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        fn()  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
    return (time.perf_counter() - start) / repeats / batch * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset(args.preset)
    model = AnomalyDiffusionModel(cfg).eval()
    stage1 = MaskedImageModel(cfg.encoder).eval()
    height, width = cfg.grid.slice_shape
    x = torch.rand(args.batch, 1, height, width)
    k = torch.full((args.batch,), 499)
    noise = torch.randn(1, 1, height, width)
    with torch.no_grad():
        condition = model.condition(x)
    one = x[:1]
    print(f"preset {cfg.name}: UNet {count(model.unet):.2f} M params, condition encoder "
          f"{count(model.encoder) if model.encoder else 0:.2f} M, stage-1 decoder {count(stage1.decoder):.2f} M")
    print(f"GFLOP per slice: UNet {flops(lambda: model.unet(one, k[:1], condition[:1])):.1f}, "
          f"encoder {flops(lambda: model.condition(one)) if model.encoder else 0:.2f}")
    for bf16 in (False, True):
        unet_ms = ms_per_slice(lambda: model.predict_x0(x, k, noise, condition), args.batch, args.repeats, bf16)
        enc_ms = ms_per_slice(lambda: model.condition(x), args.batch, args.repeats, bf16) if model.encoder else 0.0
        print(f"{'bf16' if bf16 else 'fp32'}: predict_x0 {unet_ms:.0f} ms/slice, encoder {enc_ms:.1f} ms/slice "
              f"({args.threads} threads, batch {args.batch})")


if __name__ == "__main__":
    main()

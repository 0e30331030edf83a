"""The machine a fit ran on, as the model card states it: CPU model and its vector-instruction flags (as ``lscpu``
lists them), logical CPUs, torch threads, GPUs, torch and CUDA versions."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

# The flags that decide CPU training speed (fp32 SIMD width, bf16 support, AMX tiles), in lscpu's spelling.
SPEED_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        lines = open("/proc/cpuinfo", encoding="utf-8").read().splitlines()
    except OSError:
        return platform.processor() or platform.machine(), set()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    flags = {flag for line in lines if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return model, flags


def hardware_summary() -> dict[str, Any]:
    """``{"cpu", "cpu_flags", "logical_cpus", "torch_threads", "gpus", "torch", "cuda"}`` for this process."""
    model, flags = _cpuinfo()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() \
        else []
    return {"cpu": model, "cpu_flags": [flag for flag in SPEED_FLAGS if flag in flags],
            "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpus": gpus,
            "torch": torch.__version__, "cuda": torch.version.cuda}


def describe(summary: dict[str, Any]) -> str:
    """One line: ``GPU name(s)`` or ``CPU model (flags), N logical CPUs, T threads``, plus torch version."""
    cpu = f"{summary['cpu']} ({', '.join(summary['cpu_flags']) or 'no AVX'}), {summary['logical_cpus']} logical " \
          f"CPUs, {summary['torch_threads']} torch threads"
    device = f"{', '.join(summary['gpus'])} (CUDA {summary['cuda']}); host {cpu}" if summary["gpus"] else cpu
    return f"{device}; torch {summary['torch']}"

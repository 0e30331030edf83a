"""Choosing the compute device and precision (docs/PERFORMANCE.md §2: detect bf16, do not assume it).

bf16 autocast is used on CUDA devices that support it, and on CPUs where a short matmul probe shows bf16 clearly
faster than fp32 (AMX or AVX-512-BF16 hardware). Elsewhere fp32 is used, because bf16 emulation is slower.
"""

from __future__ import annotations

import functools
import time
from contextlib import AbstractContextManager, nullcontext

import torch

from ..config import Precision

# bf16 must beat fp32 by this factor in the probe to be chosen automatically.
BF16_MIN_SPEEDUP = 1.5
PROBE_MATRIX_SIZE = 512
PROBE_REPEATS = 5


def cpu_description() -> str:
    """CPU model name and its bf16-relevant flags (AVX-512, AVX-512-BF16, AMX) from /proc/cpuinfo, if readable."""
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        import platform

        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    present = {flag for line in lines if line.startswith("flags") for flag in line.split()}
    flags = [flag for flag in ("avx512f", "avx512_bf16", "amx_bf16") if flag in present]
    return f"{model} ({', '.join(flags) or 'no AVX-512/AMX'})"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``gpu``/``cuda``/``cuda:N``; ``cpu``."""
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name in ("gpu", "cuda") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            from ..errors import InputError

            raise InputError("a GPU was requested but CUDA is not available; use --device cpu or auto")
        return torch.device("cuda" if name == "gpu" else name)
    return torch.device("cpu")


def _median_matmul_seconds(dtype: torch.dtype) -> float:
    a = torch.randn(PROBE_MATRIX_SIZE, PROBE_MATRIX_SIZE).to(dtype)
    b = torch.randn(PROBE_MATRIX_SIZE, PROBE_MATRIX_SIZE).to(dtype)
    a @ b  # warm-up: kernel selection
    times = []
    for _ in range(PROBE_REPEATS):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time for a square matmul on this CPU (measured once per process, ~10 ms)."""
    return _median_matmul_seconds(torch.float32) / max(_median_matmul_seconds(torch.bfloat16), 1e-9)


def resolve_precision(preference: Precision, device: torch.device) -> torch.dtype:
    """Return the autocast dtype to use: ``torch.bfloat16`` or ``torch.float32`` (no autocast)."""
    if preference == "fp32":
        return torch.float32
    if preference == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_bf16_speedup() >= BF16_MIN_SPEEDUP else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """An autocast context for ``dtype`` (a no-op for fp32)."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)

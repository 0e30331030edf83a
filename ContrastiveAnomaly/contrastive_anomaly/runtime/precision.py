"""Choosing the compute device and precision, and making inference repeatable.

``auto`` precision is decided from the hardware and the config only, never from a timing (a timing depends on the
machine's load, so the same scan could be scored in bf16 on one run and fp32 on the next):

* CUDA: bf16 when ``torch.cuda.is_bf16_supported()`` (Ampere and newer), else fp32;
* CPU: bf16 when the CPU has native bf16 matrix instructions (the ``amx_bf16`` or ``avx512_bf16`` flag in
  ``/proc/cpuinfo``), else fp32. Without them PyTorch emulates bf16, which is slower than fp32 (about 15x on the
  AVX2-only AMD EPYC the benchmarks ran on; docs/PERFORMANCE.md).

:func:`deterministic_inference` switches off the nondeterministic kernel choices (cuDNN autotuning, atomics-based
CUDA kernels), so the same scan, model, seed and precision give a bit-identical map on the same machine.
"""

from __future__ import annotations

import functools
import os
import platform
from contextlib import AbstractContextManager, nullcontext

import torch

from ..config import Precision

# /proc/cpuinfo flags of native bf16 matrix hardware: Intel AMX tiles and the AVX-512 BF16 dot products.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# Flags shown by cpu_description (bf16-relevant vector and matrix extensions).
DESCRIBED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
# cuBLAS needs a fixed workspace to give the same GEMM results every run (CUDA docs, "Results reproducibility").
CUBLAS_WORKSPACE = ":4096:8"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where that file does not exist, e.g. macOS, Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return frozenset()
    return frozenset(flag for line in lines if line.startswith("flags") for flag in line.split(":", 1)[1].split())


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU runs bf16 matrix products in hardware (see :data:`CPU_BF16_FLAGS`)."""
    present = cpu_flags() if flags is None else flags
    return any(flag in present for flag in CPU_BF16_FLAGS)


def cpu_description() -> str:
    """CPU model name and its bf16-relevant flags from /proc/cpuinfo, if readable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    flags = [flag for flag in DESCRIBED_FLAGS if flag in cpu_flags()]
    return f"{model} ({', '.join(flags) or 'no AVX2/AVX-512/AMX'})"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``gpu``/``cuda``/``cuda:N``; ``cpu``."""
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name in ("gpu", "cuda") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            from ..errors import UsageError

            raise UsageError("a GPU was requested but CUDA is not available; use --device cpu or auto")
        return torch.device("cuda" if name == "gpu" else name)
    return torch.device("cpu")


def resolve_precision(preference: Precision, device: torch.device, *,
                      cpu_flag_set: frozenset[str] | None = None) -> torch.dtype:
    """The autocast dtype for ``preference`` on ``device``: ``torch.bfloat16`` or ``torch.float32`` (no autocast).

    ``auto`` follows the hardware rules in the module docstring; ``cpu_flag_set`` overrides /proc/cpuinfo (tests).
    """
    if preference == "fp32":
        return torch.float32
    if preference == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16(cpu_flag_set) else torch.float32


def precision_name(dtype: torch.dtype) -> str:
    """``"bf16"`` or ``"fp32"``: the names used on the command line, in summary.json and in the result event."""
    return "bf16" if dtype == torch.bfloat16 else "fp32"


def deterministic_inference(device: torch.device) -> None:
    """Ask PyTorch for repeatable kernels (call before the first CUDA operation of the process).

    On CPU the matrix kernels are already deterministic for a fixed thread count and batch shape (the batch size
    comes from the config's memory budget, not from free memory). On CUDA this fixes the cuBLAS workspace, turns
    off cuDNN autotuning and selects deterministic kernels where PyTorch has them.
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """An autocast context for ``dtype`` (a no-op for fp32)."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)

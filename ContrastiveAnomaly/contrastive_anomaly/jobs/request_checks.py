"""Checks that need no model and no torch, run before anything heavy starts (``detect``, ``detect-batch``, ``demo``).

Everything here is cheap (file-system probes, a header read, the model folder's checksum) and imports neither torch
nor the scoring code, so a wrong path or an out-of-range argument is reported in well under a second instead of
after the model has loaded or, worse, after minutes of compute.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

from ..errors import InputError, OutputError, UsageError
from ..storage.file_checks import check_complete

# A plain anomaly map is |x - x_hat| on images normalised to [0, 1] (brain 1st-99th percentile), so a useful threshold
# lies strictly inside (0, 1): at 0 or below every brain voxel is flagged, at 1 or above none can be. A model whose
# config asks for healthy-voxel normalisation scores z-like values instead, bounded only below.
THRESHOLD_RANGE = (0.0, 1.0)
NORMALISED_THRESHOLD_RANGE = (0.0, math.inf)
# numpy's default_rng, which draws the inference noise, takes any non-negative integer; 2**63 keeps it an int64.
SEED_RANGE = (0, 2**63 - 1)
# Noise draws averaged per level (InferenceConfig.noise_seeds): each costs one more model stage, so more than this
# many would turn a minutes-long run into an hour for a variance that has long stopped shrinking.
NOISE_SEEDS_RANGE = (1, 8)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|gpu|cuda(:\d+)?)$")


def range_for_normalisation(residual_normalisation: str) -> tuple[float, float]:
    """The open interval a threshold must lie in for a map with this ``postprocess.residual_normalisation``."""
    return THRESHOLD_RANGE if residual_normalisation == "none" else NORMALISED_THRESHOLD_RANGE


def threshold_range(model_folder: Path | None) -> tuple[float, float]:
    """The open interval a threshold must lie in for this model's map (read from its ``config.json``, no torch).

    :data:`THRESHOLD_RANGE` for plain residual maps (0-1 intensity scale), :data:`NORMALISED_THRESHOLD_RANGE` for a
    model whose ``postprocess.residual_normalisation`` is not ``"none"``; an unreadable config gives the plain range
    (the model's own load reports what is wrong with it).
    """
    if model_folder is None:
        return THRESHOLD_RANGE
    try:
        config = json.loads((Path(model_folder) / "config.json").read_text(encoding="utf-8"))
        normalisation = config.get("postprocess", {}).get("residual_normalisation", "none")
    except (OSError, ValueError, AttributeError):
        return THRESHOLD_RANGE
    return range_for_normalisation(normalisation)


def check_threshold(threshold: float | None, *, valid: tuple[float, float] = THRESHOLD_RANGE) -> None:
    """Refuse a threshold outside the open interval ``valid`` (NaN included)."""
    if threshold is None:
        return
    low, high = valid
    if not low < float(threshold) < high:
        scale = ("a 0-1 intensity scale" if high == THRESHOLD_RANGE[1]
                 else "the healthy residual's standard-deviation scale")
        span = f"between {low:g} and {high:g} (exclusive" if math.isfinite(high) else f"above {low:g} (finite"
        raise UsageError(f"--threshold {threshold} is outside the anomaly map's range: give a value {span}; this "
                         f"model's map is |input - reconstruction| on {scale})")


def check_seed(seed: int | None) -> None:
    if seed is not None and not SEED_RANGE[0] <= int(seed) <= SEED_RANGE[1]:
        raise UsageError(f"--seed {seed} must be a whole number from 0 to {SEED_RANGE[1]}")


def check_noise_seeds(noise_seeds: int | None) -> None:
    if noise_seeds is not None and not NOISE_SEEDS_RANGE[0] <= int(noise_seeds) <= NOISE_SEEDS_RANGE[1]:
        raise UsageError(f"--noise-seeds {noise_seeds} must be a whole number from {NOISE_SEEDS_RANGE[0]} to "
                         f"{NOISE_SEEDS_RANGE[1]} (each draw costs one more model stage)")


def check_device(name: str) -> None:
    """The device's spelling (whether CUDA is really there is checked once torch is loaded)."""
    if not DEVICE_PATTERN.match(str(name).lower()):
        raise UsageError(f"--device {name!r} is not one of auto, cpu, gpu, cuda, cuda:N")


def check_input(path: Path, what: str = "input") -> None:
    """The scan (file or DICOM folder) exists, is readable and, for NIfTI/NRRD, is not cut off."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError(f"{what} folder {path} cannot be read")
        if not any(child.is_file() for child in path.rglob("*")):
            raise InputError(f"{what} folder {path} holds no files (a DICOM folder was expected)")
        return
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} {path} cannot be read (permission denied)")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty (0 bytes)")
    check_complete(path)


def check_output_folder(folder: Path) -> None:
    """``folder`` is, or can become, a writable folder; probed with a real temporary file, created nothing.

    The probe writes in the folder itself when it exists, else in its nearest existing ancestor (where the folder
    would be created). A real write is used rather than ``os.access`` because access() says yes to root on a
    read-only file system.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--out {folder} is a file, not a folder; choose a folder for the results")
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"output folder {folder} is not writable: {probe} is a file")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".write-test."):
            pass
    except OSError as exc:
        raise OutputError(f"output folder {folder} is not writable ({probe}: {exc.strerror or exc})") from None


def resolve_model_folder(name_or_path: str | None) -> Path:
    """The model folder for a path or registered name; :class:`CheckpointError` (one line) if there is none."""
    from ..storage.registry import resolve_model

    return resolve_model(name_or_path)


def check_detect_request(*, input: Path, out_dir: Path, model: str | None, brain_mask: Path | None = None,
                         threshold: float | None = None, seed: int | None = None, device: str = "auto",
                         series_uid: str | None = None, check_model: bool = True,
                         noise_seeds: int | None = None) -> Path | None:
    """All of ``detect``'s checks that need no model loaded, cheapest first. Returns the resolved model folder
    (``None`` with ``check_model=False``, when the caller already holds a loaded model)."""
    check_threshold(threshold, valid=NORMALISED_THRESHOLD_RANGE)  # the model-specific upper bound comes below
    check_seed(seed)
    check_noise_seeds(noise_seeds)
    check_device(device)
    if series_uid is not None and Path(input).is_file():
        raise UsageError("--series applies to a DICOM folder, but the input is a file")
    check_input(Path(input))
    if brain_mask is not None:
        check_input(Path(brain_mask), "brain mask")
    check_output_folder(Path(out_dir))
    if not check_model:
        return None
    folder = resolve_model_folder(model)
    check_threshold(threshold, valid=threshold_range(folder))
    return folder

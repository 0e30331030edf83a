"""Optional Ray Data adapter for bulk scoring over a cluster (``pip install "contrastive-anomaly[ray]"``).

User command: ``contrastive-anomaly detect-batch SCANS --out OUT --ray [--ray-workers N]``. The engine never
imports Ray elsewhere. Each Ray actor loads the model once and scores scans with the same
:func:`~contrastive_anomaly.jobs.batch.score_one` as ``detect-batch``, so outputs, resumability and the summary CSV are
identical. ``ray.init()`` (or an existing cluster address) is the caller's choice; locally it starts a one-node
Ray. ``batch_size`` is given explicitly, as Ray needs it when actors hold GPUs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from .batch import ScanItem, score_one, write_summary_csv


class _Scorer:
    """A Ray Data callable class: the model is loaded once per actor."""

    def __init__(self, out_root: str, model: str | None, device: str, fast: bool) -> None:
        from ..runtime.precision import resolve_device
        from ..scoring.detector import load_detector

        self.out_root, self.fast = Path(out_root), fast
        self.detector = load_detector(model, resolve_device(device))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = []
        for scan_id, path, mask, contrast in zip(batch["scan_id"], batch["path"], batch["brain_mask"],
                                                 batch["contrast"], strict=True):
            item = ScanItem(str(scan_id), Path(path), Path(mask) if mask else None, contrast or None)
            rows.append(score_one(item, self.out_root, self.detector, self.fast))
        columns = sorted({key for row in rows for key in row})
        return {key: [row.get(key, "") for row in rows] for key in columns}


def score_with_ray(items: list[ScanItem], out_root: str | Path, model: str | None = None, device: str = "cpu",
                   fast: bool = False, concurrency: int = 1, gpus_per_actor: float = 0.0) -> Path:
    """Score ``items`` with Ray Data actors; writes and returns ``out_root/summary.csv``."""
    import ray

    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    records = [{"scan_id": i.scan_id, "path": str(i.path), "brain_mask": str(i.brain_mask or ""),
                "contrast": i.contrast or ""} for i in items]
    dataset = ray.data.from_items(records).map_batches(
        _Scorer, fn_constructor_kwargs={"out_root": str(out_root), "model": model, "device": device, "fast": fast},
        batch_size=1, concurrency=concurrency, num_gpus=gpus_per_actor)
    rows = sorted(dataset.take_all(), key=lambda row: row["scan_id"])
    path = out_root / "summary.csv"
    write_summary_csv(rows, path)
    return path


def run_ray_batch(items: list[ScanItem], out_root: str | Path, model: str | None, device: str, fast: bool,
                  workers: int) -> Path:
    """``detect-batch --ray``: join the cluster named by ``RAY_ADDRESS`` if set, else start a local Ray with one CPU
    per worker; score ``items`` with ``workers`` actors (one GPU each when ``device`` asks for CUDA); return the
    summary CSV. A Ray this call started is shut down again."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'contrastive-anomaly[ray]'") from None
    if workers < 1:
        raise InputError(f"--ray-workers must be at least 1, got {workers}")
    started_here = not ray.is_initialized()
    if started_here:
        local_cpus = None if os.environ.get("RAY_ADDRESS") else workers
        ray.init(num_cpus=local_cpus, include_dashboard=False, log_to_driver=False)
    gpus = 1.0 if device.lower() in ("gpu", "cuda") or device.lower().startswith("cuda:") else 0.0
    try:
        return score_with_ray(items, out_root, model=model, device=device, fast=fast, concurrency=workers,
                              gpus_per_actor=gpus)
    finally:
        if started_here:
            ray.shutdown()

"""Synthetic-lesion benchmark of the method against its baselines (issue 4 items 4–5; docs/BENCHMARK.md)."""

from .baselines import METHODS, ZScoreBaseline
from .protocol import Fold
from .runner import BenchmarkRequest, run_benchmark

__all__ = ["METHODS", "BenchmarkRequest", "Fold", "ZScoreBaseline", "run_benchmark"]

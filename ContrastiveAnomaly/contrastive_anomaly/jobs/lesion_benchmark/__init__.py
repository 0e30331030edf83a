"""Synthetic-lesion benchmark of the method against its baselines (docs/BENCHMARK.md).

Modules: :mod:`.protocol` (folds, lesion cases, thresholds and metrics per fold), :mod:`.baselines` (the z-score
baseline and the learned methods as scorers), :mod:`.runner` (:func:`run_benchmark`), :mod:`.report` (CSV,
Markdown, PNGs), :mod:`.corpus` (folds from the registry corpus), :mod:`.cli` (the ``benchmark`` command).
Nothing is imported here, so ``contrastive-anomaly --help`` stays free of torch.
"""

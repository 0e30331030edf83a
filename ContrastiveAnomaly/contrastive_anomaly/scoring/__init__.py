"""From a model-grid volume to an anomaly map and mask: reconstruction, residual, post-processing, thresholds,
regions and metrics."""

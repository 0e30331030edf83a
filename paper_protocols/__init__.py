"""Readers and scoring rules for the paper's evaluation datasets; kept in the repository, not shipped in the engine.

See README.md in this folder for why these modules live outside the ``contrastive_anomaly`` package.
"""

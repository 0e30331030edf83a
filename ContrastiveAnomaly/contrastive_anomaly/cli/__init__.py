"""The ``contrastive-anomaly`` command: argument parser (``main``) and command bodies (``commands``)."""

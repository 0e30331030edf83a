"""What a user runs: detect, detect-batch, evaluate, demo, the synthetic-lesion benchmark, and their figures."""

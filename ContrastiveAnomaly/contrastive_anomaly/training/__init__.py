"""Training loops for both stages (single process or torchrun DDP)."""

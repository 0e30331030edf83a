"""Run-time services shared by every stage: progress reporting, device and precision, torchrun ranks."""

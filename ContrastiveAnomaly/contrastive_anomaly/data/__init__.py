"""Training and evaluation data: the registry corpus, slice datasets, augmentation, synthetic contrasts,
synthetic lesions with exact masks, subject splits and loaders for user-provided datasets (docs/DATA.md)."""

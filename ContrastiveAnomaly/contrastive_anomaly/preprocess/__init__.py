"""From a clinical brain MRI to the model grid and back: validation, brain extraction, N4, registration, QC,
normalisation, resampling (docs/PREPROCESSING.md)."""

from .pipeline import PreparedVolume, prepare_file, prepare_volume, to_native

__all__ = ["PreparedVolume", "prepare_file", "prepare_volume", "to_native"]

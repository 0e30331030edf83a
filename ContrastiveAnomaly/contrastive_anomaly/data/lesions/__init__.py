"""Synthetic lesions with exact masks (docs/DATA_PIPELINE.md §4).

Entry points: :func:`plant_lesion` and :func:`save_case`."""

from .common import LesionCase, save_case
from .plant import LESION_KINDS, plant_lesion

__all__ = ["LESION_KINDS", "LesionCase", "plant_lesion", "save_case"]

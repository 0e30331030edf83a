"""A synthetic brain-like volume with a bright blob, for the module's self-test and the pytest bridge tests.

Arrays are **KJI** float32 in [0, 1]; no network, no sample data.
"""

from __future__ import annotations

import numpy as np

PHANTOM_SHAPE_KJI = (24, 48, 40)
PHANTOM_SPACING_MM = (1.5, 1.2, 1.1)  # I, J, K


def phantom_brain_kji(shape_kji: tuple[int, int, int] = PHANTOM_SHAPE_KJI, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(image, blob mask): an ellipsoidal "brain" with a darker rim and a bright spherical blob off-centre."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*(np.linspace(-1.0, 1.0, n) for n in shape_kji), indexing="ij")
    radius = np.sqrt((k / 0.85) ** 2 + (j / 0.9) ** 2 + (i / 0.8) ** 2)
    brain = radius < 1.0
    image = np.where(brain, 0.45 + 0.1 * np.cos(6.0 * radius), 0.0)
    blob = ((k - 0.2) ** 2 + (j + 0.3) ** 2 + (i - 0.25) ** 2) < 0.22 ** 2
    image = np.where(blob, 0.95, image) + np.where(brain, 0.01 * rng.standard_normal(shape_kji), 0.0)
    return np.clip(image, 0.0, 1.0).astype(np.float32), blob & brain

"""A small synthetic brain phantom for tests and smoke runs (not anatomy; no real data).

An ellipsoidal brain on a KJI grid: a cortical GM shell, WM inside, two CSF ventricles beside the midline
(the I axis is left-right) and a thin CSF layer at the surface. Returns a T1-like image in [0, 1], the brain mask
and the (CSF, GM, WM) probability maps, all KJI.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

PHANTOM_T1_MEANS = {"CSF": 0.2, "GM": 0.55, "WM": 0.85}


def brain_phantom(shape: tuple[int, int, int] = (50, 96, 96), seed: int = 0, noise: float = 0.02
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1-like image float32 in [0, 1], brain mask uint8, tissue [3, K, J, I] float32) of a phantom brain."""
    k, j, i = np.indices(shape, dtype=np.float32)
    ck, cj, ci = [(n - 1) / 2.0 for n in shape]
    radii = np.array([0.42 * shape[0], 0.42 * shape[1], 0.36 * shape[2]], dtype=np.float32)
    r = np.sqrt(((k - ck) / radii[0]) ** 2 + ((j - cj) / radii[1]) ** 2 + ((i - ci) / radii[2]) ** 2)
    brain = r < 1.0
    csf = ((r > 0.95) & brain).astype(np.float32)
    gm = ((r > 0.78) & (r <= 0.95)).astype(np.float32)
    for side in (-1, 1):
        rv = np.sqrt(((k - ck) / (0.14 * shape[0])) ** 2 + ((j - cj) / (0.22 * shape[1])) ** 2
                     + ((i - ci - side * 0.06 * shape[2]) / (0.035 * shape[2])) ** 2)
        csf = np.maximum(csf, (rv < 1.0).astype(np.float32))
    gm = gm * (1.0 - csf)
    wm = brain * (1.0 - csf - gm)
    tissue = np.stack([ndimage.gaussian_filter(t, 0.7) * brain for t in (csf, gm, wm)]).astype(np.float32)
    tissue /= np.maximum(tissue.sum(0, keepdims=True), 1e-6)
    tissue *= brain
    image = sum(tissue[c] * PHANTOM_T1_MEANS[name] for c, name in enumerate(("CSF", "GM", "WM")))
    image = image + noise * np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * brain
    return np.clip(image, 0.0, 1.0).astype(np.float32), brain.astype(np.uint8), tissue

"""Reader for brainbrowser's "MINC raw + header" volumes (npm ``brainbrowser``, ``examples/models/*.mnc.*.gz``).

brainbrowser ships MINC volumes split into a gzipped JSON header and gzipped raw voxel bytes. The header's
``order`` lists the three spatial axes slowest first (``["xspace", "zspace", "yspace"]`` for the structural
volumes); each axis has ``space_length`` (voxels), ``start`` and ``step`` (mm) and ``direction_cosines``. A MINC
world point is ``sum over axes (start + index * step) * cosines`` in RAS mm. The raw bytes are unsigned 8-bit
voxels in C order of ``order``. No library reads this split format (nibabel and ITK read MINC1/MINC2 files only),
hence this short reader.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

AXES = ("xspace", "yspace", "zspace")
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def read_minc_raw(header_path: Path, raw_path: Path) -> sitk.Image:
    """The volume as a float32 SimpleITK image with LPS geometry (origin, 1 mm-ish spacing, direction).

    Raises ``ValueError`` (one line) when the header is not a 3-axis MINC header or the byte count does not match.
    """
    header = json.loads(gzip.decompress(Path(header_path).read_bytes()).decode("utf-8"))
    order = header.get("order")
    if not isinstance(order, list) or sorted(order) != sorted(AXES):
        raise ValueError(f"{Path(header_path).name}: 'order' must list {AXES} once each, got {order!r}")
    shape = [int(header[axis]["space_length"]) for axis in order]
    voxels = np.frombuffer(gzip.decompress(Path(raw_path).read_bytes()), dtype=np.uint8)
    if voxels.size != int(np.prod(shape)):
        raise ValueError(f"{Path(raw_path).name}: {voxels.size} bytes, but the header describes {shape} voxels")
    image = sitk.GetImageFromArray(voxels.reshape(shape).astype(np.float32))
    origin_ras = np.zeros(3)
    direction_ras = np.zeros((3, 3))
    spacing = []
    for column, axis in enumerate(reversed(order)):  # ITK index order is fastest first
        info = header[axis]
        cosines = np.asarray(info.get("direction_cosines", np.eye(3)[AXES.index(axis)]), dtype=np.float64)
        step = float(info["step"])
        origin_ras += float(info["start"]) * cosines
        direction_ras[:, column] = np.sign(step) * cosines
        spacing.append(abs(step))
    image.SetOrigin(tuple(float(v) for v in RAS_TO_LPS @ origin_ras))
    image.SetSpacing(spacing)
    image.SetDirection(tuple(float(v) for v in (RAS_TO_LPS @ direction_ras).ravel()))
    return image

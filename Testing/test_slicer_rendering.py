"""Real rendering: the result of a real ``detect`` run (the shipped model) drawn by Slicer's own slice views.

Runs ``tools/render_slicer_views.py`` in the separate trame-slicer venv named by ``$CONTRASTIVE_ANOMALY_RENDER_PYTHON``
(``.ci/run`` creates it; skipped when unset) and checks the pixels: the anomaly map is visible in the left view, and
the "Anomaly" outline is drawn where the mask is (outline pixels map, through the view's XY-to-RAS matrix, to within
two voxels of a mask voxel on that slice).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.storage.segment_appearance import SEGMENT_COLOR_RGB_255

REPO = Path(__file__).resolve().parent.parent
RENDER_PYTHON = os.environ.get("CONTRASTIVE_ANOMALY_RENDER_PYTHON")
SEGMENT_RGB = np.array(SEGMENT_COLOR_RGB_255)
COLOUR_TOLERANCE = 40
MAX_DISTANCE_VOXELS = 2.0
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not RENDER_PYTHON, reason="set CONTRASTIVE_ANOMALY_RENDER_PYTHON to a trame-slicer "
                                 "venv's python (see .ci/run)")]


@pytest.fixture(scope="module")
def detected(tmp_path_factory) -> tuple[Path, Path]:
    """The shipped default model on the engine's head phantom with a bright sphere planted in the brain."""
    from contrastive_anomaly.cli.main import main
    from contrastive_anomaly.data.phantoms import head_phantom

    root = tmp_path_factory.mktemp("render")
    phantom = head_phantom(seed=3)
    array = sitk.GetArrayFromImage(phantom.image).astype(np.float32)
    brain = sitk.GetArrayFromImage(phantom.brain_mask) > 0
    centre = np.round(np.argwhere(brain).mean(axis=0)).astype(int) + np.array([2, 8, 8])
    k, j, i = np.indices(array.shape)
    sphere = ((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2 <= 16) & brain
    array[sphere] = array[brain].max() * 1.3
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(phantom.image)
    sitk.WriteImage(image, str(root / "scan.nrrd"))
    assert main(["detect", str(root / "scan.nrrd"), "--out", str(root / "out"), "--device", "cpu", "--fast",
                 "--progress", "none", "--contrast", "T1"]) == 0
    return root / "scan.nrrd", root / "out"


@pytest.fixture(scope="module")
def rendered(detected, tmp_path_factory):
    scan, out = detected
    folder = tmp_path_factory.mktemp("views")
    env = {**os.environ, "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow", "PYTHONPATH": ""}
    done = subprocess.run([RENDER_PYTHON, str(REPO / "tools" / "render_slicer_views.py"), str(scan), str(out),
                           "--out", str(folder / "views.png"), "--raw", str(folder / "raw.npz")],
                          capture_output=True, text=True, encoding="utf-8", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert (folder / "views.png").stat().st_size > 10_000
    return out, facts, np.load(folder / "raw.npz")


# The scan and the reconstruction are drawn in grey (R = G = B), so any chroma above this marks an overlay pixel,
# including the heat map's palest colours (its peak is near white-yellow, e.g. RGB 255, 255, 213).
MIN_OVERLAY_CHROMA = 12


def colourful(rgb: np.ndarray) -> np.ndarray:
    return (rgb.max(axis=2) - rgb.min(axis=2)) > MIN_OVERLAY_CHROMA


def heat(rgb: np.ndarray) -> np.ndarray:
    """Coloured pixels that are not the segment's outline colour (the outline is drawn in both views)."""
    return colourful(rgb) & (np.abs(rgb - SEGMENT_RGB).max(axis=2) >= COLOUR_TOLERANCE)


def test_map_is_visible(rendered):
    """The left view has heat-map pixels (coloured, not the outline's colour) that the reconstruction view lacks."""
    _, facts, raw = rendered
    left, right = raw["left"].astype(int), raw["right"].astype(int)
    assert facts["regions"] >= 1
    assert heat(left).sum() > 50 + heat(right).sum(), "the anomaly map is not visible"


def test_segment_outline_lies_where_the_mask_is(rendered):
    """Slicer's reader may order the scan's voxels differently from the engine's (a left-handed NIfTI frame has its
    K reversed); the outline must still sit on the engine's mask, in RAS."""
    out, facts, raw = rendered
    left = raw["left"].astype(int)
    # the outline: pixels of the segment colour, each within two voxels of a mask voxel on the displayed slice
    outline = np.abs(left - SEGMENT_RGB).max(axis=2) < COLOUR_TOLERANCE
    assert facts["regions"] >= 1 and outline.sum() > 10, "no Anomaly outline drawn"
    mask_image = sitk.ReadImage(str(out / "anomaly_mask.nii.gz"))
    mask_lps = np.array([mask_image.TransformIndexToPhysicalPoint([int(v) for v in ijk[::-1]])
                         for ijk in np.argwhere(sitk.GetArrayFromImage(mask_image) > 0)])
    mask_ras = mask_lps * [-1, -1, 1]
    rows, cols = np.nonzero(outline)
    height = left.shape[0]
    xy = np.stack([cols, height - 1 - rows, np.zeros_like(rows), np.ones_like(rows)], axis=1).astype(float)
    points_ras = (raw["xy_to_ras"] @ xy.T).T[:, :3]
    spacing = max(mask_image.GetSpacing())
    nearest = np.array([np.min(np.linalg.norm(mask_ras - p, axis=1)) for p in points_ras[:: max(1, len(rows) // 200)]])
    assert np.median(nearest) <= MAX_DISTANCE_VOXELS * spacing, np.median(nearest)

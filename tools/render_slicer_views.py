"""Render a finished ``detect`` result in Slicer's own slice views, offscreen, with the module's own display code.

Slicer's slice views (MRML displayable managers, the real ones) come from PyPI ``trame-slicer`` (standalone), which
needs a venv of its own (it pins ``slicer-core==5.11.0.*``) and an OpenGL without a display: Debian's mesa EGL with
``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow``. The scene is then built exactly as the panel builds it:
``slicer_bridge.load_result_volume`` / ``style_anomaly_map`` / ``create_anomaly_segmentation`` /
``set_segment_mask`` and the panel's ``findings.ResultIndex`` for the mask at the engine's threshold.

The engine's mask is re-indexed into Slicer's voxel order before it goes into the segment
(``slicer_bridge.in_volume_voxel_order``): for a NIfTI whose axes form a left-handed frame Slicer's reader reverses K
while SimpleITK does not, and a mask written in the engine's order would land on other slices (it then lay outside the
displayed slice, so no outline was drawn). The "No LookupTable was set" lines that trame-slicer logs come from the
volume layers' colour pipelines, not from the segment, and do not change the picture.

Output: one PNG with two linked axial views, as the panel's *Compare* shows them: the scan with the anomaly map and
the "Anomaly" outline | the pseudo-healthy reconstruction. Slicer draws axial views in radiological convention
(patient's right on the image's left, anterior up); the sides are labelled. ``--slice-ras`` picks the axial level
(default: the centroid of the largest region).

    python -m venv /work/venv-trame && /work/venv-trame/bin/pip install "trame-slicer[standalone]==2.0.0" scipy \\
        SimpleITK
    contrastive-anomaly demo --out demo_output   # or any detect output folder, with its input scan
    VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow /work/venv-trame/bin/python tools/render_slicer_views.py \\
        demo_output/input_with_synthetic_lesion.nii.gz demo_output \\
        --out Resources/Screenshots/ContrastiveAnomaly_panel.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ContrastiveAnomaly"))

VIEW_SIZE_PX = (512, 512)
LABEL_COLOUR = (255, 255, 255)


def render(scan: Path, result_dir: Path, out: Path, slice_ras: float | None = None,
           raw: Path | None = None) -> dict:
    """Render and write ``out``; returns facts (threshold, slice, regions). ``raw``: also save the left view's
    pixels (RGB, rows top-down) and its XY-to-RAS matrix as ``.npz``, for the pixel test."""
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOImage import vtkPNGWriter  # noqa: F401  (loads the image I/O module)
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    from ContrastiveAnomalyLib import appearance, findings, slicer_bridge

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    scene = app.scene
    summary = json.loads((result_dir / "summary.json").read_text(encoding="utf-8"))
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "scan")
    storage.SetFileName(str(scan))
    if not storage.ReadData(volume):
        raise SystemExit(f"cannot read {scan}")
    scene.RemoveNode(storage)
    volume.CreateDefaultDisplayNodes()
    anomaly_map = slicer_bridge.load_result_volume(scene, result_dir / "anomaly_map.nii.gz", "map", volume)
    reconstruction = slicer_bridge.load_result_volume(scene, result_dir / "reconstruction.nii.gz", "recon", volume)
    threshold = float(summary["threshold"])
    slicer_bridge.style_anomaly_map(scene, anomaly_map, threshold)
    views = [app.view_manager.create_view(ViewLayoutDefinition.axial_view(name)) for name in ("Red", "Yellow")]
    segmentation = slicer_bridge.create_anomaly_segmentation(scene, volume, "anomalies")
    index = findings.ResultIndex.load(result_dir / "threshold_index.npz", result_dir / "model_index.nii.gz")
    readout = index.readout(threshold)
    # the engine's voxel order (SimpleITK) can differ from Slicer's for the same file: re-index, as the panel does
    mask = slicer_bridge.in_volume_voxel_order(index.native_mask(threshold), index.native_ijk_to_ras, volume)
    slicer_bridge.set_segment_mask(scene, app.segmentations_logic, segmentation, mask, volume)
    if slice_ras is None:
        slice_ras = readout.findings[0].centroid_ras_mm[2] if readout.findings else 0.0
    pictures, xy_to_ras = [], []
    for view, background, foreground in ((views[0], volume, anomaly_map), (views[1], reconstruction, None)):
        view.render_window().SetSize(*VIEW_SIZE_PX)
        view.set_background_volume_id(background.GetID())
        view.set_foreground_volume_id(foreground.GetID() if foreground else None)
        view.set_foreground_opacity(appearance.MAP_OVERLAY_OPACITY)
        view.set_orientation("Axial")
        view.fit_view_to_content()
        view.set_slice_value(float(slice_ras))
        view.render()
        matrix = view._view_node.GetXYToRAS()
        xy_to_ras.append(np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)]))
        grab = vtkWindowToImageFilter()
        grab.SetInput(view.render_window())
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        width, height, _ = image.GetDimensions()
        rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[::-1, :, :3]
        pictures.append(rgb)
    if raw is not None:
        Path(raw).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(raw, left=pictures[0], right=pictures[1], xy_to_ras=xy_to_ras[0])
    picture = compose(pictures, threshold, readout)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(picture, out)
    return {"threshold": threshold, "slice_ras_s": float(slice_ras), "regions": readout.summary.region_count,
            "volume_ml": readout.summary.total_volume_ml, "size": list(picture.shape[:2]),
            "view_width": VIEW_SIZE_PX[0]}


def compose(pictures: list[np.ndarray], threshold: float, readout) -> np.ndarray:
    """Side by side, with the sides labelled (R on the left, A on top) and a caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height, width = pictures[0].shape[:2]
    figure = plt.figure(figsize=(2 * width / 100, (height + 60) / 100), dpi=100)
    titles = ("scan + anomaly map (+ Anomaly segment)", "pseudo-healthy reconstruction")
    for column, (picture, title) in enumerate(zip(pictures, titles, strict=True)):
        axes = figure.add_axes((column / 2, 0, 0.5, height / (height + 60)))
        axes.imshow(picture)
        axes.set_axis_off()
        for text, x, y in (("R", 0.02, 0.5), ("L", 0.96, 0.5), ("A", 0.5, 0.96), ("P", 0.5, 0.02)):
            axes.text(x, y, text, color="white", fontsize=13, weight="bold", transform=axes.transAxes,
                      ha="center", va="center")
        figure.text(column / 2 + 0.25, 1 - 25 / (height + 60), title, ha="center", va="center", fontsize=12)
    figure.text(0.5, 1 - 48 / (height + 60), f"threshold {threshold:.3f}: {readout.summary.region_count} region(s), "
                f"{readout.summary.total_volume_ml:.2f} mL (rendered by Slicer's slice views, trame-slicer)",
                ha="center", va="center", fontsize=9)
    figure.canvas.draw()
    rgba = np.asarray(figure.canvas.buffer_rgba())[:, :, :3].copy()
    plt.close(figure)
    return rgba


def save_png(rgb: np.ndarray, path: Path) -> None:
    import matplotlib.image

    matplotlib.image.imsave(str(path), rgb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scan", type=Path, help="the scan detect was run on")
    parser.add_argument("result", type=Path, help="detect's output folder")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--slice-ras", type=float, help="axial level (RAS S, mm); default: the largest region")
    parser.add_argument("--raw", type=Path, help="also save the raw view pixels and geometry (.npz)")
    args = parser.parse_args(argv)
    facts = render(args.scan, args.result, args.out, args.slice_ras, args.raw)
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

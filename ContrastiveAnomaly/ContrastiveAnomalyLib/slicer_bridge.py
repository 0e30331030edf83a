"""MRML-only operations of the module: volumes in and out, the "Anomaly" segment, overlay display and exports.

Every function receives the scene and the logic objects it needs as arguments and never looks up ``slicer.app`` or
``slicer.modules``, so the same code runs in Slicer and on PyPI ``slicer-core`` in CI.

Geometry: MRML volumes carry an IJK-to-RAS matrix (mm); ``slicer.util.arrayFromVolume`` arrays are **KJI**. Files
written and read here are in LPS as usual; MRML's storage nodes convert.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import slicer
import slicer.util
import vtk

from . import appearance

GEOMETRY_TOLERANCE_MM = 1e-3


def ijk_to_ras(volume_node) -> np.ndarray:
    """The node's 4x4 IJK-to-RAS matrix as a numpy array (mm)."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(row, col) for col in range(4)] for row in range(4)])


def _vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for col in range(4):
            matrix.SetElement(row, col, float(array[row, col]))
    return matrix


def _write_with_storage_node(scene, node, storage_class: str, path: str | Path) -> Path:
    """Write ``node`` through a temporary storage node of ``storage_class`` (compressed); return the path."""
    storage = scene.AddNewNodeByClass(storage_class)
    try:
        storage.SetFileName(str(path))
        storage.SetUseCompression(1)
        if not storage.WriteData(node):
            raise OSError(f"cannot write {node.GetName()} to {path}")
    finally:
        scene.RemoveNode(storage)
    return Path(path)


def write_volume(scene, volume_node, path: str | Path) -> Path:
    """Write a volume (scalar or labelmap) to NIfTI/NRRD; return the path."""
    return _write_with_storage_node(scene, volume_node, "vtkMRMLVolumeArchetypeStorageNode", path)


def write_mask_in_input_geometry(scene, segmentations_logic, mask_node, input_volume, path: str | Path) -> Path:
    """Write a brain mask (segmentation or labelmap node) as a 0/1 labelmap resampled onto ``input_volume``'s grid."""
    temporary = []
    try:
        segmentation_node = mask_node
        if not mask_node.IsA("vtkMRMLSegmentationNode"):
            segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "__brain_mask__")
            temporary.append(segmentation_node)
            if not segmentations_logic.ImportLabelmapToSegmentationNode(mask_node, segmentation_node):
                raise ValueError(f"{mask_node.GetName()} cannot be used as a brain mask")
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__brain_mask_labelmap__")
        temporary.append(labelmap)
        segment_ids = vtk.vtkStringArray()
        segmentation_node.GetSegmentation().GetSegmentIDs(segment_ids)
        if segment_ids.GetNumberOfValues() == 0:
            raise ValueError(f"the brain mask {mask_node.GetName()} is empty")
        if not segmentations_logic.ExportSegmentsToLabelmapNode(segmentation_node, segment_ids, labelmap,
                                                                input_volume):
            raise ValueError(f"{mask_node.GetName()} cannot be resampled onto the input volume")
        binary = (slicer.util.arrayFromVolume(labelmap) > 0).astype(np.uint8)
        slicer.util.updateVolumeFromArray(labelmap, binary)
        return write_volume(scene, labelmap, path)
    finally:
        for node in temporary:
            scene.RemoveNode(node)


def load_result_volume(scene, path: str | Path, name: str, reference_volume) -> object:
    """Load an engine output (NIfTI) as a scalar volume on exactly ``reference_volume``'s grid.

    The engine writes outputs with the input's geometry; NIfTI stores it in float32, so the loaded matrix is checked
    against the reference within :data:`GEOMETRY_TOLERANCE_MM` and then set to the reference's exact matrix.
    Raises ``ValueError`` when the file does not match the reference's size or geometry.
    """
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    try:
        storage.SetFileName(str(path))
        if not storage.ReadData(node):
            raise ValueError(f"cannot read the result file {path}")
    except ValueError:
        scene.RemoveNode(node)
        raise
    finally:
        scene.RemoveNode(storage)
    expected, loaded = ijk_to_ras(reference_volume), ijk_to_ras(node)
    same_size = node.GetImageData().GetDimensions() == reference_volume.GetImageData().GetDimensions()
    if not same_size or not np.allclose(expected, loaded, atol=GEOMETRY_TOLERANCE_MM):
        scene.RemoveNode(node)
        raise ValueError(f"{Path(path).name} does not have the input volume's geometry; it cannot be overlaid")
    node.SetIJKToRASMatrix(_vtk_matrix(expected))
    node.CreateDefaultDisplayNodes()
    return node


def in_volume_voxel_order(array_kji: np.ndarray, array_ijk_to_ras: np.ndarray, reference_volume) -> np.ndarray:
    """``array_kji`` (on the grid ``array_ijk_to_ras``) re-indexed into ``reference_volume``'s voxel order.

    The engine reads files with SimpleITK, Slicer with its own readers; for the same file they can disagree on voxel
    order (Slicer reverses K of a NIfTI whose axes form a left-handed frame, and adjusts the matrix to match). Both
    describe the same voxels in RAS, so the two grids differ by axis flips and permutations only; anything else
    (another spacing, a rotation, a shift) raises ``ValueError``. Cheap: views, no resampling.
    """
    target = ijk_to_ras(reference_volume)
    source = np.asarray(array_ijk_to_ras, dtype=float)
    if np.allclose(source, target, atol=GEOMETRY_TOLERANCE_MM):
        return np.asarray(array_kji)
    mapping = np.linalg.solve(source, target)  # reference IJK -> array IJK (homogeneous)
    signs = np.round(mapping[:3, :3])
    source_ijk = np.transpose(np.asarray(array_kji), (2, 1, 0))
    target_size = np.array(reference_volume.GetImageData().GetDimensions())
    is_signed_permutation = (np.allclose(mapping[:3, :3], signs, atol=1e-4)
                             and all(np.count_nonzero(signs[:, t]) == 1 for t in range(3))
                             and all(np.count_nonzero(signs[s, :]) == 1 for s in range(3)))
    if not is_signed_permutation:
        raise ValueError("the result's grid is not the volume's grid (not a flip or permutation of its axes)")
    axes = [int(np.nonzero(signs[:, t])[0][0]) for t in range(3)]
    reordered = np.transpose(source_ijk, axes)
    for t, s in enumerate(axes):
        expected_offset = 0.0 if signs[s, t] > 0 else source_ijk.shape[s] - 1.0
        if abs(mapping[s, 3] - expected_offset) > 1e-3:
            raise ValueError("the result's grid is shifted against the volume's grid")
        if signs[s, t] < 0:
            reordered = np.flip(reordered, axis=t)
    if tuple(reordered.shape) != tuple(target_size):
        raise ValueError("the result's grid has another size than the volume's grid")
    return np.ascontiguousarray(np.transpose(reordered, (2, 1, 0)))


def create_anomaly_segmentation(scene, reference_volume, name: str):
    """A segmentation node holding one empty "Anomaly" segment with the fixed colour and terminology, whose
    reference geometry is ``reference_volume`` (needed for DICOM SEG export)."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    node.SetNodeReferenceID(node.GetReferenceImageGeometryReferenceRole(), reference_volume.GetID())
    node.CreateDefaultDisplayNodes()
    segmentation = node.GetSegmentation()
    segment_id = segmentation.AddEmptySegment(appearance.SEGMENT_ID, appearance.SEGMENT_NAME,
                                              list(appearance.SEGMENT_COLOR_RGB))
    segment = segmentation.GetSegment(segment_id)
    segment.SetNameAutoGenerated(False)
    segment.SetColorAutoGenerated(False)
    segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), appearance.terminology_tag())
    for tag, value in appearance.segment_tags().items():  # DICOM SEG: AUTOMATIC, algorithm name and version
        segment.SetTag(tag, value)
    set_segment_style(node, filled=False)
    return node


def set_segment_style(segmentation_node, filled: bool) -> None:
    """Slice views: the segment as an outline (default, the map stays visible) or filled."""
    display = segmentation_node.GetDisplayNode()
    if display is None:
        segmentation_node.CreateDefaultDisplayNodes()
        display = segmentation_node.GetDisplayNode()
    display.SetVisibility2DOutline(True)
    display.SetVisibility2DFill(bool(filled))
    display.SetSliceIntersectionThickness(appearance.OUTLINE_THICKNESS_PX)


def mask_digest(mask_kji: np.ndarray) -> str:
    """sha256 of a boolean mask's bytes and shape: tells whether a segment still holds what the panel wrote."""
    import hashlib

    mask = np.ascontiguousarray(np.asarray(mask_kji) > 0)
    return hashlib.sha256(str(mask.shape).encode() + np.packbits(mask).tobytes()).hexdigest()


def place_under_same_transform(node, reference_node) -> None:
    """Put ``node`` under ``reference_node``'s parent transform (results are computed in its local frame)."""
    node.SetAndObserveTransformNodeID(reference_node.GetTransformNodeID())


def set_segment_mask(scene, segmentations_logic, segmentation_node, mask_kji: np.ndarray, reference_volume,
                     segment_id: str = appearance.SEGMENT_ID) -> None:
    """Replace the segment's voxels with ``mask_kji`` (KJI, on ``reference_volume``'s grid).

    Only the mask's bounding box is imported (a small labelmap whose origin is shifted accordingly), so a few small
    regions in a 300 x 512 x 512 scan cost little. Works like ``slicer.util.updateSegmentBinaryLabelmapFromArray``
    but takes the segmentations logic as an argument.
    """
    mask = np.asarray(mask_kji) > 0
    box = _bounding_box(mask)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__anomaly_mask__")
    try:
        labelmap.CopyOrientation(reference_volume)
        start_kji = [b.start for b in box]
        matrix = ijk_to_ras(reference_volume)
        matrix[:3, 3] = matrix[:3, :3] @ np.array(start_kji[::-1], dtype=float) + matrix[:3, 3]
        labelmap.SetIJKToRASMatrix(_vtk_matrix(matrix))
        slicer.util.updateVolumeFromArray(labelmap, np.ascontiguousarray(mask[box], dtype=np.uint8))
        segment_ids = vtk.vtkStringArray()
        segment_ids.InsertNextValue(segment_id)
        if not segmentations_logic.ImportLabelmapToSegmentationNode(labelmap, segmentation_node, segment_ids):
            raise RuntimeError("updating the anomaly segment failed")
    finally:
        scene.RemoveNode(labelmap)


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """Slices of the smallest box holding every true voxel (one voxel at the origin for an empty mask)."""
    if not mask.any():
        return (slice(0, 1), slice(0, 1), slice(0, 1))
    box = []
    for axis in range(3):
        hit = np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def segment_mask(scene, segmentations_logic, segmentation_node, reference_volume,
                 segment_id: str = appearance.SEGMENT_ID) -> np.ndarray:
    """The segment as a boolean KJI array on ``reference_volume``'s grid."""
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__anomaly_export__")
    try:
        segment_ids = vtk.vtkStringArray()
        segment_ids.InsertNextValue(segment_id)
        if not segmentations_logic.ExportSegmentsToLabelmapNode(segmentation_node, segment_ids, labelmap,
                                                                reference_volume):
            raise RuntimeError("reading the anomaly segment failed")
        return slicer.util.arrayFromVolume(labelmap) > 0
    finally:
        scene.RemoveNode(labelmap)


def place_in_study(scene, node, reference_node) -> None:
    """Put ``node`` next to ``reference_node`` in subject hierarchy (same study), so DICOM export finds it."""
    hierarchy = scene.GetSubjectHierarchyNode()
    if hierarchy is None:
        return
    reference_item = hierarchy.GetItemByDataNode(reference_node)
    if not reference_item:
        return
    parent = hierarchy.GetItemParent(reference_item)
    item = hierarchy.GetItemByDataNode(node)
    if not item:
        item = hierarchy.CreateItem(parent, node)
    else:
        hierarchy.SetItemParent(item, parent)


def style_anomaly_map(scene, map_node, threshold: float, max_value: float | None = None) -> None:
    """Show the map with a heat colour table, values below ``threshold`` transparent (display-node threshold)."""
    display = map_node.GetDisplayNode()
    if display is None:
        map_node.CreateDefaultDisplayNodes()
        display = map_node.GetDisplayNode()
    for color_id in appearance.MAP_COLOR_NODE_IDS:
        if scene.GetNodeByID(color_id) is not None:
            display.SetAndObserveColorNodeID(color_id)
            break
    top = float(max_value) if max_value is not None else float(np.max(slicer.util.arrayFromVolume(map_node)))
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, max(top, threshold, 1e-6))
    set_overlay_threshold(map_node, threshold)


def set_overlay_threshold(map_node, threshold: float) -> None:
    """Instant feedback while the slider moves: hide map values below ``threshold``."""
    display = map_node.GetDisplayNode()
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(float(threshold))
    display.SetUpperThreshold(float(np.finfo(np.float32).max))


def save_segmentation(scene, segmentation_node, path: str | Path) -> Path:
    """Write a ``.seg.nrrd`` (segment names, colours and terminology are kept in its header)."""
    return _write_with_storage_node(scene, segmentation_node, "vtkMRMLSegmentationStorageNode", path)


def save_labelmap(scene, segmentations_logic, segmentation_node, reference_volume, path: str | Path) -> Path:
    """Write the segmentation as a labelmap (NIfTI or NRRD by extension) on ``reference_volume``'s grid."""
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__anomaly_labelmap__")
    try:
        segment_ids = vtk.vtkStringArray()
        segmentation_node.GetSegmentation().GetSegmentIDs(segment_ids)
        if not segmentations_logic.ExportSegmentsToLabelmapNode(segmentation_node, segment_ids, labelmap,
                                                                reference_volume):
            raise RuntimeError("exporting the segmentation to a labelmap failed")
        return write_volume(scene, labelmap, path)
    finally:
        scene.RemoveNode(labelmap)

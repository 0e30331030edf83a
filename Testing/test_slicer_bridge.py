"""The module's MRML data layer on a real MRML scene from PyPI ``slicer-core`` (no Slicer application).

Covers: map geometry equals the input's, the "Anomaly" segment's name/colour/terminology/reference
geometry, ``.seg.nrrd`` both ways with slicerio as an independent reader/writer, threshold monotonicity on the
segment, and the findings table on a phantom volume node.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer_core", reason="needs PyPI slicer-core (pip install slicer-core==5.12.4.0 vtk==9.6.0)")
sitk = pytest.importorskip("SimpleITK")
slicerio = pytest.importorskip("slicerio")
slicerio_segmentation = pytest.importorskip("slicerio.segmentation")

import slicer  # noqa: E402
import slicer.util  # noqa: E402
import vtk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ContrastiveAnomaly"))

from ContrastiveAnomalyLib import appearance, slicer_bridge  # noqa: E402

pytestmark = pytest.mark.slicer_core

# An oblique IJK-to-RAS (rotation about S by 30 degrees, anisotropic spacing, an origin), KJI shape (8, 10, 12).
ANGLE = np.deg2rad(30.0)
ROTATION = np.array([[np.cos(ANGLE), -np.sin(ANGLE), 0.0], [np.sin(ANGLE), np.cos(ANGLE), 0.0], [0.0, 0.0, 1.0]])
IJK_TO_RAS = np.eye(4)
IJK_TO_RAS[:3, :3] = ROTATION @ np.diag([1.2, 0.9, 2.5])
IJK_TO_RAS[:3, 3] = [12.5, -30.0, 7.25]
SHAPE_KJI = (8, 10, 12)


class Mrml:
    """A scene bootstrapped with the logic objects the module's bridge needs (docs/SLICER_DEV.md §5)."""

    def __init__(self):
        self.scene = slicer.vtkMRMLScene()
        self.app_logic = slicer.vtkSlicerApplicationLogic()
        self.app_logic.SetMRMLScene(self.scene)
        self.color_logic = slicer.vtkSlicerColorLogic()
        self.color_logic.SetMRMLApplicationLogic(self.app_logic)
        self.color_logic.SetMRMLScene(self.scene)
        self.volumes_logic = slicer.vtkSlicerVolumesLogic()
        self.volumes_logic.SetMRMLScene(self.scene)
        self.segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
        self.segmentations_logic.SetMRMLScene(self.scene)
        self.hierarchy_logic = slicer.vtkSlicerSubjectHierarchyModuleLogic()
        self.hierarchy_logic.SetMRMLScene(self.scene)

    def volume(self, array_kji: np.ndarray, name: str = "input", ijk_to_ras: np.ndarray = IJK_TO_RAS):
        node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        matrix = vtk.vtkMatrix4x4()
        for row in range(4):
            for col in range(4):
                matrix.SetElement(row, col, float(ijk_to_ras[row, col]))
        node.SetIJKToRASMatrix(matrix)
        slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array_kji))
        node.CreateDefaultDisplayNodes()
        return node


@pytest.fixture()
def mrml():
    return Mrml()


def fake_engine_output(input_path: Path, array_kji: np.ndarray, out_path: Path) -> Path:
    """What the engine does: an output image carrying the input file's geometry (SimpleITK, LPS)."""
    reference = sitk.ReadImage(str(input_path))
    image = sitk.GetImageFromArray(array_kji.astype(np.float32))
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(out_path))
    return out_path


def test_map_volume_has_exactly_the_input_geometry(mrml, tmp_path):
    rng = np.random.default_rng(0)
    input_node = mrml.volume(rng.random(SHAPE_KJI).astype(np.float32))
    input_path = slicer_bridge.write_volume(mrml.scene, input_node, tmp_path / "input.nrrd")
    scores = rng.random(SHAPE_KJI).astype(np.float32)
    map_path = fake_engine_output(input_path, scores, tmp_path / "anomaly_map.nii.gz")
    nodes_before = mrml.scene.GetNumberOfNodes()
    map_node = slicer_bridge.load_result_volume(mrml.scene, map_path, "map", input_node)
    np.testing.assert_array_equal(slicer_bridge.ijk_to_ras(map_node), slicer_bridge.ijk_to_ras(input_node))
    np.testing.assert_allclose(slicer_bridge.ijk_to_ras(input_node), IJK_TO_RAS, atol=1e-12)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(map_node), scores, atol=1e-7)
    assert mrml.scene.GetNumberOfNodes() > nodes_before  # the map and its display node, no leftovers checked below


def test_result_with_other_geometry_is_refused_without_leftovers(mrml, tmp_path):
    input_node = mrml.volume(np.zeros(SHAPE_KJI, np.float32))
    other = sitk.GetImageFromArray(np.zeros(SHAPE_KJI, np.float32))
    other.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(other, str(tmp_path / "other.nii.gz"))
    count = mrml.scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="geometry"):
        slicer_bridge.load_result_volume(mrml.scene, tmp_path / "other.nii.gz", "map", input_node)
    assert mrml.scene.GetNumberOfNodes() == count


def blob_mask() -> np.ndarray:
    mask = np.zeros(SHAPE_KJI, dtype=bool)
    mask[2:5, 3:7, 4:9] = True
    mask[6, 1, 1] = True
    return mask


def test_anomaly_segment_name_colour_terminology_and_reference(mrml):
    input_node = mrml.volume(np.zeros(SHAPE_KJI, np.float32))
    segmentation = slicer_bridge.create_anomaly_segmentation(mrml.scene, input_node, "anomalies")
    slicer_bridge.set_segment_mask(mrml.scene, mrml.segmentations_logic, segmentation, blob_mask(), input_node)
    segment = segmentation.GetSegmentation().GetSegment(appearance.SEGMENT_ID)
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 1
    assert segment.GetName() == "Anomaly"
    np.testing.assert_allclose(segment.GetColor(), appearance.SEGMENT_COLOR_RGB, atol=1e-6)
    assert not segment.GetNameAutoGenerated() and not segment.GetColorAutoGenerated()
    tag = vtk.reference("")
    assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
    assert "SCT^52988006^Lesion" in str(tag) and "SCT^12738006^Brain" in str(tag)
    role = segmentation.GetReferenceImageGeometryReferenceRole()
    assert segmentation.GetNodeReference(role) is input_node
    np.testing.assert_array_equal(
        slicer_bridge.segment_mask(mrml.scene, mrml.segmentations_logic, segmentation, input_node), blob_mask())


def test_seg_nrrd_written_by_mrml_reads_back_with_slicerio(mrml, tmp_path):
    input_node = mrml.volume(np.zeros(SHAPE_KJI, np.float32))
    segmentation = slicer_bridge.create_anomaly_segmentation(mrml.scene, input_node, "anomalies")
    slicer_bridge.set_segment_mask(mrml.scene, mrml.segmentations_logic, segmentation, blob_mask(), input_node)
    path = slicer_bridge.save_segmentation(mrml.scene, segmentation, tmp_path / "anomalies.seg.nrrd")
    seg = slicerio.read_segmentation(str(path))
    (segment,) = seg["segments"]
    assert segment["name"] == "Anomaly"
    np.testing.assert_allclose(segment["color"], appearance.SEGMENT_COLOR_RGB, atol=1e-5)
    assert segment["terminology"]["category"][1] == "49755003"
    assert segment["terminology"]["type"][1] == "52988006"
    labels_ijk = slicerio.extract_segments(seg, [(segment["name"], 1)])["voxels"]
    ijk_to_lps = np.asarray(seg["ijkToLPS"], dtype=np.float64)
    # slicerio voxels are IJK over the written extent; place them on the input grid via physical coordinates.
    ras_from_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    indices_ijk = np.argwhere(labels_ijk > 0)
    points_ras = (ras_from_lps @ ijk_to_lps @ np.column_stack([indices_ijk, np.ones(len(indices_ijk))]).T).T
    back_to_input_ijk = (np.linalg.inv(IJK_TO_RAS) @ points_ras.T).T[:, :3]
    rounded = np.rint(back_to_input_ijk).astype(int)
    np.testing.assert_allclose(back_to_input_ijk, rounded, atol=1e-4)
    rebuilt = np.zeros(SHAPE_KJI, dtype=bool)
    rebuilt[rounded[:, 2], rounded[:, 1], rounded[:, 0]] = True
    np.testing.assert_array_equal(rebuilt, blob_mask())


def test_seg_nrrd_written_by_slicerio_reads_into_mrml(mrml, tmp_path):
    input_node = mrml.volume(np.zeros(SHAPE_KJI, np.float32))
    ijk_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ IJK_TO_RAS
    seg = slicerio.create_segmentation(tuple(reversed(SHAPE_KJI)), ijk_to_lps)
    mask_ijk = np.transpose(blob_mask(), (2, 1, 0)).astype(np.uint8)
    terminology = slicerio_segmentation.terminology_entry_from_string(appearance.terminology_tag())
    slicerio.add_segment(seg, mask_ijk, {"id": "Anomaly", "name": "Anomaly",
                                         "color": list(appearance.SEGMENT_COLOR_RGB), "terminology": terminology})
    path = tmp_path / "from_slicerio.seg.nrrd"
    slicerio.write_segmentation(str(path), seg)
    node = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read")
    storage = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    segment = segmentation.GetSegment(segmentation.GetNthSegmentID(0))
    assert segment.GetName() == "Anomaly"
    np.testing.assert_allclose(segment.GetColor(), appearance.SEGMENT_COLOR_RGB, atol=1e-5)
    tag = vtk.reference("")
    assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
    assert "SCT^52988006^Lesion" in str(tag)
    mask = slicer_bridge.segment_mask(mrml.scene, mrml.segmentations_logic, node, input_node,
                                      segmentation.GetNthSegmentID(0))
    np.testing.assert_array_equal(mask, blob_mask())


def test_raising_the_threshold_never_grows_the_segment(mrml):
    rng = np.random.default_rng(1)
    scores = rng.random(SHAPE_KJI).astype(np.float32)
    input_node = mrml.volume(np.zeros(SHAPE_KJI, np.float32))
    map_node = mrml.volume(scores, "map")
    segmentation = slicer_bridge.create_anomaly_segmentation(mrml.scene, input_node, "anomalies")
    slicer_bridge.style_anomaly_map(mrml.scene, map_node, 0.3)
    counts = []
    for threshold in np.linspace(0.0, 1.0, 11):
        slicer_bridge.set_overlay_threshold(map_node, threshold)
        assert map_node.GetDisplayNode().GetLowerThreshold() == pytest.approx(threshold)
        assert map_node.GetDisplayNode().GetApplyThreshold()
        mask = slicer.util.arrayFromVolume(map_node) > threshold
        slicer_bridge.set_segment_mask(mrml.scene, mrml.segmentations_logic, segmentation, mask, input_node)
        counts.append(int(slicer_bridge.segment_mask(mrml.scene, mrml.segmentations_logic, segmentation,
                                                     input_node).sum()))
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > 0 and counts[-1] == 0


def test_cropped_segment_update_clears_what_is_outside_the_new_box(mrml):
    """set_segment_mask imports only the mask's bounding box; what the previous mask had outside it must go."""
    input_node = mrml.volume(np.zeros(SHAPE_KJI, np.float32))
    segmentation = slicer_bridge.create_anomaly_segmentation(mrml.scene, input_node, "anomalies")
    first = np.zeros(SHAPE_KJI, bool)
    first[0:2, 0:2, 0:2] = True
    first[6:8, 7:9, 9:11] = True
    second = np.zeros(SHAPE_KJI, bool)
    second[5:7, 6:8, 8:10] = True
    for mask in (first, second, np.zeros(SHAPE_KJI, bool)):
        slicer_bridge.set_segment_mask(mrml.scene, mrml.segmentations_logic, segmentation, mask, input_node)
        read = slicer_bridge.segment_mask(mrml.scene, mrml.segmentations_logic, segmentation, input_node)
        np.testing.assert_array_equal(read, mask)


def test_segment_carries_dicom_algorithm_tags_and_outline_style(mrml):
    input_node = mrml.volume(np.zeros(SHAPE_KJI, np.float32))
    node = slicer_bridge.create_anomaly_segmentation(mrml.scene, input_node, "anomalies")
    segment = node.GetSegmentation().GetSegment(appearance.SEGMENT_ID)
    for tag, value in appearance.segment_tags().items():
        found = vtk.reference("")
        assert segment.GetTag(tag, found) and str(found) == value
    assert appearance.segment_tags()["DICOM.SegmentAlgorithmType"] == "AUTOMATIC"
    display = node.GetDisplayNode()
    assert display.GetVisibility2DOutline() and not display.GetVisibility2DFill()
    slicer_bridge.set_segment_style(node, filled=True)
    assert display.GetVisibility2DFill()


def test_results_go_into_the_input_study(mrml):
    input_node = mrml.volume(np.zeros(SHAPE_KJI, np.float32))
    hierarchy = mrml.scene.GetSubjectHierarchyNode()
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient")
    study = hierarchy.CreateStudyItem(patient, "study")
    hierarchy.CreateItem(study, input_node)
    segmentation = slicer_bridge.create_anomaly_segmentation(mrml.scene, input_node, "anomalies")
    slicer_bridge.place_in_study(mrml.scene, segmentation, input_node)
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(segmentation)) == study


def test_brain_mask_is_written_on_the_input_grid(mrml, tmp_path):
    input_node = mrml.volume(np.zeros(SHAPE_KJI, np.float32))
    mask_segmentation = slicer_bridge.create_anomaly_segmentation(mrml.scene, input_node, "brain")
    slicer_bridge.set_segment_mask(mrml.scene, mrml.segmentations_logic, mask_segmentation, blob_mask(), input_node)
    input_path = slicer_bridge.write_volume(mrml.scene, input_node, tmp_path / "input.nrrd")
    mask_path = slicer_bridge.write_mask_in_input_geometry(mrml.scene, mrml.segmentations_logic, mask_segmentation,
                                                           input_node, tmp_path / "mask.nrrd")
    written = sitk.ReadImage(str(mask_path))
    reference = sitk.ReadImage(str(input_path))
    assert written.GetSize() == reference.GetSize()
    np.testing.assert_allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(written.GetDirection(), reference.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written) > 0, blob_mask())
    labelmap_path = slicer_bridge.save_labelmap(mrml.scene, mrml.segmentations_logic, mask_segmentation, input_node,
                                                tmp_path / "labelmap.nii.gz")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(labelmap_path))) > 0, blob_mask())


def test_engine_mask_lands_on_the_same_voxels_when_slicer_reverses_a_left_handed_file(mrml, tmp_path):
    """A NIfTI with a left-handed axis frame: Slicer's reader reverses K (and fixes the matrix), SimpleITK does not.
    The engine's KJI mask, re-indexed with the engine's IJK-to-RAS, must mark the same physical voxels (the cause
    of the outline missing from the rendered views: the mask was written in the engine's order)."""
    array = np.zeros(SHAPE_KJI, np.float32)
    array[1, 2:4, 3:6] = 1.0  # off-centre in K, so a reversed K lands elsewhere
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 2.0))
    image.SetOrigin((-84.0, 102.5, -138.25))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))  # determinant -1
    path = tmp_path / "left_handed.nii.gz"
    sitk.WriteImage(image, str(path))
    storage = mrml.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    volume = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "scan")
    storage.SetFileName(str(path))
    assert storage.ReadData(volume)
    slicer_array = slicer.util.arrayFromVolume(volume)
    engine_ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.array([
        [1.5, 0.0, 0.0, -84.0], [0.0, -1.5, 0.0, 102.5], [0.0, 0.0, 2.0, -138.25], [0.0, 0.0, 0.0, 1.0]])
    mask = array > 0
    reordered = slicer_bridge.in_volume_voxel_order(mask, engine_ijk_to_ras, volume)
    assert reordered.shape == slicer_array.shape and reordered.sum() == mask.sum()
    assert np.array_equal(reordered, slicer_array > 0)  # same voxels as Slicer's own reading of the same file
    if not np.allclose(slicer_bridge.ijk_to_ras(volume), engine_ijk_to_ras):
        assert not np.array_equal(mask, slicer_array > 0)  # without re-indexing the mask would be elsewhere
    shifted = engine_ijk_to_ras.copy()
    shifted[2, 3] += 2.0
    with pytest.raises(ValueError, match="shifted"):
        slicer_bridge.in_volume_voxel_order(mask, shifted, volume)


def test_terminology_file_matches_the_segment_appearance():
    """The shipped segment-context file (what Slicer's terminology selector shows) names the same category, type and
    recommended colour as the segment the engine and the panel write."""
    import json

    from contrastive_anomaly.storage import segment_appearance as engine

    context = json.loads(engine.TERMINOLOGY_FILE.read_text(encoding="utf-8"))
    assert context["SegmentationCategoryTypeContextName"] == engine.TERMINOLOGY_CONTEXT
    (category,) = context["SegmentationCodes"]["Category"]
    (entry,) = category["Type"]
    assert (category["CodingSchemeDesignator"], category["CodeValue"], category["CodeMeaning"]) == \
        engine.CATEGORY_CODE
    assert (entry["CodingSchemeDesignator"], entry["CodeValue"], entry["CodeMeaning"]) == engine.TYPE_CODE
    assert tuple(entry["recommendedDisplayRGBValue"]) == engine.SEGMENT_COLOR_RGB_255

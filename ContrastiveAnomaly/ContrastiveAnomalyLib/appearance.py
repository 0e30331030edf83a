"""How results look in Slicer. The "Anomaly" segment (name, colour, terminology, DICOM algorithm tags) is defined once
in the engine, :mod:`contrastive_anomaly.storage.segment_appearance`; this module adds what only the panel needs:
node names, the map's colour table and opacity, and how the segment is drawn in slice views.
"""

from __future__ import annotations

from contrastive_anomaly.storage.segment_appearance import (
    SEGMENT_COLOR_RGB,
    SEGMENT_ID,
    SEGMENT_NAME,
    TERMINOLOGY_FILE,
    segment_tags,
    terminology_tag,
)

__all__ = ["SEGMENT_COLOR_RGB", "SEGMENT_ID", "SEGMENT_NAME", "TERMINOLOGY_FILE", "segment_tags", "terminology_tag",
           "ANOMALY_MAP_NAME", "RECONSTRUCTION_NAME", "SEGMENTATION_NAME", "MAP_COLOR_NODE_IDS",
           "MAP_OVERLAY_OPACITY", "OUTLINE_THICKNESS_PX", "ROLE_ATTRIBUTE", "INPUT_ATTRIBUTE", "RUN_ATTRIBUTE",
           "MASK_DIGEST_ATTRIBUTE"]

# Node names in the scene; the input volume's name is substituted for {input}.
ANOMALY_MAP_NAME = "{input} anomaly map"
RECONSTRUCTION_NAME = "{input} pseudo-healthy reconstruction"
SEGMENTATION_NAME = "{input} anomalies"

# Colour nodes for the anomaly-map overlay, first available wins: Inferno (perceptually uniform, readable with
# colour-vision deficiencies; a file-based table of the Slicer application), then PET-Heat (procedural, always there).
MAP_COLOR_NODE_IDS = ("vtkMRMLColorTableNodeFileInferno.txt", "vtkMRMLPETProceduralColorNodePET-Heat")
MAP_OVERLAY_OPACITY = 0.5
# The segment is drawn as an outline by default, so the map under it stays visible; "filled" is an option.
OUTLINE_THICKNESS_PX = 2

# Node attributes that tie results to the analysed volume and the run that made them (saved with the scene).
ROLE_ATTRIBUTE = "ContrastiveAnomaly.Role"            # "map", "reconstruction" or "segmentation"
INPUT_ATTRIBUTE = "ContrastiveAnomaly.InputVolumeID"  # node ID of the analysed volume
RUN_ATTRIBUTE = "ContrastiveAnomaly.Run"              # JSON: threshold, post-processing, seed, precision, model
MASK_DIGEST_ATTRIBUTE = "ContrastiveAnomaly.MaskDigest"  # sha256 of the mask the panel last wrote into the segment

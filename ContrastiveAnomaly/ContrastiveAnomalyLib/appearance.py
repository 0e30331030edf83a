"""How results look in Slicer: the "Anomaly" segment's name, colour and terminology, and node names.

The colour is Okabe-Ito vermillion, distinguishable under the common colour-vision deficiencies and distinct from the
greys of MRI. The terminology entry uses Slicer's serialised form
``context~category~type~typeModifier~anatomicContext~anatomicRegion~anatomicRegionModifier`` where each coded item is
``scheme^code^meaning`` (SNOMED CT codes: 49755003 morphologically altered structure, 52988006 lesion, 12738006
brain).
"""

from __future__ import annotations

SEGMENT_ID = "Anomaly"
SEGMENT_NAME = "Anomaly"
SEGMENT_COLOR_RGB_255 = (213, 94, 0)
SEGMENT_COLOR_RGB = tuple(channel / 255.0 for channel in SEGMENT_COLOR_RGB_255)

TERMINOLOGY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
CATEGORY_CODE = ("SCT", "49755003", "Morphologically Altered Structure")
TYPE_CODE = ("SCT", "52988006", "Lesion")
ANATOMIC_REGION_CODE = ("SCT", "12738006", "Brain")
EMPTY_CODE = ("", "", "")


def terminology_entry() -> str:
    """The anomaly segment's terminology tag value, in Slicer's ``~``/``^`` serialised form."""
    coded = ["^".join(code) for code in (CATEGORY_CODE, TYPE_CODE, EMPTY_CODE)]
    region = ["^".join(code) for code in (ANATOMIC_REGION_CODE, EMPTY_CODE)]
    return "~".join([TERMINOLOGY_CONTEXT, *coded, ANATOMIC_CONTEXT, *region])


# Node names in the scene; the input volume's name is substituted for {input}.
ANOMALY_MAP_NAME = "{input} anomaly map"
RECONSTRUCTION_NAME = "{input} pseudo-healthy reconstruction"
SEGMENTATION_NAME = "{input} anomalies"

# Colour nodes for the anomaly-map overlay, first available wins: Inferno (perceptually uniform, readable with
# colour-vision deficiencies; a file-based table of the Slicer application), then PET-Heat (procedural, always there).
MAP_COLOR_NODE_IDS = ("vtkMRMLColorTableNodeFileInferno.txt", "vtkMRMLPETProceduralColorNodePET-Heat")
MAP_OVERLAY_OPACITY = 0.5

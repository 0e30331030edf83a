"""How the "Anomaly" segment looks and what it means, written once for the engine's ``.seg.nrrd`` and the panel.

* Name and id ``Anomaly``; colour Okabe-Ito sky blue (86, 180, 233): told apart under the common colour-vision
  deficiencies, unlike the greys of MRI, and opposite in hue to the heat map it outlines (a red or orange outline
  would vanish into the map's own colours where the two overlap).
* Terminology: category "Morphologically Altered Structure" (SNOMED CT 49755003), type "Lesion" (SNOMED CT
  52988006), anatomic region "Brain" (SNOMED CT 12738006). The category/type pair comes from a terminology file that
  ships with the package (``resources/terminology/``, Slicer's segment-context JSON format), because Slicer's built-in
  "General Anatomy" list does not hold "Lesion" under that category; the panel loads the file into Slicer's
  terminology logic so the entry shows up in Slicer's terminology selector. The region uses Slicer's DICOM master
  anatomic list, which holds "Brain".
* DICOM SEG: the segment carries the tags Slicer's DICOM SEG exporter reads, algorithm type ``AUTOMATIC`` and the
  algorithm name with the engine version.

Slicer's serialised terminology entry is ``context~category~type~typeModifier~anatomicContext~region~regionModifier``
with each coded item written ``scheme^code^meaning``.
"""

from __future__ import annotations

from pathlib import Path

from .. import __version__

SEGMENT_ID = "Anomaly"
SEGMENT_NAME = "Anomaly"
SEGMENT_COLOR_RGB_255 = (86, 180, 233)
SEGMENT_COLOR_RGB = tuple(channel / 255.0 for channel in SEGMENT_COLOR_RGB_255)

TERMINOLOGY_FILE = Path(__file__).resolve().parents[1] / "resources" / "terminology" / \
    "ContrastiveAnomaly-SegmentationCategoryTypeModifier.term.json"
TERMINOLOGY_CONTEXT = "ContrastiveAnomaly - brain anomaly"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
CATEGORY_CODE = ("SCT", "49755003", "Morphologically Altered Structure")
TYPE_CODE = ("SCT", "52988006", "Lesion")
ANATOMIC_REGION_CODE = ("SCT", "12738006", "Brain")
EMPTY_CODE = ("", "", "")

ALGORITHM_TYPE = "AUTOMATIC"
ALGORITHM_NAME = f"ContrastiveAnomaly {__version__}"
ALGORITHM_TYPE_TAG = "DICOM.SegmentAlgorithmType"
ALGORITHM_NAME_TAG = "DICOM.SegmentAlgorithmName"


def terminology_tag() -> str:
    """The segment's terminology in Slicer's serialised ``~``/``^`` form (the ``TerminologyEntry`` tag value)."""
    coded = ["^".join(code) for code in (CATEGORY_CODE, TYPE_CODE, EMPTY_CODE)]
    region = ["^".join(code) for code in (ANATOMIC_REGION_CODE, EMPTY_CODE)]
    return "~".join([TERMINOLOGY_CONTEXT, *coded, ANATOMIC_CONTEXT, *region])


def slicerio_terminology() -> dict[str, object]:
    """The same terminology as a slicerio segment ``terminology`` dict (slicerio serialises it identically)."""
    return {"contextName": TERMINOLOGY_CONTEXT, "category": list(CATEGORY_CODE), "type": list(TYPE_CODE),
            "anatomicContextName": ANATOMIC_CONTEXT, "anatomicRegion": list(ANATOMIC_REGION_CODE)}


def segment_tags() -> dict[str, str]:
    """Extra segment tags (besides the terminology) that Slicer keeps and its DICOM SEG exporter reads."""
    return {ALGORITHM_TYPE_TAG: ALGORITHM_TYPE, ALGORITHM_NAME_TAG: ALGORITHM_NAME}


def slicerio_segment() -> dict[str, object]:
    """The segment fields for ``slicerio.add_segment`` (id, name, colour, terminology, tags)."""
    return {"id": SEGMENT_ID, "name": SEGMENT_NAME, "color": list(SEGMENT_COLOR_RGB),
            "terminology": slicerio_terminology(), "tags": segment_tags()}

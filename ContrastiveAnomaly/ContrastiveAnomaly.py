"""3D Slicer module "Contrastive Anomaly": unsupervised brain-MRI anomaly detection (Patrício et al. 2024).

The heavy work (torch, MONAI) runs in a child process, ``PythonSlicer -m contrastive_anomaly.cli.main detect``;
this file only holds what Slicer looks up by name: the module, its parameter node, and the Widget, Logic and Test
classes. Their bodies live in ``ContrastiveAnomalyLib`` (``widget.py``, ``logic.py``, ``self_test.py``).
Nothing here imports torch or MONAI, so Slicer can load the module before those are installed.

Minimum: Slicer 5.10 (Python 3.12). The engine needs Python 3.11 or newer; on older Slicers (5.6 and 5.8 run
Python 3.9) this file still imports, and the panel says which Slicer is needed instead of failing.
"""

import sys
from typing import Annotated, Union

import slicer
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

MINIMUM_PYTHON = (3, 11)
MINIMUM_SLICER = "5.10"
SUPPORTED = sys.version_info[:2] >= MINIMUM_PYTHON
UNSUPPORTED_MESSAGE = (
    f"Contrastive Anomaly needs 3D Slicer {MINIMUM_SLICER} or newer (Python {MINIMUM_PYTHON[0]}.{MINIMUM_PYTHON[1]}+); "
    f"this Slicer runs Python {sys.version_info[0]}.{sys.version_info[1]}. Install a newer Slicer from "
    "https://download.slicer.org and add the extension there.")
DOCS_URL = "https://github.com/ContrastiveAnomaly/SlicerContrastiveAnomaly/blob/main/docs/SLICER_MODULE.md"
DEVICES = ["auto", "cpu", "cuda"]
# Slicer binds a float to a ctkSliderWidget only when the float is bounded (else connectGui raises and the panel
# never sets up). Anomaly scores are differences of normalised intensities (brain 1st-99th percentile -> 0-1), far
# below this bound; the slider's visible range is set from the map's maximum by the panel.
THRESHOLD_BOUNDS = (0.0, 1000.0)


def _(text):
    """Slicer's translation function where it exists (``slicer.i18n``, 5.4+)."""
    try:
        from slicer.i18n import tr
    except ImportError:
        return text
    return tr(text)


class ContrastiveAnomaly(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Contrastive Anomaly")
        self.parent.categories = [_("Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["ContrastiveAnomaly developers"]
        self.parent.helpText = _(
            "Highlights regions of a brain MRI that look unlike healthy brains: a diffusion model reconstructs a "
            "pseudo-healthy version of the scan and the difference is the anomaly map. Research software, "
            "not a medical device.") + f' <a href="{DOCS_URL}">User guide</a>.'
        if not SUPPORTED:
            self.parent.helpText += " " + UNSUPPORTED_MESSAGE
        self.parent.acknowledgementText = _(
            "Method: Patrício et al., unsupervised brain-MRI anomaly detection with a contrastive encoder "
            "conditioning a diffusion model (arXiv 2406.00772). Built with 3D Slicer, MONAI and PyTorch.")


if SUPPORTED:
    from slicer.parameterNodeWrapper import Choice, Maximum, Minimum, parameterNodeWrapper

    from contrastive_anomaly.config import CONTRASTS as ENGINE_CONTRASTS
    from ContrastiveAnomalyLib.logic import DetectionLogic
    from ContrastiveAnomalyLib.self_test import SelfTestCases
    from ContrastiveAnomalyLib.widget import PanelWidget

    CONTRASTS = list(ENGINE_CONTRASTS)  # the engine's Contrast type, so panel and engine never disagree

    @parameterNodeWrapper
    class ContrastiveAnomalyParameterNode:
        """Everything the panel needs, saved with the scene.

        Node fields default to ``None``; a field that may hold either node type is a ``Union`` that includes
        ``None``, as Slicer's serializer requires. threshold / calibratedThreshold are in anomaly-map units
        (normalised-intensity differences, usually below 1 but never clipped to 1); threshold is bounded because
        the slider bound to it must be. analysedVolume is the volume the
        shown results belong to (it may differ from the volume now selected as input).
        """

        inputVolume: vtkMRMLScalarVolumeNode
        # typing.Union, not "A | B": the serializer matches typing.Union (a "|" union is another type)
        brainMask: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, None]  # noqa: UP007
        contrast: Annotated[str, Choice(CONTRASTS)] = "T1"
        modelName: str = ""
        device: Annotated[str, Choice(DEVICES)] = "auto"
        fastMode: bool = False
        threshold: Annotated[float, Minimum(THRESHOLD_BOUNDS[0]), Maximum(THRESHOLD_BOUNDS[1])] = 0.1
        calibratedThreshold: float = 0.1
        segmentFilled: bool = False
        analysedVolume: vtkMRMLScalarVolumeNode
        anomalyMap: vtkMRMLScalarVolumeNode
        reconstruction: vtkMRMLScalarVolumeNode
        segmentation: vtkMRMLSegmentationNode

    class ContrastiveAnomalyLogic(ScriptedLoadableModuleLogic, DetectionLogic):
        """See ``ContrastiveAnomalyLib.logic.DetectionLogic``; collaborators are injectable for tests."""

        def __init__(self, launcher=None, scene=None, segmentationsLogic=None, pythonExecutable=None, confirm=None):
            ScriptedLoadableModuleLogic.__init__(self)
            DetectionLogic.__init__(self, launcher, scene, segmentationsLogic, pythonExecutable, confirm)

        def getParameterNode(self):
            return ContrastiveAnomalyParameterNode(super().getParameterNode())

    class ContrastiveAnomalyWidget(PanelWidget):
        logicClass = ContrastiveAnomalyLogic

    class ContrastiveAnomalyTest(ScriptedLoadableModuleTest, SelfTestCases):
        """End to end in a real Slicer with the shipped default model (see ``self_test.py``); run it with
        ``slicer.selfTests['ContrastiveAnomaly']()`` or ctest."""

        def setUp(self):
            slicer.mrmlScene.Clear()

        def makeLogic(self):
            return ContrastiveAnomalyLogic()

        def runTest(self):
            self.runAllCases()

else:

    class ContrastiveAnomalyLogic(ScriptedLoadableModuleLogic):
        pass

    class ContrastiveAnomalyWidget(ScriptedLoadableModuleWidget):
        def setup(self):
            ScriptedLoadableModuleWidget.setup(self)
            import qt

            label = qt.QLabel(UNSUPPORTED_MESSAGE)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)

    class ContrastiveAnomalyTest(ScriptedLoadableModuleTest):
        def runTest(self):
            self.delayDisplay("Skipped: " + UNSUPPORTED_MESSAGE)

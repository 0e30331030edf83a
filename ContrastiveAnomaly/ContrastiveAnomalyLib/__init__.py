"""Slicer-side helpers of the ContrastiveAnomaly module.

Each module has one job and none imports torch or MONAI. ``findings``, ``process``, ``widget_state``,
``model_registry`` and ``appearance`` are plain Python (numpy/scipy at most); ``slicer_bridge`` needs MRML (the
Slicer application or PyPI ``slicer-core``) but never ``slicer.app``/``slicer.modules``; ``install`` receives the
Slicer functions it calls as arguments.
"""

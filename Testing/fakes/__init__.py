"""Tiny stand-ins for the parts of the Slicer application that PyPI slicer-core lacks (see slicer_app.py)."""

"""Brain extraction without learned weights: register the shipped head template to the scan, carry its mask back.

Steps: affine (similarity, then affine; Mattes MI, multi-resolution) of the MNI152NLin6Asym 2 mm head template to a
block-averaged copy of the scan; optionally a coarse B-spline step (``PreprocessConfig.deformable_brain_extraction``);
the template brain mask is pulled onto the scan grid by linear interpolation and thresholded at 0.5; then refined
by morphology (largest connected component, closing, hole filling). All geometry is SimpleITK LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from ..config import PreprocessConfig
from . import registration, templates


@dataclass
class BrainExtraction:
    """``mask``: uint8 0/1 on the scan grid; ``template_to_scan``: affine, MNI152NLin6Asym point -> scan point (LPS
    mm); ``metric``: Mattes MI of that alignment (negative, lower = better)."""

    mask: sitk.Image
    template_to_scan: sitk.AffineTransform
    metric: float


def refine_mask(mask: sitk.Image, closing_radius_mm: float) -> sitk.Image:
    """Largest 26-connected component, binary closing (radius in mm, per-axis voxels), holes filled; uint8 0/1."""
    components = sitk.ConnectedComponent(mask, True)
    largest = sitk.RelabelComponent(components, sortByObjectSize=True) == 1
    radius = [max(1, int(round(closing_radius_mm / s))) for s in mask.GetSpacing()]
    closed = sitk.BinaryMorphologicalClosing(largest, radius, sitk.sitkBall)
    return sitk.Cast(sitk.BinaryFillhole(closed, fullyConnected=False), sitk.sitkUInt8)


def extract_brain(image: sitk.Image, working: sitk.Image, cfg: PreprocessConfig) -> BrainExtraction:
    """Brain mask of ``image`` (any grid) using ``working`` (its block-averaged float32 copy) for registration.

    Raises :class:`RegistrationError` when the template cannot be aligned at all.
    """
    head, head_mask = templates.head_template()
    initial = registration.initial_alignment(head, working)
    affine = registration.register_affine(head, working, initial, cfg)
    metric = registration.mutual_information(head, working, affine, cfg)
    if cfg.deformable_brain_extraction:
        scan_to_template = registration.register_deformable_inverse(working, head, affine, cfg)
    else:
        scan_to_template = affine.GetInverse()
    probability = sitk.Resample(sitk.Cast(head_mask, sitk.sitkFloat32), image, scan_to_template, sitk.sitkLinear, 0.0,
                                sitk.sitkFloat32)
    mask = sitk.Cast(probability > 0.5, sitk.sitkUInt8)
    if sitk.GetArrayViewFromImage(mask).any():
        mask = refine_mask(mask, cfg.mask_closing_radius_mm)
    return BrainExtraction(mask=mask, template_to_scan=affine, metric=metric)

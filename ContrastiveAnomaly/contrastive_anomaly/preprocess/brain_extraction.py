"""Brain extraction without learned weights: register the shipped head template to the scan, carry its mask back.

Steps: similarity (coarse levels; Mattes MI) of the MNI152NLin6Asym 2 mm head template to a block-averaged copy of
the scan, then affine (fine levels) with the metric restricted to the template brain mask dilated by
``brain_focus_dilation_mm``; optionally a coarse B-spline step (``PreprocessConfig.deformable_brain_extraction``);
the template brain mask is pulled onto the scan grid by linear interpolation and thresholded at 0.5; after the
deformable step it is cleaned by morphology (largest connected component, closing, hole filling).
All geometry is SimpleITK LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from ..config import PreprocessConfig
from . import registration, templates


@dataclass
class BrainExtraction:
    """``mask``: uint8 0/1 on the scan grid; ``template_to_scan``: affine, MNI152NLin6Asym point -> scan point (LPS
    mm); ``metric``: whole-head Mattes MI after the similarity stage (negative, lower = better)."""

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
    affine = registration.register_affine(head, working, initial, cfg, similarity_only=True)
    # whole-head agreement after the similarity stage: the QC signal that separates heads from other objects
    metric = registration.mutual_information(head, working, affine, cfg)
    # affine pass restricted to the brain and its surroundings, so neck, face and field-of-view edges stop pulling
    radius = [max(1, int(round(cfg.brain_focus_dilation_mm / s))) for s in head_mask.GetSpacing()]
    focus = sitk.BinaryDilate(head_mask, radius, sitk.sitkBall)
    affine = registration.register_affine(head, working, affine, cfg, fixed_mask=focus, coarse_similarity=False)
    if cfg.deformable_brain_extraction:
        scan_to_template = registration.register_deformable_inverse(working, head, affine, cfg)
    else:
        scan_to_template = affine.GetInverse()
    probability = sitk.Resample(sitk.Cast(head_mask, sitk.sitkFloat32), image, scan_to_template, sitk.sitkLinear, 0.0,
                                sitk.sitkFloat32)
    mask = sitk.Cast(probability > 0.5, sitk.sitkUInt8)
    # an affine map keeps the template mask in one closed piece; a deformation may not, so clean that case up
    if cfg.deformable_brain_extraction and sitk.GetArrayViewFromImage(mask).any():
        mask = refine_mask(mask, cfg.mask_closing_radius_mm)
    return BrainExtraction(mask=mask, template_to_scan=affine, metric=metric)

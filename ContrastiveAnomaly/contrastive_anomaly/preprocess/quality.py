"""Registration quality checks: warn when alignment is doubtful, raise when it has plainly failed.

Signals: the final Mattes mutual information (negative; near 0 = the images share no structure), the brain-mask
volume (mL) and the Dice between the scan's brain mask carried into the template space and the template's own
brain mask. Thresholds live in :class:`PreprocessConfig` (``qc_*``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from ..config import PreprocessConfig
from ..errors import RegistrationError
from ..scoring.metrics import dice as mask_dice
from . import registration


def check_head_alignment(metric: float, cfg: PreprocessConfig) -> None:
    """Raise when the head template could not be aligned to the scan at all (noise, a knee, a phantom object)."""
    if metric > cfg.qc_head_metric_fail:
        raise RegistrationError(f"the head template could not be aligned to this image (mutual information "
                                f"{metric:.2f} > {cfg.qc_head_metric_fail:.2f}); it does not look like a head MRI")


def assess(model_t1: sitk.Image, model_mask: sitk.Image, moving: sitk.Image, scan_mask: sitk.Image,
           model_to_scan: sitk.AffineTransform, cfg: PreprocessConfig) -> dict[str, Any]:
    """QC numbers for a template -> scan alignment. ``scan_mask`` is uint8 on (a sub-grid of) the scan grid."""
    metric = registration.mutual_information(model_t1, moving, model_to_scan, cfg)
    warped = sitk.Resample(scan_mask, model_mask, model_to_scan, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    dice = mask_dice(sitk.GetArrayViewFromImage(warped), sitk.GetArrayViewFromImage(model_mask))
    volume_ml = float(sitk.GetArrayViewFromImage(scan_mask).sum() * np.prod(scan_mask.GetSpacing()) / 1000.0)
    scale = float(abs(np.linalg.det(np.array(model_to_scan.GetMatrix()).reshape(3, 3))))
    return {"registration_metric": metric, "template_dice": dice, "brain_volume_ml": volume_ml,
            "affine_volume_scale": scale, "flags": []}


def raise_or_warn(qc: dict[str, Any], cfg: PreprocessConfig) -> list[str]:
    """Raise :class:`RegistrationError` on plain failure; otherwise return warnings and fill ``qc['flags']``."""
    metric, dice, volume = qc["registration_metric"], qc["template_dice"], qc["brain_volume_ml"]
    if metric > cfg.qc_metric_fail or dice < cfg.qc_template_dice_fail:
        raise RegistrationError(f"registration to the model space failed (mutual information {metric:.2f}, brain "
                                f"overlap with the template {dice:.2f}); is this a brain MRI?")
    warnings = []
    if metric > cfg.qc_metric_warn:
        qc["flags"].append("weak_registration_metric")
        warnings.append(f"registration is doubtful: mutual information {metric:.2f} (> {cfg.qc_metric_warn:.2f})")
    if dice < cfg.qc_template_dice_warn:
        qc["flags"].append("low_template_overlap")
        warnings.append(f"registration is doubtful: brain overlap with the template is {dice:.2f} "
                        f"(< {cfg.qc_template_dice_warn:.2f})")
    if not cfg.qc_min_brain_ml <= volume <= cfg.qc_max_brain_ml:
        qc["flags"].append("implausible_brain_volume")
        warnings.append(f"brain mask volume {volume:.0f} mL is outside the plausible "
                        f"{cfg.qc_min_brain_ml:.0f}-{cfg.qc_max_brain_ml:.0f} mL; check the mask")
    return warnings

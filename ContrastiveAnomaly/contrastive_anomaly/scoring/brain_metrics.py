"""Detection metrics measured inside the brain, with the bounds that make them readable.

A map that is high everywhere in the brain and zero outside ranks lesions well against the background but not
against healthy tissue; so the ranking metrics here use brain voxels only, and every AUPRC is reported with the
lesion prevalence (the AUPRC of a random map). The floor is the Dice of flagging the whole brain; the ceiling is the
Dice of a perfect reconstruction (the clean pre-lesion image), whose residual is exactly the painted lesion
contrast. Arrays are KJI on one grid; maps in residual units; masks are anything ``> 0``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two masks; 1.0 when both are empty."""
    pred, true = np.asarray(prediction) > 0, np.asarray(truth) > 0
    total = int(pred.sum()) + int(true.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(pred & true)) / total


def in_brain_ranking(score_map: np.ndarray, label: np.ndarray, brain_mask: np.ndarray) -> dict[str, float]:
    """``{"auroc", "auprc", "prevalence"}`` of the map over brain voxels (label = positive class).

    ``nan`` for AUROC/AUPRC when the brain holds no lesion voxel or only lesion voxels.
    """
    brain = np.asarray(brain_mask) > 0
    truth = (np.asarray(label) > 0)[brain]
    values = np.asarray(score_map, dtype=np.float64)[brain]
    prevalence = float(truth.mean()) if truth.size else float("nan")
    if truth.size == 0 or truth.all() or not truth.any():
        return {"auroc": float("nan"), "auprc": float("nan"), "prevalence": prevalence}
    return {"auroc": float(roc_auc_score(truth, values)), "auprc": float(average_precision_score(truth, values)),
            "prevalence": prevalence}


def whole_brain_floor(label: np.ndarray, brain_mask: np.ndarray) -> float:
    """The Dice of flagging the whole brain: what any map reaches by flagging everything."""
    return dice(brain_mask, label)

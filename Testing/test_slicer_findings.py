"""Findings table and threshold behaviour of the Slicer module (pure numpy/scipy; no Slicer needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ContrastiveAnomaly"))

from ContrastiveAnomalyLib import findings, widget_state  # noqa: E402
from ContrastiveAnomalyLib.process import ProgressEvent  # noqa: E402

# IJK-to-RAS with flipped axes, anisotropic spacing and an origin: voxel volume 2 * 1.5 * 3 = 9 mm^3.
IJK_TO_RAS = np.array([[-2.0, 0.0, 0.0, 10.0],
                       [0.0, -1.5, 0.0, 20.0],
                       [0.0, 0.0, 3.0, -5.0],
                       [0.0, 0.0, 0.0, 1.0]])


def hand_phantom() -> np.ndarray:
    """KJI map with a 3x3x3 cube (0.3), a 2x2x2 cube (0.5, one voxel 0.9) and a lone voxel (0.8)."""
    scores = np.zeros((10, 12, 14), dtype=np.float32)
    scores[1:4, 2:5, 3:6] = 0.3       # 27 voxels, centre KJI (2, 3, 4)
    scores[6:8, 8:10, 10:12] = 0.5    # 8 voxels, centre KJI (6.5, 8.5, 10.5)
    scores[7, 9, 11] = 0.9
    scores[8, 1, 1] = 0.8             # 1 voxel
    return scores


def ras_of_kji(k: float, j: float, i: float) -> tuple[float, float, float]:
    point = IJK_TO_RAS @ np.array([i, j, k, 1.0])
    return float(point[0]), float(point[1]), float(point[2])


def test_findings_match_hand_made_phantom():
    scores = hand_phantom()
    mask = findings.anomaly_mask(scores, threshold=0.2, max_removed_component_voxels=7)
    rows = findings.find_findings(scores, mask, IJK_TO_RAS)
    assert [row.voxel_count for row in rows] == [27, 8]
    big, small = rows
    assert big.label == 1 and small.label == 2
    assert big.volume_ml == pytest.approx(27 * 9 / 1000)
    assert small.volume_ml == pytest.approx(8 * 9 / 1000)
    assert big.peak_score == pytest.approx(0.3) and big.mean_score == pytest.approx(0.3)
    assert small.peak_score == pytest.approx(0.9)
    assert small.mean_score == pytest.approx((7 * 0.5 + 0.9) / 8)
    assert big.centroid_ras_mm == pytest.approx(ras_of_kji(2, 3, 4))
    assert small.centroid_ras_mm == pytest.approx(ras_of_kji(6.5, 8.5, 10.5))
    summary = findings.summarize(rows)
    assert summary.region_count == 2
    assert summary.total_volume_ml == pytest.approx(35 * 9 / 1000)


def test_small_components_are_removed_only_when_asked():
    scores = hand_phantom()
    kept = findings.anomaly_mask(scores, threshold=0.2, max_removed_component_voxels=0)
    filtered = findings.anomaly_mask(scores, threshold=0.2, max_removed_component_voxels=7)
    assert kept.sum() == 36 and filtered.sum() == 35
    assert kept[8, 1, 1] and not filtered[8, 1, 1]


def test_threshold_is_strict_and_monotone():
    rng = np.random.default_rng(3)
    scores = rng.random((12, 14, 16)).astype(np.float32)
    assert not findings.anomaly_mask(scores, float(scores.max()), 0).any()
    counts = [int(findings.anomaly_mask(scores, t, 7).sum()) for t in np.linspace(0.0, 1.0, 21)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > counts[-1]


def test_connectivity_changes_region_count():
    scores = np.zeros((5, 5, 5), dtype=np.float32)
    scores[1, 1, 1] = scores[2, 2, 2] = 1.0  # touch only at a corner
    mask = scores > 0
    assert len(findings.find_findings(scores, mask, IJK_TO_RAS, connectivity=26)) == 1
    assert len(findings.find_findings(scores, mask, IJK_TO_RAS, connectivity=6)) == 2
    with pytest.raises(ValueError):
        findings.structure_for(10)


def test_agrees_with_engine_regions_when_available():
    regions = pytest.importorskip("contrastive_anomaly.scoring.regions")
    postprocess = pytest.importorskip("contrastive_anomaly.scoring.postprocess")
    config = pytest.importorskip("contrastive_anomaly.config")
    scores = hand_phantom()
    cfg = config.PostprocessConfig()
    engine_mask = postprocess.binarize(scores, 0.2, cfg)
    ours = findings.anomaly_mask(scores, 0.2, cfg.max_removed_component_voxels, cfg.connectivity)
    np.testing.assert_array_equal(engine_mask, ours)
    # The same geometry in SimpleITK terms: LPS = diag(-1, -1, 1) @ RAS.
    lps = np.diag([-1.0, -1.0, 1.0]) @ IJK_TO_RAS[:3]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    direction = (lps[:, :3] / spacing).ravel()
    theirs = regions.find_regions(engine_mask, scores, spacing, lps[:, 3], direction, cfg.connectivity)
    mine = findings.find_findings(scores, ours, IJK_TO_RAS, cfg.connectivity)
    assert [r.voxel_count for r in theirs] == [r.voxel_count for r in mine]
    for a, b in zip(theirs, mine, strict=True):
        assert a.volume_ml == pytest.approx(b.volume_ml)
        assert a.peak_score == pytest.approx(b.peak_score)
        assert a.centroid_ras_mm == pytest.approx(b.centroid_ras_mm)


def test_run_button_turns_into_cancel():
    assert widget_state.run_button_state(True, True, running=False).text == "Detect anomalies"
    assert widget_state.run_button_state(True, True, running=True).text == "Cancel"
    assert widget_state.run_button_state(True, True, running=True).enabled
    assert not widget_state.run_button_state(False, True, running=False).enabled
    assert not widget_state.run_button_state(True, False, running=False).enabled
    assert not widget_state.run_button_state(True, True, running=True, cancelling=True).enabled


def test_progress_and_eta_text():
    percent, text = widget_state.progress_view(ProgressEvent("reconstruct", 10, 40, 95.0))
    assert percent == 25
    assert "10/40" in text and "1 min 35 s" in text
    assert widget_state.progress_view(None) == (0, "Starting…")
    assert widget_state.format_duration(3725) == "1 h 2 min"
    assert widget_state.format_duration(None) == ""


def test_cpu_notice_only_on_first_cpu_run():
    assert widget_state.cpu_time_notice("cpu", None, first_run=True, fast_mode=False) is not None
    assert widget_state.cpu_time_notice("auto", False, first_run=True, fast_mode=True) is not None
    assert widget_state.cpu_time_notice("auto", True, first_run=True, fast_mode=False) is None
    assert widget_state.cpu_time_notice("cpu", None, first_run=False, fast_mode=False) is None


def test_summary_and_rows():
    text = widget_state.summary_text(findings.FindingsSummary(1.234, 1), 0.15)
    assert "1.23 mL" in text and "1 region " in text
    row = widget_state.finding_row(2, 0.5, 0.91, 0.4, (1.0, -2.25, 3.0))
    assert len(row) == len(widget_state.FINDINGS_HEADERS)
    assert row[0] == "2"
    assert row[1:] == ["0.50", "0.910", "0.400", "1.0", f"{-2.25:.1f}", "3.0"]


def test_component_limit_keeps_the_physical_size():
    # 7 voxels of 2 mm (56 mm^3) are 56 voxels of 1 mm, 7 voxels of 2 mm, 2 voxels of 3 mm (54 mm^3 <= 56).
    assert findings.native_component_limit(7, 2.0, 0.001) == 56
    assert findings.native_component_limit(7, 2.0, 0.008) == 7
    assert findings.native_component_limit(7, 2.0, 0.027) == 2
    assert findings.native_component_limit(0, 2.0, 0.001) == 0

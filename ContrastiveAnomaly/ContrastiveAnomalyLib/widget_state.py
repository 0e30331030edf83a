"""Pure functions that decide what the panel shows; the widget only copies their results onto Qt widgets.

Keeping these decisions out of Qt lets pytest cover them without Slicer (docs/SLICER_DEV.md §5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .findings import FindingsSummary
from .process import ProgressEvent

# Human-readable names for the engine's stage names; unknown stages are shown as they come.
STAGE_LABELS = {
    "read": "Reading the image",
    "validate": "Checking the image",
    "brain_extraction": "Finding the brain",
    "bias_correction": "Correcting intensity bias",
    "registration": "Aligning to the template",
    "normalisation": "Normalising intensities",
    "model": "Reconstructing a healthy-looking brain",
    "postprocess": "Scoring anomalies",
    "native_space": "Mapping results onto the scan",
    "write": "Saving results",
}

# Rough CPU cost per volume at the model grid (docs/PERFORMANCE.md §2-3: minutes on 2 cores without AMX, fp32, 3
# noise levels): shown before the first CPU run, replaced by the engine's own ETA as soon as slices are done.
CPU_MINUTES_RANGE = (2, 4)
FAST_MODE_FRACTION = 1.0 / 3.0


@dataclass(frozen=True)
class ButtonState:
    enabled: bool
    text: str
    tooltip: str


def run_button_state(has_input: bool, has_model: bool, running: bool, cancelling: bool = False) -> ButtonState:
    """The Detect button: it becomes Cancel while a run is going."""
    if cancelling:
        return ButtonState(False, "Cancelling…", "Stopping the detection and discarding its partial results")
    if running:
        return ButtonState(True, "Cancel", "Stop the detection; nothing from this run is kept")
    if not has_input:
        return ButtonState(False, "Detect anomalies", "Select an input volume first")
    if not has_model:
        return ButtonState(False, "Detect anomalies", "Select a model (or import one) first")
    return ButtonState(True, "Detect anomalies", "Run the anomaly detection in the background")


def format_duration(seconds: float | None) -> str:
    """``None`` -> "", 42 -> "42 s", 125 -> "2 min 5 s", 3725 -> "1 h 2 min"."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    total = max(int(round(seconds)), 0)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def progress_view(event: ProgressEvent | None) -> tuple[int, str]:
    """(percent 0–100 within the stage, status text with stage and ETA) for the progress bar."""
    if event is None:
        return 0, "Starting…"
    label = STAGE_LABELS.get(event.stage, event.stage.replace("_", " ").capitalize())
    percent = int(round(100.0 * min(max(event.done, 0), event.total) / max(event.total, 1)))
    eta = format_duration(event.eta_s)
    return percent, f"{label} ({event.done}/{event.total}), about {eta} left" if eta else f"{label}…"


def cpu_time_notice(device: str, gpu_available: bool | None, first_run: bool, fast_mode: bool) -> str | None:
    """Before the first run without a GPU: say roughly how long it will take. ``None`` when nothing to say."""
    on_cpu = device == "cpu" or (device == "auto" and gpu_available is False)
    if not (on_cpu and first_run):
        return None
    low, high = CPU_MINUTES_RANGE
    if fast_mode:
        return (f"No GPU in use: fast mode on the CPU usually takes about {max(1, round(low * FAST_MODE_FRACTION))}–"
                f"{max(1, round(high * FAST_MODE_FRACTION))} min per volume. A precise estimate follows after the "
                "first slices.")
    return (f"No GPU in use: on the CPU this usually takes {low}–{high} min per volume (fast mode: about a third). "
            "A precise estimate follows after the first slices.")


def summary_text(summary: FindingsSummary | None, threshold: float) -> str:
    """The line under the threshold slider."""
    if summary is None:
        return "No results yet."
    regions = "region" if summary.region_count == 1 else "regions"
    return (f"{summary.total_volume_ml:.2f} mL in {summary.region_count} {regions} above {threshold:.3f}")


def finding_row(label: int, volume_ml: float, peak: float, mean: float, ras: tuple[float, float, float]) -> list[str]:
    """The findings-table cells of one region: #, volume (mL), peak, mean, centroid R, A, S (mm)."""
    return [str(label), f"{volume_ml:.2f}", f"{peak:.3f}", f"{mean:.3f}", *(f"{value:.1f}" for value in ras)]


FINDINGS_HEADERS = ["#", "Volume (mL)", "Peak", "Mean", "R (mm)", "A (mm)", "S (mm)"]

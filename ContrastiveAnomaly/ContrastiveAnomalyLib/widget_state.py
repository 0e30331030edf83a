"""Pure functions that decide what the panel shows; the widget only copies their results onto Qt widgets.

Keeping these decisions out of Qt lets pytest cover them without Slicer (docs/SLICER_DEV.md §5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .findings import FindingsSummary
from .process import RunTracker

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


def progress_view(tracker: RunTracker) -> tuple[int, str]:
    """(overall percent 0–100 of the whole run, text naming the stage and its ETA) for the progress bar.

    The bar never restarts at a new stage: it shows the engine's overall fraction (never going back)."""
    percent = int(round(100.0 * min(max(tracker.overall, 0.0), 1.0)))
    if tracker.stage is None:
        return percent, "Starting…"
    label = STAGE_LABELS.get(tracker.stage, tracker.stage.replace("_", " ").capitalize())
    event = tracker.progress
    if event is None or event.stage != tracker.stage:
        return percent, f"{label}…"
    eta = format_duration(event.eta_s)
    return percent, f"{label} ({event.done}/{event.total}), about {eta} left" if eta else f"{label}…"


def done_text(seconds: float, warnings: list[str]) -> str:
    """Status line after a successful run."""
    extra = f" ({len(warnings)} warning(s): {warnings[0]}{' …' if len(warnings) > 1 else ''})" if warnings else ""
    return "Done in " + format_duration(seconds) + extra


@dataclass(frozen=True)
class VolumeFacts:
    """What decides whether a scene volume is offered as the input by default."""

    node_id: str
    dimensions: tuple[int, int, int]
    is_labelmap: bool
    is_result: bool


# A localizer or a single-slice series has fewer slices than this along some axis; never pre-select it.
MIN_VOXELS_PER_AXIS = 16


def pick_input(volumes: list[VolumeFacts]) -> str | None:
    """The node ID to pre-select as the input: the first 3D scalar volume that is not a labelmap, not one of our
    own results and not a localizer; ``None`` when there is none (the user chooses)."""
    for facts in volumes:
        if facts.is_labelmap or facts.is_result or min(facts.dimensions) < MIN_VOXELS_PER_AXIS:
            continue
        return facts.node_id
    return None


def slider_maximum(map_max: float, threshold: float) -> float:
    """The slider's upper end: the map's maximum (the threshold may lie above 1; it is never clipped)."""
    return float(max(map_max, threshold, 1e-3))


def start_directory(last_used: str | None, input_file: str | None, home: str) -> str:
    """Where file dialogs open: the last export folder, else the input's folder, else the home folder (never
    Slicer's working directory)."""
    for candidate in (last_used, str(Path(input_file).parent) if input_file else None):
        if candidate and Path(candidate).is_dir():
            return str(candidate)
    return home


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


def summary_text(summary: FindingsSummary | None, threshold: float, has_result: bool = True) -> str:
    """The line under the threshold slider."""
    if not has_result:
        return "No results yet."
    if summary is None:
        return "This result cannot be re-thresholded (scene reloaded); run the detection again."
    regions = "region" if summary.region_count == 1 else "regions"
    return (f"{summary.total_volume_ml:.2f} mL in {summary.region_count} {regions} above {threshold:.3f}")


def finding_row(label: int, volume_ml: float, peak: float, mean: float, ras: tuple[float, float, float]) -> list[str]:
    """The findings-table cells of one region: #, volume (mL), peak, mean, centroid R, A, S (mm)."""
    return [str(label), f"{volume_ml:.2f}", f"{peak:.3f}", f"{mean:.3f}", *(f"{value:.1f}" for value in ras)]


FINDINGS_HEADERS = ["#", "Volume (mL)", "Peak", "Mean", "R (mm)", "A (mm)", "S (mm)"]

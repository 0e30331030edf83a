#!/usr/bin/env python3
"""Plot the training curves of a run folder (``RUN/last/trainer_state.json``): train loss per logging window and
validation loss (EMA weights when the run keeps an EMA), against the step, on one figure.

    python tools/plot_training.py RUN_DIR --out models/NAME/curves.png [--title "..."]

Earlier runs that a run was warm-started from can be prepended with ``--before RUN_DIR`` (their steps come first),
so that a model trained over several sessions shows one continuous curve.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_curves(run: Path) -> tuple[list[dict], list[dict]]:
    """(train curve rows, validation rows) of a run folder, each a list of dicts with ``step`` (int)."""
    state = json.loads((run / "last" / "trainer_state.json").read_text(encoding="utf-8"))
    return state.get("train_curve", []), state.get("history", [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--before", type=Path, action="append", default=[], help="earlier run folders, in order")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offset = 0
    train_x, train_y, val_x, val_y, boundaries = [], [], [], [], []
    for run in [*args.before, args.run]:
        train, val = read_curves(run)
        train_x += [offset + row["step"] for row in train]
        train_y += [row["train_loss"] for row in train]
        val_x += [offset + row["step"] for row in val]
        val_y += [row["val_loss"] for row in val]
        offset += max([row["step"] for row in train + val], default=0)
        boundaries.append(offset)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot(train_x, train_y, lw=0.8, alpha=0.6, label="train loss (mean per logging window)")
    axis.plot(val_x, val_y, "o-", ms=3, label="validation loss (fixed noise and timesteps)")
    for boundary in boundaries[:-1]:
        axis.axvline(boundary, color="grey", ls=":", lw=0.8)
    axis.set_xlabel("optimiser step")
    axis.set_ylabel("L1 loss of x0 (network scale)")
    axis.set_title(args.title or str(args.run))
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

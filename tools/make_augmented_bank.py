"""Write a bank of realism-augmented healthy subjects from the preprocessed registry corpus.

The registry corpus has only four healthy training volumes (population templates), so the default model is trained
on many freshly warped and re-contrasted copies of them (docs/DATA_PIPELINE.md §3). Each copy is a subject folder
readable by ``contrastive-anomaly train --data``; its seed and source are in ``metadata.json``, and the
augmentation settings of the whole bank in ``bank.json``. Validation copies (for checkpoint selection only) are
further copies of the training templates with a disjoint seed range, so no real person is used: every real
subject stays a test subject.

    python tools/make_augmented_bank.py --corpus data/registry --out data/bank --per-subject 60 --val-copies 2
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from tqdm import tqdm

from contrastive_anomaly.data.augment import AugmentationConfig, RealismAugmentation
from contrastive_anomaly.data.corpus_manifest import load_manifest
from contrastive_anomaly.data.corpus_preprocess import load_preprocessed
from contrastive_anomaly.data.volumes import Subject, write_subject
from contrastive_anomaly.storage.files import write_json_atomic

# Weaker bias field and gamma than AugmentationConfig's defaults (±20-30 %, 0.7-1.5): scans reach the model
# N4-corrected and percentile-normalised, and a model taught that smooth intensity changes are healthy also passes
# smooth lesions through. Warping, noise and blur/thick slices keep their ranges (they make new "subjects").
BANK_AUGMENTATION = AugmentationConfig(bias_probability=0.3, bias_amplitude=(0.05, 0.15),
                                       gamma_probability=0.5, gamma_range=(0.85, 1.2))
VALIDATION_SEED_OFFSET = 500_000  # validation copies draw seeds from a range training copies never reach
SEED_STRIDE_PER_SUBJECT = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("data/registry"))
    parser.add_argument("--out", type=Path, default=Path("data/bank"))
    parser.add_argument("--per-subject", type=int, default=60, help="augmented copies per training subject")
    parser.add_argument("--val-copies", type=int, default=2, help="validation copies per training subject")
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    manifest = load_manifest(args.corpus)
    augment = RealismAugmentation(BANK_AUGMENTATION)
    volumes = load_preprocessed(args.corpus, manifest, roles=("train",))
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"augmentation": dataclasses.asdict(BANK_AUGMENTATION), "seed": args.seed,
                "train_subjects": sorted(volumes), "per_subject": args.per_subject, "val_copies": args.val_copies}
    write_json_atomic(settings, args.out / "bank.json")
    started = time.perf_counter()
    for role, copies, offset in (("train", args.per_subject, 0), ("val", args.val_copies, VALIDATION_SEED_OFFSET)):
        for subject_index, (name, (image, mask)) in enumerate(sorted(volumes.items())):
            if role == "train":
                write_subject(Subject(name=f"{name}-orig", image=image, brain_mask=mask), args.out / role)
            for copy in tqdm(range(copies), desc=f"{role}:{name}"):
                seed = args.seed + SEED_STRIDE_PER_SUBJECT * subject_index + copy + offset
                name_out = f"{name}-{role}{copy:03d}"
                if (args.out / role / name_out / "metadata.json").is_file():
                    continue  # resumable: finished copies are kept
                warped, warped_mask, _ = augment.augment_with(image, seed, mask)
                folder = write_subject(Subject(name=name_out, image=warped, brain_mask=warped_mask), args.out / role)
                write_json_atomic({"source": name, "seed": seed, "role": role}, folder / "metadata.json")
    print(f"bank written to {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

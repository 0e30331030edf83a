"""Write a bank of realism-augmented healthy subjects from the preprocessed registry corpus.

The registry corpus has only four healthy training volumes (population templates), so the default model is trained
on many freshly warped and re-contrasted copies (docs/DATA_PIPELINE.md §3). Each copy is a subject folder readable by
``contrastive-anomaly train --data``; its seed and source are in ``metadata.json``. Splits stay by subject: copies
of a validation subject go to the validation bank only.

    python tools/make_augmented_bank.py --corpus data/registry --out data/bank --per-subject 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from contrastive_anomaly.data.augment import RealismAugmentation
from contrastive_anomaly.data.corpus_preprocess import load_preprocessed
from contrastive_anomaly.data.fetch import load_manifest
from contrastive_anomaly.data.volumes import Subject, write_subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("data/registry"))
    parser.add_argument("--out", type=Path, default=Path("data/bank"))
    parser.add_argument("--per-subject", type=int, default=30, help="augmented copies per training subject")
    parser.add_argument("--val-copies", type=int, default=4, help="augmented copies per validation subject")
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    manifest = load_manifest(args.corpus)
    augment = RealismAugmentation()
    started = time.perf_counter()
    for role, copies in (("train", args.per_subject), ("val", args.val_copies)):
        volumes = load_preprocessed(args.corpus, manifest, roles=(role,))
        for subject_index, (name, (image, mask)) in enumerate(sorted(volumes.items())):
            write_subject(Subject(name=f"{name}-orig", image=image, brain_mask=mask), args.out / role)
            for copy in tqdm(range(copies), desc=f"{role}:{name}"):
                seed = args.seed + 1000 * subject_index + copy + (500_000 if role == "val" else 0)
                warped, warped_mask, _ = augment.augment_with(image, seed, mask)
                folder = write_subject(Subject(name=f"{name}-aug{copy:03d}", image=warped, brain_mask=warped_mask),
                                       args.out / role)
                metadata = json.dumps({"source": name, "seed": seed, "role": role})
                (folder / "metadata.json").write_text(metadata, encoding="utf-8")
    print(f"bank written to {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""Data-pipeline timings on the model grid and the synthetic-T2 sanity check against the dipy b0 volume.

Usage: python benchmarks/bench_data.py [--corpus data/registry]

Times (wall clock, this machine, 1 torch thread): realism augmentation of one 50×96×96 volume, synthetic T2 from
tissue maps, and each lesion kind. With a fetched corpus it also fits a 3-class GMM to the dipy ``aniso_vox`` b0
(T2-weighted EPI) and prints the class-mean ratios to the darkest class, to compare with the synthetic-T2 ranges
(GM/WM 1.3–1.6, CSF/WM 2.5–3.5; docs/DATA_PIPELINE.md §3).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage
from sklearn.mixture import GaussianMixture

from contrastive_anomaly.data.augment import RealismAugmentation
from contrastive_anomaly.data.lesions import LESION_KINDS, plant_lesion
from contrastive_anomaly.data.phantoms import brain_phantom
from contrastive_anomaly.data.synth_contrast import synthesize_contrast

REPEATS = 3


def _time(fn, repeats: int = REPEATS) -> float:
    start = time.perf_counter()
    for seed in range(repeats):
        fn(seed)
    return (time.perf_counter() - start) / repeats


def b0_class_ratios(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(class-mean ratios to the darkest class, class fractions) of a 3-class GMM inside an Otsu head mask."""
    image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(image)
    mask = sitk.GetArrayFromImage(sitk.OtsuThreshold(image, 0, 1)) > 0
    mask = ndimage.binary_fill_holes(ndimage.binary_opening(mask))
    gmm = GaussianMixture(3, random_state=0).fit(values[mask][:, None])
    order = np.argsort(gmm.means_[:, 0])
    labels = gmm.predict(values[mask][:, None])
    means = gmm.means_[order, 0]
    return means / means[0], np.array([(labels == i).mean() for i in order])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/registry"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    p = brain_phantom((96, 96, 50))
    image, brain, tissue = p.image, p.brain_mask, p.tissue
    augment = RealismAugmentation()
    print(f"augmentation, one 50x96x96 volume: {_time(lambda s: augment(image, s, brain)):.2f} s")
    print(f"synthetic T2 from tissue maps:     {_time(lambda s: synthesize_contrast(tissue, 'T2', s, brain)):.2f} s")
    for kind in LESION_KINDS:
        seconds = _time(lambda s, k=kind: plant_lesion(image, brain, k, "T2", s, tissue=tissue))
        print(f"lesion {kind:18s}:           {seconds:.2f} s")
    b0 = args.corpus / "dipy_b0" / "aniso_vox.nii.gz"
    if b0.is_file():
        ratios, fractions = b0_class_ratios(b0)
        print(f"dipy b0 3-class means / darkest: {[round(float(r), 2) for r in ratios]}, fractions "
              f"{[round(float(f), 2) for f in fractions]} (synthetic T2: GM/WM 1.3-1.6, CSF/WM 2.5-3.5)")
    else:
        print(f"no corpus at {args.corpus}: b0 check skipped (run the data fetch first)")


if __name__ == "__main__":
    main()

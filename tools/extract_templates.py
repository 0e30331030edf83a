#!/usr/bin/env python3
"""Rebuild ``contrastive_anomaly/resources/templates/`` from the registry wheels (build time only, never at run time).

Downloads ``nimare==0.22.1`` and ``nilearn==0.14.1`` with pip (no install), unpacks the template members, derives
the small files the preprocessing needs and writes them with their licence texts and a README (provenance + md5).

    python tools/extract_templates.py [--out ContrastiveAnomaly/contrastive_anomaly/resources/templates]

Shipped files (all NIfTI, LPS geometry as SimpleITK reads it, RAS-stored):

* ``mni152nlin6asym_res-02_T1w.nii.gz`` and ``..._desc-brain_mask.nii.gz``: copied unchanged from nimare (2 mm head
  template + brain mask, used for brain extraction).
* ``icbm152_2009a_T1_2mm.nii.gz``: nilearn's ICBM152 2009a T1 (skull-stripped average), 2x2x2 block mean, uint8.
* ``icbm152_2009a_brain_mask_1mm.nii.gz``: ICBM152 2009a T1 > 0 at 1 mm (defines the model-grid crop).
* ``icbm152_2009a_brain_mask_2mm.nii.gz``: the 1 mm mask, 2x2x2 block mean >= 0.5.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import SimpleITK as sitk

WHEELS = ("nimare==0.22.1", "nilearn==0.14.1")
NIMARE_TEMPLATES = "nimare/resources/templates/"
NILEARN_DATA = "nilearn/datasets/data/"
ICBM_T1 = NILEARN_DATA + "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
COPIED = {
    NIMARE_TEMPLATES + "tpl-MNI152NLin6Asym_res-02_T1w.nii.gz": "mni152nlin6asym_res-02_T1w.nii.gz",
    NIMARE_TEMPLATES + "tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz":
        "mni152nlin6asym_res-02_desc-brain_mask.nii.gz",
}
LICENCES = {
    "nimare-0.22.1.dist-info/LICENSE": "LICENSE-nimare-MIT.txt",
    "nilearn-0.14.1.dist-info/licenses/LICENSE": "LICENSE-nilearn-BSD-3-Clause.txt",
    "nimare/resources/atlases/Harvard-Oxford-LICENSE": "LICENSE-FSL.txt",
}

# The MNI ICBM152 2009 copyright notice as distributed with the MNI templates (not contained in the nilearn wheel).
ROLES = (
    ("mni152nlin6asym_res-02_T1w.nii.gz", "head template for brain extraction",
     "nimare `tpl-MNI152NLin6Asym_res-02_T1w`, unchanged"),
    ("mni152nlin6asym_res-02_desc-brain_mask.nii.gz", "its brain mask",
     "nimare `..._res-02_desc-brain_mask`, unchanged"),
    ("icbm152_2009a_T1_2mm.nii.gz", "model-space registration target (skull-stripped T1)",
     "nilearn ICBM152 2009a sym T1, 2x2x2 block mean, uint8"),
    ("icbm152_2009a_brain_mask_1mm.nii.gz", "defines the model-grid crop (1 mm)", "ICBM152 2009a T1 > 0"),
    ("icbm152_2009a_brain_mask_2mm.nii.gz", "QC overlap reference", "1 mm mask, 2x2x2 block mean >= 0.5"),
)

ICBM_NOTICE = """\
ICBM 152 Nonlinear atlases version 2009 (mni_icbm152_nlin_sym_09a)

Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre,
Montreal Neurological Institute, McGill University. Permission to use,
copy, modify, and distribute this software and its documentation for any
purpose and without fee is hereby granted, provided that the above
copyright notice appear in all copies. The authors and McGill University
make no representations about the suitability of this software for any
purpose. It is provided "as is" without express or implied warranty. The
authors are not responsible for any data loss, equipment damage, property
loss, or injury to subjects or patients resulting from the use or misuse
of this software package.

References: Fonov et al., NeuroImage 47 (2009) S102; Fonov et al.,
NeuroImage 54 (2011) 313-327; Collins et al., NeuroImage 1999.
"""


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def download_wheels(folder: Path) -> list[Path]:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.11", "-d", str(folder), *WHEELS]
    subprocess.run(cmd, check=True)
    return sorted(folder.glob("*.whl"))


def unpack(wheels: list[Path], members: list[str], folder: Path) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name in members:
                    archive.extract(name, folder)


def block_mean_2mm(image: sitk.Image) -> sitk.Image:
    """2x2x2 block mean (SimpleITK BinShrink keeps the physical extent; voxel centres move by +0.5 voxel)."""
    return sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), [2, 2, 2])


def derive_icbm(t1_path: Path, out: Path) -> None:
    t1 = sitk.ReadImage(str(t1_path))
    mask_1mm = sitk.Cast(t1 > 0, sitk.sitkUInt8)
    sitk.WriteImage(mask_1mm, str(out / "icbm152_2009a_brain_mask_1mm.nii.gz"), useCompression=True)
    t1_2mm = sitk.Cast(sitk.Round(block_mean_2mm(t1)), sitk.sitkUInt8)
    sitk.WriteImage(t1_2mm, str(out / "icbm152_2009a_T1_2mm.nii.gz"), useCompression=True)
    mask_2mm = sitk.Cast(block_mean_2mm(mask_1mm) >= 0.5, sitk.sitkUInt8)
    sitk.WriteImage(mask_2mm, str(out / "icbm152_2009a_brain_mask_2mm.nii.gz"), useCompression=True)


def write_readme(out: Path, sources: dict[str, str]) -> None:
    rows = "\n".join(f"| `{p.name}` | {p.stat().st_size} | `{md5(p)}` |" for p in sorted(out.iterdir())
                     if p.name != "README.md")
    src_rows = "\n".join(f"| `{member}` | `{digest}` |" for member, digest in sorted(sources.items()))
    roles = "\n".join(f"| `{name}` | {role} | {how} |" for name, role, how in ROLES)
    (out / "README.md").write_text(f"""# Shipped templates (tools/extract_templates.py; nothing is fetched at run time)

Sources: the PyPI wheels `nimare==0.22.1` (MIT) and `nilearn==0.14.1` (BSD-3-Clause), downloaded with
`pip download --no-deps --only-binary=:all: --python-version 3.11` and unpacked (no install).

{roles}

Licences: `LICENSE-FSL.txt` (MNI152NLin6Asym is the FSL MNI152 template; the FSL licence, shipped in the nimare
wheel as `nimare/resources/atlases/Harvard-Oxford-LICENSE`, is **non-commercial**), `LICENSE-MNI-ICBM152-2009.txt`
(MNI/McGill notice for ICBM152 2009, permissive with attribution), `LICENSE-nimare-MIT.txt`,
`LICENSE-nilearn-BSD-3-Clause.txt`. Commercial use of the brain-extraction template needs FSL/OUI permission;
supplying your own brain mask (`--brain-mask`) avoids it.

Why the brain-extraction (head) template is still the FSL one: a permissive replacement was tried and is worse.
`nilearn==0.14.1` ships ICBM152 2009a only skull-stripped (T1, GM, WM; no head image with skull and no separate brain
mask: `unzip -l` of the wheel). Used as the head template (2 mm T1 + its mask, with the same registration), brain
extraction Dice against the shipped reference masks fell from 0.940 to 0.688 (ROBEX subject) and from 0.947 to 0.725
(ITK k-means subject), with `implausible_brain_volume` flags (Colin27: 0.942 -> 0.947); a whole-head similarity
registration needs a template with a skull. So MNI152NLin6Asym stays the default, with this non-commercial licence;
commercial users supply their own brain mask (`--brain-mask`, or the panel's *Brain mask* field), which skips the
template entirely.

## md5 of the shipped files

| file | bytes | md5 |
|---|---|---|
{rows}

## md5 of the source members inside the wheels

| member | md5 |
|---|---|
{src_rows}
""")


def main() -> int:
    default_out = Path(__file__).resolve().parents[1] / "ContrastiveAnomaly/contrastive_anomaly/resources/templates"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheels = download_wheels(work)
        members = [*COPIED, *LICENCES, ICBM_T1]
        unpack(wheels, members, work)
        sources = {m: md5(work / m) for m in members if m.endswith(".nii.gz")}
        for member, name in {**COPIED, **LICENCES}.items():
            shutil.copyfile(work / member, out / name)
        derive_icbm(work / ICBM_T1, out)
    (out / "LICENSE-MNI-ICBM152-2009.txt").write_text(ICBM_NOTICE)
    write_readme(out, sources)
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(list(out.iterdir()))} files to {out} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

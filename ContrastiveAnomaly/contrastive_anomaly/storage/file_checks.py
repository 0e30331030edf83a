"""Refusing a cut-off image file before it is analysed.

ITK reads a ``.nii.gz`` whose gzip stream stops halfway without complaint and zero-fills the missing voxels, so a
partly copied scan would be scored as if it were whole. :func:`check_complete` reads only the header fields that
give the data size and compares them with what the file really holds:

* NIfTI-1/-2 (``.nii``, ``.nii.gz``, ``.hdr``/``.img`` pairs): ``vox_offset + prod(dim) * bitpix / 8`` bytes;
* NRRD (``.nrrd``, ``.nhdr`` with a detached data file): ``prod(sizes) * sizeof(type)`` bytes after the header (and
  after ``byte skip``), for the ``raw``, ``gzip`` and ``bzip2`` encodings (text encodings are not checked);
* MetaImage (``.mha``, ``.mhd`` with one detached data file): ``prod(DimSize) * channels * sizeof(ElementType)``
  bytes after the header, or ``CompressedDataSize`` bytes of zlib data (ITK refuses a short MetaImage itself, but
  with "No such file or directory", which sends the user looking for the wrong problem).

A compressed stream must also reach its end-of-stream marker and pass its CRC. The headers are parsed here, by hand,
because ITK exposes neither the declared data size nor stream completeness, and the parse is ~40 lines of fixed
offsets (NIfTI-1: nifti1.h; NIfTI-2: nifti2.h; NRRD: teem's file format definition; MetaImage: ITK's MetaIO
documentation). Other formats (DICOM) are left to ITK.
"""

from __future__ import annotations

import bz2
import gzip
import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import InputError

CHUNK_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
NIFTI1_HEADER_BYTES = 348
NIFTI2_HEADER_BYTES = 540
NRRD_TYPE_BYTES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                     "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t",
                     "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
                     "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
                     "double"), 8),
}


def _mb(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def _cut_off(path: Path, detail: str) -> InputError:
    return InputError(f"{path.name} is cut off ({detail}); the file is incomplete: copy or export it again")


def _stream_length(path: Path, opener: Callable[[Path], IO[bytes]], skip: int = 0) -> int:
    """Bytes a compressed stream decompresses to, from offset ``skip`` of the file; raises if it is cut off."""
    try:
        with open(path, "rb") as raw:
            raw.seek(skip)
            with opener(raw) as stream:
                total = 0
                while chunk := stream.read(CHUNK_BYTES):
                    total += len(chunk)
    except EOFError:
        raise _cut_off(path, "the compressed stream ends before its end marker") from None
    except (OSError, zlib.error, ValueError) as exc:
        raise _cut_off(path, f"the compressed data is damaged: {exc}") from None
    return total


def _gzip(raw: IO[bytes]) -> IO[bytes]:
    return gzip.GzipFile(fileobj=raw, mode="rb")


def _bzip2(raw: IO[bytes]) -> IO[bytes]:
    return bz2.BZ2File(raw, mode="rb")


def _require(path: Path, available: int, needed: int, what: str) -> None:
    if available < needed:
        raise _cut_off(path, f"{what} holds {_mb(available)} but its header declares {_mb(needed)}")


# ------------------------------------------------------------------------------------------------------- NIfTI
def _nifti_data_end(header: bytes) -> int | None:
    """``vox_offset + data bytes`` from a NIfTI-1 or NIfTI-2 header, or ``None`` when it is not one."""
    for order in ("<", ">"):
        if len(header) >= NIFTI1_HEADER_BYTES and struct.unpack(order + "i", header[:4])[0] == NIFTI1_HEADER_BYTES:
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
        elif len(header) >= NIFTI2_HEADER_BYTES and struct.unpack(order + "i", header[:4])[0] == NIFTI2_HEADER_BYTES:
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            dims = struct.unpack(order + "8q", header[16:80])
            offset = struct.unpack(order + "q", header[168:176])[0]
        else:
            continue
        rank = min(max(int(dims[0]), 0), 7)
        voxels = math.prod(max(int(d), 1) for d in dims[1:rank + 1])
        return max(offset, 0) + voxels * max(int(bitpix), 0) // 8
    return None


def _check_nifti(path: Path, compressed: bool) -> None:
    if compressed:
        with open(path, "rb") as handle:
            if handle.read(2) != GZIP_MAGIC:
                return  # not gzip at all: ITK reports what the file is
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
            header = handle.read(NIFTI2_HEADER_BYTES)
    except (EOFError, OSError, zlib.error):
        raise _cut_off(path, "its header is incomplete") from None
    end = _nifti_data_end(header)
    if end is None:
        return  # not a NIfTI header after all: ITK will say what it is
    if path.name.lower().endswith(".hdr"):
        image = path.with_suffix(".img")
        if image.is_file():
            _require(image, image.stat().st_size, end, "the .img")  # vox_offset is the offset inside the .img
        return
    available = _stream_length(path, _gzip) if compressed else path.stat().st_size
    _require(path, available, end, "the file")


# ------------------------------------------------------------------------------------------------------- NRRD
def _nrrd_header(path: Path) -> tuple[dict[str, str], int]:
    """The NRRD header fields (lower-case keys) and the byte offset where the attached data starts."""
    fields: dict[str, str] = {}
    with open(path, "rb") as handle:
        magic = handle.readline()
        if not magic.startswith(b"NRRD"):
            return {}, 0
        while True:
            line = handle.readline()
            if not line:  # end of file: a detached header, or a file cut inside its header
                break
            text = line.decode("latin-1").rstrip("\r\n")
            if text == "":
                break
            if text.startswith("#") or ":" not in text:
                continue
            key, _, value = text.partition(":")
            fields[key.strip().lower()] = value.lstrip("=").strip()
        return fields, handle.tell()


def _check_nrrd(path: Path) -> None:
    fields, data_start = _nrrd_header(path)
    if not fields or "sizes" not in fields or "type" not in fields:
        return
    element = NRRD_TYPE_BYTES.get(fields["type"].lower())
    if fields["type"].lower() == "block":
        element = int(fields.get("block size", fields.get("blocksize", "0")) or 0)
    if not element:
        return
    needed = math.prod(int(size) for size in fields["sizes"].split()) * element
    skip = int(fields.get("byte skip", fields.get("byteskip", "0")) or 0)
    encoding = fields.get("encoding", "raw").lower()
    data_file = fields.get("data file", fields.get("datafile"))
    target, start = path, data_start
    if data_file is not None:
        if data_file.startswith("LIST") or " " in data_file.strip():
            return  # multi-file data: left to ITK
        target, start = (path.parent / data_file), 0
        if not target.is_file():
            raise InputError(f"{path.name}: its data file {data_file} is missing")
    if encoding == "raw":
        size = target.stat().st_size - start
        if skip == -1:  # data are the last bytes of the file
            _require(target, size, needed, "the data")
        else:
            _require(target, size - skip, needed, "the data")
    elif encoding in ("gzip", "gz", "bzip2", "bz2"):
        opener = _gzip if encoding.startswith("gz") else _bzip2
        _require(target, _stream_length(target, opener, start) - max(skip, 0), needed, "the data")


# -------------------------------------------------------------------------------------------------- MetaImage
META_TYPE_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
                   "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
                   "MET_DOUBLE": 8}
META_HEADER_LINES = 100  # a MetaImage header is a few dozen "Key = value" lines ending with ElementDataFile


def _meta_header(path: Path) -> tuple[dict[str, str], int]:
    """The MetaImage header fields and the byte offset after the ``ElementDataFile`` line (where LOCAL data start)."""
    fields: dict[str, str] = {}
    with open(path, "rb") as handle:
        for _ in range(META_HEADER_LINES):
            line = handle.readline()
            if not line:
                break
            key, _, value = line.decode("latin-1").partition("=")
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                break
        return fields, handle.tell()


def _check_meta(path: Path) -> None:
    fields, data_start = _meta_header(path)
    element = META_TYPE_BYTES.get(fields.get("ElementType", ""))
    data_file = fields.get("ElementDataFile")
    if element is None or not data_file or "DimSize" not in fields:
        return
    try:
        needed = math.prod(int(size) for size in fields["DimSize"].split()) * element
        needed *= int(fields.get("ElementNumberOfChannels", "1") or 1)
        compressed_size = int(fields["CompressedDataSize"]) if "CompressedDataSize" in fields else None
    except ValueError:
        return  # a malformed header: ITK's reader reports it
    target, start = path, data_start
    if data_file != "LOCAL":
        if data_file.startswith("LIST") or "%" in data_file:
            return  # multi-file data: left to ITK
        target, start = path.parent / data_file, 0
        if not target.is_file():
            raise InputError(f"{path.name}: its data file {data_file} is missing")
    available = target.stat().st_size - start
    if fields.get("CompressedData", "False").lower() == "true":
        if compressed_size is not None:
            _require(target, available, compressed_size, "the compressed data")
        return
    _require(target, available, needed, "the data")


def check_complete(path: str | Path) -> None:
    """Raise :class:`InputError` (one line) if a NIfTI, NRRD or MetaImage file holds less data than its header
    declares or its compressed stream is cut off or damaged. Other files and folders pass unchecked."""
    path = Path(path)
    if not path.is_file():
        return
    name = path.name.lower()
    if name.endswith((".nii.gz", ".nii", ".hdr")):
        _check_nifti(path, compressed=name.endswith(".gz"))
    elif name.endswith((".nrrd", ".nhdr")):
        _check_nrrd(path)
    elif name.endswith((".mha", ".mhd")):
        _check_meta(path)

"""The engine's one way to write a file: under a temporary name next to it, renamed into place when complete.

Standard library only (plus :mod:`.errors`), so every module can use it, ``config.py`` included;
:mod:`contrastive_anomaly.storage.files` re-exports it with the image and CSV writers built on it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OutputError


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _format_suffix(path: Path) -> str:
    """The suffix a writer looks at to pick the format: ``.nii.gz``/``.seg.nrrd`` as a pair, else the last one."""
    pair = "".join(path.suffixes[-2:])
    return pair if pair.lower() in (".nii.gz", ".seg.nrrd") else path.suffix


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """The one way the engine writes a file: yield a temporary path next to ``path``, rename it onto ``path`` when
    the block finishes, delete it when the block raises.

    The temporary name is hidden (``.<name>.<random>.partial<suffix>``) and keeps the format suffix, so writers
    that choose the format from the extension (SimpleITK, slicerio, safetensors) work unchanged. The file gets
    ordinary permissions (mkstemp makes 0600 files). An :class:`OSError` while creating, writing or renaming
    becomes one :class:`OutputError` line; any other exception is re-raised as it is, and ``path`` is never left
    half-written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".partial{_format_suffix(path)}",
                                    dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write UTF-8 ``text`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(payload: Any, path: str | Path, **dumps_options: Any) -> Path:
    """Write ``payload`` as indented JSON (plus a final newline) through :func:`atomic_write`.

    ``dumps_options`` go to :func:`json.dumps` (for example ``sort_keys=True`` or ``default=str``)."""
    return write_text_atomic(json.dumps(payload, indent=2, **dumps_options) + "\n", path)

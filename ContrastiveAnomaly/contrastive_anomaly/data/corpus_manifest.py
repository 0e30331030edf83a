"""The corpus manifest (``manifest.json`` in a ``data fetch`` folder): its name, reading and writing.

Kept apart from :mod:`.fetch` (which downloads and writes it) and :mod:`.corpus_preprocess` (which adds grids to it)
so neither has to import the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ContrastiveAnomalyError
from ..storage.files import write_json_atomic

MANIFEST_NAME = "manifest.json"


def load_manifest(out_dir: Path) -> dict[str, Any]:
    """Read ``out_dir/manifest.json`` written by ``contrastive-anomaly data fetch``."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ContrastiveAnomalyError(f"no corpus manifest in {out_dir}; run 'contrastive-anomaly data fetch' first")
    return json.loads(path.read_text(encoding="utf-8"))


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``out_dir/manifest.json`` atomically (temporary file, then rename), keys sorted."""
    write_json_atomic(manifest, Path(out_dir) / MANIFEST_NAME, sort_keys=True)

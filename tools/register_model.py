"""Add or update a model folder's row in the ``registry.json`` next to it (name, contrast, grid, size, sha256, path).

For the built-in registry that ships inside the package (users register their own models with
``contrastive-anomaly models import``):

    python tools/register_model.py ContrastiveAnomaly/contrastive_anomaly/resources/models/t1-compact-wholebrain \\
        --name t1-compact-wholebrain --default [--url URL]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from contrastive_anomaly.storage.checkpoint import WEIGHTS_FILE, read_model_config, sha256_of, verify_model_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--default", action="store_true", help="make this the model detect uses by default")
    parser.add_argument("--url", help="download URL for models too large to commit (users fetch them themselves)")
    parser.add_argument("--description", help="one line for 'models list' (default: keep the row's current one)")
    args = parser.parse_args()
    verify_model_folder(args.folder)
    cfg, checkpoint = read_model_config(args.folder)
    registry_path = args.folder.parent / "registry.json"
    registry = json.loads(registry_path.read_text(encoding="utf-8")) if registry_path.is_file() else {"models": []}
    previous = next((m for m in registry["models"] if m["name"] == args.name), {})
    entry = {
        "name": args.name,
        "path": args.folder.name,
        "contrast": cfg.contrast,
        "preset": cfg.name,
        "grid": {"shape_ijk": list(cfg.grid.shape), "spacing_mm": cfg.grid.spacing_mm, "template": cfg.grid.template},
        "size_mb": round(sum(f.stat().st_size for f in args.folder.iterdir()) / 2**20, 2),
        "sha256": sha256_of(args.folder / WEIGHTS_FILE),
        "threshold": cfg.postprocess.threshold,
        "trained_steps": checkpoint.get("step"),
        "description": args.description if args.description is not None else previous.get("description", ""),
        "default": args.default,
    }
    if args.url:
        entry["url"] = args.url
    models = [m for m in registry["models"] if m["name"] != args.name]
    if args.default:
        for model in models:
            model["default"] = False
    registry["models"] = sorted([*models, entry], key=lambda m: m["name"])
    registry_path.write_text(json.dumps(registry, indent=2) + "\n", encoding="utf-8")
    print(f"registered {args.name} in {registry_path}")


if __name__ == "__main__":
    main()

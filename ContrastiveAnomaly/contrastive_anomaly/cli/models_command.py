"""The ``contrastive-anomaly models`` sub-command: list, show, import and remove registered models.

The registry itself (built-in + user, trust rules) is :mod:`contrastive_anomaly.storage.registry`; the Slicer panel
reads the same one. No torch is imported here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..runtime.progress import ProgressReporter

EPILOG = "User models live in $CONTRASTIVE_ANOMALY_MODELS (default ~/.contrastive_anomaly/models)."


def add_models_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``models`` (with ``list``, ``show``, ``import``, ``remove``) to the top-level sub-parsers ``sub``."""
    models = sub.add_parser("models", epilog=EPILOG, help="list, show, import or remove registered models",
                            description="Models that 'detect --model NAME' and the Slicer panel can use: the "
                                        "built-in default model plus the user's registry. Example: "
                                        "contrastive-anomaly models import path/to/model_folder --name my-t2")
    actions = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every registered model with its contrast and where it is")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = actions.add_parser("show", help="a model's card (or its registry facts), checksums verified")
    show.add_argument("name", help="registered name, or 'default'")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    imp = actions.add_parser("import", help="copy a model folder into the user registry (checksums verified)")
    imp.add_argument("folder", type=Path, help="folder with model.safetensors, config.json and model.sha256")
    imp.add_argument("--name", help="name to register it under (default: the folder's name)")
    rem = actions.add_parser("remove", help="unregister a user model (an imported copy is deleted)")
    rem.add_argument("name", help="registered name")
    for parser in (listing, show, imp, rem):
        parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                            help="with jsonl, errors are also reported as JSON lines")
    return models


def run_models_command(args: argparse.Namespace, progress: ProgressReporter) -> int:
    """Body of ``contrastive-anomaly models``; returns the exit code (errors raise one-line exceptions)."""
    from ..storage import registry

    if args.models_command == "list":
        entries = registry.list_models()
        if args.json:
            print(json.dumps([entry.to_dict() for entry in entries], indent=2))
            return 0
        if not entries:
            print("no models registered")
        for entry in entries:
            marks = ", ".join(m for m in ("default" if entry.default else "", entry.source,
                                          "" if entry.installed else "NOT INSTALLED") if m)
            print(f"{entry.name:<24} {entry.contrast:<6} {marks:<28} {entry.folder}")
        print(f"user registry: {registry.user_models_dir()}")
        return 0
    if args.models_command == "show":
        entry = registry.find_model(args.name)
        if entry is None:
            from ..errors import UsageError

            raise UsageError(f"no model named {args.name!r} is registered (see 'contrastive-anomaly models list')")
        manifest = registry.verify_model(entry.folder, entry.sha256)
        if args.json:
            print(json.dumps({**entry.to_dict(), "verified": True, "files": manifest}, indent=2))
        else:
            print(registry.model_card_text(entry, sha256=manifest["model.safetensors"]), end="")
            print(f"checksums verified: {', '.join(sorted(manifest))}")
        return 0
    if args.models_command == "import":
        entry = registry.import_model(args.folder, name=args.name)
        print(f"imported {entry.name!r} ({entry.contrast}) into {entry.folder}; checksums verified")
        return 0
    entry = registry.remove_model(args.name)
    kept = "" if entry.folder.parent.resolve() == registry.user_models_dir().resolve() else \
        f" (its files in {entry.folder} were kept)"
    print(f"removed {entry.name!r}{kept}")
    return 0

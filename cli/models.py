"""--models-dir for commands that can hash the models a record names (no ComfyUI needed)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..metadata.hashing import RootsLocator, hash_models, shared_cache
from ..metadata.record import Model
from ..metadata.save import Hasher

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "comfyui-provenance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="a ComfyUI models folder (checkpoints/, loras/, vae/, ...): hash the models the record names "
        "(AutoV2, AutoV3) for Model hash, Lora hashes and Civitai's Hashes; repeatable",
    )
    parser.add_argument(
        "--hash-cache",
        type=Path,
        metavar="DIR",
        default=DEFAULT_CACHE,
        help="where hashes are cached between runs (default: %(default)s; ComfyUI's node uses <user>/provenance)",
    )


def hasher_from(args: argparse.Namespace) -> Hasher | None:
    roots: list[Path] | None = args.models_dir
    if not roots:
        return None
    locator, cache = RootsLocator(roots), shared_cache(args.hash_cache)

    def hasher(models: list[Model]) -> None:
        hash_models(models, locator, cache)

    return hasher

"""`provenance openai key`: make an API key for the OpenAI-compatible image API, and store only its digest.

Prints a new key once (give it to the client: `OpenAI(api_key=..., base_url="http://HOST:8188/v1")`)
and adds its sha256 digest to `openai_keys` in the settings file --settings names (for ComfyUI:
<ComfyUI>/user/provenance/settings.json); the key itself is never written anywhere. `--digest KEY`
prints the digest of a key you already have, for the settings file or PROVENANCE_OPENAI_KEYS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..metadata import settings
from ..service import auth
from .errors import CliError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="openai_command", metavar="ACTION", required=True)
    key = sub.add_parser("key", help="make an API key; store its digest in the settings file")
    key.add_argument("--digest", metavar="KEY", help="print the digest of this key instead of making one")


def run(args: argparse.Namespace) -> int:
    if args.digest:
        print(auth.hash_key(args.digest))
        return 0
    target = settings.settings_file()
    if target is None:
        raise CliError("name the settings file to add the key to: provenance --settings FILE openai key", status=2)
    new = auth.new_key()
    _add(target, auth.hash_key(new))
    print(new)
    print(f"its sha256 digest was added to openai_keys in {target}; the key is shown only now", file=sys.stderr)
    return 0


def _add(path: Path, digest: str) -> None:
    keys = settings.read_file(path).get("openai_keys", ()) if path.exists() else ()
    try:
        settings.update_file(path, {"openai_keys": [*keys, digest]}, private=True)
    except settings.SettingsError as err:
        raise CliError(str(err)) from err

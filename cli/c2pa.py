"""`provenance c2pa init`: make untrusted test credentials for Content Credentials and point the settings at them.

Writes a local test CA and an end-entity signing certificate (ES256, issued by that CA, with the
digitalSignature key usage and the document-signing extended key usage C2PA validators require)
into --out DIR, then records the signer's chain and key as c2pa_cert / c2pa_key in the settings
file: the one --settings names (for ComfyUI: <ComfyUI>/user/provenance/settings.json), else
DIR/settings.json. Every name in them says UNTRUSTED TEST: a file signed with them proves it has
not changed since it was signed, not who made it. For that, use a certificate from a CA on the C2PA
trust list (see the README) and set c2pa_cert / c2pa_key to it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..metadata import settings
from ..metadata.credentials import testca
from ..metadata.credentials.signer import CredentialError
from .errors import CliError

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("c2pa-test-credentials")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="c2pa_command", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="make a test CA and signing certificate; record them in the settings")
    init.add_argument("--out", metavar="DIR", type=Path, default=DEFAULT_OUT, help=f"where (default: ./{DEFAULT_OUT})")
    init.add_argument("--force", action="store_true", help="replace credentials already in DIR")
    init.add_argument("--name", default=testca.SIGNER_NAME, help="the signer's name in its certificate")


def run(args: argparse.Namespace) -> int:
    folder: Path = args.out.expanduser().resolve()
    try:
        made = testca.create(folder, signer_name=args.name, force=args.force)
    except CredentialError as err:
        raise CliError(str(err)) from err
    target = settings.settings_file() or folder / settings.FILE_NAME
    try:
        settings.update_file(target, {"c2pa_cert": str(made.chain), "c2pa_key": str(made.key)})
    except settings.SettingsError as err:
        raise CliError(str(err)) from err
    out = sys.stdout
    print(f"test CA          : {made.ca}  (a trust anchor for `provenance verify --trust`)", file=out)
    print(f"signer chain     : {made.chain}", file=out)
    print(f"signer key       : {made.key}  (private: readable by you only)", file=out)
    print(f"settings         : {target}  (c2pa_cert, c2pa_key)", file=out)
    print("UNTRUSTED TEST credentials: no trust list holds this CA; never use them to publish.", file=out)
    if settings.settings_file() is None:
        print(f"use them: provenance --settings {target} ...   or", file=out)
        print(f"          PROVENANCE_C2PA_CERT={made.chain} PROVENANCE_C2PA_KEY={made.key}", file=out)
    return 0

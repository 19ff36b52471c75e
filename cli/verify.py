"""`provenance verify PATH...`: check each file's Content Credentials (C2PA) and its record against them.

Per file, one line: `valid` (signed, nothing changed since; who signed it and whether the signer
is trusted), `tampered` (and what changed: the bytes, the record's fields, or a stripped manifest),
`unsigned`, `untrusted` (intact, but the signer is not on the trust list given) or `invalid`.
--trust FILE (or the c2pa_trust setting, PROVENANCE_C2PA_TRUST) is a PEM bundle of trust anchors,
such as the C2PA trust list or your organisation's CA; without one, a valid signature by an unknown
signer is still `valid`, and says so. --json prints one object per file (an array for several).
Exit status 0 only when every file is valid; 1 otherwise; 2 when verifying is impossible here
(c2pa-python missing: pip install 'comfyui-provenance[c2pa]').
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..metadata import settings
from ..metadata.credentials.signer import CredentialError
from ..metadata.credentials.verify import VALID, Verdict, verify_file
from ..metadata.errors import MetadataError
from .errors import CliError, in_words, report
from .files import walk
from .read import JsonArray


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="signed files, or folders to walk")
    parser.add_argument(
        "--trust", metavar="FILE", type=Path, help="trust anchors (PEM certificates) signers must chain to"
    )
    parser.add_argument("--json", action="store_true", help="print each verdict as JSON")


def run(args: argparse.Namespace) -> int:
    trust = args.trust or settings.current().c2pa_trust
    verdicts: list[Verdict] = []
    failed = False
    array = JsonArray(sys.stdout) if args.json else None
    jobs = list(walk(args.paths, None))
    single = len(args.paths) == 1 and not Path(args.paths[0]).is_dir()
    for path, _name in jobs:
        try:
            verdict = verify_file(path, trust)
        except CredentialError as err:
            raise CliError(str(err), status=2) from err
        except (MetadataError, OSError) as err:
            report(err, path)
            failed = True
            continue
        except Exception as err:  # c2pa-python's native layer, a file we did not foresee: one line, go on
            print(f"{path}: {in_words(err)}", file=sys.stderr)
            failed = True
            continue
        verdicts.append(verdict)
        if array is not None:
            if single:
                print(json.dumps(verdict.to_dict(), indent=2))
            else:
                array.add(verdict.to_dict())
        else:
            print(verdict.line())
    if array is not None and not single:
        array.close()
    return 1 if failed or any(v.status != VALID for v in verdicts) else 0

"""`provenance audit --models-dir DIR...`: do the local models still match what catalogued files claim?

Each model and LoRA the catalogued files name is looked up by name in the model folders (with or
without its extension and subfolder) and hashed (cached between runs). It is ok (same hash),
mismatch (a file of that name with another hash: a LoRA replaced, a checkpoint re-downloaded in
another version), gone (no local file of that name) or unverifiable (a file is there but the
catalogue holds no hash for it). Exit status: 0 all present and matching, 1 any mismatch or gone,
2 the catalogue cannot be opened or no --models-dir was given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..catalogue.audit import GONE, MISMATCH, OK, Finding, audit, counts
from ..catalogue.store import Catalogue, CatalogueError
from ..metadata.hashing import shared_cache
from . import models
from .errors import CliError
from .search import add_db, open_db

SHOWN_FILES = 3  # catalogued files named per mismatch in the table; --json lists them all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    models.add_arguments(parser)
    parser.add_argument("--all", action="store_true", help="list the models that match too")
    parser.add_argument("--json", action="store_true", help="print the counts and every finding as one JSON object")
    add_db(parser)


def opened(args: argparse.Namespace) -> Catalogue:
    try:
        return open_db(args, create=False)
    except (CliError, CatalogueError) as err:
        raise CliError(str(err), status=2) from err


def run(args: argparse.Namespace) -> int:
    if not args.models_dir:
        raise CliError("audit needs --models-dir DIR (a ComfyUI models folder)", status=2)
    catalogue = opened(args)
    try:
        findings = audit(catalogue, args.models_dir, shared_cache(args.hash_cache))
    finally:
        catalogue.close()
    if args.json:
        json.dump({"counts": counts(findings), "findings": [f.as_json() for f in findings]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        show(findings, args.all)
    return 1 if any(f.status in (MISMATCH, GONE) for f in findings) else 0


def show(findings: list[Finding], everything: bool) -> None:
    for finding in findings:
        if finding.status == OK and not everything:
            continue
        claim = finding.claim
        print(f"{finding.status:<12} {claim.role:<10} {claim.name}  ({len(finding.files)} files)")
        if finding.status == MISMATCH:
            print(f"    catalogued {hashes_text(claim.hashes())}")
            print(f"    local      {hashes_text(finding.local)}  {shorter(finding.path)}")
            for path in finding.files[:SHOWN_FILES]:
                print(f"    claimed by {shorter(path)}")
            if len(finding.files) > SHOWN_FILES:
                print(f"    claimed by {len(finding.files) - SHOWN_FILES} more")
        elif finding.reason and finding.status != GONE:
            print(f"    {finding.reason}")
    total = counts(findings)
    print(", ".join(f"{n} {status}" for status, n in total.items()), file=sys.stderr)


def hashes_text(hashes: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in hashes.items()) or "-"


def shorter(path: str | None) -> str:
    if path is None:
        return "-"
    try:
        short = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return short if len(short) < len(path) else path

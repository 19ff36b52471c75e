"""`provenance read PATH...`: the record each image carries, as a summary, JSON or JSON lines.

Folders are walked recursively in name order for .png/.jpg/.jpeg/.webp files; sidecars and
dot-files are left out (a file named on the command line is always read).

Output for scripts:
  --json   one file: the record itself, one JSON object.
           several files, or any folder: one JSON array of the records of the files that read.
  --jsonl  one compact line per file that read: {"file": PATH, "record": {...}}.
A file that does not read is named with the reason on stderr, never in the JSON, and the exit
status is 1; the records of the others are still printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any, TextIO

from ..metadata.credentials.signer import LIBRARY_MISSING, library_missing
from ..metadata.credentials.verify import UNSIGNED, verify_file
from ..metadata.formats.base import C2PA
from ..metadata.read import read
from ..metadata.record import Record
from . import objectinfo
from .errors import report
from .files import walk
from .summary import summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, or folders to walk")
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        action="store_true",
        help="print the record as JSON: one object for one file, an array for several files or a folder",
    )
    output.add_argument("--jsonl", action="store_true", help='print one line per file: {"file": PATH, "record": {...}}')
    objectinfo.add_arguments(parser)  # for files that carry only ComfyUI's graph: it is parsed afresh


class JsonArray:
    """A JSON array written item by item, so a big folder streams instead of waiting for the end."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.count = 0

    def add(self, item: Any) -> None:
        opening = "[\n" if self.count == 0 else ",\n"
        self.stream.write(opening + textwrap.indent(json.dumps(item, indent=2, ensure_ascii=False), "  "))
        self.count += 1

    def close(self) -> None:
        self.stream.write("\n]\n" if self.count else "[]\n")


def run(args: argparse.Namespace) -> int:
    with objectinfo.user_schemas(args):
        return read_all(args)


def read_all(args: argparse.Namespace) -> int:
    single = len(args.paths) == 1 and not Path(args.paths[0]).is_dir()
    array = JsonArray(sys.stdout) if args.json and not single else None
    failed = False
    for arg in args.paths:
        found = 0
        for path, _ in walk([arg]):
            found += 1
            try:
                record = read(path)
            except Exception as err:  # one bad file must not stop the others: say why and go on
                report(err, path)
                failed = True
                continue
            show(path, record, args, array)
        if not found:
            print(f"{arg}: no PNG, JPEG or WEBP files in this folder", file=sys.stderr)
    if array is not None:
        array.close()
    return 1 if failed else 0


def show(path: Path, record: Record, args: argparse.Namespace, array: JsonArray | None) -> None:
    if array is not None:
        array.add(record.to_dict())
    elif args.json:  # streamed: a record holding 30 MB of graphs is never one string in memory
        json.dump(record.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif args.jsonl:
        line = {"file": str(path), "record": record.to_dict()}
        print(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
    else:
        print(f"{path}\n{summary(record)}")
        status = credentials(path, record)
        if status:
            print(f"  credentials: {status}")


def credentials(path: Path, record: Record) -> str | None:
    """The file's Content Credentials in a few words (None: nothing to say: not signed, nothing says it was)."""
    said = [p for p in record.provenance.embedding if p.target == C2PA]
    signed = any(p.status == "written" for p in said)
    if library_missing() is not None:
        return f"signed, not checked ({LIBRARY_MISSING})" if signed else None
    try:
        verdict = verify_file(path)
    except Exception as err:  # the summary never fails on its credentials line
        return f"not checked: {' '.join(str(err).split())}" if signed else None
    if verdict.status == UNSIGNED and not verdict.reasons and not said:
        return None
    return verdict.line().removeprefix(f"{path}: ")

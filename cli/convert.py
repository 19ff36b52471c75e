"""`provenance convert PATH...`: stamp files ComfyUI core wrote with the full metadata, pixels untouched.

Folders are walked for .png/.jpg/.jpeg/.webp (dot-files and hidden folders left out). Each file
is converted into a temporary file that replaces the original (--in-place) or lands in --out DIR
under the same name only once complete.
A progress bar goes to stderr when it is a terminal (or with --progress); the summary, one line
per file (status, reason, notes) and the counts, goes to stdout. Exit status 1 when any file failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from .. import __version__
from ..metadata import settings
from ..metadata.convert import CONVERTED, FAILED, SKIPPED, Outcome, convert_file
from ..metadata.formats.base import C2PA
from . import models, objectinfo
from .errors import CliError
from .files import walk
from .options import add_targets, parse_targets

BAR_WIDTH = 28
REDRAW_SECONDS = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, or folders to walk")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="DIR", type=Path, help="write the converted files here, keeping their names")
    where.add_argument("--in-place", action="store_true", help="replace each file once its converted copy is complete")
    add_targets(parser, "; ComfyUI's own prompt/workflow are always kept")
    parser.add_argument("--force", action="store_true", help="convert files that already carry a provenance record")
    parser.add_argument(
        "--no-lora-tags",
        dest="lora_tags",
        action="store_false",
        help="do not append the LoRAs to the A1111 prompt as <lora:name:weight> tags",
    )
    parser.add_argument("--c2pa-cert", metavar="PEM", type=Path, help="sign with this certificate chain (c2pa target)")
    parser.add_argument("--c2pa-key", metavar="PEM", type=Path, help="the signing certificate's private key")
    parser.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is no terminal")
    models.add_arguments(parser)
    objectinfo.add_arguments(parser)


class Progress:
    """`[#####.....] 12/40 name` redrawn in place on one stderr line; silent when off."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.stream, self.enabled = total, stream, enabled and total > 0
        self.drawn = 0.0
        self.width = 0

    def show(self, done: int, name: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.drawn < REDRAW_SECONDS):
            return
        self.drawn = now
        filled = BAR_WIDTH * done // self.total
        label = name if len(name) <= 40 else "…" + name[-39:]
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{self.total} {label}"
        self.stream.write("\r" + line.ljust(self.width))  # spaces wipe a longer previous line
        self.width = len(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.show(self.total, "done", force=True)
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    targets = parse_targets(args.targets)
    signing = {k: v for k, v in (("c2pa_cert", args.c2pa_cert), ("c2pa_key", args.c2pa_key)) if v is not None}
    if signing and C2PA not in targets:
        raise CliError("--c2pa-cert/--c2pa-key sign files: add c2pa to --targets", status=2)
    with objectinfo.user_schemas(args), settings.override(**signing):
        return convert_all(args, targets)


def convert_all(args: argparse.Namespace, targets: frozenset[str]) -> int:
    out: Path | None = args.out
    jobs = list(walk(args.paths, out.resolve() if out is not None else None))
    progress = Progress(len(jobs), sys.stderr, args.progress or sys.stderr.isatty())
    hasher = models.hasher_from(args)
    outcomes: list[Outcome] = []
    claimed: dict[Path, Path] = {}
    for done, (source, name) in enumerate(jobs):
        progress.show(done, str(source))
        dest = source if out is None else out / name
        if not source.exists():
            outcomes.append(Outcome(source, FAILED, "no such file or folder"))
        elif dest.resolve() in claimed:
            outcomes.append(Outcome(source, FAILED, f"{claimed[dest.resolve()]} converts to the same {dest}"))
        elif out is not None and dest.resolve() == source.resolve():
            outcomes.append(Outcome(source, FAILED, "--out is the file's own folder: use --in-place"))
        else:
            claimed[dest.resolve()] = source
            outcomes.append(
                convert_file(
                    source,
                    dest,
                    targets,
                    force=args.force,
                    version=__version__,
                    hasher=hasher,
                    lora_tags=args.lora_tags,
                )
            )
    progress.close()
    report(outcomes, sys.stdout)
    return 1 if any(o.status == FAILED for o in outcomes) else 0


def report(outcomes: list[Outcome], stream: TextIO) -> None:
    """One line per file, with its reason or notes, then the counts."""
    for o in outcomes:
        if o.status == CONVERTED:
            where = "" if o.dest in (None, o.source) else f" -> {o.dest}"
            print(f"converted  {o.source}{where}", file=stream)
            for note in o.notes:
                print(f"  note: {note}", file=stream)
        else:
            print(f"{o.status:<9}  {o.source}: {o.reason}", file=stream)
    counts = {status: sum(o.status == status for o in outcomes) for status in (CONVERTED, SKIPPED, FAILED)}
    files = f"{len(outcomes)} file" + ("" if len(outcomes) == 1 else "s")
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f" ({files})", file=stream)

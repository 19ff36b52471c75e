"""`provenance index PATH...`: add image, video and audio files to the catalogue; folders are walked.

A file whose size and modification time are what the catalogue holds is skipped unread; one
whose bytes are the same (same SHA-256) only has its row updated, and a catalogued file that
is gone but whose digest turns up at a new path is recognised as moved. Files are read by the
same guarded readers as `provenance read`: one that does not read is named on stderr with the
reason and skipped (exit status 1). --prune forgets catalogued files under the PATHs that no
longer exist. Progress goes to stderr when it is a terminal (or with --progress), then one line
of counts. The catalogue: --db, else $PROVENANCE_CATALOGUE_URL, else
~/.local/share/comfyui-provenance/catalogue.sqlite.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from itertools import islice
from pathlib import Path

from ..catalogue.indexer import UNCHANGED, Examined, examine, store, unchanged
from ..catalogue.rows import absolute
from ..metadata.read import warm
from .convert import Progress
from .errors import in_words
from .files import walk
from .search import add_db, open_db

# Files written per transaction: few commits, yet the write lock is never held for long.
BATCH = 200
# Files handed to a reading process at a time: few round trips, yet progress stays smooth.
CHUNK = 32
# Reading processes by default: one per CPU (this process only writes), at most this many.
MAX_JOBS = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, or folders to walk")
    parser.add_argument(
        "--jobs",
        type=int,
        default=default_jobs(),
        metavar="N",
        help="read N files at once (default: the CPUs, %(default)s)",
    )
    parser.add_argument("--prune", action="store_true", help="forget catalogued files under PATH that are gone")
    parser.add_argument("--progress", action="store_true", help="show progress even when stderr is no terminal")
    add_db(parser)


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        print("provenance: --jobs must be 1 or more", file=sys.stderr)
        return 2
    started = time.perf_counter()
    paths = [absolute(path) for path, _ in walk(args.paths)]
    catalogue = open_db(args, create=True)
    counts: Counter[str] = Counter()
    progress = Progress(len(paths), sys.stderr, args.progress or sys.stderr.isatty())
    try:
        todo = [path for path in paths if not unchanged(catalogue, path)]
        counts[UNCHANGED] = done = len(paths) - len(todo)
        results = examined(todo, args.jobs)
        while chunk := list(islice(results, BATCH)):
            with catalogue.batch():
                for found in chunk:
                    done += 1
                    progress.show(done, Path(found.path).name)
                    if found.error is not None:
                        print(f"{found.path}: {found.error}", file=sys.stderr)
                        counts["skipped"] += 1
                    else:
                        counts[store(catalogue, found)] += 1
        if args.prune:
            counts["pruned"] = catalogue.prune([absolute(p) for p in args.paths])
    finally:
        progress.close()
        catalogue.close()
    summary(counts, len(paths), time.perf_counter() - started)
    return 1 if counts["skipped"] else 0


def default_jobs() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_JOBS, cpus))


def examined(paths: list[str], jobs: int) -> Iterator[Examined]:
    """Each path examined, in order: here for one job or a handful of files, else by `jobs` processes.

    The readers are loaded before the processes start, so a forked one does not load them again; a
    worker hands back rows with the record already as JSON text, so this process only writes.
    """
    if jobs == 1 or len(paths) < CHUNK:
        yield from (examine(path, in_words) for path in paths)
        return
    warm()
    chunk = max(1, min(CHUNK, len(paths) // (jobs * 4)))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(partial(examine, describe=in_words), paths, chunksize=chunk)


def summary(counts: Counter[str], total: int, seconds: float) -> None:
    parts = [f"{counts[k]} {k}" for k in ("new", "updated", "moved", "unchanged", "skipped", "pruned") if counts[k]]
    rate = f", {total / seconds:.0f} files/s" if seconds > 0 and total else ""
    what = ", ".join(parts) or "nothing to do"
    print(f"provenance: {total} files ({what}) in {seconds:.1f} s{rate}", file=sys.stderr)

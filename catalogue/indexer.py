"""Indexing one file: skip it unchanged, read it (hostile-safe), then insert, update or move its rows.

`examine` never raises and returns plain data, so it runs in worker processes; `store` makes the
decision against the catalogue in the writing process. The CLI's `index` and (later) the save
nodes' background writer share both.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..metadata.read import read
from .rows import FileRow, RecordRows, file_row, record_rows
from .store import Catalogue

NEW, UPDATED, MOVED, UNCHANGED = "new", "updated", "moved", "unchanged"


@dataclass
class Examined:
    """One file as a worker found it: its row and record rows, or why it was skipped (one line)."""

    path: str
    file: FileRow | None = None
    rows: RecordRows | None = None
    error: str | None = None


def examine(path: str, describe: Callable[[BaseException], str] = str) -> Examined:
    """Stat, digest and read one file; whatever goes wrong is `describe`d, never raised."""
    try:
        file = file_row(path)
        return Examined(path, file, record_rows(read(path)))
    except OSError as err:  # the path is named once, by whoever reports it
        return Examined(path, error=(err.strerror or str(err)).lower())
    except Exception as err:  # a hostile file is a one-line skip, whatever went wrong
        return Examined(path, error=describe(err))


def unchanged(catalogue: Catalogue, path: str) -> bool:
    """Whether the catalogue holds `path` with its current size and modification time (so it is not read)."""
    known = catalogue.known(path)
    if known is None:
        return False
    try:
        info = os.stat(path)
    except OSError:
        return False  # examine() says why
    return info.st_size == known.size and info.st_mtime == known.mtime


def store(catalogue: Catalogue, found: Examined) -> str:
    """Write one examined file; NEW, UPDATED, MOVED (same digest, old path gone) or UNCHANGED (same bytes)."""
    if found.file is None or found.rows is None:
        raise ValueError(f"{found.path} was not read: {found.error}")
    file = found.file
    known = catalogue.known(file.path)
    if known is not None and known.digest == file.digest:
        catalogue.touch(file)
        return UNCHANGED
    if known is None:
        moved = next((k for k in catalogue.by_digest(file.digest) if not os.path.lexists(k.path)), None)
        if moved is not None:
            catalogue.move(moved.path, file)
            return MOVED
    catalogue.upsert(file, found.rows)
    return UPDATED if known is not None else NEW

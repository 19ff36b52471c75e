"""The backend-neutral catalogue interface, and `open_catalogue(url_or_path)` that picks a backend.

A plain path or `sqlite:///PATH` opens the embedded SQLite backend; `postgresql://…` is the
shared backend for many ComfyUI workers (psycopg 3, the `postgres` extra).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..metadata.errors import MetadataError
from .query import Query
from .rows import FileRow, RecordRows

ENV_URL = "PROVENANCE_CATALOGUE_URL"
DEFAULT_PATH = Path("~/.local/share/comfyui-provenance/catalogue.sqlite")
SQLITE_SCHEME = "sqlite://"  # then "/" and the path
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class CatalogueError(MetadataError):
    """The catalogue cannot be opened, read or written; the message says why in one line."""


@dataclass(frozen=True)
class Known:
    """What the catalogue remembers of a file: enough to tell whether it changed."""

    path: str
    size: int
    mtime: float
    digest: str


class Catalogue(Protocol):
    """What every backend offers; rows in and out are plain dicts of JSON values."""

    def known(self, path: str) -> Known | None:
        """The catalogue's row for `path`, or None."""

    def by_digest(self, digest: str) -> list[Known]:
        """Every catalogued file with this content digest."""

    def upsert(self, file: FileRow, rows: RecordRows) -> None:
        """Insert or replace the file at `file.path` and everything its record says."""

    def touch(self, file: FileRow) -> None:
        """Same content, new size/mtime (or a rewrite that kept the bytes): update the file row only."""

    def move(self, old: str, file: FileRow) -> None:
        """The file at `old` is now at `file.path` (same digest): keep its rows, change its place."""

    def batch(self) -> AbstractContextManager[None]:
        """Writes inside it are one transaction, committed when it ends (rolled back if it raises)."""

    def search(self, query: Query) -> list[dict[str, Any]]:
        """The files that match, newest first."""

    def stats(self, top: int = 10) -> dict[str, Any]:
        """Counts, the most used models, LoRAs and samplers, files per day."""

    def prune(self, roots: Sequence[str] | None = None) -> int:
        """Forget files under `roots` (all when None) that no longer exist; how many were forgotten."""

    def close(self) -> None: ...


def default_location() -> str:
    """$PROVENANCE_CATALOGUE_URL, else the per-user SQLite file."""
    return os.environ.get(ENV_URL) or str(DEFAULT_PATH.expanduser())


def open_catalogue(location: str | os.PathLike[str] | None = None, *, readonly: bool = False) -> Catalogue:
    """The catalogue at a path or URL (None: `default_location()`), created and migrated if need be;
    `readonly`: only searched, never created or changed (CatalogueError when it does not exist)."""
    where = os.fspath(location) if location is not None else default_location()
    if where.startswith(POSTGRES_SCHEMES):
        from .postgres import PostgresCatalogue

        return PostgresCatalogue(where, readonly=readonly)
    if where.startswith(SQLITE_SCHEME):
        # SQLAlchemy's form: sqlite:///relative/path, sqlite:////absolute/path.
        if not where.startswith(SQLITE_SCHEME + "/") or len(where) == len(SQLITE_SCHEME) + 1:
            raise CatalogueError(f"{where}: a SQLite URL is sqlite:///PATH")
        where = where[len(SQLITE_SCHEME) + 1 :]
    elif "://" in where:
        raise CatalogueError(f"{where}: not a catalogue path, sqlite:///PATH or postgresql:// URL")
    from .sqlite import SQLiteCatalogue

    return SQLiteCatalogue(Path(where).expanduser(), readonly=readonly)

"""The embedded catalogue backend: one SQLite file in WAL mode, prompts in an FTS5 index.

Every statement is a constant with `?` placeholders: no query text is ever part of the SQL.
Each write is one short transaction (BEGIN IMMEDIATE), so several indexers and searchers can
share the file; a busy database is waited on for `BUSY_TIMEOUT_S` before it is an error.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .query import Query
from .rows import FileRow, RecordRows, made, stamp
from .schema import MIGRATIONS_TABLE, SCHEMA_VERSION, SQLITE_MIGRATIONS
from .sqlite_search import search_rows, stats_of, under
from .store import CatalogueError, Known

BUSY_TIMEOUT_S = 30.0


def now() -> str:
    return stamp(datetime.now(timezone.utc))


class SQLiteCatalogue:
    """The catalogue in one SQLite file, created and migrated on open."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:  # a searcher (the web route): never creates, migrates or writes anything
            self._open_readonly(path)
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as err:
            raise CatalogueError(f"cannot open the catalogue {path}: {_words(err)}") from err
        with self._guard("open"):
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA synchronous = NORMAL")
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise CatalogueError(f"cannot open the catalogue {path}: WAL mode refused ({mode})")
            self._migrate()

    def _open_readonly(self, path: Path) -> None:
        if not path.is_file():
            raise CatalogueError(f"no catalogue at {path}")
        try:
            uri = "file:" + quote(str(path.resolve())) + "?mode=ro"
            self.db = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise CatalogueError(f"cannot open the catalogue {path}: {_words(err)}") from err
        with self._guard("open"):
            self.db.execute("PRAGMA query_only = ON")

    def _migrate(self) -> None:
        with self._write():
            self.db.execute(MIGRATIONS_TABLE)
            current = self.db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] or 0
            if current > SCHEMA_VERSION:
                raise CatalogueError(
                    f"the catalogue {self.path} has schema {current}, newer than this version knows ({SCHEMA_VERSION})"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in SQLITE_MIGRATIONS[version]:
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_migrations (version, applied) VALUES (?, ?)", (version, now()))

    def schema_version(self) -> int:
        with self._guard("read"):
            return int(self.db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0])

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            raise CatalogueError(f"catalogue {what} failed ({self.path}): {_words(err)}") from err

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around many writes (an indexer's hundreds of files commit once)."""
        with self._write():
            yield

    @contextmanager
    def _write(self) -> Iterator[None]:
        if self.db.in_transaction:  # inside batch(): its transaction is this write's
            yield
            return
        with self._guard("write"):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # -- reads ---------------------------------------------------------------------------------

    def known(self, path: str) -> Known | None:
        with self._guard("read"):
            row = self.db.execute("SELECT path, size, mtime, digest FROM files WHERE path = ?", (path,)).fetchone()
        return Known(*row) if row else None

    def by_digest(self, digest: str) -> list[Known]:
        with self._guard("read"):
            rows = self.db.execute("SELECT path, size, mtime, digest FROM files WHERE digest = ?", (digest,))
            return [Known(*row) for row in rows.fetchall()]

    def search(self, query: Query) -> list[dict[str, Any]]:
        with self._guard("search"):
            return search_rows(self.db, query)

    def stats(self, top: int = 10) -> dict[str, Any]:
        with self._guard("read"):
            return stats_of(self.db, top)

    # -- writes --------------------------------------------------------------------------------

    def upsert(self, file: FileRow, rows: RecordRows) -> None:
        with self._write():
            self.db.execute(
                """INSERT INTO files (path, folder, size, mtime, digest, kind, format, width, height, frames,
                       made, indexed)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (path) DO UPDATE SET folder = excluded.folder, size = excluded.size,
                       mtime = excluded.mtime, digest = excluded.digest, kind = excluded.kind,
                       format = excluded.format, width = excluded.width, height = excluded.height,
                       frames = excluded.frames, made = excluded.made, indexed = excluded.indexed""",
                (
                    file.path, file.folder, file.size, file.mtime, file.digest, file.kind, rows.format,
                    rows.width, rows.height, rows.frames, made(rows, file.mtime), now(),
                ),
            )  # fmt: skip
            file_id = self.db.execute("SELECT id FROM files WHERE path = ?", (file.path,)).fetchone()[0]
            self._forget_details(file_id)
            self._insert_details(file_id, rows)

    def _forget_details(self, file_id: int) -> None:
        for table in ("generations", "models", "provenance"):  # constant names, never input
            self.db.execute(f"DELETE FROM {table} WHERE file_id = ?", (file_id,))
        self.db.execute("DELETE FROM prompts WHERE rowid = ?", (file_id,))

    def _insert_details(self, file_id: int, rows: RecordRows) -> None:
        self.db.execute(
            """INSERT INTO generations (file_id, prompt, negative, seed, steps, cfg, sampler, scheduler, passes)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                file_id, rows.prompt, rows.negative, rows.seed, rows.steps, rows.cfg, rows.sampler,
                rows.scheduler, rows.passes,
            ),
        )  # fmt: skip
        self.db.executemany(
            """INSERT INTO models (file_id, role, name, norm, sha256, autov2, autov3, strength_model, strength_clip)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (file_id, m.role, m.name, m.norm, m.sha256, m.autov2, m.autov3, m.strength_model, m.strength_clip)
                for m in rows.models
            ],
        )
        self.db.execute(
            """INSERT INTO provenance (file_id, capture_mode, created, comfyui_version, pack_version, prompt_id,
                   record) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (
                file_id, rows.capture_mode, rows.created, rows.comfyui_version, rows.pack_version,
                rows.prompt_id, rows.record,
            ),
        )  # fmt: skip
        if rows.prompt or rows.negative:
            self.db.execute(
                "INSERT INTO prompts (rowid, prompt, negative) VALUES (?, ?, ?)",
                (file_id, rows.prompt or "", rows.negative or ""),
            )

    def touch(self, file: FileRow) -> None:
        with self._write():
            self.db.execute(
                "UPDATE files SET size = ?, mtime = ?, indexed = ? WHERE path = ?",
                (file.size, file.mtime, now(), file.path),
            )

    def move(self, old: str, file: FileRow) -> None:
        with self._write():
            stale = self.db.execute("SELECT id FROM files WHERE path = ?", (file.path,)).fetchone()
            if stale is not None:
                self._delete(stale[0])
            self.db.execute(
                "UPDATE files SET path = ?, folder = ?, size = ?, mtime = ?, indexed = ? WHERE path = ?",
                (file.path, file.folder, file.size, file.mtime, now(), old),
            )

    def prune(self, roots: Sequence[str] | None = None) -> int:
        with self._guard("read"):
            if roots is None:
                rows = self.db.execute("SELECT id, path FROM files").fetchall()
            else:
                rows = []
                for root in roots:
                    lo, hi = under(root)
                    found = self.db.execute(
                        "SELECT id, path FROM files WHERE path = ? OR (path >= ? AND path < ?)", (root, lo, hi)
                    )
                    rows.extend(found.fetchall())
        gone = sorted({file_id for file_id, path in rows if not os.path.lexists(path)})
        with self._write():
            for file_id in gone:
                self._delete(file_id)
        return len(gone)

    def _delete(self, file_id: int) -> None:
        self.db.execute("DELETE FROM prompts WHERE rowid = ?", (file_id,))
        self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))  # the rest follows (ON DELETE CASCADE)

    def close(self) -> None:
        with self._guard("close"):
            self.db.close()


def _words(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__

"""The hash cache's file: one SQLite table in WAL mode, safe for many threads and processes.

SQLite rather than a JSON file: each new hash is one upsert instead of a rewrite of every entry,
and concurrent writers from several ComfyUI processes are serialized by SQLite's own locking,
so nobody's entry is lost to a last-writer-wins replace. A file that is not a database (or a
corrupt one) is moved aside and a new one started; a cache never fails a save.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .result import HashResult

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0
_HEX64 = re.compile(r"[0-9a-f]{64}")
_COLUMNS = "path, size, mtime_ns, sha256, autov3, metadata, header_error, hashed_at"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    autov3 TEXT,
    metadata TEXT NOT NULL,
    header_error TEXT,
    hashed_at REAL NOT NULL
);
PRAGMA user_version = {SCHEMA_VERSION};
"""


class StoreUnavailable(Exception):
    """The cache file cannot be used (newer schema, unwritable folder, corrupt twice)."""


class Store:
    """Rows of HashResult, one per resolved path; every method is thread-safe.

    Opening reads every row into `loaded` (the cache's in-memory index), once per process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db, self.loaded = self._open()
        except sqlite3.Error as err:
            if not is_corruption(err):
                raise StoreUnavailable(f"{path}: {err}") from err
            aside = self._move_aside(err)
            try:
                self._db, self.loaded = self._open()
            except sqlite3.Error as again:
                raise StoreUnavailable(f"{path}: {again}") from again
            logger.warning("provenance: hash cache %s was unreadable (%s); moved to %s, started anew", path, err, aside)
        except OSError as err:
            raise StoreUnavailable(f"{path}: {err}") from err

    def _open(self) -> tuple[sqlite3.Connection, dict[str, HashResult]]:
        """Open (creating it if needed) and read every row: damage anywhere in the file shows here."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode still atomic; a crash loses at most recent hashes
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                self._create(db, version)
            # Pages a full scan does not visit (the path index) are checked too: ~20 ms for 20,000 rows.
            check = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            rows = db.execute(f"SELECT {_COLUMNS} FROM hashes").fetchall()
        except BaseException:
            db.close()
            raise
        return db, {r.path: r for r in map(_from_row, rows) if r is not None}

    def _create(self, db: sqlite3.Connection, seen: int) -> None:
        db.execute("BEGIN IMMEDIATE")  # another process may be creating it at this moment
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(f"{self.path} has schema {version}, newer than this pack's {SCHEMA_VERSION}")
            if version != SCHEMA_VERSION:
                db.execute("DROP TABLE IF EXISTS hashes")  # an older schema: its hashes are cheap to redo
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _move_aside(self, err: sqlite3.Error) -> Path:
        aside = self.path.with_name(self.path.name + ".corrupt")
        try:
            os.replace(self.path, aside)
        except OSError as move_err:
            raise StoreUnavailable(f"{self.path} is unreadable ({err}) and cannot be moved: {move_err}") from move_err
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):  # absent, or still open elsewhere: a new WAL replaces it
                os.remove(f"{self.path}{suffix}")
        return aside

    def load(self, path: str) -> HashResult | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM hashes WHERE path = ?", (path,)).fetchone()
        return _from_row(row) if row else None

    def save(self, result: HashResult) -> None:
        values = (
            result.path,
            result.size,
            result.mtime_ns,
            result.sha256,
            result.autov3,
            json.dumps(dict(result.metadata), ensure_ascii=False),
            result.header_error,
            time.time(),
        )
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO hashes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def is_corruption(err: sqlite3.Error) -> bool:
    """Not a database, or a damaged one; busy, read-only and missing-folder errors are not corruption."""
    name = getattr(err, "sqlite_errorname", None)  # Python 3.11+
    if isinstance(name, str):
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError)


def _from_row(row: tuple[Any, ...]) -> HashResult | None:
    """A row as a result; a row this version cannot trust (edited, half-written) is skipped."""
    path, size, mtime_ns, sha256, autov3, metadata, header_error, _ = row
    if not (isinstance(path, str) and isinstance(size, int) and isinstance(mtime_ns, int)):
        return None
    if not (isinstance(sha256, str) and _HEX64.fullmatch(sha256)):
        return None
    if autov3 is not None and not (isinstance(autov3, str) and _HEX64.fullmatch(autov3)):
        return None
    try:
        meta = json.loads(metadata)
    except (TypeError, ValueError):
        return None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        return None
    return HashResult(
        path=path,
        size=size,
        mtime_ns=mtime_ns,
        sha256=sha256,
        autov3=autov3,
        metadata=meta,
        header_error=header_error if isinstance(header_error, str) else None,
    )

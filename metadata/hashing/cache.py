"""Each model file version hashed once: an in-memory index, loaded once, over the cache file.

A version is (resolved path, size, mtime_ns): a warm lookup is one stat() and a dict lookup.
Concurrent requests for the same version share one hash (the first caller hashes, the others
wait on its future). Nothing is ever written beside the models, and no error reaches the caller:
a file that cannot be hashed comes back as a HashResult with `error` set.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import stat
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from .digest import READ_SIZE, digest
from .header import HeaderError, is_safetensors, read_header
from .result import HashResult
from .store import Store, StoreUnavailable, is_corruption

logger = logging.getLogger(__name__)

CACHE_FILENAME = "hash-cache.sqlite"
# A file modified this close to its hashing is hashed again next time instead of cached: a rewrite
# within the same mtime tick (2 s on FAT, 1 s on some network filesystems) would keep size and
# mtime_ns and go unnoticed. Git calls these entries "racily clean".
RACY_WINDOW_NS = 2_000_000_000


@dataclass
class CacheStats:
    hits: int = 0  # answered from the in-memory index
    stored: int = 0  # answered from the cache file (another process hashed it)
    shared: int = 0  # waited for a hash another thread was already computing
    hashed: int = 0  # files read and hashed
    bytes_hashed: int = 0
    failed: int = 0  # missing or unreadable files


class HashCache:
    """Hashes of model files, cached in `<directory>/hash-cache.sqlite` (memory only when None)."""

    def __init__(self, directory: str | Path | None, *, read_size: int = READ_SIZE) -> None:
        self.path = Path(directory) / CACHE_FILENAME if directory is not None else None
        self.read_size = read_size
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._inflight: dict[tuple[str, int, int], Future[HashResult]] = {}
        self._index: dict[str, HashResult] = {}
        self._store: Store | None = None
        if self.path is not None:
            try:
                self._store = Store(self.path)
                self._index, self._store.loaded = self._store.loaded, {}
            except (StoreUnavailable, sqlite3.Error, OSError) as err:
                logger.warning("provenance: hash cache unavailable, hashes are kept in memory only: %s", err)
                self._disable_store()

    # -- lookups -------------------------------------------------------------------------
    def lookup(self, path: str | Path) -> HashResult | None:
        """The cached result for the file as it is now; None when it would need hashing."""
        try:
            resolved = os.path.realpath(path)
            st = os.stat(resolved)
        except (OSError, ValueError):
            return None
        with self._lock:
            entry = self._index.get(resolved)
            if entry is not None and entry.same_version(st.st_size, st.st_mtime_ns):
                self.stats.hits += 1
                return entry
        return None

    def get(self, path: str | Path) -> HashResult:
        """Hashes of the file as it is now: from the cache, from a hash in progress, or hashed here."""
        try:
            resolved = os.path.realpath(path)
            st = os.stat(resolved)
        except (OSError, ValueError) as err:
            return self._failed(str(path), err)
        if not stat.S_ISREG(st.st_mode):
            return self._failed(resolved, IsADirectoryError(errno.EISDIR, "not a regular file"))
        version = (resolved, st.st_size, st.st_mtime_ns)
        with self._lock:
            entry = self._index.get(resolved)
            if entry is not None and entry.same_version(st.st_size, st.st_mtime_ns):
                self.stats.hits += 1
                return entry
            waiting = self._inflight.get(version)
            if waiting is None:
                future: Future[HashResult] = Future()
                self._inflight[version] = future
            else:
                self.stats.shared += 1
        if waiting is not None:
            return waiting.result()
        # The name decides, not only the target: Hugging Face caches link model.safetensors to a bare blob.
        return self._fill(version, future, is_safetensors(path) or is_safetensors(resolved))

    def _fill(self, version: tuple[str, int, int], future: Future[HashResult], safetensors: bool) -> HashResult:
        """Owner of an in-flight version: find or compute it, then release every waiter."""
        resolved, size, mtime_ns = version
        result = HashResult(resolved, error="hashing was interrupted")
        keep = False
        try:
            stored = self._load_stored(resolved)
            if stored is not None and stored.same_version(size, mtime_ns):
                result, keep = stored, True
                with self._lock:
                    self.stats.stored += 1
            else:
                result, keep = self._hash(resolved, safetensors)
                if keep:
                    self._save(result)
        except Exception as err:  # never into the save path; the message lands in the record
            logger.warning("provenance: hashing %s failed", resolved, exc_info=True)
            result, keep = HashResult(resolved, error=f"hashing failed: {type(err).__name__}: {err}"), False
        finally:
            with self._lock:
                if keep:
                    self._index[resolved] = result
                del self._inflight[version]
            future.set_result(result)
        return result

    # -- hashing ---------------------------------------------------------------------------
    def _hash(self, path: str, safetensors: bool) -> tuple[HashResult, bool]:
        """Hash one file; the flag says whether the result may be cached."""
        started = time.time_ns()
        try:
            with open(path, "rb", buffering=0) as file:
                before = os.fstat(file.fileno())
                offset, metadata, header_error = None, {}, None
                if safetensors:
                    try:
                        header = read_header(file, before.st_size)
                        offset, metadata = header.data_offset, header.metadata
                    except HeaderError as err:
                        header_error = str(err)
                digests = digest(file, offset, self.read_size)
                after = os.fstat(file.fileno())
        except OSError as err:
            return self._failed(path, err), False
        with self._lock:
            self.stats.hashed += 1
            self.stats.bytes_hashed += digests.size
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or digests.size != after.st_size:
            return HashResult(path, error="the file changed while it was being hashed"), False
        result = HashResult(
            path=path,
            size=before.st_size,
            mtime_ns=before.st_mtime_ns,
            sha256=digests.sha256,
            autov3=digests.autov3,
            metadata=metadata,
            header_error=header_error,
        )
        racy = abs(before.st_mtime_ns - started) < RACY_WINDOW_NS
        return result, not racy

    def _failed(self, path: str, err: BaseException) -> HashResult:
        with self._lock:
            self.stats.failed += 1
        return HashResult(path, error=describe(err))

    # -- the cache file -----------------------------------------------------------------------
    def _load_stored(self, path: str) -> HashResult | None:
        store = self._store
        if store is None:
            return None
        try:
            return store.load(path)
        except sqlite3.Error as err:
            self._store_failed(err)
            return None

    def _save(self, result: HashResult) -> None:
        store = self._store
        if store is None:
            return
        try:
            store.save(result)
        except sqlite3.Error as err:
            self._store_failed(err)

    def _store_failed(self, err: sqlite3.Error) -> None:
        if is_corruption(err):
            logger.warning("provenance: hash cache %s is damaged (%s); memory only until restart", self.path, err)
            self._disable_store()
        else:  # busy past the timeout, disk full: this entry is hashed again next time
            logger.warning("provenance: hash cache %s: %s", self.path, err)

    def _disable_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(sqlite3.Error):
                store.close()

    def close(self) -> None:
        self._disable_store()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe(err: BaseException) -> str:
    """A short reason for a record: 'file not found', 'permission denied', ..."""
    if isinstance(err, FileNotFoundError):
        return "file not found"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, IsADirectoryError):
        return "not a regular file"
    if isinstance(err, OSError) and err.strerror:
        return f"unreadable: {err.strerror.lower()}"
    return f"unreadable: {err}"


_shared: dict[str | None, HashCache] = {}
_shared_lock = threading.Lock()


def shared_cache(directory: str | Path | None) -> HashCache:
    """One HashCache per cache directory in this process, so every save shares its index and hashes."""
    key = os.path.realpath(directory) if directory is not None else None
    with _shared_lock:
        cache = _shared.get(key)
        if cache is None:
            cache = _shared[key] = HashCache(key)
        return cache

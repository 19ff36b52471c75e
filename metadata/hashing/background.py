"""Model hashing off the save's path: a small pool of daemon threads that fills the hash cache early.

The save node used to hash a new checkpoint synchronously (about a second per GiB), so the first
save after a model appeared was the slowest of every pack. Now whatever knows early which models
a prompt uses (ComfyUI accepting the prompt, a loader running) submits them here; by the time the
save runs, the hashes are usually in the cache. The save waits only for what is still missing, up
to a time cap, and records a hash still running then as pending (a later save, or `provenance
convert` with --models-dir, fills it). Threads are daemons: a long hash never holds up ComfyUI's
exit. One worker by default: hashing is bound by the disk, and two readers thrash it.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path

from .. import settings
from ..settings_keys import DEFAULT_HASH_WAIT_S, DEFAULT_HASH_WORKERS, env_name
from ..workers import Workers
from .cache import HashCache
from .result import HashResult

logger = logging.getLogger(__name__)

ENV_WORKERS = env_name("hash_workers")
ENV_WAIT = env_name("hash_wait_s")
DEFAULT_WORKERS = DEFAULT_HASH_WORKERS
DEFAULT_WAIT_S = DEFAULT_HASH_WAIT_S


def wait_cap() -> float:
    """Seconds a save waits for missing hashes: the `hash_wait_s` setting (PROVENANCE_HASH_WAIT_S, default 5)."""
    return settings.current().hash_wait_s


class Background:
    """Hashes files into one HashCache on worker threads; each file is queued at most once at a time."""

    def __init__(self, cache: HashCache, workers: int | None = None) -> None:
        self.cache = cache
        count = settings.current().hash_workers if workers is None else workers
        self._workers = Workers(count, "provenance-hash")
        self._lock = threading.Lock()
        self._pending: dict[str, Future[HashResult]] = {}

    def submit(self, path: str | Path) -> Future[HashResult]:
        """The hash of `path` as it is now: done at once when cached, else queued (or already queued)."""
        key = os.path.realpath(path)
        cached = self.cache.lookup(key)
        if cached is not None:
            done: Future[HashResult] = Future()
            done.set_result(cached)
            return done
        with self._lock:
            future = self._pending.get(key)
            if future is None:
                future = self._workers.submit(self.cache.get, path)  # its own name says if it is safetensors
                self._pending[key] = future
                future.add_done_callback(functools.partial(self._forget, key))
            return future

    def submit_all(self, paths: Iterable[str | Path]) -> None:
        for path in paths:
            self.submit(path)

    def _forget(self, key: str, _future: Future[HashResult]) -> None:
        with self._lock:
            self._pending.pop(key, None)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


_shared: dict[int, Background] = {}
_shared_lock = threading.Lock()


def shared_background(cache: HashCache) -> Background:
    """One Background per cache in this process (the save node and the prompt handler share it)."""
    with _shared_lock:
        found = _shared.get(id(cache))
        if found is None or found.cache is not cache:
            found = _shared[id(cache)] = Background(cache)
        return found

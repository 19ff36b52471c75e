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
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .cache import HashCache
from .result import HashResult

logger = logging.getLogger(__name__)

ENV_WORKERS = "PROVENANCE_HASH_WORKERS"
ENV_WAIT = "PROVENANCE_HASH_WAIT_S"
DEFAULT_WORKERS = 1
# How long a save waits for hashes still being computed before it records them as pending.
DEFAULT_WAIT_S = 5.0


def _env_number(name: str, default: float, lowest: float) -> float:
    try:
        return max(lowest, float(os.environ.get(name, default)))
    except ValueError:
        return default


def wait_cap() -> float:
    """Seconds a save waits for missing hashes (PROVENANCE_HASH_WAIT_S, default 5)."""
    return _env_number(ENV_WAIT, DEFAULT_WAIT_S, 0.0)


class Workers:
    """A fixed number of daemon threads running submitted calls in order; each call gets a Future."""

    def __init__(self, count: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((fn, args, future))
        return future

    def _work(self) -> None:
        while True:
            fn, args, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # delivered to whoever waits; a worker never dies of it
                future.set_exception(err)


class Background:
    """Hashes files into one HashCache on worker threads; each file is queued at most once at a time."""

    def __init__(self, cache: HashCache, workers: int | None = None) -> None:
        self.cache = cache
        count = int(_env_number(ENV_WORKERS, DEFAULT_WORKERS, 1)) if workers is None else workers
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

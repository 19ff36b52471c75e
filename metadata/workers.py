"""A fixed pool of daemon threads for work taken off the caller's path (hashing, encoding).

Daemon threads, unlike concurrent.futures' pool, never hold up the host's exit (ComfyUI's) while a
long job runs; each call still gets a Future, and a call that raises never kills its worker.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


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

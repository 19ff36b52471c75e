"""The save nodes' background writer: saved paths go on a bounded queue, one daemon thread indexes them.

`submit` never blocks and never raises: a full queue drops its oldest path (counted, one warning),
so a save is never slowed by the catalogue. The thread opens the catalogue lazily, indexes each
path with `indexer.examine`/`indexer.store`, and retries a failing database with a bounded backoff
(one warning per failure streak); a path it still cannot write is counted as failed. `stats()` is
what GET /provenance/status reports; `stop()` flushes (tests, process exit).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..metadata import settings
from .indexer import examine, store
from .store import Catalogue, open_catalogue

logger = logging.getLogger(__name__)

CAPACITY = 1000
BACKOFF_S = 0.5  # the first retry's wait; doubled per failure up to MAX_BACKOFF_S
MAX_BACKOFF_S = 30.0
ATTEMPTS = 8  # tries per path before it is counted as failed (about 2 minutes with the defaults)
FILE_NAME = "catalogue.sqlite"


def location(user_directory: Path) -> str:
    """Where the save nodes index: the `catalogue_url` setting (or $PROVENANCE_CATALOGUE_URL), else
    `<ComfyUI user directory>/provenance/catalogue.sqlite`."""
    return settings.current().catalogue_url or str(user_directory / "provenance" / FILE_NAME)


class Writer:
    """One catalogue's queue and thread; the thread starts with the first submit."""

    def __init__(
        self,
        where: str,
        *,
        capacity: int = CAPACITY,
        backoff_s: float = BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.where = where
        self.backoff_s, self.max_backoff_s, self.attempts = backoff_s, max_backoff_s, attempts
        self._queue: deque[str] = deque(maxlen=capacity)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._stopping = False
        self._catalogue: Catalogue | None = None
        self._failing = False
        self.counts = {"submitted": 0, "indexed": 0, "skipped": 0, "failed": 0, "dropped": 0, "retries": 0}
        self.last_error: str | None = None

    def submit(self, paths: list[str]) -> None:
        """Queue `paths` for indexing; never blocks (a full queue drops its oldest path, counted)."""
        with self._cond:
            for path in paths:
                if len(self._queue) == self._queue.maxlen:
                    if not self.counts["dropped"]:
                        logger.warning(
                            "provenance: the catalogue queue is full (%d paths); the oldest are dropped "
                            "(`provenance index` catches up; see /provenance/status)",
                            self._queue.maxlen,
                        )
                    self.counts["dropped"] += 1
                self._queue.append(path)
                self.counts["submitted"] += 1
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="provenance-catalogue", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued path was indexed or given up; False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        """Flush, end the thread and close the catalogue; False when the queue did not drain in time."""
        drained = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return drained

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {**self.counts, "queued": len(self._queue), "failing": self._failing, "last_error": self.last_error}

    # -- the thread --------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    break
                path = self._queue.popleft()
                self._busy = True
            try:
                self._index(path)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        self._close()

    def _index(self, path: str) -> None:
        found = examine(path)
        if found.error is not None:
            with self._cond:
                self.counts["skipped"] += 1
            logger.debug("provenance: catalogue skipped %s: %s", path, found.error)
            return
        wait = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                if self._catalogue is None:
                    self._catalogue = open_catalogue(self.where)
                store(self._catalogue, found)
            except Exception as err:  # any database trouble: retried, never raised into a save
                self._failed(path, err)
                if attempt == self.attempts or self._stopping_now():
                    break
                with self._cond:
                    self.counts["retries"] += 1
                    self._cond.wait_for(lambda: self._stopping, wait)
                wait = min(wait * 2, self.max_backoff_s)
                continue
            self._recovered()
            return
        with self._cond:
            self.counts["failed"] += 1

    def _stopping_now(self) -> bool:
        with self._cond:
            return self._stopping

    def _failed(self, path: str, err: BaseException) -> None:
        self._close()  # a fresh connection next time: the database may have been replaced or unlocked
        words = " ".join(str(err).split()) or type(err).__name__
        with self._cond:
            first, self._failing, self.last_error = not self._failing, True, words
        if first:
            logger.warning(
                "provenance: cannot index %s into the catalogue (%s); retrying in the background", path, words
            )

    def _recovered(self) -> None:
        with self._cond:
            was, self._failing = self._failing, False
            self.counts["indexed"] += 1
        if was:
            logger.warning("provenance: the catalogue %s is writable again", self.where)

    def _close(self) -> None:
        catalogue, self._catalogue = self._catalogue, None
        if catalogue is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                catalogue.close()


# One writer per catalogue location in this process (saves from every node share it).
_writers: dict[str, Writer] = {}
_lock = threading.Lock()


def shared(where: str) -> Writer:
    with _lock:
        writer = _writers.get(where)
        if writer is None:
            writer = _writers[where] = Writer(where)
        return writer


def status() -> dict[str, Any]:
    """What /provenance/status says of the catalogue writers: counts per location."""
    with _lock:
        writers = dict(_writers)
    return {where: writer.stats() for where, writer in writers.items()}


def stop_all(timeout: float = 30.0) -> None:
    """Flush and forget every shared writer (tests)."""
    with _lock:
        writers = list(_writers.values())
        _writers.clear()
    for writer in writers:
        writer.stop(timeout)

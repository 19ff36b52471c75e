"""Model file hashes for records: SHA-256, AutoV2, AutoV3 and safetensors header metadata, cached.

`hash_models` is what the save path calls. No ComfyUI import here: ComfyUI's locator and cache
folder come from `compat.model_locator()` and `compat.hash_cache_directory()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from ..record import Model
from .background import Background, shared_background, wait_cap
from .cache import CACHE_FILENAME, CacheStats, HashCache, shared_cache
from .digest import Digests, digest
from .header import Header, HeaderError, read_header, read_header_file, title_of
from .locate import ROLE_FOLDERS, FolderLocator, ModelLocator, RootsLocator
from .result import HashResult

logger = logging.getLogger(__name__)

__all__ = [
    "CACHE_FILENAME",
    "ROLE_FOLDERS",
    "Background",
    "CacheStats",
    "Digests",
    "FolderLocator",
    "HashCache",
    "HashResult",
    "Header",
    "HeaderError",
    "ModelLocator",
    "RootsLocator",
    "apply",
    "digest",
    "hash_models",
    "read_header",
    "read_header_file",
    "shared_background",
    "shared_cache",
    "title_of",
    "wait_cap",
]


def hash_models(
    models: Iterable[Model],
    locator: ModelLocator,
    cache: HashCache,
    *,
    background: Background | None = None,
    wait_s: float | None = None,
) -> None:
    """Fill each model's `hashes` and header `metadata`; a model that cannot be hashed says why.

    Only the models given are hashed (the save path passes those upstream of its save node).
    With `background`, hashing happens on its workers and this waits at most `wait_s` seconds in
    all: a hash still running then is left to finish there and the model is marked
    `hash_pending`. Never raises for a missing or unreadable file: `model.other["hash_error"]`
    records it.
    """
    deadline = None if wait_s is None else time.monotonic() + wait_s
    located: list[tuple[Model, Path]] = []
    for model in models:
        try:
            path = locator.locate(model.role, model.name)
        except Exception as err:  # a third-party locator must not fail a save
            logger.warning("provenance: locating %s %r failed", model.role, model.name, exc_info=True)
            model.other["hash_error"] = f"locating failed: {type(err).__name__}: {err}"
            continue
        if path is None:
            model.other["hash_error"] = "file not found"
            continue
        located.append((model, path))
    if background is None:
        for model, path in located:
            apply(model, cache.get(path))
        return
    futures = [(model, background.submit(path)) for model, path in located]  # all queued before any wait
    for model, future in futures:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            result = future.result(timeout=left)
        except FutureTimeout:
            model.other["hash_pending"] = True
            continue
        apply(model, result)


def apply(model: Model, result: HashResult) -> None:
    """Write one result into a record's model entry (only curated header keys, never the path)."""
    model.other.pop("hash_pending", None)
    if result.error is not None:
        model.other["hash_error"] = result.error
        return
    model.other.pop("hash_error", None)
    model.hashes.update(result.hashes())
    if result.metadata:
        model.other["metadata"] = dict(result.metadata)
    if result.header_error is not None:
        model.other["header_error"] = result.header_error

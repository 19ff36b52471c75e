"""Model file hashes for records: SHA-256, AutoV2, AutoV3 and safetensors header metadata, cached.

`hash_models` is what the save path calls. No ComfyUI import here: ComfyUI's locator and cache
folder come from `compat.model_locator()` and `compat.hash_cache_directory()`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..record import Model
from .cache import CACHE_FILENAME, CacheStats, HashCache, shared_cache
from .digest import Digests, digest
from .header import Header, HeaderError, read_header, read_header_file, title_of
from .locate import ROLE_FOLDERS, FolderLocator, ModelLocator, RootsLocator
from .result import HashResult

logger = logging.getLogger(__name__)

__all__ = [
    "CACHE_FILENAME",
    "ROLE_FOLDERS",
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
    "shared_cache",
    "title_of",
]


def hash_models(models: Iterable[Model], locator: ModelLocator, cache: HashCache) -> None:
    """Fill each model's `hashes` and header `metadata`; a model that cannot be hashed says why.

    Only the models given are hashed (the save path passes those upstream of its save node).
    Never raises for a missing or unreadable file: `model.other["hash_error"]` records it.
    """
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
        apply(model, cache.get(path))


def apply(model: Model, result: HashResult) -> None:
    """Write one result into a record's model entry (only curated header keys, never the path)."""
    if result.error is not None:
        model.other["hash_error"] = result.error
        return
    model.other.pop("hash_error", None)
    model.hashes.update(result.hashes())
    if result.metadata:
        model.other["metadata"] = dict(result.metadata)
    if result.header_error is not None:
        model.other["header_error"] = result.header_error

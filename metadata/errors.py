"""The pack's exception hierarchy: every metadata failure is a MetadataError."""

from __future__ import annotations


class MetadataError(Exception):
    """Base class for every error raised by the metadata library."""


class SerializeError(MetadataError):
    """A record could not be turned into a container's bytes."""


class ReadError(MetadataError):
    """A file could not be read back into a record (malformed, truncated, hostile)."""


class LimitExceeded(MetadataError):
    """A payload does not fit a container's limit; callers fall back and record why."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size:,} bytes, over the {limit:,}-byte limit")
        self.what = what
        self.size = size
        self.limit = limit


class GraphTooLarge(MetadataError):
    """A prompt graph has more nodes than the parser walks (limits.GRAPH_NODES_MAX)."""

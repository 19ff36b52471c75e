"""Provenance metadata: the canonical record, the graph parser, the format writers and readers."""

from __future__ import annotations

from .errors import LimitExceeded, MetadataError, ReadError, SerializeError
from .record import SCHEMA_ID, Record

__all__ = ["SCHEMA_ID", "LimitExceeded", "MetadataError", "ReadError", "Record", "SerializeError"]

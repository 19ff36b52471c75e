"""The safetensors header: where the tensor data starts, and the curated `__metadata__` a record keeps.

The format is an 8-byte little-endian length N, N bytes of JSON, then raw tensor data. Only the
header is read, never a tensor. A header that is not what the format says is refused with a
`HeaderError` naming the problem; the caller still hashes the file as a whole.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ReadError

SAFETENSORS_SUFFIXES = frozenset({".safetensors", ".sft"})
# The safetensors specification caps the JSON header at 100 MB (safetensors/src/tensor.rs MAX_HEADER_SIZE).
HEADER_MAX = 100_000_000
# One header value (a description, a network_args JSON) kept in a record; longer ones are cut.
METADATA_VALUE_MAX = 1024

# ModelSpec (Stability AI) keys worth a record; modelspec.thumbnail is a data URL and stays out.
MODELSPEC_KEYS = (
    "modelspec.sai_model_spec",
    "modelspec.title",
    "modelspec.architecture",
    "modelspec.implementation",
    "modelspec.resolution",
    "modelspec.prediction_type",
    "modelspec.hash_sha256",
    "modelspec.author",
    "modelspec.date",
    "modelspec.description",
    "modelspec.license",
    "modelspec.usage_hint",
    "modelspec.trigger_phrase",
    "modelspec.tags",
    "modelspec.merged_from",
    "modelspec.timestep_range",
    "modelspec.encoder_layer",
)
# kohya-ss training keys that say what a LoRA is and what it was trained on. Dataset details
# (ss_tag_frequency, ss_dataset_dirs, ss_bucket_info) can run to megabytes and stay out.
KOHYA_KEYS = (
    "ss_output_name",
    "ss_network_module",
    "ss_network_dim",
    "ss_network_alpha",
    "ss_network_args",
    "ss_base_model_version",
    "ss_sd_model_name",
    "ss_sd_model_hash",
    "ss_new_sd_model_hash",
    "ss_v2",
    "ss_resolution",
    "ss_clip_skip",
    "ss_epoch",
    "ss_steps",
    "ss_training_comment",
    # Embedded by the trainer and often wrong (standards.md §3.2): kept as a claim, never as our hash.
    "sshs_model_hash",
    "sshs_legacy_hash",
)
CURATED_KEYS = MODELSPEC_KEYS + KOHYA_KEYS


class HeaderError(ReadError):
    """A .safetensors file whose header is not a safetensors header (truncated, oversized, not JSON)."""


@dataclass(frozen=True)
class Header:
    """What the hashing layer needs from a safetensors header."""

    length: int
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def data_offset(self) -> int:
        """Where the tensor data (the bytes AutoV3 hashes) starts."""
        return 8 + self.length


def is_safetensors(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SAFETENSORS_SUFFIXES


def read_header(file: BinaryIO, file_size: int) -> Header:
    """Parse the header of an open file positioned anywhere; raises HeaderError when it is not one."""
    if file_size < 8:
        raise HeaderError(f"safetensors header refused: the file is {file_size} bytes, shorter than the 8-byte length")
    file.seek(0)
    (length,) = struct.unpack("<Q", file.read(8))
    if length > HEADER_MAX:
        raise HeaderError(f"safetensors header refused: {length:,} bytes, over the {HEADER_MAX:,}-byte limit")
    if 8 + length > file_size:
        raise HeaderError(f"safetensors header refused: {length:,} bytes, past the end of a {file_size:,}-byte file")
    raw = _read_exactly(file, length)
    if not raw.startswith(b"{"):
        raise HeaderError("safetensors header refused: it does not start with '{'")
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise HeaderError(f"safetensors header refused: not UTF-8 JSON ({err})") from err
    meta = parsed.get("__metadata__")
    return Header(length=length, metadata=curate(meta) if isinstance(meta, Mapping) else {})


def _read_exactly(file: BinaryIO, size: int) -> bytes:
    """`size` bytes; an unbuffered read may return fewer, so keep reading until EOF."""
    parts, left = [], size
    while left > 0:
        part = file.read(left)
        if not part:
            raise HeaderError("safetensors header refused: the file ended inside the header")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_header_file(path: str | Path) -> Header:
    """The header of a file on disk; OSError when it cannot be read, HeaderError when it is not one."""
    with open(path, "rb") as file:
        return read_header(file, os.fstat(file.fileno()).st_size)


def curate(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The `__metadata__` keys a record keeps, as strings, each at most METADATA_VALUE_MAX characters."""
    out: dict[str, str] = {}
    for key in CURATED_KEYS:
        value = metadata.get(key)
        if isinstance(value, (dict, list)) or value is None:
            continue  # the format allows strings only; a nested value is some tool's mistake
        text = value if isinstance(value, str) else json.dumps(value)
        if text.strip():
            out[key] = text if len(text) <= METADATA_VALUE_MAX else text[: METADATA_VALUE_MAX - 1] + "…"
    return out


def title_of(metadata: Mapping[str, str]) -> str | None:
    """The model's own name for itself: ModelSpec's title, else kohya's output name."""
    return metadata.get("modelspec.title") or metadata.get("ss_output_name") or None

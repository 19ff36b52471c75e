"""SHA-256 of a whole model file and of its safetensors tensor data, from one read of the file."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from ..limits import MIB

# benchmarks/hash_speed.py, 1 GiB safetensors from page cache, SHA-256 + AutoV3: 256 KiB reads 926 MiB/s,
# 1 MiB 992, 4 MiB 1047, 16 MiB 1047. From 4 MiB the per-read AutoV3 thread hand-off is lost in the noise.
READ_SIZE = 4 * MIB


@dataclass(frozen=True)
class Digests:
    """Lowercase hex digests of one file version."""

    sha256: str
    # SHA-256 of the bytes after the safetensors header (Civitai AutoV3, kohya sshs_model_hash,
    # A1111's addnet hash); None when the file is not read as safetensors.
    autov3: str | None
    size: int

    @property
    def autov2(self) -> str:
        """A1111's `Model hash` and Civitai's AutoV2: the whole-file SHA-256 cut to 10 hex."""
        return self.sha256[:10]


def digest(file: BinaryIO, data_offset: int | None = None, read_size: int = READ_SIZE) -> Digests:
    """Hash `file` from its start; with `data_offset`, also the bytes from that offset on (AutoV3).

    Both hashes are fed from the same reads into one reusable buffer. The AutoV3 hash runs on a
    helper thread while this one does the whole-file hash (hashlib releases the GIL on large
    updates), so a safetensors file costs about one hash of wall time, not two.
    """
    buffer = bytearray(read_size)
    view = memoryview(buffer)
    whole = hashlib.sha256()
    file.seek(0)
    if data_offset is None:
        size = 0
        while n := file.readinto(buffer):  # type: ignore[attr-defined]
            whole.update(view[:n])
            size += n
        return Digests(whole.hexdigest(), None, size)
    data = hashlib.sha256()
    with ThreadPoolExecutor(1, thread_name_prefix="provenance-autov3") as helper:
        size = 0
        while n := file.readinto(buffer):  # type: ignore[attr-defined]
            chunk = view[:n]
            if size + n > data_offset:
                future = helper.submit(data.update, chunk[max(0, data_offset - size) :])
                whole.update(chunk)
                future.result()
            else:
                whole.update(chunk)
            size += n
    return Digests(whole.hexdigest(), data.hexdigest(), size)

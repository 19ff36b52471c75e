"""Does a file carry a C2PA manifest store at all? Answered by a bounded walk of its container, cheaply.

`verify` hands a file to c2pa-python's native reader only when this finds a store: a hostile file
without one (a box flood, a decompression bomb) never reaches code whose budgets are not ours. The
walk reads headers only (PNG chunks, JPEG segments, RIFF chunks, top-level ISO BMFF boxes), each
within the file's size and READ_CHUNKS_MAX; GIF, MP3 and FLAC, whose stores sit in extension blocks or
ID3 frames, are searched for the store's JUMBF label in blocks, up to SEARCH_MAX_BYTES.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from ..budget import open_regular
from ..limits import MIB, READ_CHUNKS_MAX

# A JUMBF description box (`jumd`) whose type UUID starts with "c2pa": the manifest store's label.
LABEL = b"jumdc2pa"
C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
SEARCH_MAX_BYTES = 256 * MIB
BLOCK = 1 * MIB


def has_manifest(path: Path, fmt: str) -> bool:
    """True when the container holds a C2PA manifest store where C2PA puts one (damaged or not)."""
    with open_regular(path) as fp:
        size = os.fstat(fp.fileno()).st_size
        walk = {"png": _png, "jpeg": _jpeg, "webp": _webp, "mp4": _bmff, "mov": _bmff}.get(fmt, _search)
        try:
            return walk(fp, size)
        except struct.error:  # a header cut short by the end of the file: no store past it
            return False


def _png(fp: BinaryIO, size: int) -> bool:
    pos = 8
    for _ in range(READ_CHUNKS_MAX):
        if pos + 8 > size:
            return False
        fp.seek(pos)
        length, kind = struct.unpack(">I4s", fp.read(8))
        if kind == b"caBX":
            return True
        if kind == b"IEND":
            return False
        pos += 12 + length
    return False


def _jpeg(fp: BinaryIO, size: int) -> bool:
    pos = 2
    for _ in range(READ_CHUNKS_MAX):
        fp.seek(pos)
        head = fp.read(4)
        if len(head) < 4 or head[0] != 0xFF:
            return False
        marker = head[1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no header segment after
            return False
        if marker == 0xFF:
            pos += 1
            continue
        length = struct.unpack(">H", head[2:])[0]
        if marker == 0xEB and fp.read(2) == b"JP":
            return True
        pos += 2 + length
        if pos > size:
            return False
    return False


def _webp(fp: BinaryIO, size: int) -> bool:
    pos = 12
    for _ in range(READ_CHUNKS_MAX):
        if pos + 8 > size:
            return False
        fp.seek(pos)
        kind, length = struct.unpack("<4sI", fp.read(8))
        if kind == b"C2PA":
            return True
        pos += 8 + length + (length & 1)
    return False


def _bmff(fp: BinaryIO, size: int) -> bool:
    pos = 0
    for _ in range(READ_CHUNKS_MAX):
        if pos + 8 > size:
            return False
        fp.seek(pos)
        length, kind = struct.unpack(">I4s", fp.read(8))
        header = 8
        if length == 1:
            length, header = struct.unpack(">Q", fp.read(8))[0], 16
        elif length == 0:
            length = size - pos
        if length < header:
            return False
        if kind == b"uuid" and fp.read(16) == C2PA_UUID:
            return True
        pos += length
    return False


def _search(fp: BinaryIO, size: int) -> bool:
    tail = b""
    read = 0
    while read < min(size, SEARCH_MAX_BYTES):
        block = fp.read(BLOCK)
        if not block:
            return False
        if LABEL in tail + block:
            return True
        tail = block[-(len(LABEL) - 1) :]
        read += len(block)
    return False

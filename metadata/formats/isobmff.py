"""ISO BMFF (MP4/MOV) boxes: the checked walk over box headers that the MP4 reader and writer share."""

# Every size is checked against its parent and the file before anything is read, so a lying size
# fails here, never as a read past the data; each box found is charged to the budget.

from __future__ import annotations

import struct
from typing import BinaryIO, NamedTuple

from ..budget import Budget
from ..errors import ReadError

XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
TEXT_ATOM_MAX = 0xFFFF  # a QuickTime text atom's length is 16-bit


class Box(NamedTuple):
    kind: bytes
    start: int  # the header's first byte
    body: int  # the payload's first byte
    end: int

    @property
    def size(self) -> int:
        return self.end - self.body


def box_name(kind: bytes) -> str:
    return repr(kind)[1:]  # quoted and escaped: one line, whatever the bytes


def boxes(fp: BinaryIO, start: int, end: int, budget: Budget, *, top: bool = False) -> list[Box]:
    """The boxes from `start` to `end`, each size checked against its parent (or the file) first."""
    found: list[Box] = []
    pos = start
    while pos < end:
        fp.seek(pos)
        head = fp.read(min(16, end - pos))
        if len(head) < 8:
            if not head.strip(b"\x00"):
                break  # QuickTime may end a list with a zero word
            raise ReadError(f"MP4 is damaged: {len(head)} stray bytes where a box should start (byte {pos:,})")
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                raise ReadError(f"MP4 box {box_name(kind)} is cut inside its 64-bit size (truncated)")
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif size == 0:
            if not top:
                raise ReadError(f"MP4 box {box_name(kind)} has size 0 inside another box (damaged)")
            size = end - pos
        if size < header:
            raise ReadError(f"MP4 box {box_name(kind)} claims {size:,} bytes, less than its own header (damaged)")
        if size > end - pos:
            where = "the file" if top else "its parent box"
            raise ReadError(
                f"MP4 box {box_name(kind)} claims {size:,} bytes, past the end of {where} (truncated or damaged)"
            )
        budget.chunk("MP4 atom")
        found.append(Box(kind, pos, pos + header, pos + size))
        pos += size
    return found


def mdta_keys(payload: bytes | memoryview, budget: Budget) -> list[tuple[bytes, bytes]]:
    """(namespace, name) of each entry of a `keys` box, in order (ilst items refer to them from 1)."""
    if len(payload) < 8:
        raise ReadError("MP4 keys box is truncated")
    count = int.from_bytes(payload[4:8], "big")
    if count * 8 > len(payload) - 8:
        raise ReadError(f"MP4 keys box claims {count:,} keys in {len(payload):,} bytes (damaged)")
    out, pos = [], 8
    for _ in range(count):
        budget.chunk("MP4 key")
        size = int.from_bytes(payload[pos : pos + 4], "big")
        if size < 8 or pos + size > len(payload):
            raise ReadError("MP4 keys box holds a key that runs past its end (damaged)")
        out.append((bytes(payload[pos + 4 : pos + 8]), bytes(payload[pos + 8 : pos + size])))
        pos += size
    return out


def meta_skip(first8: bytes | memoryview, size: int) -> int:
    """Bytes before a meta's children: ISO's is a full box (version/flags), QuickTime's starts with hdlr."""
    return 0 if bytes(first8[4:8]) == b"hdlr" else min(4, size)

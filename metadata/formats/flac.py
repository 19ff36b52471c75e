"""FLAC reader: STREAMINFO for the sound, the VORBIS_COMMENT block for the tags.

Core's SaveAudio writes ComfyUI's graphs through PyAV as Vorbis comments (`prompt=…`,
`workflow=…`); ours adds `comfyui_provenance=…` and the A1111 text, which ffmpeg stores as
DESCRIPTION. The metadata blocks are walked header by header up to the last-block flag and the
audio frames after them are never read. The Vorbis comment parser is shared with Ogg (Vorbis,
Opus and FLAC-in-Ogg carry the same structure). A FLAC file may start with an ID3v2 tag: it
sniffs as MP3 (both begin `ID3`), and the MP3 reader hands the stream after the tag here.
"""

from __future__ import annotations

import codecs
from typing import Any, BinaryIO

from ..budget import Budget
from ..errors import ReadError
from .base import Embedded, register_container
from .tags import embedded_from_tags

MAGIC = b"fLaC"
STREAMINFO = 0
VORBIS_COMMENT = 4
INVALID_BLOCK = 127
BLOCK_NAMES = {
    0: "STREAMINFO",
    1: "PADDING",
    2: "APPLICATION",
    3: "SEEKTABLE",
    4: "VORBIS_COMMENT",
    5: "CUESHEET",
    6: "PICTURE",
}
STREAMINFO_SIZE = 34
BLOCK_HEADER = 4

Pairs = list[tuple[str, str]]


class FlacContainer:
    name = "flac"
    extensions: tuple[str, ...] = (".flac",)
    mime = "audio/flac"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """The Vorbis comments and STREAMINFO; an ID3v2 tag in front is skipped unread."""
        from .mp3 import id3_size  # mp3 imports this module to hand over ID3-prefixed FLAC

        end = fp.seek(0, 2)
        fp.seek(0)
        head = fp.read(10)
        start = id3_size(head) if head.startswith(b"ID3") else 0
        pairs, media = read_stream(fp, start, end, budget)
        return embedded_from_tags(self.name, pairs, budget, media=media)


def read_stream(fp: BinaryIO, start: int, end: int, budget: Budget) -> tuple[Pairs, dict[str, Any]]:
    """(tags, media) of the FLAC stream at byte `start`: its metadata blocks, every length checked
    against the file's `end` before anything is read."""
    if start + len(MAGIC) > end:
        raise ReadError("FLAC is truncated before its fLaC marker")
    fp.seek(start)
    if fp.read(len(MAGIC)) != MAGIC:
        raise ReadError("not a FLAC stream (no fLaC marker)")
    pos = start + len(MAGIC)
    pairs: Pairs | None = None
    media: dict[str, Any] = {}
    last = False
    while not last:
        budget.chunk("FLAC metadata block")
        header = fp.read(BLOCK_HEADER)
        if len(header) < BLOCK_HEADER:
            raise ReadError("FLAC is truncated: its metadata blocks end without a last-block flag")
        last, kind, size = bool(header[0] & 0x80), header[0] & 0x7F, int.from_bytes(header[1:], "big")
        pos += BLOCK_HEADER
        if kind == INVALID_BLOCK:
            raise ReadError("FLAC metadata block type 127 is invalid (damaged file)")
        if pos + size > end:
            block = BLOCK_NAMES.get(kind, f"metadata block {kind}")
            raise ReadError(f"FLAC {block} claims {size:,} bytes, past the end of the file (truncated or damaged)")
        if kind == STREAMINFO and not media:
            media = streaminfo_media(fp.read(min(size, STREAMINFO_SIZE)))
        elif kind == VORBIS_COMMENT and pairs is None:
            budget.load(size, "FLAC Vorbis comment block")
            pairs = vorbis_comments(fp.read(size), budget, "FLAC Vorbis comment block")
        pos += size
        fp.seek(pos)
    return pairs or [], media


def streaminfo_media(data: bytes) -> dict[str, Any]:
    """Sample rate, channels and duration from a STREAMINFO block (RFC 9639 §8.2)."""
    if len(data) < STREAMINFO_SIZE:
        raise ReadError(f"FLAC STREAMINFO is {len(data)} bytes, shorter than its {STREAMINFO_SIZE}")
    # 20 bits sample rate, 3 bits channels - 1, 5 bits bits per sample - 1, 36 bits total samples.
    bits = int.from_bytes(data[10:18], "big")
    rate, channels, total = bits >> 44, ((bits >> 41) & 0x7) + 1, bits & ((1 << 36) - 1)
    audio: dict[str, Any] = {"codec": "flac", "channels": channels}
    media: dict[str, Any] = {"audio": audio}
    if rate:  # 0 is reserved: a rate the stream does not say
        audio["sample_rate"] = rate
        if total:  # 0: the encoder did not know the length
            media["duration_s"] = total / rate
    return media


def vorbis_comments(data: bytes, budget: Budget, what: str) -> Pairs:
    """The `NAME=value` entries of a Vorbis comment structure (vendor, count, entries), in order.

    Every length is checked against `data` before it is used, so a count or an entry claiming
    gigabytes is a ReadError, never an allocation; entries cost the budget's chunk count each.
    """
    pos = _u32(data, 0, what) + 4  # skip the vendor string
    if pos > len(data):
        raise ReadError(f"{what}: the vendor string claims {pos - 4:,} bytes, more than the block holds")
    count = _u32(data, pos, what)
    pos += 4
    if count > (len(data) - pos) // 4:
        raise ReadError(f"{what} claims {count:,} comments, more than its {len(data):,} bytes can hold")
    view = memoryview(data)
    pairs: Pairs = []
    for _ in range(count):
        budget.chunk("Vorbis comment")
        size = _u32(data, pos, what)
        pos += 4
        if size > len(data) - pos:
            raise ReadError(
                f"{what}: a comment claims {size:,} bytes, past the end of the block (truncated or damaged)"
            )
        equals = data.find(b"=", pos, pos + size)
        if equals >= 0:  # an entry without `=` names nothing (the spec requires one)
            name = codecs.utf_8_decode(view[pos:equals], "replace")[0]
            pairs.append((name, codecs.utf_8_decode(view[equals + 1 : pos + size], "replace")[0]))
        pos += size
    return pairs


def _u32(data: bytes, pos: int, what: str) -> int:
    if pos + 4 > len(data):
        raise ReadError(f"{what} is truncated")
    return int.from_bytes(data[pos : pos + 4], "little")


register_container(FlacContainer())

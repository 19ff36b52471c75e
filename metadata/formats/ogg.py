"""Ogg reader (Opus, Vorbis, FLAC): the first stream's identification and comment headers.

Core's SaveAudioOpus writes ComfyUI's graphs through PyAV, which puts them in the Opus stream's
OpusTags comment packet (`prompt=…`, `workflow=…`); ours adds `comfyui_provenance` and the A1111
text the same way. Pages are walked from the start and the first logical stream's first two
packets reassembled from the lacing values (a packet may span many pages; what is held is charged
to the budget page by page). The duration is the last page's granule position of that stream,
found in the file's last 64 KiB; the audio packets between are never read.

Page CRCs are not checked: they catch transmission damage, not hostile input (a forger simply
recomputes them), every length here is bounded by the file's size and the budget whatever the
checksum says, and Ogg's unreflected CRC-32 has no C implementation in the standard library, so
checking a 25 MB comment packet would cost seconds of pure Python.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..budget import Budget
from ..errors import ReadError
from .base import Embedded, register_container
from .flac import STREAMINFO_SIZE, VORBIS_COMMENT, streaminfo_media, vorbis_comments
from .tags import embedded_from_tags

CAPTURE = b"OggS"
PAGE_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, sequence, CRC, segments
CONTINUED, FIRST = 0x01, 0x02
# How far back from the end the last page of the stream is looked for (a page is at most ~64 KiB).
TAIL = 64 * 1024
OPUS_RATE = 48_000  # Opus always decodes at 48 kHz; its header's "input rate" is only informative
# FLAC-in-Ogg's first packet: 0x7F "FLAC", version (2), header count (2), "fLaC", then STREAMINFO.
FLAC_STREAMINFO_AT = 13 + 4


@dataclass
class Stream:
    """What the identification header says about the stream and how its comment header starts."""

    format: str = "ogg"
    media: dict[str, Any] = field(default_factory=dict)
    comment_magic: bytes | None = None  # None: a codec whose comment header this reader does not know
    rate: int = 0
    pre_skip: int = 0
    flac: bool = False  # FLAC's comment packet is a VORBIS_COMMENT metadata block, not a prefixed header


@dataclass
class Page:
    flags: int
    granule: int
    serial: int
    lacing: bytes
    body_at: int


class OggContainer:
    name = "ogg"
    extensions: tuple[str, ...] = (".ogg", ".opus", ".oga")
    mime = "audio/ogg"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(CAPTURE)

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """The first stream's tags and media; format "opus" for an Opus stream, "ogg" otherwise."""
        end = fp.seek(0, 2)
        serial, (ident, comment) = _header_packets(fp, end, budget)
        stream = _identify(ident)
        pairs = _comments(stream, comment, budget)
        granule = _last_granule(fp, end, serial, budget)
        if granule is not None and stream.rate and granule > stream.pre_skip:
            stream.media["duration_s"] = (granule - stream.pre_skip) / stream.rate
        return embedded_from_tags(stream.format, pairs, budget, media=stream.media)


def _pages(fp: BinaryIO, end: int, budget: Budget) -> Iterator[Page]:
    """Every page from the start, each checked against the file's end before its body is touched."""
    pos = 0
    while pos < end:
        budget.chunk("Ogg page")
        fp.seek(pos)
        header = fp.read(PAGE_HEADER.size)
        if len(header) < PAGE_HEADER.size:
            raise ReadError(f"Ogg is truncated in the page header at byte {pos:,}")
        capture, version, flags, granule, serial, _, _, segments = PAGE_HEADER.unpack(header)
        if capture != CAPTURE:
            raise ReadError(f"Ogg page at byte {pos:,} has no OggS capture pattern (damaged file)")
        if version != 0:
            raise ReadError(f"Ogg page at byte {pos:,} is of unknown version {version}")
        lacing = fp.read(segments)
        body_at = pos + PAGE_HEADER.size + segments
        size = sum(lacing)
        if len(lacing) < segments or body_at + size > end:
            raise ReadError(f"Ogg page at byte {pos:,} claims {size:,} bytes, past the end of the file (truncated)")
        yield Page(flags, granule, serial, lacing, body_at)
        pos = body_at + size


def _header_packets(fp: BinaryIO, end: int, budget: Budget) -> tuple[int, tuple[bytes, bytes]]:
    """The first stream's serial number and its first two packets (identification and comments)."""
    serial: int | None = None
    packets: list[bytes] = []
    parts: list[bytes] = []
    for page in _pages(fp, end, budget):
        if serial is None:
            if not page.flags & FIRST:
                raise ReadError("Ogg's first page does not begin a stream (damaged file)")
            serial = page.serial
        if page.serial != serial:
            continue
        if parts and not page.flags & CONTINUED:
            raise ReadError("Ogg header packet is cut off by a page that does not continue it (damaged file)")
        size = sum(page.lacing)
        budget.load(size, "Ogg header page")
        fp.seek(page.body_at)
        body = fp.read(size)
        _split_packets(page, body, parts, packets)
        if len(packets) >= 2:
            return serial, (packets[0], packets[1])
    if parts:
        raise ReadError("Ogg is truncated inside a header packet")
    raise ReadError("Ogg stream ends before its comment header")


def _split_packets(page: Page, body: bytes, parts: list[bytes], packets: list[bytes]) -> None:
    """Append the page's segments to the packet in progress; a lacing value under 255 ends a packet.
    A continuation with no packet in progress (the stream was joined mid-packet) is dropped."""
    pos = start = 0
    dropping = bool(page.flags & CONTINUED) and not parts
    for lace in page.lacing:
        pos += lace
        if lace < 255:
            if not dropping:
                parts.append(body[start:pos])
                packets.append(b"".join(parts))
                parts.clear()
            dropping = False
            start = pos
    if start < pos and not dropping:
        parts.append(body[start:pos])


def _identify(packet: bytes) -> Stream:
    """The codec from the identification header; an unknown one leaves the media empty."""
    if packet.startswith(b"OpusHead") and len(packet) >= 19:
        pre_skip = int.from_bytes(packet[10:12], "little")
        audio = {"codec": "opus", "sample_rate": OPUS_RATE, "channels": packet[9]}
        return Stream("opus", {"audio": audio}, b"OpusTags", OPUS_RATE, pre_skip)
    if packet.startswith(b"\x01vorbis") and len(packet) >= 16:
        channels, rate = packet[11], int.from_bytes(packet[12:16], "little")
        audio = {"codec": "vorbis", "channels": channels, **({"sample_rate": rate} if rate else {})}
        return Stream("ogg", {"audio": audio}, b"\x03vorbis", rate)
    if packet.startswith(b"\x7fFLAC") and len(packet) >= FLAC_STREAMINFO_AT + STREAMINFO_SIZE:
        media = streaminfo_media(packet[FLAC_STREAMINFO_AT : FLAC_STREAMINFO_AT + STREAMINFO_SIZE])
        media.pop("duration_s", None)  # the granule position says it the same way for every codec
        return Stream("ogg", media, b"", media["audio"].get("sample_rate", 0), flac=True)
    return Stream()


def _comments(stream: Stream, packet: bytes, budget: Budget) -> list[tuple[str, str]]:
    """The comment header's `NAME=value` pairs (OpusTags, Vorbis's, or FLAC's VORBIS_COMMENT block)."""
    if stream.comment_magic is None:
        return []
    if stream.flac:
        if len(packet) < 4 or packet[0] & 0x7F != VORBIS_COMMENT:
            return []
        size = int.from_bytes(packet[1:4], "big")
        return vorbis_comments(packet[4 : 4 + size], budget, "Ogg FLAC comment block")
    if not packet.startswith(stream.comment_magic):
        codec = stream.media["audio"]["codec"]
        raise ReadError(f"Ogg {codec} stream's second packet is not its comment header")
    return vorbis_comments(packet[len(stream.comment_magic) :], budget, "Ogg comment header")


def _last_granule(fp: BinaryIO, end: int, serial: int, budget: Budget) -> int | None:
    """The granule position of the stream's last page within the file's last 64 KiB, if one is there."""
    start = max(0, end - TAIL)
    budget.load(end - start, "Ogg last pages")
    fp.seek(start)
    tail = fp.read(end - start)
    at = len(tail)
    while (at := tail.rfind(CAPTURE, 0, at)) >= 0:
        if at + PAGE_HEADER.size <= len(tail) and tail[at + 4] == 0:
            granule, page_serial = struct.unpack_from("<qI", tail, at + 6)
            if page_serial == serial and granule >= 0:  # -1: no packet ends on this page
                return int(granule)
    return None


register_container(OggContainer())

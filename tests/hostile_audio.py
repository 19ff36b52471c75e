"""Hostile and damaged FLAC, MP3 and Ogg files, built by hand byte for byte (no encoder needed).

Lying lengths at every level (block, tag, frame, page, comment count, comment entry), truncation
at several points, a zlib bomb in a compressed ID3 frame (declared small, declared huge, not
declared), a packet spread over 100,000 pages, a million empty FLAC blocks, invalid sync. Audio
data is zeros behind valid frame headers: the readers never decode it.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from hostile import MIB, Case, _write, case, combine_chain, deflated_zeros

PROMPT = json.dumps(combine_chain(1))
U32_MAX = 0xFFFF_FFFF


# -- FLAC ------------------------------------------------------------------------------------------


def streaminfo(rate: int = 44_100, channels: int = 2, samples: int = 44_100) -> bytes:
    bits = rate << 44 | (channels - 1) << 41 | 15 << 36 | samples
    return struct.pack(">HH", 4096, 4096) + b"\x00" * 6 + bits.to_bytes(8, "big") + b"\x00" * 16


def vorbis_comment(entries: list[bytes], *, count: int | None = None, vendor: bytes = b"hostile") -> bytes:
    body = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(entries) if count is None else count)
    return body + b"".join(struct.pack("<I", len(e)) + e for e in entries)


def flac_block(kind: int, data: bytes, *, last: bool = False, length: int | None = None) -> bytes:
    size = len(data) if length is None else length
    return bytes([kind | (0x80 if last else 0)]) + size.to_bytes(3, "big") + data


def flac_file(*blocks: bytes, audio: bytes = b"\xff\xf8" + b"\x00" * 64) -> bytes:
    return b"fLaC" + b"".join(blocks) + audio


def good_flac() -> bytes:
    comments = vorbis_comment([b"prompt=" + PROMPT.encode()])
    return flac_file(flac_block(0, streaminfo()), flac_block(4, comments, last=True))


@case("flac-truncated-in-comment-block")
def _(d: Path) -> Case:
    data = good_flac()
    return Case("", _write(d / "x.flac", data[: 4 + 38 + 4 + 40]), "error", "past the end")


@case("flac-truncated-after-marker")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.flac", b"fLaC\x00\x00"), "error", "truncated")


@case("flac-truncated-no-last-block")
def _(d: Path) -> Case:
    comments = vorbis_comment([b"prompt=" + PROMPT.encode()])
    data = flac_file(flac_block(0, streaminfo()), flac_block(4, comments), audio=b"")
    return Case("", _write(d / "x.flac", data), "error", "truncated")


@case("flac-block-claims-past-end")
def _(d: Path) -> Case:
    data = flac_file(flac_block(0, streaminfo()), flac_block(4, b"\x00" * 16, last=True, length=0xFFFFFF))
    return Case("", _write(d / "x.flac", data), "error", "past the end")


@case("flac-comment-count-4-billion")
def _(d: Path) -> Case:
    comments = vorbis_comment([b"prompt=" + PROMPT.encode()], count=U32_MAX)
    data = flac_file(flac_block(0, streaminfo()), flac_block(4, comments, last=True))
    return Case("", _write(d / "x.flac", data), "error", "comments")


@case("flac-comment-claims-4-gib")
def _(d: Path) -> Case:
    comments = vorbis_comment([b"prompt={}"])[:-13] + struct.pack("<I", U32_MAX) + b"prompt={}"
    data = flac_file(flac_block(0, streaminfo()), flac_block(4, comments, last=True))
    return Case("", _write(d / "x.flac", data), "error", "claims")


@case("flac-vendor-claims-4-gib")
def _(d: Path) -> Case:
    comments = struct.pack("<I", U32_MAX) + b"vendor" + struct.pack("<I", 0)
    data = flac_file(flac_block(0, streaminfo()), flac_block(4, comments, last=True))
    return Case("", _write(d / "x.flac", data), "error", "vendor")


@case("flac-million-padding-blocks")
def _(d: Path) -> Case:
    padding = flac_block(1, b"") * 1_000_000
    data = flac_file(flac_block(0, streaminfo()), padding, flac_block(4, vorbis_comment([]), last=True))
    return Case("", _write(d / "x.flac", data), "error", "more than")


@case("flac-streaminfo-short")
def _(d: Path) -> Case:
    data = flac_file(flac_block(0, streaminfo()[:10]), flac_block(4, vorbis_comment([]), last=True))
    return Case("", _write(d / "x.flac", data), "error", "streaminfo")


@case("flac-audio-garbage")
def _(d: Path) -> Case:
    """Sound metadata blocks and garbage where the audio frames should be: the tags still read."""
    data = good_flac()[:-66] + b"\x13\x37" * 5000
    return Case("", _write(d / "x.flac", data), "reads")


@case("flac-behind-id3")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.flac", id3_tag(4, [txxx("title", "x")]) + good_flac()), "reads")


@case("flac-behind-id3-size-lies")
def _(d: Path) -> Case:
    tag = id3_tag(4, [txxx("title", "x")])
    return Case("", _write(d / "x.flac", tag[:6] + syncsafe(200_000_000) + tag[10:] + good_flac()), "error", "past")


# -- MP3 ---------------------------------------------------------------------------------------------


def syncsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def id3_frame(
    version: int, frame_id: bytes, data: bytes, *, flags: bytes = b"\x00\x00", size: int | None = None
) -> bytes:
    length = len(data) if size is None else size
    if version == 2:
        return frame_id + length.to_bytes(3, "big") + data
    raw = syncsafe(length) if version == 4 else struct.pack(">I", length)
    return frame_id + raw + flags + data


def txxx(description: str, value: str, *, version: int = 4) -> bytes:
    return id3_frame(version, b"TXXX", b"\x03" + description.encode() + b"\x00" + value.encode())


def id3_tag(version: int, frames: list[bytes], *, flags: int = 0, padding: int = 16) -> bytes:
    body = b"".join(frames) + b"\x00" * padding
    return b"ID3" + bytes([version, 0, flags]) + syncsafe(len(body)) + body


# MPEG-1 layer III, 128 kbps, 44.1 kHz, joint stereo: 417 bytes a frame.
MPEG_HEADER = b"\xff\xfb\x90\x64"


def mpeg_frames(count: int) -> bytes:
    return (MPEG_HEADER + b"\x00" * 413) * count


def mp3_file(*frames: bytes, audio_frames: int = 40) -> bytes:
    return id3_tag(4, list(frames)) + mpeg_frames(audio_frames)


def compressed_txxx(version: int, packed: bytes, declared: int | None) -> bytes:
    """A compressed TXXX frame: 2.3 puts the inflated size first; 2.4 only with its length flag."""
    if version == 3:
        return id3_frame(3, b"TXXX", struct.pack(">I", declared or 0) + packed, flags=b"\x00\x80")
    if declared is None:
        return id3_frame(4, b"TXXX", packed, flags=b"\x00\x08")
    return id3_frame(4, b"TXXX", syncsafe(declared) + packed, flags=b"\x00\x09")


@case("mp3-id3-size-lies")
def _(d: Path) -> Case:
    data = mp3_file(txxx("prompt", PROMPT))
    return Case("", _write(d / "x.mp3", data[:6] + syncsafe(0x0FFFFFFF) + data[10:]), "error", "past the end")


@case("mp3-id3-size-not-syncsafe")
def _(d: Path) -> Case:
    data = mp3_file(txxx("prompt", PROMPT))
    return Case("", _write(d / "x.mp3", data[:6] + b"\xff\xff\xff\xff" + data[10:]), "error", "syncsafe")


@case("mp3-id3-version-9")
def _(d: Path) -> Case:
    data = mp3_file(txxx("prompt", PROMPT))
    return Case("", _write(d / "x.mp3", data[:3] + b"\x09" + data[4:]), "error", "version")


@case("mp3-frame-claims-past-tag")
def _(d: Path) -> Case:
    frame = id3_frame(4, b"TXXX", b"\x03prompt\x00{}", size=0x0FFFFFFF)
    return Case("", _write(d / "x.mp3", mp3_file(frame)), "error", "claims")


@case("mp3-extended-header-lies")
def _(d: Path) -> Case:
    tag = id3_tag(4, [syncsafe(0x0FFFFFF) + b"\x01\x00", txxx("prompt", PROMPT)], flags=0x40)
    return Case("", _write(d / "x.mp3", tag + mpeg_frames(4)), "error", "extended header")


@case("mp3-truncated-in-tag")
def _(d: Path) -> Case:
    data = mp3_file(txxx("prompt", PROMPT))
    return Case("", _write(d / "x.mp3", data[:200]), "error", "past the end")


@case("mp3-truncated-in-audio")
def _(d: Path) -> Case:
    """A sound tag and audio cut mid-frame: the tag reads, the duration is what the bytes hold."""
    data = mp3_file(txxx("prompt", PROMPT), audio_frames=10)
    return Case("", _write(d / "x.mp3", data[:-300]), "reads")


@case("mp3-no-audio-after-tag")
def _(d: Path) -> Case:
    """Invalid sync everywhere after a sound tag: the tag still reads, the media stays unknown."""
    data = id3_tag(4, [txxx("prompt", PROMPT)]) + b"\xff\xe1\x00\x00" * 20_000
    return Case("", _write(d / "x.mp3", data), "reads")


@case("mp3-invalid-sync")
def _(d: Path) -> Case:
    """Frame sync with bitrate index 15 and the reserved rate: no container claims it."""
    return Case("", _write(d / "x.mp3", b"\xff\xfb\xfc\x00" * 1000), "error")


@case("mp3-sync-only-no-tags")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.mp3", mpeg_frames(20)), "error", "no provenance")


@case("mp3-many-id3-frames")
def _(d: Path) -> Case:
    frames = [id3_frame(4, b"TIT2", b"\x00a")] * 300_000
    return Case("", _write(d / "x.mp3", mp3_file(*frames)), "error", "more than")


@case("mp3-unknown-text-encoding")
def _(d: Path) -> Case:
    frame = id3_frame(4, b"TXXX", b"\x07prompt\x00{}")
    return Case("", _write(d / "x.mp3", mp3_file(frame)), "error", "encoding")


@case("mp3-flags-longer-than-frame")
def _(d: Path) -> Case:
    frame = id3_frame(4, b"TXXX", b"\x03", flags=b"\x00\x41")
    return Case("", _write(d / "x.mp3", mp3_file(frame)), "error", "shorter")


@case("mp3-compressed-not-zlib")
def _(d: Path) -> Case:
    frame = compressed_txxx(3, b"\x13\x37" * 40, 80)
    return Case("", _write(d / "x.mp3", id3_tag(3, [frame]) + mpeg_frames(4)), "error", "zlib")


@case("mp3-zlib-bomb-declared-small")
def _(d: Path) -> Case:
    """256 MiB of zeros in a v2.3 frame that declares 64 bytes: inflation stops at 65."""
    frame = compressed_txxx(3, deflated_zeros(256 * MIB), 64)
    return Case("", _write(d / "x.mp3", id3_tag(3, [frame]) + mpeg_frames(4)), "error", "decompression bomb")


@case("mp3-zlib-bomb-declared-huge")
def _(d: Path) -> Case:
    """A frame declaring 128 MiB inflated, over the file's inflation limit: refused before inflating."""
    frame = compressed_txxx(4, zlib.compress(b"\x03prompt\x00{}"), 1 << 27)
    return Case("", _write(d / "x.mp3", id3_tag(4, [frame]) + mpeg_frames(4)), "error", "decompression bomb")


@case("mp3-zlib-bomb-undeclared")
def _(d: Path) -> Case:
    """A v2.4 compressed frame without its length: inflation stops at the file's inflation limit."""
    frame = compressed_txxx(4, deflated_zeros(256 * MIB), None)
    return Case("", _write(d / "x.mp3", id3_tag(4, [frame]) + mpeg_frames(4)), "error", "decompression bomb")


# -- Ogg ---------------------------------------------------------------------------------------------


def ogg_page(lacing: bytes, body: bytes, *, flags: int = 0, granule: int = 0, serial: int = 7, seq: int = 0) -> bytes:
    """One page; the CRC is left zero (the reader does not check it, as its module says why)."""
    return struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(lacing)) + lacing + body


def lacing_of(packet: bytes) -> bytes:
    return b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])


def opus_head(channels: int = 2, pre_skip: int = 312) -> bytes:
    return b"OpusHead" + bytes([1, channels]) + struct.pack("<HIhB", pre_skip, 48_000, 0, 0)


def opus_file(tags: bytes, *, audio_pages: int = 3) -> bytes:
    """OpusHead alone on the first page, OpusTags (under 255 segments) on the second, then audio pages."""
    pages = [ogg_page(lacing_of(opus_head()), opus_head(), flags=0x02), ogg_page(lacing_of(tags), tags, seq=1)]
    for i in range(audio_pages):
        granule = 312 + 960 * (i + 1) * 10
        pages.append(
            ogg_page(b"\x0a" * 10, b"\x00" * 100, granule=granule, seq=2 + i, flags=0x04 * (i == audio_pages - 1))
        )
    return b"".join(pages)


def opus_tags(entries: list[bytes], *, count: int | None = None) -> bytes:
    return b"OpusTags" + vorbis_comment(entries, count=count)


def good_opus() -> bytes:
    return opus_file(opus_tags([b"prompt=" + PROMPT.encode()]))


def spread_packet(packet: bytes, pieces: int, *, seq: int) -> bytes:
    """`packet` over `pieces` pages of one 255-byte segment each, the last page ending it."""
    pages = []
    for i in range(pieces):
        chunk = packet[i * 255 : (i + 1) * 255]
        pages.append(ogg_page(b"\xff", chunk, flags=0x01 if i else 0, seq=seq + i))
    rest = packet[pieces * 255 :]
    pages.append(ogg_page(bytes([len(rest)]), rest, flags=0x01, seq=seq + pieces))
    return b"".join(pages)


@case("ogg-truncated-in-header-packet")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.opus", good_opus()[:120]), "error", "past the end")


@case("ogg-truncated-in-page-header")
def _(d: Path) -> Case:
    head = ogg_page(lacing_of(opus_head()), opus_head(), flags=0x02)
    return Case("", _write(d / "x.opus", head + b"OggS\x00\x00"), "error", "truncated")


@case("ogg-page-claims-past-end")
def _(d: Path) -> Case:
    head = ogg_page(lacing_of(opus_head()), opus_head(), flags=0x02)
    return Case("", _write(d / "x.opus", head + ogg_page(b"\xff" * 255, b"OpusTags", seq=1)), "error", "past the end")


@case("ogg-lost-capture")
def _(d: Path) -> Case:
    data = good_opus()
    at = data.index(b"OggS", 4)
    return Case("", _write(d / "x.opus", data[:at] + b"Junk" + data[at + 4 :]), "error", "capture")


@case("ogg-version-1")
def _(d: Path) -> Case:
    data = good_opus()
    return Case("", _write(d / "x.opus", data[:4] + b"\x01" + data[5:]), "error", "version")


@case("ogg-no-first-page")
def _(d: Path) -> Case:
    data = good_opus()
    return Case("", _write(d / "x.opus", data[:5] + b"\x00" + data[6:]), "error", "does not begin")


@case("ogg-no-comment-header")
def _(d: Path) -> Case:
    head = ogg_page(lacing_of(opus_head()), opus_head(), flags=0x02 | 0x04)
    return Case("", _write(d / "x.opus", head), "error", "comment header")


@case("ogg-wrong-comment-header")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.opus", opus_file(b"OpusTagz" + vorbis_comment([]))), "error", "comment header")


@case("ogg-comment-count-4-billion")
def _(d: Path) -> Case:
    data = opus_file(opus_tags([b"prompt=" + PROMPT.encode()], count=U32_MAX))
    return Case("", _write(d / "x.opus", data), "error", "comments")


@case("ogg-comment-claims-4-gib")
def _(d: Path) -> Case:
    tags = opus_tags([])[:-4] + struct.pack("<II", 1, U32_MAX) + b"prompt={}"
    return Case("", _write(d / "x.opus", opus_file(tags)), "error", "claims")


def _big_tags() -> bytes:
    """OpusTags holding a sound prompt and a comment of 100,000 times 255 bytes (about 25 MB)."""
    filler = b"comment=" + b"x" * (100_000 * 255)
    return opus_tags([b"prompt=" + PROMPT.encode(), filler])


@case("ogg-packet-over-100000-pages")
def _(d: Path) -> Case:
    """One comment packet laced over 100,000 pages: walked page by page, held within the budget."""
    head = ogg_page(lacing_of(opus_head()), opus_head(), flags=0x02)
    tags = _big_tags()
    data = (
        head
        + spread_packet(tags, len(tags) // 255, seq=1)
        + ogg_page(b"\x0a", b"\x00" * 10, granule=50_000, seq=200_000, flags=0x04)
    )
    return Case("", _write(d / "x.opus", data), "reads")


@case("ogg-packet-over-100000-pages-never-ends")
def _(d: Path) -> Case:
    head = ogg_page(lacing_of(opus_head()), opus_head(), flags=0x02)
    tags = _big_tags()
    pages = len(tags) // 255
    data = head + spread_packet(tags[: pages * 255], pages, seq=1)
    return Case("", _write(d / "x.opus", data[:-28]), "error", "truncated")


@case("ogg-300000-empty-pages")
def _(d: Path) -> Case:
    """Empty pages of another stream between the headers: walked, counted, refused past the limit."""
    head = ogg_page(lacing_of(opus_head()), opus_head(), flags=0x02)
    other = ogg_page(b"", b"", serial=99) * 300_000
    tags = opus_tags([b"prompt=" + PROMPT.encode()])
    return Case("", _write(d / "x.opus", head + other + ogg_page(lacing_of(tags), tags, seq=1)), "error", "more than")


@case("ogg-tail-garbage")
def _(d: Path) -> Case:
    """Sound headers, then 100 KiB of garbage: the tags read, the duration stays unknown."""
    data = good_opus() + bytes(range(256)) * 400
    return Case("", _write(d / "x.opus", data), "reads")

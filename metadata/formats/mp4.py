"""MP4 and MOV (ISO BMFF): ComfyUI's QuickTime mdta keys, the comment and XMP, read from moov/udta."""

# A walk over box headers that opens only the boxes holding metadata or track facts and seeks over the
# rest, mdat included; the walk's depth is set by the box types it opens, never by the input. Tags come
# out in the order readers give them precedence: mdta keys (core's SaveVideo and VideoHelperSuite write
# them with `movflags use_metadata_tags`), iTunes items, QuickTime text atoms; tags.py interprets them.
# The writer, `rewrite`, lives in mp4_rewrite.py.

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..budget import Budget, BudgetExceeded
from ..errors import ReadError
from ..limits import READ_CHUNK_MAX, READ_XMP_MAX
from .base import Embedded, register_container
from .isobmff import TEXT_ATOM_MAX, XMP_UUID, Box, box_name, boxes, mdta_keys, meta_skip
from .mp4_rewrite import rewrite
from .tags import embedded_from_tags

# The writer is re-exported: `mp4.rewrite` stays the target's public name, as video.py calls it.
__all__ = ["Mp4Container", "rewrite"]

# Still-image brands (HEIF, AVIF, JPEG 2000, CR3) share the box format but are not videos.
IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"jp2 ", b"crx "})
LEADING = frozenset({b"moov", b"mdat", b"free", b"skip", b"wide"})
# iTunes ilst items and QuickTime udta text atoms, by the names ffmpeg gives them.
ITUNES = {b"\xa9cmt": "comment", b"\xa9nam": "title", b"desc": "description", b"\xa9des": "description"}
TEXT_ATOMS = {b"\xa9cmt": "comment", b"\xa9nam": "title", b"\xa9des": "description"}
VIDEO_CODECS = {
    b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc", b"av01": "av1", b"vp09": "vp9",
    b"mp4v": "mpeg4",
}  # fmt: skip
AUDIO_CODECS = {b"mp4a": "aac", b"Opus": "opus", b"fLaC": "flac", b".mp3": "mp3", b"ac-3": "ac3"}
# A frame rate from stts only when few entries say it (one, as muxers write a constant rate).
STTS_ENTRIES_MAX = 4096


def _take(fp: BinaryIO, box: Box, budget: Budget, what: str, *, skip: int = 0, prefix: int | None = None) -> bytes:
    """A box's payload from `skip` on (only its first `prefix` bytes, if given), charged to the budget."""
    size = max(0, box.size - skip) if prefix is None else max(0, min(prefix, box.size - skip))
    if size > READ_CHUNK_MAX:
        raise BudgetExceeded(f"{what} is {size:,} bytes, over the {READ_CHUNK_MAX:,}-byte limit")
    budget.load(size, what)
    fp.seek(box.body + skip)
    data = fp.read(size)
    if len(data) < size:
        raise ReadError(f"MP4 is truncated inside {what}")
    return data


def _first(siblings: list[Box], kind: bytes) -> Box | None:
    return next((b for b in siblings if b.kind == kind), None)


@dataclass
class _Found:
    keyed: list[tuple[str, str]] = field(default_factory=list)  # mdta keys
    itunes: list[tuple[str, str]] = field(default_factory=list)
    text: list[tuple[str, str]] = field(default_factory=list)  # QuickTime udta text atoms
    xmp: bytes | None = None


class Mp4Container:
    name = "mp4"
    extensions: tuple[str, ...] = (".mp4", ".mov", ".m4v", ".m4a")
    mime = "video/mp4"

    def sniff(self, head: bytes) -> bool:
        if len(head) < 8:
            return False
        if head[4:8] == b"ftyp":
            return head[8:12] not in IMAGE_BRANDS
        size = int.from_bytes(head[:4], "big")
        return head[4:8] in LEADING and (size in (0, 1) or size >= 8)

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """Tags, XMP and track facts from moov; media data is never read."""
        end = fp.seek(0, 2)
        top = boxes(fp, 0, end, budget, top=True)
        moov = _first(top, b"moov")
        if moov is None:
            raise ReadError("MP4 has no moov box (an unfinished recording, or not a video)")
        inside = boxes(fp, moov.body, moov.end, budget)
        found = _Found()
        for udta in [b for b in inside if b.kind == b"udta"] + [b for b in top if b.kind == b"udta"]:
            _read_udta(fp, udta, budget, found)
        for meta in (b for b in inside if b.kind == b"meta"):
            _read_meta(fp, meta, budget, found)
        if found.xmp is None:
            found.xmp = _uuid_xmp(fp, top, budget)
        ftyp = _first(top, b"ftyp")
        brand = _take(fp, ftyp, budget, "the MP4 ftyp box", prefix=4) if ftyp else b""
        media, width, height = _media(fp, inside, budget)
        pairs = found.keyed + found.itunes + found.text
        fmt = "mov" if brand == b"qt  " else "mp4"
        return embedded_from_tags(fmt, pairs, budget, width=width, height=height, xmp=found.xmp, media=media)


def _read_udta(fp: BinaryIO, udta: Box, budget: Budget, found: _Found) -> None:
    for child in boxes(fp, udta.body, udta.end, budget):
        if child.kind == b"meta":
            _read_meta(fp, child, budget, found)
        elif child.kind in TEXT_ATOMS:
            data = _take(fp, child, budget, f"the MP4 {box_name(child.kind)} atom", prefix=4 + TEXT_ATOM_MAX)
            length, lang = struct.unpack(">HH", data[:4]) if len(data) >= 4 else (0, 0)
            text = data[4 : 4 + length].decode("mac_roman" if lang < 0x400 else "utf-8", errors="replace")
            found.text.append((TEXT_ATOMS[child.kind], text))
        elif child.kind == b"XMP_" and found.xmp is None:
            found.xmp = _xmp(fp, child, budget, 0)


def _xmp(fp: BinaryIO, box: Box, budget: Budget, skip: int) -> bytes:
    if box.size - skip > READ_XMP_MAX:
        raise BudgetExceeded(f"MP4 XMP is {box.size - skip:,} bytes, over the {READ_XMP_MAX:,}-byte read limit")
    return _take(fp, box, budget, "the MP4 XMP", skip=skip)


def _uuid_xmp(fp: BinaryIO, top: list[Box], budget: Budget) -> bytes | None:
    for box in top:
        if box.kind == b"uuid" and box.size >= 16 and _take(fp, box, budget, "an MP4 uuid box", prefix=16) == XMP_UUID:
            return _xmp(fp, box, budget, 16)
    return None


def _read_meta(fp: BinaryIO, meta: Box, budget: Budget, found: _Found) -> None:
    fp.seek(meta.body)
    kids = boxes(fp, meta.body + meta_skip(fp.read(8), meta.size), meta.end, budget)
    keys, ilst = _first(kids, b"keys"), _first(kids, b"ilst")
    if ilst is None:
        return
    names = None
    if keys is not None:
        entries = mdta_keys(_take(fp, keys, budget, "the MP4 keys box"), budget)
        names = [name.decode("utf-8", errors="replace") for _namespace, name in entries]
    for item in boxes(fp, ilst.body, ilst.end, budget):
        if names is not None:
            index = int.from_bytes(item.kind, "big")
            if 1 <= index <= len(names) and (value := _item_text(fp, item, budget)) is not None:
                found.keyed.append((names[index - 1], value))
        elif item.kind in ITUNES and (value := _item_text(fp, item, budget)) is not None:
            found.itunes.append((ITUNES[item.kind], value))


def _item_text(fp: BinaryIO, item: Box, budget: Budget) -> str | None:
    """The first UTF-8 `data` value of an ilst item; other types (numbers, images) are not tags."""
    for box in boxes(fp, item.body, item.end, budget):
        kind = _take(fp, box, budget, "an MP4 data box", prefix=4) if box.kind == b"data" and box.size >= 8 else b""
        if int.from_bytes(kind, "big") & 0xFFFFFF == 1:
            return _take(fp, box, budget, "an MP4 tag value", skip=8).decode("utf-8", errors="replace")
    return None


def _timing(data: bytes) -> tuple[int, int]:
    """(timescale, duration) of an mvhd or mdhd payload; zeros when it is too short."""
    if data[:1] == b"\x01" and len(data) >= 32:
        scale, duration = struct.unpack(">IQ", data[20:32])
    elif len(data) >= 20:
        scale, duration = struct.unpack(">II", data[12:20])
    else:
        scale = duration = 0
    return scale, duration


def _media(fp: BinaryIO, inside: list[Box], budget: Budget) -> tuple[dict[str, Any], int | None, int | None]:
    """Media facts of the first video and first audio track, the size from the video's tkhd."""
    media: dict[str, Any] = {}
    size: tuple[int | None, int | None] = (None, None)
    mvhd = _first(inside, b"mvhd")
    scale, duration = _timing(_take(fp, mvhd, budget, "the MP4 mvhd box", prefix=32)) if mvhd else (0, 0)
    if scale:
        media["duration_s"] = round(duration / scale, 3)
    video = False
    for trak in (b for b in inside if b.kind == b"trak"):
        if video and "audio" in media:
            break  # later tracks cost walking only
        kids = boxes(fp, trak.body, trak.end, budget)
        mdia = _first(kids, b"mdia")
        parts = boxes(fp, mdia.body, mdia.end, budget) if mdia else []
        hdlr = _first(parts, b"hdlr")
        handler = _take(fp, hdlr, budget, "an MP4 hdlr box", prefix=12)[8:12] if hdlr else b""
        if handler == b"vide" and not video:
            video = True
            tkhd = _first(kids, b"tkhd")
            size = _tkhd_size(_take(fp, tkhd, budget, "an MP4 tkhd box", prefix=96) if tkhd else b"")
            media.update(_video(fp, parts, budget))
        elif handler == b"soun" and "audio" not in media:
            media["audio"] = _audio(fp, parts, budget)
    return media, size[0], size[1]


def _tkhd_size(data: bytes) -> tuple[int | None, int | None]:
    """A tkhd's width and height (16.16 fixed point), None where zero or missing."""
    at = 88 if data[:1] == b"\x01" else 76
    if len(data) < at + 8:
        return None, None
    width, height = struct.unpack(">II", data[at : at + 8])
    return (width >> 16) or None, (height >> 16) or None


def _stbl(fp: BinaryIO, parts: list[Box], budget: Budget) -> list[Box]:
    minf = _first(parts, b"minf")
    stbl = _first(boxes(fp, minf.body, minf.end, budget), b"stbl") if minf else None
    return boxes(fp, stbl.body, stbl.end, budget) if stbl else []


def _sample_entry(fp: BinaryIO, table: list[Box], budget: Budget) -> tuple[bytes, bytes] | None:
    """(fourcc, the first 44 bytes of its body) of the first stsd entry."""
    stsd = _first(table, b"stsd")
    data = _take(fp, stsd, budget, "the MP4 stsd box", prefix=60) if stsd else b""
    if len(data) < 16 or data[4:8] == bytes(4):
        return None
    return data[12:16], data[16 : 8 + int.from_bytes(data[8:12], "big")]


def _video(fp: BinaryIO, parts: list[Box], budget: Budget) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mdhd = _first(parts, b"mdhd")
    scale, duration = _timing(_take(fp, mdhd, budget, "an MP4 mdhd box", prefix=32)) if mdhd else (0, 0)
    table = _stbl(fp, parts, budget)
    entry = _sample_entry(fp, table, budget)
    if entry is not None:
        out["codec"] = VIDEO_CODECS.get(entry[0], entry[0].decode("latin-1").strip().lower())
    frames = _sample_count(fp, table, budget)
    if frames is not None:
        out["frames"] = frames
    delta = _constant_delta(fp, table, budget)
    if scale and delta:
        out["fps"] = round(scale / delta, 3)
    elif scale and duration and frames:
        out["fps"] = round(frames * scale / duration, 3)
    return out


def _sample_count(fp: BinaryIO, table: list[Box], budget: Budget) -> int | None:
    """stsz's (or stz2's) sample count, checked against the room its table has."""
    box = _first(table, b"stsz") or _first(table, b"stz2")
    if box is None or box.size < 12:
        return None
    data = _take(fp, box, budget, "the MP4 sample size table", prefix=12)
    count = int.from_bytes(data[8:12], "big")
    bits = 32 if box.kind == b"stsz" else data[7]
    if (box.kind == b"stz2" or int.from_bytes(data[4:8], "big") == 0) and count * bits > (box.size - 12) * 8:
        raise ReadError(f"MP4 {box_name(box.kind)} claims {count:,} samples in {box.size:,} bytes (damaged)")
    return count


def _constant_delta(fp: BinaryIO, table: list[Box], budget: Budget) -> int | None:
    """The one sample duration of stts when every sample has it."""
    stts = _first(table, b"stts")
    if stts is None or stts.size < 8:
        return None
    count = int.from_bytes(_take(fp, stts, budget, "the MP4 stts box", prefix=8)[4:8], "big")
    if count * 8 > stts.size - 8:
        raise ReadError(f"MP4 stts claims {count:,} entries in {stts.size:,} bytes (damaged)")
    if not 1 <= count <= STTS_ENTRIES_MAX:
        return None
    deltas = {int.from_bytes(e[4:8], "big") for e in _entries(_take(fp, stts, budget, "the MP4 stts box", skip=8))}
    return deltas.pop() if len(deltas) == 1 else None


def _entries(data: bytes) -> list[bytes]:
    return [data[i : i + 8] for i in range(0, len(data) - 7, 8)]


def _audio(fp: BinaryIO, parts: list[Box], budget: Budget) -> dict[str, Any]:
    """Codec, sample rate and channels of an audio sample entry (QuickTime's version 2 included)."""
    entry = _sample_entry(fp, _stbl(fp, parts, budget), budget)
    if entry is None:
        return {}
    fourcc, body = entry
    out: dict[str, Any] = {"codec": AUDIO_CODECS.get(fourcc, fourcc.decode("latin-1").strip().lower())}
    if len(body) >= 28:
        version, channels, rate = struct.unpack(">H6xH6xI", body[8:28])
        rate >>= 16
        if version == 2 and len(body) >= 44:
            rate, channels = round(struct.unpack(">d", body[32:40])[0]), struct.unpack(">I", body[40:44])[0]
        if rate > 0:
            out["sample_rate"] = rate
        if channels > 0:
            out["channels"] = channels
    return out


register_container(Mp4Container())

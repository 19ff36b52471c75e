"""MP4 and MOV (ISO BMFF): ComfyUI's QuickTime mdta keys, the comment and XMP, read and rewritten in moov/udta."""

# Reader: a walk over box headers that opens only the boxes holding metadata or track facts and seeks
# over the rest, mdat included. Every size is checked against its parent and the file before anything
# is read, and the walk's depth is set by the box types it opens, never by the input. Tags come out in
# the order readers give them precedence: mdta keys (core's SaveVideo and VideoHelperSuite write them
# with `movflags use_metadata_tags`), iTunes items, QuickTime text atoms; tags.py interprets them.
#
# Writer: `rewrite` copies a finished file with moov before mdat (the frontend reads only a file's
# first 64 MiB), our mdta meta first in moov/udta (the frontend reads the first meta only), laid out
# byte for byte as ffmpeg's muxer writes it, a QuickTime `©cmt` atom (what players and exiftool show
# as Comment) and an `XMP_` box. Media data is streamed and every chunk offset moved with it.

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from ..budget import Budget, BudgetExceeded
from ..errors import LimitExceeded, ReadError, SerializeError
from ..limits import MIB, READ_CHUNK_MAX, READ_XMP_MAX
from .base import Embedded, register_container
from .tags import embedded_from_tags

logger = logging.getLogger(__name__)

# The writer holds the moov in memory, and a moov past the frontend's 64 MiB read is lost to it anyway.
MOOV_MAX = 64 * MIB
COPY_BLOCK = 1 << 20
U32_MAX = 0xFFFF_FFFF
XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
LANG_UND = 0x55C4  # "und" packed as ISO 639 (so readers take the text as UTF-8), as ffmpeg writes it
TEXT_ATOM_MAX = 0xFFFF  # a QuickTime text atom's length is 16-bit
# ffmpeg's `hdlr` for an mdta meta: version/flags, pre_defined, "mdta", three reserved words, empty name.
MDTA_HDLR = struct.pack(">I4s", 33, b"hdlr") + bytes(8) + b"mdta" + bytes(13)
DATA_UTF8 = struct.pack(">II", 1, 0)  # a `data` box's type (1: UTF-8) and locale
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
# The boxes the writer opens (the rest it copies byte for byte): five levels at most, whatever the input.
OPENED = {
    b"moov": (b"trak", b"udta"), b"trak": (b"mdia",), b"mdia": (b"minf",), b"minf": (b"stbl",),
    b"udta": (b"meta",), b"meta": (b"ilst",),
}  # fmt: skip
FRAGMENTED = "fragmented MP4 (moof/mvex boxes) is not rewritten; remux it to a plain MP4 first"


class _Box(NamedTuple):
    kind: bytes
    start: int  # the header's first byte
    body: int  # the payload's first byte
    end: int

    @property
    def size(self) -> int:
        return self.end - self.body


def _name(kind: bytes) -> str:
    return repr(kind)[1:]  # quoted and escaped: one line, whatever the bytes


def _boxes(fp: BinaryIO, start: int, end: int, budget: Budget, *, top: bool = False) -> list[_Box]:
    """The boxes from `start` to `end`, each size checked against its parent (or the file) first."""
    found: list[_Box] = []
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
                raise ReadError(f"MP4 box {_name(kind)} is cut inside its 64-bit size (truncated)")
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif size == 0:
            if not top:
                raise ReadError(f"MP4 box {_name(kind)} has size 0 inside another box (damaged)")
            size = end - pos
        if size < header:
            raise ReadError(f"MP4 box {_name(kind)} claims {size:,} bytes, less than its own header (damaged)")
        if size > end - pos:
            where = "the file" if top else "its parent box"
            raise ReadError(
                f"MP4 box {_name(kind)} claims {size:,} bytes, past the end of {where} (truncated or damaged)"
            )
        budget.chunk("MP4 atom")
        found.append(_Box(kind, pos, pos + header, pos + size))
        pos += size
    return found


def _take(fp: BinaryIO, box: _Box, budget: Budget, what: str, *, skip: int = 0, prefix: int | None = None) -> bytes:
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


def _first(boxes: list[_Box], kind: bytes) -> _Box | None:
    return next((b for b in boxes if b.kind == kind), None)


def _keys(payload: bytes | memoryview, budget: Budget) -> list[tuple[bytes, bytes]]:
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


# -- reading -------------------------------------------------------------------------------------------


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
        top = _boxes(fp, 0, end, budget, top=True)
        moov = _first(top, b"moov")
        if moov is None:
            raise ReadError("MP4 has no moov box (an unfinished recording, or not a video)")
        inside = _boxes(fp, moov.body, moov.end, budget)
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


def _read_udta(fp: BinaryIO, udta: _Box, budget: Budget, found: _Found) -> None:
    for child in _boxes(fp, udta.body, udta.end, budget):
        if child.kind == b"meta":
            _read_meta(fp, child, budget, found)
        elif child.kind in TEXT_ATOMS:
            data = _take(fp, child, budget, f"the MP4 {_name(child.kind)} atom", prefix=4 + TEXT_ATOM_MAX)
            length, lang = struct.unpack(">HH", data[:4]) if len(data) >= 4 else (0, 0)
            text = data[4 : 4 + length].decode("mac_roman" if lang < 0x400 else "utf-8", errors="replace")
            found.text.append((TEXT_ATOMS[child.kind], text))
        elif child.kind == b"XMP_" and found.xmp is None:
            found.xmp = _xmp(fp, child, budget, 0)


def _xmp(fp: BinaryIO, box: _Box, budget: Budget, skip: int) -> bytes:
    if box.size - skip > READ_XMP_MAX:
        raise BudgetExceeded(f"MP4 XMP is {box.size - skip:,} bytes, over the {READ_XMP_MAX:,}-byte read limit")
    return _take(fp, box, budget, "the MP4 XMP", skip=skip)


def _uuid_xmp(fp: BinaryIO, top: list[_Box], budget: Budget) -> bytes | None:
    for box in top:
        if box.kind == b"uuid" and box.size >= 16 and _take(fp, box, budget, "an MP4 uuid box", prefix=16) == XMP_UUID:
            return _xmp(fp, box, budget, 16)
    return None


def _meta_skip(first8: bytes | memoryview, size: int) -> int:
    """Bytes before a meta's children: ISO's is a full box (version/flags), QuickTime's starts with hdlr."""
    return 0 if bytes(first8[4:8]) == b"hdlr" else min(4, size)


def _read_meta(fp: BinaryIO, meta: _Box, budget: Budget, found: _Found) -> None:
    fp.seek(meta.body)
    kids = _boxes(fp, meta.body + _meta_skip(fp.read(8), meta.size), meta.end, budget)
    keys, ilst = _first(kids, b"keys"), _first(kids, b"ilst")
    if ilst is None:
        return
    names = None
    if keys is not None:
        entries = _keys(_take(fp, keys, budget, "the MP4 keys box"), budget)
        names = [name.decode("utf-8", errors="replace") for _namespace, name in entries]
    for item in _boxes(fp, ilst.body, ilst.end, budget):
        if names is not None:
            index = int.from_bytes(item.kind, "big")
            if 1 <= index <= len(names) and (value := _item_text(fp, item, budget)) is not None:
                found.keyed.append((names[index - 1], value))
        elif item.kind in ITUNES and (value := _item_text(fp, item, budget)) is not None:
            found.itunes.append((ITUNES[item.kind], value))


def _item_text(fp: BinaryIO, item: _Box, budget: Budget) -> str | None:
    """The first UTF-8 `data` value of an ilst item; other types (numbers, images) are not tags."""
    for box in _boxes(fp, item.body, item.end, budget):
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


def _media(fp: BinaryIO, inside: list[_Box], budget: Budget) -> tuple[dict[str, Any], int | None, int | None]:
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
        kids = _boxes(fp, trak.body, trak.end, budget)
        mdia = _first(kids, b"mdia")
        parts = _boxes(fp, mdia.body, mdia.end, budget) if mdia else []
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


def _stbl(fp: BinaryIO, parts: list[_Box], budget: Budget) -> list[_Box]:
    minf = _first(parts, b"minf")
    stbl = _first(_boxes(fp, minf.body, minf.end, budget), b"stbl") if minf else None
    return _boxes(fp, stbl.body, stbl.end, budget) if stbl else []


def _sample_entry(fp: BinaryIO, table: list[_Box], budget: Budget) -> tuple[bytes, bytes] | None:
    """(fourcc, the first 44 bytes of its body) of the first stsd entry."""
    stsd = _first(table, b"stsd")
    data = _take(fp, stsd, budget, "the MP4 stsd box", prefix=60) if stsd else b""
    if len(data) < 16 or data[4:8] == bytes(4):
        return None
    return data[12:16], data[16 : 8 + int.from_bytes(data[8:12], "big")]


def _video(fp: BinaryIO, parts: list[_Box], budget: Budget) -> dict[str, Any]:
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


def _sample_count(fp: BinaryIO, table: list[_Box], budget: Budget) -> int | None:
    """stsz's (or stz2's) sample count, checked against the room its table has."""
    box = _first(table, b"stsz") or _first(table, b"stz2")
    if box is None or box.size < 12:
        return None
    data = _take(fp, box, budget, "the MP4 sample size table", prefix=12)
    count = int.from_bytes(data[8:12], "big")
    bits = 32 if box.kind == b"stsz" else data[7]
    if (box.kind == b"stz2" or int.from_bytes(data[4:8], "big") == 0) and count * bits > (box.size - 12) * 8:
        raise ReadError(f"MP4 {_name(box.kind)} claims {count:,} samples in {box.size:,} bytes (damaged)")
    return count


def _constant_delta(fp: BinaryIO, table: list[_Box], budget: Budget) -> int | None:
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


def _audio(fp: BinaryIO, parts: list[_Box], budget: Budget) -> dict[str, Any]:
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


# -- writing -------------------------------------------------------------------------------------------


@dataclass
class _Node:
    """A box to write: `raw` (the whole box, header included) as it is, or a container rebuilt from
    `head` (a meta's version and flags) and its children."""

    kind: bytes
    raw: bytes | memoryview | None = None
    head: bytes | memoryview = b""
    children: list[_Node] = field(default_factory=list)

    def parts(self, out: list[bytes | memoryview]) -> int:
        """Append this box's bytes to `out` and return its size (recursion as deep as OPENED, never deeper)."""
        if self.raw is not None:
            out.append(self.raw)
            return len(self.raw)
        at = len(out)
        out += [b"", self.head]
        body = len(self.head) + sum(child.parts(out) for child in self.children)
        size = body + (8 if body + 8 <= U32_MAX else 16)
        out[at] = _header(self.kind, size)
        return size

    def payload(self) -> memoryview:
        raw = memoryview(self.raw if self.raw is not None else b"")
        return raw[16:] if bytes(raw[:4]) == b"\x00\x00\x00\x01" else raw[8:]


def _header(kind: bytes, size: int) -> bytes:
    return struct.pack(">I4s", size, kind) if size <= U32_MAX else struct.pack(">I4sQ", 1, kind, size)


def _box(kind: bytes, *payload: bytes | memoryview) -> bytes:
    return b"".join([_header(kind, 8 + sum(len(p) for p in payload)), *payload])


def _tree(raw: bytes, budget: Budget) -> _Node:
    """One box (`raw` holds exactly it) as nodes, opened along OPENED; the rest stays raw bytes."""
    fp, view = io.BytesIO(raw), memoryview(raw)
    first = _boxes(fp, 0, len(raw), budget, top=True)[0]
    root = _Node(first.kind)
    stack = [(root, first)]
    while stack:
        node, box = stack.pop()
        start = box.body + (_meta_skip(view[box.body : box.body + 8], box.size) if box.kind == b"meta" else 0)
        node.head = view[box.body : start]
        for child in _boxes(fp, start, box.end, budget):
            if child.kind in OPENED.get(box.kind, ()):
                node.children.append(_Node(child.kind))
                stack.append((node.children[-1], child))
            else:
                node.children.append(_Node(child.kind, raw=view[child.start : child.end]))
    return root


def rewrite(
    src: BinaryIO, dst: BinaryIO, *, tags: Sequence[tuple[str, str]], comment: str | None, xmp: bytes | None
) -> None:
    """Copy the MP4/MOV `src` to `dst` with moov before mdat and our tags, comment and XMP in moov/udta.

    The file's own mdta keys stay (those named in `tags` are replaced), followed by `tags` in order;
    `comment` and `xmp` replace the old ones when given. Every other box is copied byte for byte
    (udta boxes elsewhere move into moov/udta) and media data is streamed. Rewriting the output
    again gives the same bytes. ReadError: `src` is damaged. SerializeError: a layout this does not
    rewrite (fragmented, a moov over MOOV_MAX). LimitExceeded: a comment over a text atom's 64 KiB.
    """
    budget = Budget()
    end = src.seek(0, 2)
    top = _boxes(src, 0, end, budget, top=True)
    moov = _the_moov(top)
    tree = _tree(_load(src, moov), budget)
    if any(c.kind == b"mvex" for c in tree.children):
        raise SerializeError(FRAGMENTED)
    dropped = [b for b in top if b.kind == b"udta" or (xmp is not None and _is_xmp_uuid(src, b))]
    others = [_tree(_load(src, b), budget) for b in top if b.kind == b"udta"]
    udtas = [c for c in tree.children if c.kind == b"udta"] + others
    udta = _new_udta(udtas, tags, comment, xmp, budget)
    slot = next((i for i, c in enumerate(tree.children) if c.kind == b"udta"), len(tree.children))
    tree.children = [c for c in tree.children if c.kind != b"udta"]
    tree.children.insert(min(slot, len(tree.children)), udta)
    order = _order([b for b in top if b is not moov and b not in dropped], moov)
    data = _with_offsets(tree, order, end)
    if len(data) > MOOV_MAX:
        raise LimitExceeded("the MP4 moov box with the metadata", len(data), MOOV_MAX)
    for box in order:
        if box is None:
            dst.write(data)
        else:
            _copy(src, dst, box.start, box.end - box.start)


def _the_moov(top: list[_Box]) -> _Box:
    if any(b.kind == b"moof" for b in top):
        raise SerializeError(FRAGMENTED)
    moovs = [b for b in top if b.kind == b"moov"]
    if len(moovs) != 1:
        raise ReadError("MP4 has no moov box (unfinished)" if not moovs else f"MP4 has {len(moovs)} moov boxes")
    return moovs[0]


def _load(src: BinaryIO, box: _Box) -> bytes:
    """A whole box, which the writer holds in memory: never one past MOOV_MAX."""
    if box.end - box.start > MOOV_MAX:
        size = box.end - box.start
        raise SerializeError(f"the MP4's {_name(box.kind)} box is {size:,} bytes, over the {MOOV_MAX:,}-byte limit")
    src.seek(box.start)
    data = src.read(box.end - box.start)
    if len(data) < box.end - box.start:
        raise ReadError(f"MP4 is truncated inside box {_name(box.kind)}")
    return data


def _is_xmp_uuid(src: BinaryIO, box: _Box) -> bool:
    return (
        box.kind == b"uuid" and box.size >= 16 and _load(src, _Box(b"", box.body, box.body, box.body + 16)) == XMP_UUID
    )


def _new_udta(
    udtas: list[_Node], tags: Sequence[tuple[str, str]], comment: str | None, xmp: bytes | None, budget: Budget
) -> _Node:
    """One udta: our mdta meta first (the frontend reads the first meta only), then every other child
    of the old udta boxes in order, then the comment and XMP."""
    replaced = {name.lower() for name, _ in tags} | ({"comment"} if comment is not None else set())
    items: list[tuple[bytes, bytes, bytes | memoryview]] = []
    kept: list[_Node] = []
    for udta in udtas:
        for child in udta.children:
            if child.kind == b"meta" and _handler(child) == b"mdta":
                items += [
                    i for i in _mdta_items(child, budget) if i[1].decode("utf-8", "replace").lower() not in replaced
                ]
            elif (child.kind == b"\xa9cmt" and comment is not None) or (child.kind == b"XMP_" and xmp is not None):
                continue
            else:
                for ilst in child.children if comment is not None else []:  # an iTunes meta's ©cmt goes too
                    if ilst.kind == b"ilst":
                        ilst.children = [i for i in ilst.children if i.kind != b"\xa9cmt"]
                kept.append(child)
    items += [(b"mdta", name.encode("utf-8"), _box(b"data", DATA_UTF8, value.encode("utf-8"))) for name, value in tags]
    ours = [_mdta_meta(items)] if items else []
    if comment:  # an empty atom reads back as its own header bytes in ffmpeg
        text = comment.encode("utf-8")
        if len(text) > TEXT_ATOM_MAX:
            raise LimitExceeded("the MP4 comment", len(text), TEXT_ATOM_MAX)
        ours_tail = [_Node(b"\xa9cmt", raw=_box(b"\xa9cmt", struct.pack(">HH", len(text), LANG_UND), text))]
    else:
        ours_tail = []
    if xmp is not None:
        ours_tail.append(_Node(b"XMP_", raw=_box(b"XMP_", xmp)))
    return _Node(b"udta", children=[*ours, *kept, *ours_tail])


def _handler(meta: _Node) -> bytes:
    hdlr = next((c for c in meta.children if c.kind == b"hdlr" and c.raw is not None), None)
    return bytes(hdlr.payload()[8:12]) if hdlr is not None else b""


def _mdta_items(meta: _Node, budget: Budget) -> list[tuple[bytes, bytes, bytes | memoryview]]:
    """(namespace, name, item payload) of each ilst item of an mdta meta whose key exists."""
    keys = next((c for c in meta.children if c.kind == b"keys" and c.raw is not None), None)
    names = _keys(keys.payload(), budget) if keys is not None else []
    out: list[tuple[bytes, bytes, bytes | memoryview]] = []
    for ilst in (c for c in meta.children if c.kind == b"ilst"):
        for item in ilst.children:
            index = int.from_bytes(item.kind, "big")
            if 1 <= index <= len(names) and item.raw is not None:
                out.append((*names[index - 1], item.payload()))
    return out


def _mdta_meta(items: list[tuple[bytes, bytes, bytes | memoryview]]) -> _Node:
    """A meta as ffmpeg's mov muxer writes it with use_metadata_tags: hdlr mdta, keys, ilst."""
    keys = b"".join(struct.pack(">I", 8 + len(name)) + namespace + name for namespace, name, _ in items)
    ilst = b"".join(_box(struct.pack(">I", i), payload) for i, (_, _, payload) in enumerate(items, 1))
    keys_box = _box(b"keys", struct.pack(">II", 0, len(items)), keys)
    return _Node(b"meta", raw=_box(b"meta", bytes(4), MDTA_HDLR, keys_box, _box(b"ilst", ilst)))


def _order(kept: list[_Box], moov: _Box) -> list[_Box | None]:
    """The top-level boxes to write, None where the moov goes: where it was if that is before the first
    mdat, else just before it."""
    order: list[_Box | None] = list(kept)
    slot = sum(1 for b in kept if b.start < moov.start)
    first_mdat = next((i for i, b in enumerate(kept) if b.kind == b"mdat"), None)
    order.insert(slot if first_mdat is None or slot <= first_mdat else first_mdat, None)
    return order


def _with_offsets(tree: _Node, order: list[_Box | None], end: int) -> bytes:
    """The packed moov, every chunk offset moved with the box it points into; an stco whose offsets would
    pass 4 GiB becomes a co64 (which grows the moov, so the placement is redone until it holds)."""
    tables = [
        (stbl, i)
        for trak in tree.children if trak.kind == b"trak"
        for mdia in trak.children if mdia.kind == b"mdia"
        for minf in mdia.children if minf.kind == b"minf"
        for stbl in minf.children if stbl.kind == b"stbl"
        for i, c in enumerate(stbl.children) if c.kind in (b"stco", b"co64") and c.raw is not None
    ]  # fmt: skip
    values = []
    for stbl, i in tables:
        head, offsets = _chunk_offsets(stbl.children[i], end)
        values.append((head, offsets))
        stbl.children[i] = _offset_table(stbl.children[i].kind, head, offsets)
    wide = {k for k, (stbl, i) in enumerate(tables) if stbl.children[i].kind == b"co64"}
    base = tree.parts([]) - 4 * sum(len(values[k][1]) for k in wide)
    while True:
        size = base + 4 * sum(len(values[k][1]) for k in wide)
        starts, ends, deltas = _shifts(order, size)
        moved = [_moved(offsets, starts, ends, deltas) for _, offsets in values]
        grow = {k for k, v in enumerate(moved) if k not in wide and v.size and int(v.max()) > U32_MAX}
        if not grow:
            break
        logger.debug("provenance: %d MP4 chunk offset tables widened to co64", len(grow))
        wide |= grow
    for k, (stbl, i) in enumerate(tables):
        stbl.children[i] = _offset_table(b"co64" if k in wide else b"stco", values[k][0], moved[k])
    out: list[bytes | memoryview] = []
    tree.parts(out)
    data = b"".join(out)
    if len(data) != size:  # every offset above assumed `size`: never write a file they would not match
        raise SerializeError(f"the rebuilt MP4 moov box is {len(data):,} bytes, not the {size:,} planned")
    return data


def _chunk_offsets(node: _Node, end: int) -> tuple[bytes, np.ndarray[Any, Any]]:
    """(version and flags, offsets) of an stco or co64 box, each checked against the file."""
    payload = node.payload()
    width = 8 if node.kind == b"co64" else 4
    count = int.from_bytes(payload[4:8], "big") if len(payload) >= 8 else -1
    if count < 0 or count * width > len(payload) - 8:
        raise ReadError(
            f"MP4 {_name(node.kind)} claims {max(count, 0):,} chunk offsets in {len(payload):,} bytes (damaged)"
        )
    offsets = np.frombuffer(payload, dtype=f">u{width}", count=count, offset=8).astype(np.uint64)
    if count and int(offsets.max()) >= end:
        raise ReadError("an MP4 chunk offset points past the end of the file (damaged)")
    return bytes(payload[:4]), offsets.astype(np.int64)


def _offset_table(kind: bytes, head: bytes, offsets: np.ndarray[Any, Any]) -> _Node:
    table = offsets.astype(">u8" if kind == b"co64" else ">u4").tobytes()
    return _Node(kind, raw=_box(kind, head, struct.pack(">I", len(offsets)), table))


def _shifts(order: list[_Box | None], moov_size: int) -> tuple[np.ndarray[Any, Any], ...]:
    """(start, end, how far it moves) of each box written from the source, by source position."""
    rows, pos = [], 0
    for box in order:
        if box is not None:
            rows.append((box.start, box.end, pos - box.start))
            pos += box.end - box.start
        else:
            pos += moov_size
    rows.sort()
    return tuple(np.array([r[k] for r in rows], dtype=np.int64) for k in range(3))


def _moved(offsets: np.ndarray[Any, Any], starts: Any, ends: Any, deltas: Any) -> np.ndarray[Any, Any]:
    if not offsets.size:
        return offsets
    index = np.searchsorted(starts, offsets, side="right") - 1
    if not ((index >= 0) & (offsets < ends[np.maximum(index, 0)])).all():
        raise ReadError("an MP4 chunk offset points outside the file's media data (damaged)")
    return offsets + deltas[index]  # type: ignore[no-any-return]


def _copy(src: BinaryIO, dst: BinaryIO, offset: int, length: int) -> None:
    src.seek(offset)
    while length > 0:
        block = src.read(min(length, COPY_BLOCK))
        if not block:
            raise ReadError("MP4 is truncated inside its media data")
        dst.write(block)
        length -= len(block)


register_container(Mp4Container())

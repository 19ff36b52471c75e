"""MP4 and MOV (ISO BMFF) rewritten with moov first, holding our mdta keys, comment and XMP in moov/udta."""

# `rewrite` copies a finished file with moov before mdat (the frontend reads only a file's first
# 64 MiB), our mdta meta first in moov/udta (the frontend reads the first meta only), laid out byte
# for byte as ffmpeg's muxer writes it, a QuickTime `©cmt` atom (what players and exiftool show as
# Comment) and an `XMP_` box. Media data is streamed and every chunk offset moved with it.

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from ..budget import Budget
from ..errors import LimitExceeded, ReadError, SerializeError
from ..limits import MIB
from .isobmff import TEXT_ATOM_MAX, XMP_UUID, Box, box_name, boxes, mdta_keys, meta_skip

if TYPE_CHECKING:  # numpy is imported where offsets are moved: reading a PNG never loads it
    import numpy as np

logger = logging.getLogger(__name__)

# The writer holds the moov in memory, and a moov past the frontend's 64 MiB read is lost to it anyway.
MOOV_MAX = 64 * MIB
COPY_BLOCK = 1 << 20
U32_MAX = 0xFFFF_FFFF
LANG_UND = 0x55C4  # "und" packed as ISO 639 (so readers take the text as UTF-8), as ffmpeg writes it
# ffmpeg's `hdlr` for an mdta meta: version/flags, pre_defined, "mdta", three reserved words, empty name.
MDTA_HDLR = struct.pack(">I4s", 33, b"hdlr") + bytes(8) + b"mdta" + bytes(13)
DATA_UTF8 = struct.pack(">II", 1, 0)  # a `data` box's type (1: UTF-8) and locale
# The boxes the writer opens (the rest it copies byte for byte): five levels at most, whatever the input.
OPENED = {
    b"moov": (b"trak", b"udta"), b"trak": (b"mdia",), b"mdia": (b"minf",), b"minf": (b"stbl",),
    b"udta": (b"meta",), b"meta": (b"ilst",),
}  # fmt: skip
FRAGMENTED = "fragmented MP4 (moof/mvex boxes) is not rewritten; remux it to a plain MP4 first"


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
    first = boxes(fp, 0, len(raw), budget, top=True)[0]
    root = _Node(first.kind)
    stack = [(root, first)]
    while stack:
        node, box = stack.pop()
        start = box.body + (meta_skip(view[box.body : box.body + 8], box.size) if box.kind == b"meta" else 0)
        node.head = view[box.body : start]
        for child in boxes(fp, start, box.end, budget):
            if child.kind in OPENED.get(box.kind, ()):
                node.children.append(_Node(child.kind))
                stack.append((node.children[-1], child))
            else:
                node.children.append(_Node(child.kind, raw=view[child.start : child.end]))
    return root


# The `uuid` box C2PA keeps its manifest store in (ISO BMFF).
C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")


def rewrite(
    src: BinaryIO, dst: BinaryIO, *, tags: Sequence[tuple[str, str]], comment: str | None, xmp: bytes | None
) -> None:
    """Copy the MP4/MOV `src` to `dst` with moov before mdat and our tags, comment and XMP in moov/udta.

    The file's own mdta keys stay (those named in `tags` are replaced), followed by `tags` in order;
    `comment` and `xmp` replace the old ones when given. Every other box is copied byte for byte
    (udta boxes elsewhere move into moov/udta) and media data is streamed, but an old C2PA manifest
    (its `uuid` box), whose hard binding no rewrite keeps (the c2pa target signs the new file afresh).
    Rewriting the output again gives the same bytes. ReadError: `src` is damaged. SerializeError: a layout this does not
    rewrite (fragmented, a moov over MOOV_MAX). LimitExceeded: a comment over a text atom's 64 KiB.
    """
    budget = Budget()
    end = src.seek(0, 2)
    top = boxes(src, 0, end, budget, top=True)
    moov = _the_moov(top)
    tree = _tree(_load(src, moov), budget)
    if any(c.kind == b"mvex" for c in tree.children):
        raise SerializeError(FRAGMENTED)
    dropped = [
        b for b in top if b.kind == b"udta" or (xmp is not None and _is_xmp_uuid(src, b)) or _is_uuid(src, b, C2PA_UUID)
    ]
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


def _the_moov(top: list[Box]) -> Box:
    if any(b.kind == b"moof" for b in top):
        raise SerializeError(FRAGMENTED)
    moovs = [b for b in top if b.kind == b"moov"]
    if len(moovs) != 1:
        raise ReadError("MP4 has no moov box (unfinished)" if not moovs else f"MP4 has {len(moovs)} moov boxes")
    return moovs[0]


def _load(src: BinaryIO, box: Box) -> bytes:
    """A whole box, which the writer holds in memory: never one past MOOV_MAX."""
    if box.end - box.start > MOOV_MAX:
        size = box.end - box.start
        raise SerializeError(f"the MP4's {box_name(box.kind)} box is {size:,} bytes, over the {MOOV_MAX:,}-byte limit")
    src.seek(box.start)
    data = src.read(box.end - box.start)
    if len(data) < box.end - box.start:
        raise ReadError(f"MP4 is truncated inside box {box_name(box.kind)}")
    return data


def _is_xmp_uuid(src: BinaryIO, box: Box) -> bool:
    return _is_uuid(src, box, XMP_UUID)


def _is_uuid(src: BinaryIO, box: Box, uuid: bytes) -> bool:
    return box.kind == b"uuid" and box.size >= 16 and _load(src, Box(b"", box.body, box.body, box.body + 16)) == uuid


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
    names = mdta_keys(keys.payload(), budget) if keys is not None else []
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


def _order(kept: list[Box], moov: Box) -> list[Box | None]:
    """The top-level boxes to write, None where the moov goes: where it was if that is before the first
    mdat, else just before it."""
    order: list[Box | None] = list(kept)
    slot = sum(1 for b in kept if b.start < moov.start)
    first_mdat = next((i for i, b in enumerate(kept) if b.kind == b"mdat"), None)
    order.insert(slot if first_mdat is None or slot <= first_mdat else first_mdat, None)
    return order


def _with_offsets(tree: _Node, order: list[Box | None], end: int) -> bytes:
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
    import numpy as np

    payload = node.payload()
    width = 8 if node.kind == b"co64" else 4
    count = int.from_bytes(payload[4:8], "big") if len(payload) >= 8 else -1
    if count < 0 or count * width > len(payload) - 8:
        raise ReadError(
            f"MP4 {box_name(node.kind)} claims {max(count, 0):,} chunk offsets in {len(payload):,} bytes (damaged)"
        )
    offsets = np.frombuffer(payload, dtype=f">u{width}", count=count, offset=8).astype(np.uint64)
    if count and int(offsets.max()) >= end:
        raise ReadError("an MP4 chunk offset points past the end of the file (damaged)")
    return bytes(payload[:4]), offsets.astype(np.int64)


def _offset_table(kind: bytes, head: bytes, offsets: np.ndarray[Any, Any]) -> _Node:
    table = offsets.astype(">u8" if kind == b"co64" else ">u4").tobytes()
    return _Node(kind, raw=_box(kind, head, struct.pack(">I", len(offsets)), table))


def _shifts(order: list[Box | None], moov_size: int) -> tuple[np.ndarray[Any, Any], ...]:
    """(start, end, how far it moves) of each box written from the source, by source position."""
    import numpy as np

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
    import numpy as np

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

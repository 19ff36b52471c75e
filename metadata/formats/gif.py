"""GIF, still or animated: the infotext in a comment, XMP as Adobe writes it, ComfyUI's graphs in our extension.

GIF extensions are chains of 255-byte sub-blocks of any length, so every target fits in place.
Before the first frame: NETSCAPE2.0 (loop), the comment (A1111 infotext; exiftool and ffprobe
show it), the XMP application extension ("XMP DataXMP": the packet raw, then the 258-byte magic
trailer on which any sub-block walker lands on a terminator, as Adobe and exiftool write it; the
record inside), and ours ("COMFYPRV" "1.0", one per key, `key NUL value`: ComfyUI's graphs, and
the record when XMP is off). Core writes no GIF; its fallback here keeps just the graphs.

Pillow's writer folds a frame identical to the one before into it, so frames are assembled here:
each quantized by Pillow to its own palette and encoded alone, behind a Graphic Control Extension
(delay from Animation.durations(100); "do not dispose", or when any frame has clear pixels, alpha
below 128, a transparent index in every frame and "restore to background"). Reader and restamp
walk the blocks without decoding pixels, every sub-block length checked against the file's size.
"""

from __future__ import annotations

import codecs
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..budget import Budget, BudgetExceeded
from ..errors import ReadError
from ..limits import READ_JSON_MAX, READ_XMP_MAX
from .base import A1111, COMFYUI, RECORD, XMP, Animation, Embedded, Payloads, Plan, embedded_record_json, register
from .jpeg import xmp_packet
from .tags import A1111_MARK, GRAPH_TAGS, RECORD_TAG, embedded_from_tags
from .webp import animation_media, copy_range

HEADER = b"GIF89a"
IMAGE, EXTENSION, TRAILER = 0x2C, 0x21, 0x3B
COMMENT, CONTROL, APPLICATION = 0xFE, 0xF9, 0xFF
NETSCAPE = b"NETSCAPE2.0"
XMP_ID = b"XMP DataXMP"
OURS_ID = b"COMFYPRV1.0"
OURS = "gif:COMFYPRV"
# 0x01, 0xFF down to 0x00, then the terminator: wherever a walker lands in it, it ends on the terminator.
XMP_MAGIC = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
# Graphic Control Extension disposal methods (bits 2-4): 1 "do not dispose", 2 "restore to background".
DISPOSE_KEEP, DISPOSE_CLEAR = 1 << 2, 2 << 2
TRANSPARENT = 255  # the palette index left free for pixels with alpha below 128
SHORT_MAX = 0xFFFF
WINDOW_MAX = 1 << 20


class GifFormat:
    name = "gif"
    extensions: tuple[str, ...] = (".gif",)
    mime = "image/gif"

    def plan(self, payloads: Payloads, targets: frozenset[str]) -> Plan:
        plan = Plan()
        if A1111 in targets and payloads.infotext is not None:
            plan.place(A1111, "gif:Comment")
        if COMFYUI in targets:
            for key, _text in payloads.comfy:
                plan.place(COMFYUI, f"{OURS}:{key}")
        if RECORD in targets:
            plan.place(RECORD, "xmp:cprov:Record" if XMP in targets else f"{OURS}:{RECORD_TAG}")
        if XMP in targets:
            plan.place(XMP, "gif:XMP")
        return plan

    def encode(self, image: Any, payloads: Payloads, plan: Plan, options: Any, fp: BinaryIO) -> None:
        _write(fp, image, [block for _kind, _key, block in _extensions(payloads, plan)])

    def encode_pixels(self, image: Any, options: Any, fp: BinaryIO) -> None:
        _write(fp, image, [])

    def encode_core(self, image: Any, payloads: Payloads, options: Any, fp: BinaryIO) -> None:
        """Core writes no GIF; the fallback keeps ComfyUI's graphs in our extension, nothing else."""
        _write(fp, image, [_ours(key, text) for key, text in payloads.comfy])

    def restamp(self, src: BinaryIO, payloads: Payloads, plan: Plan, options: Any, dst: BinaryIO) -> None:
        """The same blocks with our comment, XMP and extensions in place of the old ones (an old one
        stays when we write no replacement); image blocks are copied byte for byte."""
        ours = _extensions(payloads, plan)
        kinds = {kind for kind, _key, _block in ours}
        keys = {key for kind, key, _block in ours if kind == "ours"} | {RECORD_TAG}
        _width, _height, table_end = _screen(src)
        blocks = list(_blocks(src, Budget()))  # the whole file is walked before a byte is written
        src.seek(6)
        dst.write(HEADER + src.read(table_end - 6))  # extensions need 89a; the screen and palette as they are
        pending = True
        for block in blocks:
            if pending and block.label in (IMAGE, CONTROL):
                dst.write(b"".join(data for _kind, _key, data in ours))
                pending = False
            if block.label == COMMENT and "comment" in kinds:
                continue
            if block.label == APPLICATION and (
                (block.head == XMP_ID and "xmp" in kinds) or (block.head == OURS_ID and _key(src, block) in keys)
            ):
                continue
            copy_range(src, dst, block.start, block.end - block.start, "GIF")
        if pending:
            dst.write(b"".join(data for _kind, _key, data in ours))
        dst.write(bytes([TRAILER]))

    def sniff(self, head: bytes) -> bool:
        return head[:6] in (b"GIF87a", b"GIF89a")

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """Comments, XMP, our extensions (the first of each key), the screen size and the frames'
        timing; image data is stepped over, never decoded."""
        width, height, _end = _screen(fp)
        pairs: list[tuple[str, str]] = []
        comments: set[str] = set()
        packet: bytes | None = None
        frames = centiseconds = delay = 0
        looping = False
        for block in _blocks(fp, budget):
            if block.label == IMAGE:
                frames, centiseconds, delay = frames + 1, centiseconds + delay, 0
            elif block.label == CONTROL and len(block.head) >= 3:
                delay = int.from_bytes(block.head[1:3], "little")
            elif block.label == COMMENT:
                text = _text(_payload(fp, block, budget, "GIF comment"))
                kind = "json" if text.lstrip().startswith("{") else "a1111" if A1111_MARK in text else None
                if kind is not None and kind not in comments:  # what tags.py can use, once each
                    comments.add(kind)
                    pairs.append(("comment", text))
            elif block.label == APPLICATION and block.head == NETSCAPE:
                looping = True
            elif block.label == APPLICATION and block.head == XMP_ID and packet is None:
                packet = _xmp(fp, block, budget)
            elif block.label == APPLICATION and block.head == OURS_ID:
                key = _key(fp, block)
                if key in (*GRAPH_TAGS, RECORD_TAG) and all(name != key for name, _value in pairs):
                    data = _payload(fp, block, budget, f"GIF ComfyUI extension {key!r}", skip=len(key) + 1)
                    pairs.append((key, codecs.utf_8_decode(data, "replace")[0]))
                    del data
        media = animation_media(frames, centiseconds / 100) if looping or frames > 1 or centiseconds else None
        return embedded_from_tags(self.name, pairs, budget, width=width, height=height, xmp=packet, media=media)


# -- writing -------------------------------------------------------------------------------------


def _extensions(payloads: Payloads, plan: Plan) -> list[tuple[str, str, bytes]]:
    """(kind, key, block) of each planned extension: the comment, the XMP, then ours."""
    written = {p.location for p in plan.placements if p.status == "written"}
    out: list[tuple[str, str, bytes]] = []
    if "gif:Comment" in written and payloads.infotext is not None:
        out.append(("comment", "", bytes([EXTENSION, COMMENT]) + _sub_blocks(payloads.infotext.encode("utf-8"))))
    if "gif:XMP" in written:
        packet = xmp_packet(payloads, plan, None)
        if 0 in packet:  # a NUL would end the extension early for every sub-block walker
            raise ValueError("the XMP packet holds a NUL byte, which a GIF cannot carry raw")
        out.append(("xmp", "", _application(XMP_ID) + packet + XMP_MAGIC))
    for key, text in payloads.comfy:
        if f"{OURS}:{key}" in written:
            out.append(("ours", key, _ours(key, text)))
    if f"{OURS}:{RECORD_TAG}" in written:
        out.append(("ours", RECORD_TAG, _ours(RECORD_TAG, embedded_record_json(payloads.record, {}))))
    return out


def _application(identifier: bytes) -> bytes:
    return bytes([EXTENSION, APPLICATION, len(identifier)]) + identifier


def _ours(key: str, text: str) -> bytes:
    return _application(OURS_ID) + _sub_blocks(key.encode("utf-8") + b"\x00" + text.encode("utf-8"))


def _sub_blocks(data: bytes) -> bytes:
    """`data` as a sub-block chain: 255-byte pieces, each behind its length, then the terminator."""
    out = bytearray()
    for start in range(0, len(data), 255):
        piece = data[start : start + 255]
        out.append(len(piece))
        out += piece
    out.append(0)
    return bytes(out)


def _write(fp: BinaryIO, image: Any, extensions: list[bytes]) -> None:
    """Header and logical screen (no global palette), loop, `extensions`, the frames, the trailer."""
    anim = image if isinstance(image, Animation) else None
    frames = anim.frames if anim is not None else [image]
    width, height = frames[0].size
    if width > SHORT_MAX or height > SHORT_MAX:
        raise ValueError(f"{width}x{height} is larger than a GIF can hold (65535x65535)")
    fp.write(HEADER + struct.pack("<HHBBB", width, height, 0x70, 0, 0))  # 8-bit color, palettes per frame
    # Animation.loop counts plays, NETSCAPE2.0 counts repeats after the first; one play needs none.
    if anim is not None and anim.loop != 1:
        repeats = min(max(anim.loop - 1, 0), SHORT_MAX)
        fp.write(_application(NETSCAPE) + b"\x03\x01" + struct.pack("<H", repeats) + b"\x00")
    for block in extensions:
        fp.write(block)
    delays: list[int | None] = list(anim.durations(100)) if anim is not None else [None]
    if max((d or 0) for d in delays) > SHORT_MAX:
        raise ValueError("a frame lasts longer than a GIF delay can hold (655.35 s)")
    # One clear pixel anywhere and every frame gets a transparent index and is cleared after it is
    # shown: a clear pixel must show neither the frame before it nor an opaque "background color".
    keyed = any(_clear(frame) is not None for frame in frames)
    for index, (frame, delay) in enumerate(zip(frames, delays, strict=True)):
        if frame.size != (width, height):
            raise ValueError(f"frame {index} is {frame.size[0]}x{frame.size[1]}, not {width}x{height}")
        fp.write(_frame(frame, delay, keyed=keyed))
    fp.write(bytes([TRAILER]))


def _frame(frame: Any, delay: int | None, *, keyed: bool) -> bytes:
    """One frame: its Graphic Control Extension, its descriptor with its own palette, its LZW data,
    all taken from Pillow's encoding of the frame alone (which may renumber the transparent index)."""
    paletted = _quantized(frame, keyed=keyed)
    still = io.BytesIO()
    options = {"transparency": TRANSPARENT, "optimize": False} if keyed else {}  # keep the index, used or not
    paletted.save(still, format="GIF", interlace=False, **options)
    data = still.getvalue()
    blocks = list(_blocks(io.BytesIO(data), Budget()))
    image = next(b for b in blocks if b.label == IMAGE)
    control = next((b for b in blocks if b.label == CONTROL and len(b.head) >= 4 and b.head[0] & 1), None)
    out = b""
    if delay is not None or control is not None:
        dispose = 0 if delay is None else DISPOSE_CLEAR if keyed else DISPOSE_KEEP
        flags = dispose | (1 if control is not None else 0)
        index = control.head[3] if control is not None else 0
        out = bytes([EXTENSION, CONTROL, 4, flags]) + struct.pack("<H", delay or 0) + bytes([index, 0])
    packed, body = image.head[8], data[image.start + 10 : image.end]
    if not packed & 0x80 and data[10] & 0x80:  # Pillow's global palette becomes this frame's own
        packed = (packed & 0x60) | 0x80 | (data[10] & 0x07)
        body = data[13 : 13 + _table(data[10])] + body
    return out + bytes([IMAGE]) + image.head[:8] + bytes([packed]) + body


def _quantized(frame: Any, *, keyed: bool) -> Any:
    """The frame in palette mode, quantized to its own colors; keyed, index 255 is kept for the
    transparent pixels (alpha below 128) and the others share 255 colors."""
    if not keyed:
        return frame.convert("RGB").quantize(256)
    paletted = frame.convert("RGB").quantize(TRANSPARENT)
    palette = paletted.getpalette() or []
    paletted.putpalette(palette + [0] * (768 - len(palette)))
    clear = _clear(frame)
    if clear is not None:
        paletted.paste(TRANSPARENT, (0, 0, *frame.size), clear)
    return paletted


def _clear(frame: Any) -> Any:
    """A mask of the pixels with alpha below 128 (a GIF shows them transparent), or None if there are none."""
    if frame.mode not in ("RGBA", "LA", "PA") and "transparency" not in frame.info:
        return None
    mask = frame.convert("RGBA").getchannel("A").point([255] * 128 + [0] * 128)
    return mask if mask.getbbox() is not None else None


# -- reading ---------------------------------------------------------------------------------------


@dataclass
class _Block:
    """One block: an extension (its label) or an image (IMAGE), and where its sub-blocks are."""

    label: int
    start: int  # the introducer byte
    data: int  # the first sub-block's length byte
    end: int  # past the terminator
    size: int  # data bytes in the sub-blocks
    head: bytes  # an extension's first sub-block (an application's identifier); an image's descriptor


def _table(packed: int) -> int:
    """Bytes of the color table a screen or image descriptor's packed field announces."""
    return 3 << ((packed & 7) + 1) if packed & 0x80 else 0


def _screen(fp: BinaryIO) -> tuple[int, int, int]:
    """Width, height and where the global color table ends, checked against the file's size."""
    size = fp.seek(0, 2)
    fp.seek(0)
    head = fp.read(13)
    if head[:6] not in (b"GIF87a", b"GIF89a"):
        raise ReadError("not a GIF file (no GIF87a/GIF89a header)")
    if len(head) < 13 or 13 + _table(head[10]) > size:
        raise ReadError("GIF is truncated inside its header or global color table")
    width, height = struct.unpack("<HH", head[6:10])
    return width, height, 13 + _table(head[10])


def _blocks(fp: BinaryIO, budget: Budget) -> Iterator[_Block]:
    """Every extension and image block up to the trailer, each walked to its terminator first."""
    _width, _height, pos = _screen(fp)
    size = fp.seek(0, 2)
    while True:
        budget.chunk("GIF block")
        fp.seek(pos)
        intro = fp.read(1)
        if not intro:
            raise ReadError("GIF is truncated: it ends before its trailer")
        if intro[0] == TRAILER:
            return
        if intro[0] == EXTENSION:
            label = fp.read(1)
            data = pos + 2
            head_at = data
        elif intro[0] == IMAGE:
            label = bytes([IMAGE])
            descriptor = fp.read(9)
            if len(descriptor) < 9:
                raise ReadError("GIF is truncated inside an image descriptor")
            data = pos + 10 + _table(descriptor[8]) + 1  # past the palette and the LZW code size
            head_at = pos + 1
        else:
            raise ReadError(f"GIF is damaged: byte 0x{intro[0]:02X} at {pos:,} starts no block")
        if not label or data > size:
            raise ReadError("GIF is truncated inside a block header")
        end, total = _chain(fp, data, size)
        fp.seek(head_at)
        head = fp.read(9) if label[0] == IMAGE else fp.read(fp.read(1)[0])
        yield _Block(label[0], pos, data, end, total, head)
        pos = end


def _chain(fp: BinaryIO, pos: int, size: int) -> tuple[int, int]:
    """(end, data bytes) of the sub-block chain at `pos`: past its terminator, which must be in the file.

    Read in windows that grow from a few hundred bytes, so a file of many tiny blocks reads little."""
    total, window = 0, 256
    while True:
        fp.seek(pos)
        data = fp.read(window)
        if not data or pos + len(data) > size:
            raise ReadError("GIF is truncated inside a block (its sub-blocks run past the end of the file)")
        index = 0
        while index < len(data):
            length = data[index]
            if length == 0:
                return pos + index + 1, total
            index += length + 1
            total += length
        pos += index
        window = min(window * 2, WINDOW_MAX)


def _payload(fp: BinaryIO, block: _Block, budget: Budget, what: str, *, skip: int = 0) -> bytearray:
    """A block's data (an application's without its identifier) joined, less its first `skip` bytes;
    refused past the JSON read limit before anything is read, and charged to the budget."""
    start = block.data + (1 + len(block.head) if block.label == APPLICATION else 0)
    size = block.size - (len(block.head) if block.label == APPLICATION else 0)
    if size > READ_JSON_MAX:
        raise BudgetExceeded(f"{what} is {size:,} bytes, over the {READ_JSON_MAX:,}-byte read limit")
    budget.load(block.end - start, what)
    fp.seek(start)
    raw = fp.read(block.end - 1 - start)
    out, view, index, filled = bytearray(size), memoryview(raw), 0, 0
    while index < len(raw):
        length = raw[index]
        out[filled : filled + length] = view[index + 1 : index + 1 + length]
        index, filled = index + 1 + length, filled + length
    del out[:skip]
    return out


def _xmp(fp: BinaryIO, block: _Block, budget: Budget) -> bytes:
    """The packet of an XMP application extension: its raw bytes, less the magic trailer."""
    start = block.data + 1 + len(block.head)
    length = block.end - 1 - start
    if length > READ_XMP_MAX:
        raise BudgetExceeded(f"GIF XMP is {length:,} bytes, over the {READ_XMP_MAX:,}-byte read limit")
    budget.load(length, "GIF XMP")
    fp.seek(start)
    packet = fp.read(length)
    return packet[: -len(XMP_MAGIC) + 1] if packet.endswith(XMP_MAGIC[:-1]) else packet


def _key(fp: BinaryIO, block: _Block) -> str | None:
    """The key of one of our extensions, from its first data sub-block (where our writer puts it)."""
    fp.seek(block.data + 1 + len(block.head))
    length = fp.read(1)
    data = fp.read(length[0]) if length else b""
    key, nul, _rest = data.partition(b"\x00")
    return key.decode("utf-8", "replace") if nul else None


def _text(data: bytearray) -> str:
    """A comment: UTF-8 as we write it, else Latin-1 as older tools did."""
    try:
        return codecs.utf_8_decode(data)[0]
    except UnicodeDecodeError:
        return codecs.latin_1_decode(data)[0]


register(GifFormat())

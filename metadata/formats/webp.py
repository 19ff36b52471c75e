"""WEBP: EXIF as for JPEG plus ComfyUI's graphs in IFD0, the record in the XMP chunk.

Layout f2 of research/readers.md §6: read by every A1111-style reader and by ComfyUI's
frontend (which takes any IFD0 ASCII `key:value`). Alpha is kept: sd-prompt-reader ignores EXIF
UserComment on images with alpha, so a WEBP with alpha also carries the parameters as SwarmUI's
JSON in IFD0 Model (swarm.py), the one place it reads them from there; the A1111 placement covers
both copies. RIFF chunks have no 64 KiB limit, so everything fits in place up to the reader cap.
Restamp rewrites the RIFF around the untouched image chunks (still or animated): a VP8X header
with the EXIF/XMP flags, our EXIF and XMP chunks after the image data as the container spec
orders them, sizes and padding redone.

An `Animation` is assembled here, not by Pillow: libwebp's WebPAnimEncoder folds a frame identical
to the one before into it, so each frame is encoded alone as a still WEBP and its image chunks go
into an ANMF frame of their own (full canvas, no blending, no disposal).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..budget import Budget
from ..errors import ReadError
from ..limits import WEBP_CHUNK_MAX
from . import exif, swarm
from .base import A1111, RECORD, XMP, Animation, Embedded, Payloads, Plan, register
from .jpeg import exif_content, plan_exif, planned_metadata

# VP8X flag bits (WebP container spec): ICC 0x20, alpha 0x10, EXIF 0x08, XMP 0x04, animation 0x02.
FLAG_ALPHA = 0x10
FLAG_EXIF = 0x08
FLAG_XMP = 0x04
FLAG_ANIMATION = 0x02
IMAGE_CHUNKS = (b"ANMF", b"ALPH", b"VP8 ", b"VP8L")
FRAME_CHUNKS = (b"ALPH", b"VP8 ", b"VP8L")
# ANMF flags: bit 1 set is "do not blend" (each frame is the whole canvas), bit 0 clear is "no disposal".
ANMF_NO_BLEND = 0x02
DURATION_MAX = 0xFF_FFFF  # ANMF durations are 24-bit milliseconds
RIFF_MAX = 0xFFFF_FFFF
COPY_BLOCK = 1 << 20


class WebpFormat:
    name = "webp"
    extensions: tuple[str, ...] = (".webp",)
    mime = "image/webp"

    def plan(self, payloads: Payloads, targets: frozenset[str]) -> Plan:
        plan = Plan()
        plan_exif(payloads, targets, plan, WEBP_CHUNK_MAX)
        plan.record_refs.clear()  # the XMP chunk has no size limit: the whole record goes in it
        if RECORD in targets:
            if XMP in targets:
                plan.place(RECORD, "xmp:cprov:Record")
            else:
                plan.move(RECORD, "sidecar:json", "WEBP holds the record only inside XMP, which is off")
        if XMP in targets:
            plan.place(XMP, "webp:XMP")
        return plan

    def encode(self, image: Any, payloads: Payloads, plan: Plan, options: Any, fp: BinaryIO) -> None:
        if isinstance(image, Animation):
            frames, alpha = _frames(image, options)
            tiff, packet = _metadata(payloads, plan, alpha=alpha)
            _write_animation(fp, image, frames, alpha=alpha, tiff=tiff, packet=packet)
            return
        params: dict[str, Any] = {"quality": options.quality, "lossless": options.lossless}
        alpha = _transparent(image)
        if not alpha and image.mode != "RGB":
            image = image.convert("RGB")  # an opaque alpha channel carries nothing
        tiff, packet = _metadata(payloads, plan, alpha=alpha)
        if tiff:
            params["exif"] = tiff
        if packet is not None:
            params["xmp"] = packet
        image.save(fp, format="WEBP", **params)

    def encode_pixels(self, image: Any, options: Any, fp: BinaryIO) -> None:
        if isinstance(image, Animation):
            frames, alpha = _frames(image, options)
            _write_animation(fp, image, frames, alpha=alpha)
            return
        if image.mode != "RGB" and not _transparent(image):
            image = image.convert("RGB")  # an opaque alpha channel carries nothing
        image.save(fp, format="WEBP", quality=options.quality, lossless=options.lossless)

    def restamp(self, src: BinaryIO, payloads: Payloads, plan: Plan, options: Any, dst: BinaryIO) -> None:
        """The same RIFF with our EXIF and XMP in place of the old ones; image chunks copied as they are.

        An old chunk stays when we write no replacement. Alpha stays too (it is in the image data),
        so the EXIF gets the SwarmUI copy of the parameters that sd-prompt-reader reads then. An old C2PA
        manifest goes: no rewrite keeps its hard binding (the c2pa target signs afresh).
        """
        chunks = _index(src)
        vp8x = bytearray(_vp8x(src, chunks))
        alpha = bool(vp8x[0] & FLAG_ALPHA) or any(c.fourcc == b"ALPH" for c in chunks)
        tiff, packet = _metadata(payloads, plan, alpha=alpha)
        drop = {b"VP8X", b"C2PA"} | ({b"EXIF"} if tiff else set()) | ({b"XMP "} if packet is not None else set())
        kept: list[_Chunk] = [c for c in chunks if c.fourcc not in drop]
        last_image = max(i for i, c in enumerate(kept) if c.fourcc in IMAGE_CHUNKS)
        ours = ([_Chunk(b"EXIF", data=tiff)] if tiff else []) + ([_Chunk(b"XMP ", data=packet)] if packet else [])
        kept[last_image + 1 : last_image + 1] = ours
        fourccs = {c.fourcc for c in kept}
        vp8x[0] &= ~(FLAG_EXIF | FLAG_XMP) & 0xFF
        vp8x[0] |= (FLAG_EXIF if b"EXIF" in fourccs else 0) | (FLAG_XMP if b"XMP " in fourccs else 0)
        out = [_Chunk(b"VP8X", data=bytes(vp8x)), *kept]
        size = 4 + sum(8 + c.size + (c.size & 1) for c in out)
        if size > RIFF_MAX:
            raise ValueError(f"the restamped WEBP would be {size:,} bytes, over RIFF's 4 GiB")
        dst.write(b"RIFF" + struct.pack("<I", size) + b"WEBP")
        for chunk in out:
            dst.write(chunk.fourcc + struct.pack("<I", chunk.size))
            if chunk.data is not None:
                dst.write(chunk.data)
            else:
                copy_range(src, dst, chunk.offset + 8, chunk.size)
            if chunk.size & 1:
                dst.write(b"\x00")

    def encode_core(self, image: Any, payloads: Payloads, options: Any, fp: BinaryIO) -> None:
        """ComfyUI core's WEBP layout (still or animated), minus its Model tag: graphs in IFD0 ASCII tags."""
        tiff = exif.build(exif.ExifContent(comfy=dict(payloads.comfy)))
        if isinstance(image, Animation):
            frames, alpha = _frames(image, options)
            _write_animation(fp, image, frames, alpha=alpha, tiff=tiff)
            return
        params: dict[str, Any] = {"quality": options.quality, "lossless": options.lossless}
        if tiff:
            params["exif"] = tiff
        image.save(fp, format="WEBP", **params)

    def sniff(self, head: bytes) -> bool:
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """The first EXIF and XMP chunks, the canvas size and, for an animation, its frame count and
        timing (from the ANMF headers); image data is skipped unread."""
        found = Embedded(format=self.name)
        head = fp.read(12)
        if len(head) < 12 or not self.sniff(head):
            raise ReadError("not a WEBP file (no RIFF/WEBP header)")
        riff_end = 8 + int.from_bytes(head[4:8], "little")
        end = fp.seek(0, 2)
        if riff_end > end:
            raise ReadError(f"WEBP is truncated: {end:,} of the {riff_end:,} bytes it announces")
        pos, extended, exif_seen = 12, False, False
        frames, milliseconds = 0, 0
        while pos + 8 <= riff_end:
            fp.seek(pos)
            header = fp.read(8)
            fourcc, size = header[:4], struct.unpack("<I", header[4:])[0]
            budget.chunk("WEBP chunk")
            if pos + 8 + size > riff_end:
                raise ReadError(
                    f"WEBP chunk {fourcc!r} claims {size:,} bytes, past the end of the file (truncated or damaged)"
                )
            pos += 8 + size + (size & 1)
            if fourcc == b"EXIF" and not exif_seen:
                budget.load(size, "WEBP EXIF chunk")
                content = exif.parse(fp.read(size), budget)
                found.infotext = content.user_comment
                found.comfy.update(content.comfy)
                exif_seen = True
            elif fourcc == b"XMP " and found.xmp is None:
                budget.load(size, "WEBP XMP chunk")
                found.xmp = fp.read(size)
            elif fourcc == b"ANMF":
                frame = fp.read(min(size, 16))  # offsets, size, then the 24-bit duration
                frames += 1
                milliseconds += int.from_bytes(frame[12:15], "little") if len(frame) == 16 else 0
            elif fourcc == b"VP8X":
                data = fp.read(min(size, 10))
                if len(data) >= 10:
                    found.width = 1 + int.from_bytes(data[4:7], "little")
                    found.height = 1 + int.from_bytes(data[7:10], "little")
                    found.alpha = bool(data[0] & FLAG_ALPHA)
            elif fourcc in (b"VP8 ", b"VP8L"):
                if found.width is None:
                    info = _bitstream_info(fourcc, fp.read(min(size, 10)))
                    found.width, found.height, found.alpha = info or (None, None, False)
                if not extended:
                    return found  # a simple WEBP is its bitstream alone: no metadata chunks
            extended = extended or fourcc == b"VP8X"
        if pos < riff_end:
            raise ReadError(f"WEBP is truncated: a chunk header is cut at byte {pos:,}")
        if frames:
            found.media = animation_media(frames, milliseconds / 1000)
        return found


@dataclass
class _Chunk:
    """A chunk to write: its bytes (`data`), or where to copy them from in the source."""

    fourcc: bytes
    offset: int = 0
    length: int = 0
    data: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.length


def _metadata(payloads: Payloads, plan: Plan, *, alpha: bool) -> tuple[bytes, bytes | None]:
    """The planned EXIF and XMP; with alpha, the EXIF also holds the SwarmUI copy of the A1111
    parameters in IFD0 Model, whenever the A1111 text went to UserComment and the copy fits."""
    tiff, packet = planned_metadata(payloads, plan, WEBP_CHUNK_MAX)
    in_exif = any(
        p.target == A1111 and p.location == "exif:UserComment" and p.status == "written" for p in plan.placements
    )
    if alpha and in_exif:
        content = exif_content(payloads, plan)
        content.swarm = swarm.model_json(payloads.record)
        both = exif.build(content)
        if len(both) <= WEBP_CHUNK_MAX:
            tiff = both
    return tiff, packet


def animation_media(frames: int, seconds: float) -> dict[str, Any]:
    """Embedded.media for an animated image (WEBP, APNG, GIF): frames, duration, and the mean rate."""
    media: dict[str, Any] = {"frames": frames, "duration_s": seconds}
    if seconds > 0:
        media["fps"] = round(frames / seconds, 3)
    return media


def _frames(anim: Animation, options: Any) -> tuple[list[bytes], bool]:
    """Each frame's image chunks (ALPH, then VP8 or VP8L) from its own still encode, as they go into
    an ANMF; and whether any frame keeps an alpha channel (decided per frame, as for a still)."""
    bodies, any_alpha = [], False
    for frame in anim.frames:
        alpha = _transparent(frame)
        opaque = frame if alpha or frame.mode == "RGB" else frame.convert("RGB")
        still = io.BytesIO()
        opaque.save(still, format="WEBP", quality=options.quality, lossless=options.lossless)
        data = still.getvalue()
        chunks = _index(io.BytesIO(data))
        body = b"".join(
            data[c.offset : c.offset + 8 + c.size + (c.size & 1)] for c in chunks if c.fourcc in FRAME_CHUNKS
        )
        bodies.append(body)
        any_alpha = any_alpha or alpha
    return bodies, any_alpha


def _write_animation(
    fp: BinaryIO, anim: Animation, bodies: list[bytes], *, alpha: bool, tiff: bytes = b"", packet: bytes | None = None
) -> None:
    """VP8X, ANIM, one ANMF per frame, then EXIF and XMP, as the container spec orders them."""
    durations = anim.durations(1000)
    if max(durations) > DURATION_MAX:
        raise ValueError(f"a frame of {max(durations):,} ms is longer than an animated WEBP can hold")
    canvas = (anim.width - 1).to_bytes(3, "little") + (anim.height - 1).to_bytes(3, "little")
    flags = FLAG_ANIMATION | (FLAG_ALPHA if alpha else 0) | (FLAG_EXIF if tiff else 0) | (FLAG_XMP if packet else 0)
    chunks = [
        (b"VP8X", bytes([flags, 0, 0, 0]) + canvas),
        (b"ANIM", bytes(4) + struct.pack("<H", min(anim.loop, 0xFFFF))),
    ]
    for body, duration in zip(bodies, durations, strict=True):
        header = bytes(6) + canvas + duration.to_bytes(3, "little") + bytes([ANMF_NO_BLEND])
        chunks.append((b"ANMF", header + body))
    chunks += ([(b"EXIF", tiff)] if tiff else []) + ([(b"XMP ", packet)] if packet else [])
    size = 4 + sum(8 + len(data) + (len(data) & 1) for _, data in chunks)
    if size > RIFF_MAX:
        raise ValueError(f"the animated WEBP would be {size:,} bytes, over RIFF's 4 GiB")
    fp.write(b"RIFF" + struct.pack("<I", size) + b"WEBP")
    for fourcc, data in chunks:
        fp.write(fourcc + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b""))


def _transparent(image: Any) -> bool:
    """Whether any pixel is not fully opaque: libwebp drops an alpha channel that is all 255 anyway."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return False
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    low: int = rgba.getchannel("A").getextrema()[0]
    return low < 255


def _index(src: BinaryIO) -> list[_Chunk]:
    """Every chunk of the RIFF (where it is, how big), checked against the file's real length."""
    end = src.seek(0, 2)
    src.seek(0)
    head = src.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        raise ReadError("not a WEBP file (no RIFF/WEBP header)")
    riff_end = 8 + int.from_bytes(head[4:8], "little")
    if riff_end > end:
        raise ReadError(f"WEBP is truncated: {end:,} of the {riff_end:,} bytes it announces")
    chunks, pos = [], 12
    while pos + 8 <= riff_end:
        src.seek(pos)
        header = src.read(8)
        fourcc, size = header[:4], struct.unpack("<I", header[4:])[0]
        if pos + 8 + size > riff_end:
            raise ReadError(f"WEBP chunk {fourcc!r} runs past the end of the file (truncated or damaged)")
        chunks.append(_Chunk(fourcc, offset=pos, length=size))
        pos += 8 + size + (size & 1)
    if not any(c.fourcc in IMAGE_CHUNKS for c in chunks):
        raise ReadError("WEBP has no image data (no VP8, VP8L or ANMF chunk)")
    return chunks


def _bitstream_info(fourcc: bytes, data: bytes) -> tuple[int, int, bool] | None:
    """(width, height, alpha) from a simple file's VP8 or VP8L bitstream header."""
    if fourcc == b"VP8L" and len(data) >= 5 and data[0] == 0x2F:
        bits = int.from_bytes(data[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
    if fourcc == b"VP8 " and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF, False
    return None


def _vp8x(src: BinaryIO, chunks: list[_Chunk]) -> bytes:
    """The file's VP8X payload, or one made for a simple (VP8/VP8L-only) file from its bitstream."""
    first = chunks[0]
    src.seek(first.offset + 8)
    data = src.read(min(first.length, 10))
    if first.fourcc == b"VP8X" and len(data) == 10:
        return data
    info = _bitstream_info(first.fourcc, data)
    if info is None:
        raise ReadError(f"WEBP starts with {first.fourcc!r}, not a VP8X, VP8 or VP8L chunk")
    width, height, alpha = info
    flags = FLAG_ALPHA if alpha else 0
    return bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")


def copy_range(src: BinaryIO, dst: BinaryIO, offset: int, length: int, fmt: str = "WEBP") -> None:
    """`length` bytes of `src` from `offset` on, copied to `dst` a block at a time (restamps, GIF's too)."""
    src.seek(offset)
    while length > 0:
        block = src.read(min(length, COPY_BLOCK))
        if not block:
            raise ReadError(f"{fmt} is truncated inside a chunk")
        dst.write(block)
        length -= len(block)


register(WebpFormat())

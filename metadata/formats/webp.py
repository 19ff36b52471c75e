"""WEBP: EXIF as for JPEG plus ComfyUI's graphs in IFD0, the record in the XMP chunk.

Layout f2 of research/readers.md §6: read by every A1111-style reader and by ComfyUI's
frontend (which takes any IFD0 ASCII `key:value`). Pixels are saved as RGB whenever the A1111
target is on: sd-prompt-reader ignores EXIF on images with alpha. RIFF chunks have no 64 KiB
limit, so everything fits in place up to the reader cap.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from ..errors import ReadError
from ..limits import READ_CHUNK_MAX, WEBP_CHUNK_MAX
from . import exif
from .base import A1111, RECORD, XMP, Embedded, Payloads, Plan, register
from .jpeg import exif_content, plan_exif, xmp_packet


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
        params: dict[str, Any] = {"quality": options.quality, "lossless": options.lossless}
        tiff = plan.exif if plan.exif is not None else exif.build(exif_content(payloads, plan))
        if tiff:
            params["exif"] = tiff
        if any(p.target == XMP and p.status == "written" for p in plan.placements):
            params["xmp"] = xmp_packet(payloads, plan, WEBP_CHUNK_MAX)
        if image.mode != "RGB" and any(p.target == A1111 and p.status == "written" for p in plan.placements):
            image = image.convert("RGB")
        image.save(fp, format="WEBP", **params)

    def encode_core(self, image: Any, payloads: Payloads, options: Any, fp: BinaryIO) -> None:
        """ComfyUI core's still-WEBP layout, minus its Model tag: graphs in IFD0 ASCII tags."""
        params: dict[str, Any] = {"quality": options.quality, "lossless": options.lossless}
        tiff = exif.build(exif.ExifContent(comfy=dict(payloads.comfy)))
        if tiff:
            params["exif"] = tiff
        image.save(fp, format="WEBP", **params)

    def sniff(self, head: bytes) -> bool:
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"

    def read(self, fp: BinaryIO) -> Embedded:
        found = Embedded(format=self.name)
        head = fp.read(12)
        if len(head) < 12 or not self.sniff(head):
            raise ReadError("not a WEBP file (no RIFF/WEBP header)")
        riff_end = 8 + int.from_bytes(head[4:8], "little")
        extended = False
        while True:
            header = fp.read(8)
            if len(header) < 8:
                if fp.tell() < riff_end:
                    raise ReadError(f"WEBP is truncated: {fp.tell():,} of the {riff_end:,} bytes it announces")
                return found
            fourcc, size = header[:4], struct.unpack("<I", header[4:])[0]
            if size > READ_CHUNK_MAX:
                raise ReadError(f"WEBP chunk {fourcc!r} claims {size:,} bytes, over the read limit")
            if fourcc not in (b"EXIF", b"XMP ", b"VP8X", b"VP8 ", b"VP8L"):
                fp.seek(size + (size & 1), 1)
                continue
            data = fp.read(size + (size & 1))[:size]
            if len(data) < size:
                raise ReadError(f"WEBP is truncated inside chunk {fourcc!r}")
            if fourcc == b"EXIF":
                content = exif.parse(data)
                found.infotext = content.user_comment
                found.comfy.update(content.comfy)
            elif fourcc == b"XMP ":
                found.xmp = data
            elif fourcc == b"VP8X" and len(data) >= 10:
                found.width = 1 + int.from_bytes(data[4:7], "little")
                found.height = 1 + int.from_bytes(data[7:10], "little")
            elif fourcc == b"VP8L" and len(data) >= 5 and found.width is None:
                bits = int.from_bytes(data[1:5], "little")
                found.width, found.height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            elif fourcc == b"VP8 " and len(data) >= 10 and found.width is None:
                found.width = int.from_bytes(data[6:8], "little") & 0x3FFF
                found.height = int.from_bytes(data[8:10], "little") & 0x3FFF
            if fourcc in (b"VP8 ", b"VP8L") and not extended:
                return found  # a simple WEBP is its bitstream alone: no metadata chunks
            extended = extended or fourcc == b"VP8X"


register(WebpFormat())

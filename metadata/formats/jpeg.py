"""JPEG: EXIF and XMP handed to the one and only encode, each within its 64 KiB segment.

EXIF (exif.py layout) holds the infotext in UserComment, then ComfyUI's prompt and workflow in
IFD0 while they fit; XMP holds the IPTC fields and the record. What does not fit moves to the
JSON sidecar, and the parts that did fit say where (research/readers.md §5, standards.md §2.4).
There is never a second lossy encode and never a COM segment (sd-prompt-reader takes COM for
Fooocus JSON and fails). Restamp swaps the APP1 Exif and XMP segments of an existing JPEG,
placed right after SOI and any JFIF APP0; every other byte is copied as it is.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..budget import Budget
from ..errors import ReadError
from ..limits import JPEG_EXIF_TIFF_MAX, JPEG_SEGMENT_PAYLOAD_MAX, JPEG_XMP_PACKET_MAX
from . import exif, xmp
from .base import A1111, COMFYUI, GRAPH_KEYS, RECORD, XMP, Embedded, Payloads, Plan, embedded_record_json, register

XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
EXIF_HEADER = b"Exif\x00\x00"
SIDECAR_NOTE = "sidecar:json"
# XMP text fields shrink until the packet fits; the record keeps the full text.
XMP_TEXT_STEPS = (8 * 1024, 2 * 1024, 256)
# Markers may be preceded by any number of 0xFF fill bytes; no real file has more than a few.
FILL_MAX = 64 * 1024


def exif_content(payloads: Payloads, plan: Plan) -> exif.ExifContent:
    """The EXIF the plan decided on, for JPEG and WEBP alike."""
    written = {p.location for p in plan.placements if p.status == "written"}
    content = exif.ExifContent(
        software=_software(payloads),
        created=payloads.record.provenance.created,
    )
    if "exif:UserComment" in written:
        content.user_comment = payloads.infotext
    for key, text in payloads.comfy:
        if f"exif:{key}" in written:
            content.comfy[key] = text
    return content


def _software(payloads: Payloads) -> str:
    gen = payloads.record.provenance.generator
    return f"{gen.name} {gen.version or ''}".strip()


def xmp_packet(payloads: Payloads, plan: Plan, limit: int | None) -> bytes:
    """The embedded XMP: the record inline when it fits `limit`, else a pointer to the sidecar."""
    record = payloads.record
    wants_record = any(p.target == RECORD and p.status == "written" for p in plan.placements)
    if wants_record:
        packet = xmp.build(record, record_json=embedded_record_json(record, plan.record_refs))
        if limit is None or len(packet) <= limit:
            return packet
    stub = embedded_record_json(record, {}, stub=True) if wants_record or plan.needs_sidecar_json else None
    # Point at the JSON sidecar only when one is being written beside the image.
    note = SIDECAR_NOTE if any(p.location == SIDECAR_NOTE and p.status != "failed" for p in plan.placements) else None
    for text_limit in XMP_TEXT_STEPS:
        packet = xmp.build(record, record_json=stub, sidecar=note, text_limit=text_limit)
        if limit is None or len(packet) <= limit:
            return packet
    return xmp.build(record, sidecar=note, text_limit=0)


def planned_metadata(payloads: Payloads, plan: Plan, xmp_limit: int) -> tuple[bytes, bytes | None]:
    """The planned EXIF (TIFF bytes, empty for none) and XMP packet (None for none), JPEG and WEBP alike."""
    tiff = plan.exif if plan.exif is not None else exif.build(exif_content(payloads, plan))
    written = any(p.target == XMP and p.status == "written" for p in plan.placements)
    return tiff, xmp_packet(payloads, plan, xmp_limit) if written else None


def plan_exif(payloads: Payloads, targets: frozenset[str], plan: Plan, limit: int) -> None:
    """Fill UserComment, then prompt, then workflow, while the EXIF block stays under `limit`."""
    content = exif.ExifContent(software=_software(payloads), created=payloads.record.provenance.created)
    if A1111 in targets:
        content.user_comment = payloads.infotext
    if COMFYUI in targets:
        content.comfy = dict(payloads.comfy)
    whole = exif.build(content)
    if len(whole) <= limit:  # the usual case: everything fits, one build
        plan.exif = whole
        if content.user_comment is not None:
            plan.place(A1111, "exif:UserComment")
        for key in content.comfy:
            plan.place(COMFYUI, f"exif:{key}")
            if key in GRAPH_KEYS:
                plan.record_refs[key] = f"exif:{key}"
        return
    content.user_comment, content.comfy = None, {}
    if A1111 in targets and payloads.infotext is not None:
        content.user_comment = payloads.infotext
        if len(exif.build(content)) <= limit:
            plan.place(A1111, "exif:UserComment")
        else:
            content.user_comment = None
            plan.move(A1111, "sidecar:txt", f"infotext exceeds the {limit:,}-byte EXIF limit")
            plan.move(A1111, "sidecar:json", "the record keeps the full prompts")
    if COMFYUI in targets:
        for key, text in sorted(payloads.comfy, key=lambda kv: kv[0] != "prompt"):
            content.comfy[key] = text
            if len(exif.build(content)) <= limit:
                plan.place(COMFYUI, f"exif:{key}")
                if key in GRAPH_KEYS:
                    plan.record_refs[key] = f"exif:{key}"
            else:
                del content.comfy[key]
                plan.move(COMFYUI, SIDECAR_NOTE, f"{key} ({len(text):,} bytes) exceeds the {limit:,}-byte EXIF limit")


class JpegFormat:
    name = "jpeg"
    extensions: tuple[str, ...] = (".jpg", ".jpeg")
    mime = "image/jpeg"

    def plan(self, payloads: Payloads, targets: frozenset[str]) -> Plan:
        plan = Plan()
        plan_exif(payloads, targets, plan, JPEG_EXIF_TIFF_MAX)
        if RECORD in targets:
            if XMP not in targets:
                plan.move(RECORD, SIDECAR_NOTE, "JPEG holds the record only inside XMP, which is off")
            else:
                record_json = embedded_record_json(payloads.record, plan.record_refs)
                trial = xmp.build(payloads.record, record_json=record_json)
                if len(trial) + 8 * 1024 <= JPEG_XMP_PACKET_MAX:
                    plan.place(RECORD, "xmp:cprov:Record")
                else:
                    plan.move(RECORD, SIDECAR_NOTE, f"record exceeds the {JPEG_XMP_PACKET_MAX:,}-byte XMP segment")
        if XMP in targets:
            plan.place(XMP, "jpeg:APP1:xmp")
        return plan

    def encode(self, image: Any, payloads: Payloads, plan: Plan, options: Any, fp: BinaryIO) -> None:
        params: dict[str, Any] = {"quality": options.quality, "optimize": False}
        tiff, packet = planned_metadata(payloads, plan, JPEG_XMP_PACKET_MAX)
        if tiff:
            params["exif"] = EXIF_HEADER + tiff
        if packet is not None:
            params["xmp"] = packet
        # convert() copies even an RGB image: 0.3-0.8 ms per 1024² save, against a ~6 ms q95 encode.
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        rgb.save(fp, format="JPEG", **params)

    def encode_pixels(self, image: Any, options: Any, fp: BinaryIO) -> None:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        rgb.save(fp, format="JPEG", quality=options.quality, optimize=False)

    def restamp(self, src: BinaryIO, payloads: Payloads, plan: Plan, options: Any, dst: BinaryIO) -> None:
        """Header segments rewritten (old Exif/XMP out, ours in after SOI and APP0); the scan copied as is.

        An old segment stays when we write no replacement. ExtendedXMP goes with the XMP it extends. An old
        C2PA manifest (APP11 JUMBF) goes: no rewrite keeps its hard binding (the c2pa target signs afresh).
        """
        tiff, packet = planned_metadata(payloads, plan, JPEG_XMP_PACKET_MAX)
        ours = ([_segment(0xE1, EXIF_HEADER + tiff)] if tiff else []) + (
            [_segment(0xE1, XMP_NAMESPACE + packet)] if packet is not None else []
        )
        drop = ((EXIF_HEADER,) if tiff else ()) + ((XMP_NAMESPACE, XMP_EXTENSION) if packet is not None else ())
        dst.write(b"\xff\xd8")
        pending = True
        for marker, data in _segments(src, scan=True):
            if marker == 0xDA:  # the scan: _segments checked the file ends; copy the rest unread
                if pending:
                    dst.write(b"".join(ours))
                dst.write(b"\xff\xda")
                shutil.copyfileobj(src, dst)
                return
            if marker == 0xE1 and data.startswith(drop):
                continue
            if marker == 0xEB and data.startswith(b"JP"):  # C2PA's JUMBF: its binding breaks with any rewrite
                continue
            if pending and marker != 0xE0:
                dst.write(b"".join(ours))
                pending = False
            dst.write(_segment(marker, data))
        raise ReadError("JPEG has no image data (no start-of-scan segment)")

    def encode_core(self, image: Any, payloads: Payloads, options: Any, fp: BinaryIO) -> None:
        """ComfyUI core has no JPEG writer; pixels only is what it would have given."""
        image.convert("RGB").save(fp, format="JPEG", quality=options.quality)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"\xff\xd8\xff")

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """The first EXIF and XMP APP1 segments and the frame size; other segments are skipped unread."""
        found = Embedded(format=self.name)
        exif_seen = False
        for marker, length in _headers(fp, budget):
            if marker == 0xE1 and not (exif_seen and found.xmp is not None):
                head = fp.read(min(length, len(XMP_NAMESPACE)))
                rest = length - len(head)
                if head.startswith(EXIF_HEADER) and not exif_seen:
                    budget.load(length, "JPEG EXIF segment")
                    data = head + fp.read(rest)
                    content = exif.parse(data[len(EXIF_HEADER) :], budget)
                    found.infotext = content.user_comment
                    found.comfy.update(content.comfy)
                    exif_seen = True
                    continue
                if head == XMP_NAMESPACE and found.xmp is None:
                    budget.load(rest, "JPEG XMP segment")
                    found.xmp = fp.read(rest)
                    continue
                fp.seek(rest, 1)
            elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and length >= 5:
                data = fp.read(5)
                found.height, found.width = struct.unpack(">HH", data[1:5])
                fp.seek(length - 5, 1)
            else:
                fp.seek(length, 1)
        return found


def _segment(marker: int, data: bytes) -> bytes:
    if len(data) > JPEG_SEGMENT_PAYLOAD_MAX:
        raise ValueError(f"JPEG segment 0x{marker:02X} of {len(data):,} bytes exceeds {JPEG_SEGMENT_PAYLOAD_MAX:,}")
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data


def _segments(fp: BinaryIO, *, scan: bool = False) -> Iterator[tuple[int, bytes]]:
    """Yield (marker, payload) for each header segment up to the scan, for restamping a file `read`
    accepted. With `scan`, the start of scan itself comes last as (0xDA, b""), the file positioned
    just after its marker, once the file was checked to end with EOI."""
    budget = Budget(metadata_max=1 << 62)  # the segment sizes were checked against the file by read()
    for marker, length in _headers(fp, budget, scan=scan):
        if marker == 0xDA:
            yield marker, b""
            return
        data = fp.read(length)
        if len(data) < length:
            raise ReadError(f"JPEG is truncated inside segment 0x{marker:02X}")
        yield marker, data


def _headers(fp: BinaryIO, budget: Budget, *, scan: bool = False) -> Iterator[tuple[int, int]]:
    """(marker, payload length) of each header segment up to the scan, the file positioned at its
    payload; the caller reads or skips exactly that many bytes. No pixel decoding; every length is
    checked against the file's real size first. With `scan`, (0xDA, 0) comes last as in _segments."""
    end = fp.seek(0, 2)
    fp.seek(0)
    if fp.read(2) != b"\xff\xd8":
        raise ReadError("not a JPEG file (no SOI marker)")
    while True:
        byte = fp.read(1)
        if not byte:
            raise ReadError("JPEG is truncated before its image data")
        if byte != b"\xff":
            raise ReadError("JPEG is damaged: a segment does not start with a marker")
        fill = 0
        while byte == b"\xff":
            byte = fp.read(1)
            fill += 1
            if fill > FILL_MAX:
                raise ReadError("JPEG is damaged: a run of fill bytes where a marker belongs")
        if not byte:
            raise ReadError("JPEG is truncated before its image data")
        marker = byte[0]
        budget.chunk("JPEG segment")
        if marker == 0xDA:  # start of scan: metadata ends here, but the file must too
            start = fp.tell()
            _require_eoi(fp)
            if scan:
                fp.seek(start)
                yield marker, 0
            return
        if marker == 0xD9:
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        size = fp.read(2)
        if len(size) < 2:
            raise ReadError("JPEG is truncated inside a segment header")
        length = struct.unpack(">H", size)[0] - 2
        if length < 0:
            raise ReadError(f"JPEG segment 0x{marker:02X} has an impossible length")
        payload = fp.tell()
        if payload + length > end:
            raise ReadError(f"JPEG is truncated inside segment 0x{marker:02X}")
        yield marker, length
        if fp.tell() != payload + length:
            fp.seek(payload + length)


def _require_eoi(fp: BinaryIO) -> None:
    """A file cut inside its image data has no EOI; entropy-coded data never holds FF D9 otherwise."""
    start = fp.tell()
    end = fp.seek(0, 2)
    fp.seek(max(start, end - 2))
    if fp.read(2) == b"\xff\xd9":
        return
    fp.seek(start)  # trailing bytes after EOI are legal: look for the marker itself
    last = b""
    while block := fp.read(1 << 20):
        if b"\xff\xd9" in last + block:
            return
        last = block[-1:]
    raise ReadError("JPEG is truncated: its image data has no end (EOI) marker")


register(JpegFormat())

"""EXIF for JPEG and WEBP: the one layout every reader decodes (research/readers.md §3, §4).

Built with piexif, so the TIFF is big-endian (`MM`) and UserComment is type UNDEFINED holding
`UNICODE\\0` + UTF-16BE, exactly as A1111 writes it. ComfyUI's graphs go in IFD0 ASCII tags
`Make` (workflow) and `ImageDescription` (prompt), never `Model` (0x0110): sd-prompt-reader
json-decodes Model in every file and crashes on ComfyUI's `prompt:` value. Model holds only
SwarmUI's JSON, which sd-prompt-reader parses, on a WEBP with alpha (swarm.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone

import piexif
import piexif.helper

from ..budget import Budget
from ..errors import ReadError

TAG_WORKFLOW = piexif.ImageIFD.Make  # 0x010F
TAG_PROMPT = piexif.ImageIFD.ImageDescription  # 0x010E
# Further ComfyUI extra_pnginfo keys, after workflow, as core counts down (0x010D...), Model skipped.
EXTRA_TAGS = (piexif.ImageIFD.DocumentName,)
COMFY_TAGS = (TAG_WORKFLOW, TAG_PROMPT, *EXTRA_TAGS)


@dataclass
class ExifContent:
    """What we put in (or found in) an EXIF block."""

    user_comment: str | None = None
    # ComfyUI key ("prompt", "workflow", ...) -> JSON text
    comfy: dict[str, str] = field(default_factory=dict)
    software: str | None = None
    created: str | None = None  # ISO-8601 UTC
    # IFD0 Model: SwarmUI's `{"sui_image_params": ...}` JSON, ASCII (swarm.py); written, never read.
    swarm: str | None = None


def _exif_datetime(iso: str) -> tuple[str, str] | None:
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y:%m:%d %H:%M:%S"), "+00:00"


def build(content: ExifContent) -> bytes:
    """TIFF bytes (no `Exif\\0\\0` prefix) for Pillow's `exif=`; empty when there is nothing."""
    zeroth: dict[int, bytes | str] = {}
    exif_ifd: dict[int, bytes | str] = {}
    if content.software:
        zeroth[piexif.ImageIFD.Software] = content.software
    if content.swarm:
        zeroth[piexif.ImageIFD.Model] = content.swarm
    tags = {"workflow": TAG_WORKFLOW, "prompt": TAG_PROMPT}
    spare = list(EXTRA_TAGS)
    for key, text in content.comfy.items():
        tag = tags.get(key) or (spare.pop(0) if spare else None)
        if tag is not None:
            # Bytes, so piexif stores UTF-8 as is (it can encode a str only as Latin-1): core's
            # WEBPs hold UTF-8 JSON, and a restamp keeps it byte for byte; ASCII is unchanged.
            zeroth[tag] = f"{key}:{text}".encode()
    if content.created and (stamp := _exif_datetime(content.created)):
        zeroth[piexif.ImageIFD.DateTime] = stamp[0]
        exif_ifd[piexif.ExifIFD.DateTimeOriginal] = stamp[0]
        exif_ifd[piexif.ExifIFD.OffsetTimeOriginal] = stamp[1]
    if content.user_comment is not None:
        exif_ifd[piexif.ExifIFD.UserComment] = piexif.helper.UserComment.dump(content.user_comment, encoding="unicode")
    if not zeroth and not exif_ifd:
        return b""
    data: bytes = piexif.dump({"0th": zeroth, "Exif": exif_ifd})
    return data[6:] if data.startswith(b"Exif\x00\x00") else data


def parse(data: bytes, budget: Budget | None = None) -> ExifContent:
    """Read UserComment and the IFD0 ASCII tags ComfyUI (core or ours) writes.

    A bounded TIFF walk, not piexif.load: only IFD0 and the Exif IFD are visited, each entry's
    count is checked against the bytes really present before anything is sliced, and only the
    tags we use are decoded (piexif unpacks every tag, so one lying count allocated gigabytes).
    """
    tags = _walk(data[6:] if data.startswith(b"Exif\x00\x00") else data, budget or Budget())
    out = ExifContent()
    comment = tags.get(piexif.ExifIFD.UserComment)
    if comment is not None and len(comment) >= 8:
        try:
            out.user_comment = piexif.helper.UserComment.load(comment)
        except ValueError:
            out.user_comment = comment[8:].decode("utf-8", errors="ignore")
    # Core's layout puts the prompt in Model; read it (never write it) for core files. A JSON
    # object there is SwarmUI's (ours on a WEBP with alpha, or SwarmUI's own), not `key:value`.
    for tag in (*COMFY_TAGS, piexif.ImageIFD.Model):
        raw = tags.get(tag)
        if raw is not None:
            text = _ascii_tag(raw)
            if text.startswith("{"):
                continue
            key, sep, value = text.partition(":")
            if sep and (key in ("prompt", "workflow", "Prompt", "Workflow") or value.startswith("{")):
                out.comfy.setdefault(key.lower() if key in ("Prompt", "Workflow") else key, value)
    software = tags.get(piexif.ImageIFD.Software)
    if software is not None:
        out.software = _ascii_tag(software)
    return out


# TIFF field types -> bytes per value (TIFF 6.0 and the EXIF additions).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_IFD0_TAGS = frozenset({*COMFY_TAGS, piexif.ImageIFD.Model, piexif.ImageIFD.Software})
_EXIF_POINTER = piexif.ImageIFD.ExifTag  # 0x8769
_TEXT_TYPES = frozenset({2, 7, 1})  # ASCII, UNDEFINED, BYTE: how writers store text


def _walk(tiff: bytes, budget: Budget) -> dict[int, bytes]:
    """The raw values of the tags we read, from IFD0 and the Exif IFD; ReadError on damage."""
    if len(tiff) < 8 or tiff[:4] not in (b"MM\x00*", b"II*\x00"):
        raise ReadError("EXIF block does not start with a TIFF header")
    order = ">" if tiff[:2] == b"MM" else "<"
    found: dict[int, bytes] = {}
    (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
    exif_ifd = _directory(
        tiff, ifd0, order=order, wanted=_IFD0_TAGS | {_EXIF_POINTER}, found=found, budget=budget, name="IFD0"
    )
    pointer = found.pop(_EXIF_POINTER, None)
    if pointer is not None and len(pointer) == 4 and exif_ifd:
        (offset,) = struct.unpack(order + "I", pointer)
        if offset != ifd0:  # a directory pointing at itself is a loop, not a second directory
            wanted = frozenset({piexif.ExifIFD.UserComment})
            _directory(tiff, offset, order=order, wanted=wanted, found=found, budget=budget, name="Exif IFD")
    return found


def _directory(
    tiff: bytes, offset: int, *, order: str, wanted: frozenset[int], found: dict[int, bytes], budget: Budget, name: str
) -> bool:
    """Collect `wanted` tags of the directory at `offset` into `found`; False when there is none."""
    if offset == 0:
        return False
    if offset + 2 > len(tiff):
        raise ReadError(f"EXIF block is damaged: the {name} starts past its end")
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    if offset + 2 + 12 * count > len(tiff):
        raise ReadError(f"EXIF block is damaged: the {name} claims {count:,} entries, more than the block holds")
    budget.exif_entry(count)
    for index in range(count):
        tag, kind, items, value = struct.unpack_from(order + "HHI4s", tiff, offset + 2 + 12 * index)
        if tag not in wanted or tag in found:
            continue
        size = items * _TYPE_SIZES.get(kind, 0)
        if size == 0 or (tag != _EXIF_POINTER and kind not in _TEXT_TYPES):
            continue  # a type this tag never has: ignore it, as readers do
        if size <= 4:
            found[tag] = value[:size]
            continue
        (start,) = struct.unpack(order + "I", value)
        if start + size > len(tiff):
            raise ReadError(
                f"EXIF block is damaged: tag 0x{tag:04X} claims {size:,} bytes at offset {start:,}, "
                f"past the end of the {len(tiff):,}-byte block"
            )
        found[tag] = tiff[start : start + size]
    return True


def _ascii_tag(raw: bytes) -> str:
    """EXIF ASCII is 7-bit by the book, but ComfyUI core puts UTF-8 JSON there: read it as such."""
    data = raw.rstrip(b"\x00")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")

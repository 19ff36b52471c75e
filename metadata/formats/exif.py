"""EXIF for JPEG and WEBP: the one layout every reader decodes (research/readers.md §3, §4).

Built with piexif, so the TIFF is big-endian (`MM`) and UserComment is type UNDEFINED holding
`UNICODE\\0` + UTF-16BE, exactly as A1111 writes it. ComfyUI's graphs go in IFD0 ASCII tags
`Make` (workflow) and `ImageDescription` (prompt), never `Model` (0x0110): sd-prompt-reader
json-decodes Model in every file and crashes on ComfyUI's `prompt:` value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import piexif
import piexif.helper

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


def parse(data: bytes) -> ExifContent:
    """Read UserComment and the IFD0 ASCII tags ComfyUI (core or ours) writes."""
    tiff = data[6:] if data.startswith(b"Exif\x00\x00") else data
    if tiff[:4] not in (b"MM\x00*", b"II*\x00"):
        raise ReadError("EXIF block does not start with a TIFF header")
    try:
        loaded = piexif.load(b"Exif\x00\x00" + tiff)
    except Exception as err:  # piexif raises bare struct/Value/Index errors on damage
        raise ReadError(f"EXIF block is damaged: {type(err).__name__}: {err}") from err
    out = ExifContent()
    comment = loaded.get("Exif", {}).get(piexif.ExifIFD.UserComment)
    if isinstance(comment, bytes) and len(comment) >= 8:
        try:
            out.user_comment = piexif.helper.UserComment.load(comment)
        except ValueError:
            out.user_comment = comment[8:].decode("utf-8", errors="ignore")
    zeroth = loaded.get("0th", {})
    # Core's layout puts the prompt in Model; read it (never write it) for core files.
    for tag in (*COMFY_TAGS, piexif.ImageIFD.Model):
        raw = zeroth.get(tag)
        if isinstance(raw, bytes):
            text = _ascii_tag(raw)
            key, sep, value = text.partition(":")
            if sep and (key in ("prompt", "workflow", "Prompt", "Workflow") or value.startswith("{")):
                out.comfy.setdefault(key.lower() if key in ("Prompt", "Workflow") else key, value)
    software = zeroth.get(piexif.ImageIFD.Software)
    if isinstance(software, bytes):
        out.software = _ascii_tag(software)
    return out


def _ascii_tag(raw: bytes) -> str:
    """EXIF ASCII is 7-bit by the book, but ComfyUI core puts UTF-8 JSON there: read it as such."""
    data = raw.rstrip(b"\x00")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")

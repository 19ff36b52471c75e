"""How the ComfyUI web frontend finds a workflow in a dropped file (an emulation, not the app).

PNG (frontend `getFromPngBuffer`): text chunks keyed by keyword. The strict rule of older
frontends is emulated: the value is every byte after the keyword's NUL, so only tEXt parses as
JSON (iTXt's header bytes break JSON.parse; zTXt is not read at all).
WEBP (`getWebpMetadata`): the first EXIF chunk, an optional `Exif\\0\\0`, IFD0 only, every
ASCII value split at its first ':' into key and text. Older frontends (src/scripts/pnginfo.ts)
stepped over RIFF chunks without their pad byte (`pad=False`), so an odd-sized chunk before
EXIF hid it; frontend 1.49 steps over the pad byte (`pad=True`).
JPEG: the frontend reads no workflow from it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from . import graph
from .common import GRAPH, Reading, normalize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ASCII = 2


def png_chunks(data: bytes) -> list[tuple[str, str, bytes]]:
    """(chunk type, keyword, bytes after the keyword's NUL) for each tEXt/iTXt/zTXt/comf chunk."""
    out, offset = [], 8
    while offset + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if ctype in (b"tEXt", b"iTXt", b"zTXt", b"comf"):
            keyword, _, rest = body.partition(b"\x00")
            out.append((ctype.decode(), keyword.decode("latin-1"), rest))
        offset += 12 + length
    return out


def webp_chunks(data: bytes, *, pad: bool = True) -> list[tuple[str, bytes]]:
    out, offset = [], 12
    while offset + 8 <= len(data):
        ctype, length = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        out.append((ctype.decode("latin-1"), data[offset + 8 : offset + 8 + length]))
        offset += 8 + length + (length & 1 if pad else 0)
    return out


def ifd0_ascii(exif: bytes) -> dict[int, str]:
    """Tag → text of IFD0's ASCII entries, decoded as the frontend does (count - 1 bytes, UTF-8)."""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    order = "<" if exif[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", exif[4:8])
    (count,) = struct.unpack(order + "H", exif[ifd : ifd + 2])
    out = {}
    for i in range(count):
        tag, kind, n, offset = struct.unpack(order + "HHII", exif[ifd + 2 + 12 * i : ifd + 14 + 12 * i])
        if kind == ASCII:
            out[tag] = exif[offset : offset + n - 1].decode("utf-8", errors="replace")
    return out


def texts(path: Path, *, pad: bool = True) -> dict[str, str]:
    """The frontend's key → text map of a PNG or WEBP; empty for other files."""
    data = path.read_bytes()
    if data.startswith(PNG_SIGNATURE):
        return {
            key: rest.decode("utf-8", errors="replace")
            for ctype, key, rest in png_chunks(data)
            if ctype in ("tEXt", "iTXt", "comf")
        }
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        exif = next((body for ctype, body in webp_chunks(data, pad=pad) if ctype == "EXIF"), None)
        if exif is None:
            return {}
        out = {}
        for value in ifd0_ascii(exif).values():
            key, _, text = value.partition(":")
            out[key] = text
        return out
    return {}


def read(path: Path, *, pad: bool = True) -> Reading:
    """A reading of the `prompt` graph, if the frontend could load this file's workflow."""
    found = texts(path, pad=pad)
    parsed: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in ("workflow", "prompt"):
        if key in found:
            try:
                parsed[key] = json.loads(found[key])
            except ValueError as err:
                errors[key] = f"JSON.parse fails: {err}"
    raw = {
        "keys": sorted(found),
        "parsed": parsed,
        "errors": errors,
        "loads": next((k for k in ("workflow", "prompt") if k in parsed), None),
    }
    prompt = parsed.get("prompt")
    walked = graph.fields(prompt) if isinstance(prompt, dict) else None
    if walked is None:
        return Reading("comfyui", None, raw=raw)
    return Reading("comfyui", GRAPH, normalize(walked), raw)

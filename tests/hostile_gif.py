"""Hostile and damaged GIFs for tests/hostile.py: cut files, endless chains, lying tables, our extension abused.

Each is a real GIF (written by Pillow) with blocks spliced in before its first frame, or cut.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from hostile import Case, _write, case, combine_chain, deep_json, record
from PIL import Image

MIB = 1 << 20
INFOTEXT = "a cat\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 16x16"


def plain_gif(frames: int = 2) -> bytes:
    out = io.BytesIO()
    images = [Image.new("RGB", (16, 16), (i * 40, 90, 200)) for i in range(frames)]
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def sub_blocks(data: bytes) -> bytes:
    return b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)) + b"\x00"


def comment(text: str) -> bytes:
    return b"\x21\xfe" + sub_blocks(text.encode())


def ours(key: str, value: bytes) -> bytes:
    return b"\x21\xff\x0bCOMFYPRV1.0" + sub_blocks(key.encode() + b"\x00" + value)


def gif_with(*blocks: bytes, frames: int = 2) -> bytes:
    """A real GIF with `blocks` right after its screen and global color table."""
    data = plain_gif(frames)
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    return data[:start] + b"".join(blocks) + data[start:]


@case("gif-truncated")
def _(d: Path) -> Case:
    data = gif_with(comment(INFOTEXT))
    return Case("", _write(d / "x.gif", data[: len(data) * 2 // 3]), "error", "truncated")


@case("gif-sub-blocks-without-terminator")
def _(d: Path) -> Case:
    data = gif_with()[:-1]  # the trailer goes, and the chain that follows never ends
    return Case("", _write(d / "x.gif", data + b"\x21\xfe" + (b"\x10" + b"x" * 16) * 1000), "error", "truncated")


@case("gif-1000000-extensions")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.gif", gif_with(b"\x21\xfe\x00" * 1_000_000)), "error", "more than")


@case("gif-huge-color-table-claims")
def _(d: Path) -> Case:
    """The screen claims a 768-byte global color table in a 20-byte file."""
    return Case("", _write(d / "x.gif", b"GIF89a\x10\x00\x10\x00\xf7\x00\x00" + b"\x00" * 7), "error", "truncated")


@case("gif-local-color-table-past-end")
def _(d: Path) -> Case:
    """A frame claiming a 768-byte local color table, 30 bytes before the end of the file."""
    data = b"GIF89a\x10\x00\x10\x00\x00\x00\x00" + b",\x00\x00\x00\x00\x10\x00\x10\x00\x87" + b"\x00" * 30
    return Case("", _write(d / "x.gif", data), "error", "truncated")


@case("gif-comfy-value-100-mb")
def _(d: Path) -> Case:
    """Our extension holding a 100 MB prompt: refused by its size, before a byte of it is held."""
    value = json.dumps({"x": "a" * (100 * MIB)}).encode()
    return Case("", _write(d / "x.gif", gif_with(ours("prompt", value))), "error", "read limit")


@case("gif-comfy-deep-json")
def _(d: Path) -> Case:
    """A JSON bomb as the prompt, beside sound A1111 parameters: the parameters read."""
    data = gif_with(ours("prompt", deep_json().encode()), comment(INFOTEXT))
    return Case("", _write(d / "x.gif", data), "reads")


@case("gif-comfy-many-keys")
def _(d: Path) -> Case:
    """100,000 of our extensions with the same key: only the first is loaded."""
    prompt = ours("prompt", json.dumps(combine_chain(1)).encode())
    return Case("", _write(d / "x.gif", gif_with(prompt, ours("prompt", b"{" * 200) * 100_000)), "reads")


@case("gif-lzw-garbage")
def _(d: Path) -> Case:
    """A frame whose LZW code size and data are garbage: pixels are never decoded, so it reads."""
    frame = b",\x00\x00\x00\x00\x10\x00\x10\x00\x00" + b"\xff" + sub_blocks(bytes(range(256)) * 40)
    data = gif_with(ours("comfyui_provenance", record().encode()), frame)
    return Case("", _write(d / "x.gif", data), "reads")


@case("gif-xmp-billion-laughs")
def _(d: Path) -> Case:
    from hostile import BILLION_LAUGHS

    magic = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    return Case("", _write(d / "x.gif", gif_with(b"\x21\xff\x0bXMP DataXMP" + BILLION_LAUGHS + magic)), "error")

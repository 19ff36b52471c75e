"""A generator of hostile and damaged files, one `Case` each, for every carrier the readers open.

XML bombs in every XMP carrier, decompression bombs in one chunk and split over many, lying
lengths, cyclic and huge EXIF counts, deep and wrong-shape JSON (in the prompt chunk, the
record, XMP, the JSON and runtime sidecars), special files where a sidecar or the image should
be, and huge graphs and chains. `build(folder)` writes them all; `python tests/hostile.py DIR`
does the same from the command line, for trying them on other tools.

Each case says what a reader must make of it: `error` (one clean ReadError) or `reads` (the file
still reads from what is sound, with a warning naming what was skipped, or within a stated limit).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import piexif
from PIL import Image

MIB = 1 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RECORD_KEY = "comfyui_provenance"
XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"
SCHEMA = "comfyui-provenance/1"


@dataclass
class Case:
    name: str
    image: Path
    expect: str  # "error" or "reads"
    # For `error`: a phrase the one-line message must contain (lower case), if any.
    says: str | None = None
    # Files made here that must be byte-for-byte the same after any reader ran.
    files: list[Path] = field(default_factory=list)


# -- containers --------------------------------------------------------------------------------


def png_chunk(ctype: bytes, data: bytes, length: int | None = None) -> bytes:
    size = len(data) if length is None else length
    return struct.pack(">I", size) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def plain(fmt: str, size: int = 16, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    pixels = np.random.default_rng(7).integers(0, 256, (size, size, len(mode)), dtype=np.uint8)
    Image.fromarray(pixels, mode).save(out, format=fmt.upper())
    return out.getvalue()


def png_with(*chunks: bytes) -> bytes:
    """A real PNG with `chunks` right after IHDR."""
    data = plain("png")
    return data[:33] + b"".join(chunks) + data[33:]


def text_chunk(key: str, text: str | bytes) -> bytes:
    raw = text.encode("latin-1") if isinstance(text, str) else text
    return png_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + raw)


def itxt(key: str, text: str | bytes, *, compressed: bytes | None = None) -> bytes:
    if compressed is not None:
        return png_chunk(b"iTXt", key.encode() + b"\x00\x01\x00\x00\x00" + compressed)
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return png_chunk(b"iTXt", key.encode() + b"\x00\x00\x00\x00\x00" + raw)


def jpeg_with(*segments: tuple[int, bytes], length: int | None = None) -> bytes:
    """A real JPEG with APPn `segments` right after SOI; `length` forges the first one's length."""
    data = plain("jpeg")
    out = b""
    for i, (marker, payload) in enumerate(segments):
        size = len(payload) + 2 if (length is None or i) else length
        out += b"\xff" + bytes([marker]) + struct.pack(">H", size & 0xFFFF) + payload
    return data[:2] + out + data[2:]


def webp_with(*chunks: tuple[bytes, bytes]) -> bytes:
    """A real extended WEBP (VP8X) with `chunks` after its image data and the VP8X flags to match."""
    out = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(out, format="WEBP", xmp=b"<x/>")
    body = out.getvalue()[12:]
    kept, pos = b"", 0
    while pos < len(body):  # Pillow wrote VP8X + image + XMP: keep all but its XMP
        fourcc, size = body[pos : pos + 4], struct.unpack("<I", body[pos + 4 : pos + 8])[0]
        if fourcc != b"XMP ":
            kept += body[pos : pos + 8 + size + (size & 1)]
        pos += 8 + size + (size & 1)
    assert kept[:4] == b"VP8X", kept[:4]
    flags = kept[8] & ~0x0C & 0xFF
    flags |= (0x08 if any(c == b"EXIF" for c, _ in chunks) else 0) | (
        0x04 if any(c == b"XMP " for c, _ in chunks) else 0
    )
    kept = kept[:8] + bytes([flags]) + kept[9:]
    for fourcc, payload in chunks:
        kept += fourcc + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")
    return b"RIFF" + struct.pack("<I", len(kept) + 4) + b"WEBP" + kept


# -- EXIF --------------------------------------------------------------------------------------------


def tiff(
    entries: list[tuple[int, int, int, bytes]],
    *,
    exif_entries: list[tuple[int, int, int, bytes]] | None = None,
    exif_offset: int | None = None,
    next_ifd: int = 0,
) -> bytes:
    """A big-endian TIFF with IFD0 `entries` (tag, type, count, 4-byte value/offset) and an optional Exif IFD."""
    ifd0 = struct.pack(">H", len(entries) + (1 if exif_entries is not None or exif_offset is not None else 0))
    start_exif = 8 + 2 + 12 * (len(entries) + 1) + 4
    for tag, kind, count, value in entries:
        ifd0 += struct.pack(">HHI", tag, kind, count) + value.ljust(4, b"\x00")
    if exif_entries is not None or exif_offset is not None:
        pointer = start_exif if exif_offset is None else exif_offset
        ifd0 += struct.pack(">HHII", piexif.ImageIFD.ExifTag, 4, 1, pointer)
    ifd0 += struct.pack(">I", next_ifd)
    body = b"MM\x00*" + struct.pack(">I", 8) + ifd0
    if exif_entries is not None:
        body = body.ljust(start_exif, b"\x00")
        body += struct.pack(">H", len(exif_entries))
        for tag, kind, count, value in exif_entries:
            body += struct.pack(">HHI", tag, kind, count) + value.ljust(4, b"\x00")
        body += struct.pack(">I", 0)
    return body + b"\x00" * 32


def huge_count_tiff() -> bytes:
    """A SHORT tag claiming 0x20000000 values (1 GiB) in a few dozen bytes: what made piexif allocate 18 GB."""
    return tiff(
        [(piexif.ImageIFD.Make, 3, 0x20000000, struct.pack(">I", 8))],
        exif_entries=[(piexif.ExifIFD.UserComment, 7, 0x20000000, struct.pack(">I", 8))],
    )


def cyclic_tiff() -> bytes:
    """IFD0's Exif pointer and next-IFD both point back at IFD0."""
    return tiff([(piexif.ImageIFD.Software, 2, 4, b"abc\x00")], exif_offset=8, next_ifd=8)


def many_entries_tiff(count: int = 40_000) -> bytes:
    """One directory of `count` real entries: past the per-file entry budget, though every byte is there."""
    ifd = struct.pack(">H", count) + struct.pack(">HHI", 0x9000, 2, 4) * count
    return (
        b"MM\x00*" + struct.pack(">I", 8) + ifd.replace(b"\x00\x00\x00\x04", b"\x00\x00\x00\x04abc\x00") + b"\x00" * 4
    )


# -- XML -------------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode() for i in range(1, 10)
    )
    + b']><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    + b"<rdf:Description>&lol9;</rdf:Description></rdf:RDF></x:xmpmeta>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:cprov="https://github.com/comfyui-provenance/ns/1.0/"><cprov:Record>&ext;</cprov:Record>'
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def xmp_with_record(record_json: str) -> bytes:
    escaped = record_json.replace("&", "&amp;").replace("<", "&lt;")
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:cprov="https://github.com/comfyui-provenance/ns/1.0/">'
        f"<cprov:Record>{escaped}</cprov:Record></rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def deep_xml(levels: int = 100_000) -> bytes:
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        + b"<a>" * levels
        + b"</a>" * levels
        + b"</rdf:RDF></x:xmpmeta>"
    )


# -- zlib ---------------------------------------------------------------------------------------------


def deflated_zeros(size: int) -> bytes:
    """`size` zero bytes deflated, built without holding them in memory."""
    packer = zlib.compressobj(9)
    block = bytes(MIB)
    out = [packer.compress(block) for _ in range(size // MIB)]
    out.append(packer.compress(bytes(size % MIB)))
    return b"".join(out) + packer.flush()


# -- records and graphs ----------------------------------------------------------------------------


def record(**parts: Any) -> str:
    data: dict[str, Any] = {"schema": SCHEMA, "generation": {"positive": "a cat", "seed": 1}, "provenance": {}}
    data.update(parts)
    return json.dumps(data)


def deep_json(levels: int = 100_000) -> str:
    return "[" * levels + "]" * levels


def combine_chain(length: int) -> dict[str, Any]:
    """A KSampler whose positive is `length` ConditioningCombine nodes deep."""
    prompt: dict[str, Any] = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "part 0", "clip": ["1", 1]}},
    }
    last = "2"
    for i in range(length):
        text_id, combine_id = f"t{i}", f"c{i}"
        prompt[text_id] = {"class_type": "CLIPTextEncode", "inputs": {"text": f"part {i + 1}", "clip": ["1", 1]}}
        prompt[combine_id] = {
            "class_type": "ConditioningCombine",
            "inputs": {"conditioning_1": [last, 0], "conditioning_2": [text_id, 0]},
        }
        last = combine_id
    prompt["5"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}}
    prompt["3"] = {
        "class_type": "KSampler",
        "inputs": {
            "seed": 5,
            "steps": 20,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["1", 0],
            "positive": [last, 0],
            "negative": ["2", 0],
            "latent_image": ["5", 0],
        },
    }
    prompt["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}}
    prompt["9"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}
    return prompt


def wide_graph(nodes: int) -> dict[str, Any]:
    """`nodes` nodes: a long chain of LoRA loaders and latent upscales behind one sampler."""
    prompt = combine_chain(0)
    model = ["1", 0]
    for i in range(nodes // 2):
        prompt[f"l{i}"] = {
            "class_type": "LoraLoader",
            "inputs": {
                "lora_name": f"lora{i % 50}.safetensors",
                "strength_model": 0.5,
                "strength_clip": 0.5,
                "model": model,
                "clip": ["1", 1],
            },
        }
        model = [f"l{i}", 0]
        prompt[f"p{i}"] = {"class_type": "PrimitiveNode", "inputs": {"value": i}}
    prompt["3"]["inputs"]["model"] = model
    return prompt


def sampler_chain(length: int) -> dict[str, Any]:
    """`length` KSamplers, each refining the previous one's latent (a pathological multi-pass graph)."""
    prompt = combine_chain(0)
    latent = ["5", 0]
    for i in range(length):
        prompt[f"k{i}"] = {
            "class_type": "KSampler",
            "inputs": {
                "seed": i,
                "steps": 4,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 0.5,
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["2", 0],
                "latent_image": latent,
            },
        }
        latent = [f"k{i}", 0]
    prompt["8"]["inputs"]["samples"] = latent
    return prompt


# -- the cases -----------------------------------------------------------------------------------------


def build(folder: Path) -> list[Case]:
    """Write every case under `folder` (one sub-folder each, so sidecars never mix)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [maker(folder / name) for name, maker in CASES.items()]


def _import_siblings() -> None:
    """Each video/audio container keeps its cases in `hostile_<container>.py` beside this file."""
    import importlib

    here = Path(__file__).resolve().parent
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    sys.modules.setdefault("hostile", sys.modules[__name__])  # run as a script, siblings still share CASES
    for module in sorted(here.glob("hostile_*.py")):
        importlib.import_module(module.stem)


Maker = Callable[[Path], Case]
CASES: dict[str, Maker] = {}


def case(name: str) -> Callable[[Maker], Maker]:
    def register(maker: Maker) -> Maker:
        def make(folder: Path) -> Case:
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            made = maker(folder)
            made.name = name
            made.files = made.files or sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink())
            return made

        CASES[name] = make
        return make

    return register


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# EXIF
@case("jpeg-exif-huge-count")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.jpg", jpeg_with((0xE1, b"Exif\x00\x00" + huge_count_tiff()))), "error", "exif")


@case("webp-exif-huge-count")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.webp", webp_with((b"EXIF", huge_count_tiff()))), "error", "exif")


@case("jpeg-exif-cycle")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.jpg", jpeg_with((0xE1, b"Exif\x00\x00" + cyclic_tiff()))), "error", "no provenance")


@case("webp-exif-too-many-entries")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.webp", webp_with((b"EXIF", many_entries_tiff()))), "error", "exif entries")


@case("jpeg-exif-count-past-block")
def _(d: Path) -> Case:
    bad = b"MM\x00*\x00\x00\x00\x08" + struct.pack(">H", 0xFFFF) + b"\x00" * 20
    return Case("", _write(d / "x.jpg", jpeg_with((0xE1, b"Exif\x00\x00" + bad))), "error", "exif")


# XML
for _fmt in ("png", "jpeg", "webp"):
    for _bomb_name, _bomb in (
        ("billion-laughs", BILLION_LAUGHS),
        ("external-entity", EXTERNAL_ENTITY),
        ("deep-elements", deep_xml()),
    ):

        def _xml(d: Path, fmt: str = _fmt, bomb: bytes = _bomb) -> Case:
            if fmt == "png":
                data = png_with(itxt("XML:com.adobe.xmp", bomb))
            elif fmt == "jpeg":
                if len(bomb) > 65_000:
                    bomb = bomb[:30_000] + bomb[-30_000:]
                data = jpeg_with((0xE1, XMP_NS + bomb))
            else:
                data = webp_with((b"XMP ", bomb))
            return Case("", _write(d / f"x.{'jpg' if fmt == 'jpeg' else fmt}", data), "error")

        case(f"{_fmt}-xmp-{_bomb_name}")(_xml)


@case("sidecar-xmp-billion-laughs")
def _(d: Path) -> Case:
    image = _write(d / "x.png", plain("png"))
    _write(d / "x.png.xmp", BILLION_LAUGHS)
    return Case("", image, "error")


# zlib
@case("png-ztxt-bomb")
def _(d: Path) -> Case:
    chunk = png_chunk(b"zTXt", b"prompt\x00\x00" + deflated_zeros(1024 * MIB))
    return Case("", _write(d / "x.png", png_with(chunk)), "error", "decompression bomb")


@case("png-itxt-record-bomb")
def _(d: Path) -> Case:
    return Case(
        "",
        _write(d / "x.png", png_with(itxt(RECORD_KEY, "", compressed=deflated_zeros(64 * MIB)))),
        "error",
        "decompression bomb",
    )


@case("png-ztxt-split-bomb")
def _(d: Path) -> Case:
    """20,000 zTXt chunks of 1 MiB each (20 GiB inflated), under every keyword and none: the first of
    each keyword is inflated, the rest never are (and what they hold is no record, graph or text)."""
    one = deflated_zeros(MIB - 1024)
    keys = [b"prompt", b"workflow", b"parameters", RECORD_KEY.encode(), b"Comment", b"other"]
    chunks = b"".join(png_chunk(b"zTXt", keys[i % len(keys)] + b"\x00\x00" + one) for i in range(20_000))
    return Case("", _write(d / "x.png", png_with(chunks)), "reads")


@case("png-many-chunks")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.png", png_with(png_chunk(b"xXxX", b"") * 300_000)), "error", "more than")


# lying lengths
@case("png-chunk-claims-2-gib")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.png", png_with(png_chunk(b"tEXt", b"prompt\x00{}", length=0x7FFFFFF0))), "error")


@case("jpeg-segment-past-end")
def _(d: Path) -> Case:
    data = jpeg_with((0xE1, b"Exif\x00\x00MM"))
    return Case("", _write(d / "x.jpg", data[:2] + b"\xff\xe1\xff\xf0" + b"Exif\x00\x00"), "error", "truncated")


@case("webp-riff-lies")
def _(d: Path) -> Case:
    data = webp_with((b"XMP ", b"<x/>"))
    return Case("", _write(d / "x.webp", data[:4] + struct.pack("<I", 0xFFFFFFF0) + data[8:]), "error", "truncated")


@case("webp-chunk-claims-3-gb")
def _(d: Path) -> Case:
    data = webp_with((b"EXIF", b"MM\x00*\x00\x00\x00\x08\x00\x00"))
    pos = data.index(b"EXIF")
    forged = data[: pos + 4] + struct.pack("<I", 3_000_000_000) + data[pos + 8 :]
    return Case("", _write(d / "x.webp", forged), "error", "claims")


@case("png-truncated-in-text")
def _(d: Path) -> Case:
    data = png_with(text_chunk("prompt", json.dumps(combine_chain(3))))
    return Case("", _write(d / "x.png", data[: 33 + 200]), "error", "truncated")


# deep JSON
@case("png-prompt-deep-json")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.png", png_with(text_chunk("prompt", deep_json()))), "error", "deep")


@case("png-record-deep-json")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.png", png_with(itxt(RECORD_KEY, deep_json()))), "error", "deep")


@case("jpeg-xmp-record-deep-json")
def _(d: Path) -> Case:
    return Case(
        "", _write(d / "x.jpg", jpeg_with((0xE1, XMP_NS + xmp_with_record(deep_json(20_000))))), "error", "deep"
    )


@case("png-workflow-deep-json")
def _(d: Path) -> Case:
    """A good prompt and a deep workflow: the workflow is left out, the prompt still reads."""
    prompt = text_chunk("prompt", json.dumps(combine_chain(2)))
    return Case("", _write(d / "x.png", png_with(prompt, text_chunk("workflow", deep_json()))), "reads")


@case("sidecar-json-deep")
def _(d: Path) -> Case:
    stub = json.dumps({"schema": SCHEMA, "provenance": {}, "$refs": {"*": "sidecar:json"}})
    image = _write(
        d / "x.png",
        png_with(itxt(RECORD_KEY, stub), text_chunk("parameters", "a cat\nSteps: 4, Seed: 9, CFG scale: 7")),
    )
    _write(d / "x.png.json", deep_json())
    return Case("", image, "reads")


@case("runtime-sidecar-deep")
def _(d: Path) -> Case:
    image = _write(d / "x.png", png_with(itxt(RECORD_KEY, record(runtime={"sidecar_ref": "x.png.runtime.json"}))))
    _write(d / "x.png.runtime.json", deep_json())
    return Case("", image, "reads")


# wrong shapes
for _shape_name, _shape in {
    "models-int": {"models": [1]},
    "models-role-null": {"models": [{"role": None, "name": "x"}]},
    "refs-string": {"$refs": "prompt"},
    "refs-int": {"$refs": {"prompt": 5}},
    "warnings-int": {"provenance": {"warnings": 5}},
    "generation-list": {"generation": [1, 2]},
    "passes-loras-name": {"passes": [{"node_id": "3", "loras": [{"name": 4}]}]},
    "runtime-int": {"runtime": 7},
}.items():

    def _shape_case(d: Path, parts: dict[str, Any] = _shape) -> Case:
        return Case("", _write(d / "x.png", png_with(itxt(RECORD_KEY, record(**parts)))), "error", "malformed")

    case(f"record-{_shape_name}")(_shape_case)


@case("record-not-ours")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.png", png_with(itxt(RECORD_KEY, '{"schema": 5}'))), "error", "not a provenance")


@case("prompt-wrong-shape")
def _(d: Path) -> Case:
    prompt = {"1": {"class_type": 5, "inputs": [1, 2]}, "2": "x", "3": {"inputs": {"a": ["1", "zero"]}}}
    return Case("", _write(d / "x.png", png_with(text_chunk("prompt", json.dumps(prompt)))), "reads")


# special files
def _fifo(path: Path) -> None:
    os.mkfifo(path)


@case("sidecar-json-fifo")
def _(d: Path) -> Case:
    image = _write(d / "x.png", plain("png"))
    _fifo(d / "x.png.json")
    return Case("", image, "error", "not a regular file")


@case("sidecar-json-dev-zero")
def _(d: Path) -> Case:
    stub = json.dumps({"schema": SCHEMA, "provenance": {}, "$refs": {"*": "sidecar:json"}})
    image = _write(d / "x.png", png_with(itxt(RECORD_KEY, stub)))
    (d / "x.png.json").symlink_to("/dev/zero")
    return Case("", image, "reads")


@case("sidecar-txt-fifo")
def _(d: Path) -> Case:
    image = _write(d / "x.jpg", plain("jpeg"))
    _fifo(d / "x.jpg.txt")
    return Case("", image, "error")


@case("runtime-sidecar-fifo")
def _(d: Path) -> Case:
    image = _write(d / "x.png", png_with(itxt(RECORD_KEY, record(runtime={"sidecar_ref": "x.png.runtime.json"}))))
    _fifo(d / "x.png.runtime.json")
    return Case("", image, "reads")


@case("runtime-sidecar-dev-zero")
def _(d: Path) -> Case:
    image = _write(d / "x.png", png_with(itxt(RECORD_KEY, record(runtime={"sidecar_ref": "x.png.runtime.json"}))))
    (d / "x.png.runtime.json").symlink_to("/dev/zero")
    return Case("", image, "reads")


@case("runtime-sidecar-escapes")
def _(d: Path) -> Case:
    image = _write(d / "x.png", png_with(itxt(RECORD_KEY, record(runtime={"sidecar_ref": "../../../etc/passwd"}))))
    return Case("", image, "reads")


@case("image-is-a-fifo")
def _(d: Path) -> Case:
    _fifo(d / "x.png")
    return Case("", d / "x.png", "error", "not a regular file", files=[])


@case("image-is-dev-zero")
def _(d: Path) -> Case:
    (d / "x.png").symlink_to("/dev/zero")
    return Case("", d / "x.png", "error", "not a regular file", files=[])


@case("garbage-sidecar-good-image")
def _(d: Path) -> Case:
    image = _write(d / "x.png", png_with(itxt(RECORD_KEY, record())))
    _write(d / "x.png.json", b"\x00\xff garbage {{{")
    return Case("", image, "reads")


# huge graphs and chains
@case("combine-chain-10000")
def _(d: Path) -> Case:
    prompt = text_chunk("prompt", json.dumps(combine_chain(10_000)))
    return Case("", _write(d / "x.png", png_with(prompt)), "reads")


@case("graph-200000-nodes")
def _(d: Path) -> Case:
    data = png_with(text_chunk("prompt", json.dumps(wide_graph(200_000))))
    return Case("", _write(d / "x.png", data), "error", "limit for graphs")


@case("graph-60000-tiny-nodes")
def _(d: Path) -> Case:
    """Small enough to decode, too many nodes to walk: refused by the parser's stated node limit."""
    prompt = {str(i): {"class_type": "KSampler", "inputs": {"seed": i}} for i in range(60_000)}
    return Case("", _write(d / "x.png", png_with(text_chunk("prompt", json.dumps(prompt)))), "error", "nodes")


@case("graph-49000-tiny-nodes")
def _(d: Path) -> Case:
    """Just under the node limit, every node an output: parses."""
    prompt = {
        str(i): {"class_type": "KSampler", "inputs": {"seed": i, "model": [str(i + 1), 0]}} for i in range(49_000)
    }
    return Case("", _write(d / "x.png", png_with(text_chunk("prompt", json.dumps(prompt)))), "reads")


@case("sampler-chain-5000")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.png", png_with(text_chunk("prompt", json.dumps(sampler_chain(5_000))))), "reads")


@case("prompt-50-mb")
def _(d: Path) -> Case:
    prompt = combine_chain(1)
    prompt["2"]["inputs"]["text"] = "a cat, " * (50 * MIB // 7)
    return Case(
        "", _write(d / "x.png", png_with(text_chunk("prompt", json.dumps(prompt)))), "error", "limit for graphs"
    )


@case("infotext-endless-hashes")
def _(d: Path) -> Case:
    text = "a cat\nSteps: 4, Seed: 1, Hashes: {" + '"a": "' * 600_000
    return Case("", _write(d / "x.png", png_with(text_chunk("parameters", text))), "reads")


# -- C2PA manifest stores (verify hands them to c2pa-python's native reader) --------------------------
def jumbf(label: bytes, body: bytes, *, size: int | None = None) -> bytes:
    """A JUMBF superbox (`jumb`) with its description (`jumd`, the c2pa UUID type) and `body` after it."""
    jumd = b"jumd" + bytes.fromhex("6332706100110010800000aa00389b71") + b"\x03" + label + b"\x00"
    desc = struct.pack(">I", 8 + len(jumd) - 4) + jumd
    inner = desc + body
    return struct.pack(">I", size if size is not None else 8 + len(inner)) + b"jumb" + inner


@case("c2pa-png-garbage-manifest")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.png", png_with(png_chunk(b"caBX", jumbf(b"c2pa", os.urandom(4000))))), "error")


@case("c2pa-png-manifest-claims-4gb")
def _(d: Path) -> Case:
    return Case(
        "", _write(d / "x.png", png_with(png_chunk(b"caBX", jumbf(b"c2pa", b"\x00" * 64, size=0xFFFFFFF0)))), "error"
    )


@case("c2pa-png-manifest-nested-deep")
def _(d: Path) -> Case:
    box = b""
    for _ in range(20_000):  # superboxes inside superboxes: a recursive parser's stack
        box = jumbf(b"c2pa", box)
    return Case("", _write(d / "x.png", png_with(png_chunk(b"caBX", box))), "error")


@case("c2pa-jpeg-garbage-app11")
def _(d: Path) -> Case:
    payload = b"JP" + b"\x00\x01" + struct.pack(">I", 1) + jumbf(b"c2pa", os.urandom(3000))
    return Case("", _write(d / "x.jpg", jpeg_with((0xEB, payload))), "error")


@case("c2pa-webp-garbage-chunk")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.webp", webp_with((b"C2PA", jumbf(b"c2pa", os.urandom(2000))))), "error")


# -- running every reader entry point on a case ------------------------------------------------------

ENTRIES: dict[str, list[str]] = {
    "read": ["read"],
    "read --json": ["read", "--json"],
    "parse": ["parse"],
    "convert": ["convert", "--out"],
    "verify": ["verify"],
}


def run_entries(image: str, out: str) -> dict[str, Any]:
    """Each entry point of the `provenance` command on `image`, in this process, one after another:
    {entry: {"status", "stderr", "seconds"}}; `maxrss_kb` is the process's peak over all of them."""
    import contextlib
    import time

    from comfyui_provenance.cli.main import main as cli

    report: dict[str, Any] = {}
    for entry, argv in ENTRIES.items():
        args = [*argv, out, image] if entry == "convert" else [*argv, image]
        err, sink = io.StringIO(), io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(sink):
            try:
                status: Any = cli(args)
            except BaseException as exc:  # the CLI must never let one out: record it for the test
                import traceback

                status = f"raised {type(exc).__name__}"
                err.write("Traceback (most recent call last):\n" + "".join(traceback.format_exception(exc)))
        report[entry] = {"status": status, "stderr": err.getvalue(), "seconds": time.perf_counter() - started}
    report["maxrss_kb"] = peak_kb()
    return report


def peak_kb() -> int:
    """This process's own peak RSS: VmHWM, since ru_maxrss also counts what the parent was at fork."""
    import resource

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--run":
        print(json.dumps(run_entries(argv[1], argv[2])))
        return 0
    if len(argv) != 1:
        print("usage: hostile.py FOLDER | hostile.py --run IMAGE OUT_FOLDER", file=sys.stderr)
        return 2
    for made in build(Path(argv[0])):
        print(f"{made.name:32} {made.expect:8} {made.image}")
    return 0


# Last, so each sibling finds this module complete (test_hostile collects CASES at import).
_import_siblings()

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

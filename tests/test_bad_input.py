"""Hostile and broken input: damaged files, bombs, huge payloads, failing writers, leaked secrets.

Every case has one tested outcome, and none may hang: reads run under a SIGALRM deadline and
decompression bombs under a tracemalloc memory bound.
"""

from __future__ import annotations

import copy
import errno
import io
import json
import logging
import os
import stat
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import context_for, deadline, load_workflow, pixels, save_node_of
from PIL import Image as PILImage

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.errors import ReadError
from comfyui_provenance.metadata.formats import xmp as xmp_module
from comfyui_provenance.metadata.formats.base import TARGETS, by_name
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images

FORMATS = ("png", "jpeg", "webp")
MIB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_error(path: Path, seconds: float = 5) -> str:
    """read(path) must raise ReadError quickly; returns its message."""
    with deadline(seconds), pytest.raises(ReadError) as caught:
        read(path)
    message = str(caught.value)
    assert message.strip(), "a ReadError needs a message"
    return message


def save_one(
    tmp_path: Path, context: SaveContext, fmt: str, targets: frozenset[str] | None = None, prefix: str = "bad"
) -> SavedFile:
    options = SaveOptions(format=fmt) if targets is None else SaveOptions(format=fmt, targets=targets)
    return save_images([pixels()], context, tmp_path, prefix, options, version="test")[0]


# -- building damaged files by hand ---------------------------------------------------------------------


def png_chunk(ctype: bytes, data: bytes, length: int | None = None) -> bytes:
    size = len(data) if length is None else length
    return struct.pack(">I", size) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def plain_png() -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels(8, 8)).save(out, format="PNG")
    return out.getvalue()


def png_with(*chunks: bytes) -> bytes:
    """A tiny real PNG with `chunks` inserted right after IHDR."""
    data = plain_png()
    ihdr_end = len(PNG_SIGNATURE) + 25
    assert data[12:16] == b"IHDR"
    return data[:ihdr_end] + b"".join(chunks) + data[ihdr_end:]


def image_bytes(fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels(8, 8)).save(out, format=fmt.upper(), **params)
    return out.getvalue()


def boundaries(fmt: str, data: bytes) -> list[int]:
    """Offsets where a chunk or segment starts: the likeliest places for a cut to go unnoticed."""
    cuts = []
    if fmt == "png":
        pos = 8
        while pos < len(data):
            cuts.append(pos)
            pos += 12 + struct.unpack(">I", data[pos : pos + 4])[0]
    elif fmt == "webp":
        pos = 12
        while pos < len(data):
            cuts.append(pos)
            size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
            pos += 8 + size + (size & 1)
    else:
        pos = 2
        while pos < len(data) and data[pos] == 0xFF and data[pos + 1] not in (0xDA, 0xD9):
            cuts.append(pos)
            pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        cuts.append(pos)
    return cuts


# -- damaged and foreign files -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_files_are_read_errors(fmt: str, tmp_path: Path) -> None:
    saved = save_one(tmp_path, context_for("default"), fmt)
    data = saved.path.read_bytes()
    assert read(saved.path).generation.seed == 685468484323813  # the whole file reads
    cuts = sorted({*boundaries(fmt, data), *range(1, len(data), max(1, len(data) // 60)), len(data) - 1})
    cut_file = tmp_path / f"cut.{fmt}"
    silent = []
    for cut in cuts:
        cut_file.write_bytes(data[:cut])
        try:
            with deadline(5):
                read(cut_file)
        except ReadError as err:
            assert "truncated" in str(err) or "not a PNG, JPEG, WEBP" in str(err), (cut, str(err))
        else:
            silent.append(cut)
    assert not silent, f"{fmt} cut at {silent} of {len(data)} bytes read without an error"


@pytest.mark.parametrize(
    "name,data",
    [
        ("empty.png", b""),
        ("garbage.png", bytes(range(256)) * 16),
        ("text.png", b"this is not an image\n" * 10),
        ("image.bmp", b"BM" + bytes(100)),
        ("tiny.jpg", b"\xff\xd8"),
    ],
)
def test_foreign_files_are_read_errors(name: str, data: bytes, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    message = read_error(path)
    assert "not a PNG, JPEG, WEBP" in message


@pytest.mark.parametrize(
    "prefix", [PNG_SIGNATURE, b"\xff\xd8\xff", b"RIFF\x00\x10\x00\x00WEBP"], ids=["png", "jpeg", "webp"]
)
def test_garbage_after_a_valid_signature_is_a_read_error(prefix: bytes, tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    for seed in range(5):
        body = bytes((i * 131 + seed * 17 + (i >> 3)) % 256 for i in range(4096))
        path.write_bytes(prefix + body)
        read_error(path)


def test_missing_files_and_folders_are_read_errors(tmp_path: Path) -> None:
    assert "cannot open" in read_error(tmp_path / "nope.png")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    assert "cannot open" in read_error(folder)


def test_a_damaged_chunk_crc_is_a_read_error(tmp_path: Path) -> None:
    data = bytearray(png_with(png_chunk(b"tEXt", b"parameters\x00a prompt\nSteps: 1, Seed: 2, CFG scale: 3")))
    data[40] ^= 0xFF  # inside the tEXt payload
    path = tmp_path / "crc.png"
    path.write_bytes(bytes(data))
    assert "CRC" in read_error(path)


def test_damaged_exif_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "exif.jpg"
    path.write_bytes(image_bytes("jpeg", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + bytes(20)))
    assert "EXIF" in read_error(path)


# -- XML bombs in XMP ----------------------------------------------------------------------------------------

XMP_BODY = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:cprov="https://github.com/comfyui-provenance/ns/1.0/">'
    "<cprov:Record>{ref}</cprov:Record></rdf:Description></rdf:RDF></x:xmpmeta>"
)
LAUGHS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
BILLION_LAUGHS = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    f'<!DOCTYPE lolz [<!ENTITY lol0 "lol">{LAUGHS}]>\n' + XMP_BODY.format(ref="&lol9;") + '\n<?xpacket end="w"?>'
).encode("utf-8")
EXTERNAL_ENTITY = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    + XMP_BODY.format(ref="&xxe;")
    + '\n<?xpacket end="w"?>'
).encode("utf-8")
BOMBS = {"billion-laughs": BILLION_LAUGHS, "external-entity": EXTERNAL_ENTITY}


def xmp_itxt(packet: bytes) -> bytes:
    return png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + packet)


@pytest.mark.parametrize("bomb", BOMBS, ids=list(BOMBS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_xml_bomb_in_xmp_is_refused_fast(fmt: str, bomb: str, tmp_path: Path) -> None:
    packet = BOMBS[bomb]
    path = tmp_path / f"bomb.{fmt}"
    if fmt == "png":
        path.write_bytes(png_with(xmp_itxt(packet)))
    else:  # JPEG APP1 "http://ns.adobe.com/xap/1.0/\0" + packet, WEBP "XMP " chunk
        path.write_bytes(image_bytes(fmt, xmp=packet))
    assert packet in path.read_bytes()
    tracemalloc.start()
    try:
        message = read_error(path, seconds=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "XMP" in message and ("refused" in message or "entity" in message.lower()), message
    assert peak < 16 * MIB


def test_xml_bomb_in_an_xmp_sidecar_is_not_expanded(tmp_path: Path) -> None:
    """The .xmp sidecar is never parsed by read(); a bomb there changes nothing."""
    saved = save_one(tmp_path, context_for("default"), "png")
    saved.path.with_name(saved.path.name + ".xmp").write_bytes(BILLION_LAUGHS)
    with deadline(2):
        assert read(saved.path).generation.seed == 685468484323813


# -- decompression bombs and impossible sizes -----------------------------------------------------------------------


@cache
def deflated_zeros(size: int = 200 * MIB) -> bytes:
    """`size` zero bytes, deflated (about 200 KB), built without holding them in memory."""
    compressor = zlib.compressobj(1)
    block = bytes(MIB)
    return b"".join(compressor.compress(block) for _ in range(size // MIB)) + compressor.flush()


@pytest.mark.parametrize("kind", ["zTXt", "iTXt"])
@pytest.mark.parametrize("key", ["parameters", "prompt", "comfyui_provenance"])
def test_decompression_bomb_is_refused_fast_in_bounded_memory(kind: str, key: str, tmp_path: Path) -> None:
    bomb = deflated_zeros()
    assert len(bomb) < 2 * MIB
    if kind == "zTXt":
        chunk = png_chunk(b"zTXt", key.encode() + b"\x00\x00" + bomb)
    else:
        chunk = png_chunk(b"iTXt", key.encode() + b"\x00\x01\x00\x00\x00" + bomb)
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with(chunk))
    tracemalloc.start()
    try:
        message = read_error(path, seconds=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "decompression bomb" in message, message
    assert peak < 16 * MIB, f"reading the bomb peaked at {peak:,} bytes"


def test_png_chunk_claiming_3_gb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_with(png_chunk(b"tEXt", b"parameters\x00x", length=3_000_000_000)))
    assert "claims 3,000,000,000 bytes" in read_error(path, seconds=2)


def test_png_chunk_claiming_more_than_the_file_is_truncation(tmp_path: Path) -> None:
    path = tmp_path / "short.png"
    path.write_bytes(png_with(png_chunk(b"tEXt", b"parameters\x00x", length=200 * MIB)))
    assert "truncated" in read_error(path, seconds=2)


def test_webp_chunk_claiming_3_gb_is_refused(tmp_path: Path) -> None:
    data = image_bytes("webp", exif=b"MM\x00*\x00\x00\x00\x08\x00\x00")
    assert data[12:16] == b"VP8X"
    vp8x_end = 12 + 8 + 10
    forged = data[:vp8x_end] + b"EXIF" + struct.pack("<I", 3_000_000_000) + data[vp8x_end:]
    path = tmp_path / "huge.webp"
    path.write_bytes(forged[:4] + struct.pack("<I", len(forged) - 8) + forged[8:])
    assert "claims 3,000,000,000 bytes" in read_error(path, seconds=2)


# -- huge payloads on the save side ----------------------------------------------------------------------------------


def context_with_prompt(text: str) -> SaveContext:
    api, ui = load_workflow("default")
    api = copy.deepcopy(api)
    api["6"]["inputs"]["text"] = text
    return SaveContext(
        prompt=api,
        extra_pnginfo={"workflow": ui},
        save_node_id=save_node_of(api),
        prompt_id="huge",
        comfyui_version="0.3.60",
    )


def placements(saved: SavedFile) -> list[dict[str, Any]]:
    assert saved.record is not None
    return [p.to_dict() for p in saved.record.provenance.embedding]


@pytest.mark.parametrize("fmt", FORMATS)
def test_ten_megabyte_prompt(fmt: str, tmp_path: Path) -> None:
    unit = "a very long prompt, (detailed:1.2), Über 🌅\n"
    prompt = (unit * (10 * MIB // len(unit) + 1))[: 10 * MIB]
    with deadline(30):
        saved = save_one(tmp_path, context_with_prompt(prompt), fmt)
    with PILImage.open(saved.path) as image:
        image.load()
        assert image.size == (96, 64)
    with deadline(30):
        back = read(saved.path)
    assert back.generation.positive == prompt
    assert saved.record is not None and back.to_dict() == saved.record.to_dict()
    moved = [p for p in placements(saved) if p["status"] == "moved"]
    for path in saved.sidecars:  # every file beside the image is explained by a recorded move
        kind = "sidecar:" + path.suffix.lstrip(".")
        assert any(p["location"] == kind and p["reason"] for p in moved), (path.name, placements(saved))
    if fmt in ("png", "jpeg"):  # the record cannot stay inside: PNG's 1 MiB zip cap, JPEG's 64 KiB
        assert any(p["target"] == "record" and p["location"] == "sidecar:json" and p["reason"] for p in moved)


def test_exif_over_64_kb_in_jpeg_moves_the_user_comment(tmp_path: Path) -> None:
    prompt = "a prompt that will not fit one EXIF segment, " * 2000
    saved = save_one(tmp_path, context_with_prompt(prompt), "jpeg")
    moved = [p for p in placements(saved) if p["target"] == "a1111" and p["status"] == "moved"]
    assert {p["location"] for p in moved} == {"sidecar:txt", "sidecar:json"}
    assert all(p["reason"] for p in moved)
    assert any("EXIF" in p["reason"] for p in moved)
    txt = saved.path.with_name(saved.path.name + ".txt")
    assert txt in saved.sidecars
    assert txt.read_text("utf-8").startswith(prompt.strip())
    with PILImage.open(saved.path) as image:
        image.load()
        exif = image.info.get("exif", b"")
    assert len(exif) <= 65_533
    assert saved.record is not None
    assert read(saved.path).to_dict() == saved.record.to_dict()


# -- failing file system and failing writers ---------------------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_unwritable_output_folder_chmod(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes (see the emulated test below)")
        with pytest.raises(PermissionError) as caught:
            save_images([pixels()], context_for("default"), folder, "x", SaveOptions())
        assert "readonly" in str(caught.value)
        assert leftovers(folder) == []
    finally:
        folder.chmod(0o700)


def test_unwritable_output_folder_emulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the kernel does for a non-root user in a 0o500 folder: every create there fails."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    real_open = os.open

    def guarded_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and Path(os.fsdecode(path)).parent == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    for fmt in FORMATS:
        with pytest.raises(PermissionError) as caught:
            save_images(
                [pixels()], context_for("default"), folder, "x", SaveOptions(format=fmt, targets=frozenset(TARGETS))
            )
        assert str(folder) in str(caught.value)
    assert leftovers(folder) == []


def test_output_subfolder_blocked_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "sub").write_bytes(b"a file, not a folder")
    with pytest.raises(OSError):
        save_images([pixels()], context_for("default"), tmp_path, "sub/x", SaveOptions())
    assert leftovers(tmp_path) == ["sub"]


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("writer exploded")


FAILURES: dict[str, Callable[[pytest.MonkeyPatch, str], None]] = {
    "xmp-builder": lambda mp, fmt: mp.setattr(xmp_module, "build", _raise),
    "format-encode": lambda mp, fmt: mp.setattr(by_name(fmt), "encode", _raise),
}


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failing_writer_still_saves_the_image(
    fmt: str, failure: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    FAILURES[failure](monkeypatch, fmt)
    context = context_for("lora")
    with caplog.at_level(logging.WARNING, logger="comfyui_provenance"):
        saved = save_one(tmp_path, context, fmt)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "writer exploded" in warnings[0].getMessage()
    with PILImage.open(saved.path) as image:
        image.load()
        assert image.size == (96, 64)
        if fmt == "png":  # exactly what ComfyUI core would have written
            assert image.text["prompt"] == json.dumps(context.prompt)
            assert image.text["workflow"] == json.dumps(context.workflow)
    assert saved.record is not None
    assert any("writer exploded" in w for w in saved.record.provenance.warnings)
    sidecar = saved.path.with_name(saved.path.name + ".json")
    assert saved.sidecars == [sidecar]
    data = json.loads(sidecar.read_text("utf-8"))
    assert any("writer exploded" in w for w in data["provenance"]["warnings"])
    assert data["generation"] == saved.record.generation.to_dict()
    assert read(saved.path).to_dict() == data
    assert not [n for n in leftovers(tmp_path) if n.endswith(".tmp")]


# -- credentials never reach a file -----------------------------------------------------------------------------------

SECRETS = {"auth_token_comfy_org": "SECRET-auth-5f2b9c", "api_key_comfy_org": "SECRET-key-8d1e4a"}


def png_texts(data: bytes) -> list[bytes]:
    """Every tEXt/zTXt/iTXt payload, inflated, so compressed chunks are searched too."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if ctype == b"zTXt":
            out.append(zlib.decompress(body.split(b"\x00", 1)[1][1:]))
        elif ctype == b"iTXt":
            _key, rest = body.split(b"\x00", 1)
            text = rest[2:].split(b"\x00", 2)[2]
            out.append(zlib.decompress(text) if rest[0] else text)
        pos += 12 + length
    return out


@pytest.mark.parametrize("where", ["everywhere", "top-level extra_pnginfo keys only"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_comfy_org_secrets_never_reach_any_output_byte(fmt: str, where: str, tmp_path: Path) -> None:
    api, ui = load_workflow("default")
    api, ui = copy.deepcopy(api), copy.deepcopy(ui)
    extra: dict[str, Any] = {"workflow": ui, **SECRETS}
    if where == "everywhere":
        api["3"]["inputs"].update(SECRETS)
        ui.setdefault("extra", {})["api_key_comfy_org"] = SECRETS["api_key_comfy_org"]
        extra["other"] = {"auth_token_comfy_org": SECRETS["auth_token_comfy_org"]}
    context = SaveContext(prompt=api, extra_pnginfo=extra, save_node_id=save_node_of(api))
    saved = save_one(tmp_path, context, fmt, frozenset(TARGETS))
    assert saved.record is not None
    files = [saved.path, *saved.sidecars]
    assert len(files) == 4
    for path in files:
        data = path.read_bytes()
        blobs = [data, *(png_texts(data) if fmt == "png" and path == saved.path else [])]
        for secret in SECRETS.values():
            for encoded in (secret.encode("utf-8"), secret.encode("utf-16-be"), secret.encode("utf-16-le")):
                assert not any(encoded in blob for blob in blobs), f"{secret} leaked into {path.name}"
        for key in SECRETS:  # not even as the name of a chunk or an EXIF key:value
            assert not any(key.encode() in blob for blob in blobs), f"{key} written into {path.name}"
    assert not any(s in json.dumps(saved.record.to_dict()) for s in SECRETS.values())


def test_file_modes_after_a_failed_save_are_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer failure leaves normal permissions on what it did write (no private 0600 temp files)."""
    monkeypatch.setattr(by_name("png"), "encode", _raise)
    saved = save_one(tmp_path, context_for("default"), "png")
    mask = os.umask(0)
    os.umask(mask)
    for path in (saved.path, *saved.sidecars):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask

"""Hostile and damaged MP4/MOV files: lying box sizes, deep nesting, huge counts, bombs in the tags.

Each file is assembled box by box (no encoder involved), around a sound movie whose udta holds our
record as an mdta key, so a case that damages only what the readers skip still reads.
"""

from __future__ import annotations

import struct
from pathlib import Path

from hostile import BILLION_LAUGHS, Case, _write, case, deep_json, record


def box(kind: bytes, *parts: bytes, size: int | None = None) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", len(body) + 8 if size is None else size, kind) + body


def keys_meta(pairs: list[tuple[str, str]], count: int | None = None) -> bytes:
    """A udta meta as ffmpeg writes it with use_metadata_tags; `count` forges the keys entry count."""
    keys = b"".join(struct.pack(">I", 8 + len(k)) + b"mdta" + k.encode() for k, _ in pairs)
    items = b"".join(
        box(struct.pack(">I", i), box(b"data", struct.pack(">II", 1, 0), v.encode()))
        for i, (_, v) in enumerate(pairs, 1)
    )
    head = struct.pack(">II", 0, len(pairs) if count is None else count)
    return box(
        b"meta", bytes(4), box(b"hdlr", bytes(8), b"mdta", bytes(13)), box(b"keys", head, keys), box(b"ilst", items)
    )


SOUND = keys_meta([("comfyui_provenance", record())])


def trak(
    handler: bytes = b"vide", *, stsz: bytes | None = None, stco: bytes | None = None, stts: bytes | None = None
) -> bytes:
    """A one-chunk track of 5 samples at 24 fps (timescale 24) whose data is the mdat's first bytes."""
    tkhd = box(b"tkhd", bytes(76), struct.pack(">II", 64 << 16, 64 << 16))
    mdhd = box(b"mdhd", bytes(12), struct.pack(">II", 24, 5), bytes(4))
    hdlr = box(b"hdlr", bytes(8), handler, bytes(13))
    stbl = box(
        b"stbl",
        box(b"stsd", struct.pack(">II", 0, 1), box(b"avc1", bytes(78))),
        stts if stts is not None else box(b"stts", struct.pack(">IIII", 0, 1, 5, 1)),
        box(b"stsc", struct.pack(">IIIII", 0, 1, 1, 5, 1)),
        stsz if stsz is not None else box(b"stsz", struct.pack(">III", 0, 5, 5), struct.pack(">5I", 1, 1, 1, 1, 1)),
        stco if stco is not None else box(b"stco", struct.pack(">III", 0, 1, 40)),
    )
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", stbl)))


def movie(
    *, udta: bytes = SOUND, traks: bytes | None = None, moov_extra: bytes = b"", after: bytes = b"", top: bytes = b""
) -> bytes:
    """ftyp, mdat (at byte 32, so its data starts at 40), `top`, moov (mvhd, tracks, `moov_extra`, udta), `after`."""
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2")
    mvhd = box(b"mvhd", bytes(12), struct.pack(">II", 1000, 208), bytes(80))
    moov = box(b"moov", mvhd, trak() if traks is None else traks, moov_extra, box(b"udta", udta) if udta else b"")
    return ftyp + box(b"mdat", bytes(16)) + top + moov + after


def _mp4(d: Path, data: bytes) -> Path:
    return _write(d / "x.mp4", data)


@case("mp4-sound-file")
def _(d: Path) -> Case:
    return Case("", _mp4(d, movie()), "reads")


@case("mp4-truncated-moov")
def _(d: Path) -> Case:
    return Case("", _mp4(d, movie()[:-60]), "error", "past the end of the file")


@case("mp4-box-past-its-parent")
def _(d: Path) -> Case:
    forged = SOUND + struct.pack(">I4s", 0x7FFF_FFF0, b"\xa9cmt") + b"\x00\x05U\xc4hello"
    return Case("", _mp4(d, movie(udta=forged)), "error", "past the end of its parent")


@case("mp4-box-size-under-8")
def _(d: Path) -> Case:
    return Case(
        "", _mp4(d, movie(after=struct.pack(">I4s", 5, b"free") + bytes(8))), "error", "less than its own header"
    )


@case("mp4-largesize-lies")
def _(d: Path) -> Case:
    forged = struct.pack(">I4sQ", 1, b"mdat", 1 << 62) + bytes(16)
    return Case("", _mp4(d, movie(after=forged)), "error", "past the end of the file")


@case("mp4-largesize-under-16")
def _(d: Path) -> Case:
    forged = struct.pack(">I4sQ", 1, b"free", 9) + bytes(16)
    return Case("", _mp4(d, movie(after=forged)), "error", "less than its own header")


@case("mp4-nested-100000-boxes")
def _(d: Path) -> Case:
    """100,000 udta boxes each inside the one before, in moov and in its udta: only the boxes that hold
    metadata are opened, so the walk never goes deeper than a movie's fixed layout."""
    levels = 100_000
    nest = b"".join(struct.pack(">I4s", 8 * (levels - i), b"udta") for i in range(levels))
    return Case("", _mp4(d, movie(udta=SOUND + nest, moov_extra=nest)), "reads")


@case("mp4-keys-count-2-31")
def _(d: Path) -> Case:
    return Case("", _mp4(d, movie(udta=keys_meta([("prompt", "{}")], count=1 << 31))), "error", "2,147,483,648 keys")


@case("mp4-ilst-data-claims-4-gb")
def _(d: Path) -> Case:
    item = box(struct.pack(">I", 1), struct.pack(">I4s", 0xFFFF_FF00, b"data"), struct.pack(">II", 1, 0), b"{}")
    meta = keys_meta([("prompt", "{}")])
    forged = meta[: meta.index(b"ilst") - 4] + box(b"ilst", item)
    forged = struct.pack(">I", len(forged)) + forged[4:]
    return Case("", _mp4(d, movie(udta=forged)), "error", "past the end of its parent")


@case("mp4-ilst-data-largesize-1-tib")
def _(d: Path) -> Case:
    item = box(struct.pack(">I", 1), struct.pack(">I4sQ", 1, b"data", 1 << 40), struct.pack(">II", 1, 0), b"{}")
    meta = keys_meta([("prompt", "{}")])
    forged = meta[: meta.index(b"ilst") - 4] + box(b"ilst", item)
    forged = struct.pack(">I", len(forged)) + forged[4:]
    return Case("", _mp4(d, movie(udta=forged)), "error", "past the end of its parent")


@case("mp4-stsz-count-lies")
def _(d: Path) -> Case:
    stsz = box(b"stsz", struct.pack(">III", 0, 0, 1 << 30), bytes(20))
    return Case("", _mp4(d, movie(traks=trak(stsz=stsz))), "error", "1,073,741,824 samples")


@case("mp4-stts-count-lies")
def _(d: Path) -> Case:
    stts = box(b"stts", struct.pack(">III", 0, 0xFFFF_FFFF, 5), struct.pack(">I", 1))
    return Case("", _mp4(d, movie(traks=trak(stts=stts))), "error", "entries")


@case("mp4-stco-count-lies")
def _(d: Path) -> Case:
    """Chunk offsets are the writer's business: readers never load them, so the file still reads."""
    return Case("", _mp4(d, movie(traks=trak(stco=box(b"stco", struct.pack(">III", 0, 1 << 30, 40))))), "reads")


@case("mp4-thousands-of-traks")
def _(d: Path) -> Case:
    """20,000 subtitle tracks before the video one: walked, never more than the box budget."""
    return Case("", _mp4(d, movie(traks=trak(b"text") * 20_000 + trak())), "reads")


@case("mp4-too-many-boxes")
def _(d: Path) -> Case:
    return Case("", _mp4(d, movie(after=box(b"free") * 300_000)), "error", "more than")


@case("mp4-size-0-inside-moov")
def _(d: Path) -> Case:
    return Case("", _mp4(d, movie(moov_extra=struct.pack(">I4s", 0, b"free"))), "error", "size 0")


@case("mp4-size-0-swallows-the-moov")
def _(d: Path) -> Case:
    """A top-level size 0 runs to the end of the file, so the moov after it is inside it: no movie."""
    return Case("", _mp4(d, movie(top=struct.pack(">I4s", 0, b"free"))), "error", "no moov")


@case("mp4-stray-bytes-in-moov")
def _(d: Path) -> Case:
    return Case("", _mp4(d, movie(udta=b"", moov_extra=box(b"udta", SOUND) + b"\x01\x02\x03")), "error", "stray bytes")


@case("mp4-xmp-billion-laughs")
def _(d: Path) -> Case:
    return Case("", _mp4(d, movie(udta=box(b"XMP_", BILLION_LAUGHS))), "error")


@case("mp4-uuid-xmp-billion-laughs")
def _(d: Path) -> Case:
    uuid = box(b"uuid", bytes.fromhex("be7acfcb97a942e89c71999491e3afac"), BILLION_LAUGHS)
    return Case("", _mp4(d, movie(udta=b"", after=uuid)), "error")


@case("mp4-prompt-deep-json")
def _(d: Path) -> Case:
    return Case("", _mp4(d, movie(udta=keys_meta([("prompt", deep_json())]))), "error")


@case("mp4-text-atom-length-lies")
def _(d: Path) -> Case:
    """A comment atom whose 16-bit length says 65,535 but holds 5 bytes: the 5 are the comment."""
    atom = box(b"\xa9cmt", struct.pack(">HH", 0xFFFF, 0x55C4), b"hello")
    return Case("", _mp4(d, movie(udta=SOUND + atom)), "reads")


@case("mp4-stsd-entry-lies")
def _(d: Path) -> Case:
    forged = trak().replace(box(b"avc1", bytes(78)), struct.pack(">I4s", 0xFFFF_FFF0, b"avc1") + bytes(78))
    return Case("", _mp4(d, movie(traks=forged)), "reads")

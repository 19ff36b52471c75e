"""Hostile and damaged Matroska/WebM files, plus the small EBML writer that builds them (and test_matroska's).

Truncations of a real PyAV-written WebM, sizes past the parent and the file, exabyte and 2 GiB
claims, 100,000 levels of nesting (known and unknown sizes), a million Void elements, invalid
variable-length numbers and a foreign DocType. Each must end in one clean ReadError, or read from
what is sound (the A1111 comment in the head's Tags) when what follows cannot hurt.
"""

from __future__ import annotations

import io
import json
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from hostile import Case, _write, case

EBML, DOCTYPE, SEGMENT, CLUSTER = 0x1A45DFA3, 0x4282, 0x18538067, 0x1F43B675
INFO, TIMESTAMP_SCALE, DURATION = 0x1549A966, 0x2AD7B1, 0x4489
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_UID, TRACK_TYPE, CODEC_ID = 0x1654AE6B, 0xAE, 0xD7, 0x73C5, 0x83, 0x86
DEFAULT_DURATION, VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT = 0x23E383, 0xE0, 0xB0, 0xBA
AUDIO, SAMPLING_FREQUENCY, CHANNELS = 0xE1, 0xB5, 0x9F
TAGS, TAG, TARGETS, SIMPLE_TAG, TAG_NAME, TAG_STRING = 0x1254C367, 0x7373, 0x63C0, 0x67C8, 0x45A3, 0x4487
TAG_TRACK_UID, TAG_CHAPTER_UID = 0x63C5, 0x63C4
CLUSTER_TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK, VOID = 0xE7, 0xA3, 0xA0, 0xA1, 0xEC
UNKNOWN = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # an 8-byte all-ones size: "unknown"
Out = TypeVar("Out", Path, io.RawIOBase)
COMMENT = "a cat on a mat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1234, Size: 64x64"


# -- an EBML writer -----------------------------------------------------------------------------------


def size_vint(size: int) -> bytes:
    """`size` as the shortest EBML variable-length number (all ones is reserved for "unknown")."""
    for length in range(1, 9):
        if size < (1 << (7 * length)) - 1:
            return (size | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError(f"{size} does not fit an EBML size")


def el(ident: int, *parts: bytes, size: bytes | None = None) -> bytes:
    """An element: id, size (the payload's, unless `size` forges one), payload."""
    payload = b"".join(parts)
    return ident.to_bytes((ident.bit_length() + 7) // 8, "big") + (size or size_vint(len(payload))) + payload


def uint(ident: int, value: int) -> bytes:
    return el(ident, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def string(ident: int, value: str | bytes) -> bytes:
    return el(ident, value.encode("utf-8") if isinstance(value, str) else value)


def header(doctype: str = "webm") -> bytes:
    return el(EBML, uint(0x4286, 1), uint(0x42F7, 1), uint(0x42F2, 4), uint(0x42F3, 8), string(DOCTYPE, doctype))


def simple_tag(name: str, value: str | None = None, *nested: bytes) -> bytes:
    body = string(TAG_NAME, name) + (string(TAG_STRING, value) if value is not None else b"")
    return el(SIMPLE_TAG, body, *nested)


def tag(*simple_tags: bytes, track_uid: int | None = None, chapter_uid: int | None = None) -> bytes:
    targets = (uint(TAG_TRACK_UID, track_uid) if track_uid is not None else b"") + (
        uint(TAG_CHAPTER_UID, chapter_uid) if chapter_uid is not None else b""
    )
    return el(TAG, el(TARGETS, targets), *simple_tags)


def video_track(number: int = 1, codec: str = "V_VP9", default_duration: int | None = None) -> bytes:
    extra = uint(DEFAULT_DURATION, default_duration) if default_duration else b""
    settings = el(VIDEO, uint(PIXEL_WIDTH, 64), uint(PIXEL_HEIGHT, 48))
    body = uint(TRACK_NUMBER, number) + uint(TRACK_UID, 100 + number) + uint(TRACK_TYPE, 1)
    return el(TRACK_ENTRY, body, string(CODEC_ID, codec), extra, settings)


def audio_track(number: int = 2, codec: str = "A_OPUS", rate: float = 48000.0, channels: int = 2) -> bytes:
    settings = el(AUDIO, el(SAMPLING_FREQUENCY, struct.pack(">d", rate)), uint(CHANNELS, channels))
    body = uint(TRACK_NUMBER, number) + uint(TRACK_UID, 100 + number) + uint(TRACK_TYPE, 2)
    return el(TRACK_ENTRY, body, string(CODEC_ID, codec), settings)


def simple_block(track: int, timestamp: int, laced_frames: int = 1) -> bytes:
    """A SimpleBlock of `track` at `timestamp`; more than one frame makes it Xiph-laced."""
    if laced_frames == 1:
        return el(SIMPLE_BLOCK, size_vint(track), struct.pack(">hB", timestamp, 0x80), b"\x00")
    lace = bytes([laced_frames - 1]) + b"\x01" * (laced_frames - 1)
    return el(SIMPLE_BLOCK, size_vint(track), struct.pack(">hB", timestamp, 0x82), lace, b"\x00" * laced_frames)


def matroska(*children: bytes, doctype: str = "webm", segment_size: bytes | None = None) -> bytes:
    return header(doctype) + el(SEGMENT, *children, size=segment_size)


def comment_tags() -> bytes:
    """The head's Tags with an A1111 comment: what the "reads" cases read."""
    return el(TAGS, tag(simple_tag("COMMENT", COMMENT)))


def nested(ident: int, levels: int, inner: bytes, *, unknown: bool = False, prefix: bytes = b"") -> bytes:
    """`levels` elements each holding the next (then `inner`), built outside-in without copying."""
    id_bytes = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    heads, size = [], len(inner)
    for _ in range(levels):
        head = id_bytes + (UNKNOWN if unknown else size_vint(size + len(prefix))) + prefix
        heads.append(head)
        size += len(head)
    return b"".join(reversed(heads)) + inner


# -- PyAV-written files, and a small EBML reader to take them apart -------------------------------------


def video(
    path: Out,
    *,
    muxer: str | None = None,
    codec: str = "libvpx-vp9",
    audio: str | None = None,
    frames: int = 5,
    rate: Fraction = Fraction(24),
    metadata: dict[str, str] | None = None,
    stream_metadata: dict[str, str] | None = None,
) -> Out:
    """A 64x48 video PyAV writes as ComfyUI does: container metadata set before any stream is added."""
    import av

    with av.open(str(path) if isinstance(path, Path) else path, "w", format=muxer) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        video = container.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for key, value in (stream_metadata or {}).items():
            video.metadata[key] = value
        sound = container.add_stream(audio, rate=48000) if audio else None
        for index in range(frames):
            pixels = np.full((48, 64, 3), (index * 37) % 256, np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 9600), np.float32), format="flt", layout="mono")
            samples.sample_rate = 48000
            container.mux(sound.encode(samples))
            container.mux(sound.encode())
    return path


def pyav_webm(path: Path) -> Path:
    """A real VP9 WebM laid out as core's SaveWEBM writes one, with an A1111 comment too."""
    prompt = json.dumps({"1": {"class_type": "EmptyLatentImage", "inputs": {}}})
    return video(path, frames=4, rate=Fraction(8), metadata={"prompt": prompt, "comment": COMMENT})


def element_header(data: bytes, pos: int) -> tuple[int, int, int]:
    """(id, size, header length) of the element at `pos` (a test's own small EBML reading)."""
    id_len = 9 - data[pos].bit_length()
    size_len = 9 - data[pos + id_len].bit_length()
    raw = int.from_bytes(data[pos + id_len : pos + id_len + size_len], "big")
    return int.from_bytes(data[pos : pos + id_len], "big"), raw & ((1 << (7 * size_len)) - 1), id_len + size_len


def segment_children(data: bytes) -> list[tuple[int, bytes]]:
    """(id, payload) of each level-1 element of a file's known-size Segment."""
    _, header_size, header_head = element_header(data, 0)
    _, _, head = element_header(data, header_head + header_size)
    pos, out = header_head + header_size + head, []
    while pos < len(data):
        ident, size, head = element_header(data, pos)
        out.append((ident, data[pos + head : pos + head + size]))
        pos += head + size
    return out


class Pipe(io.RawIOBase):
    """A write-only, unseekable output: the muxer writes a Segment of unknown size and no Duration."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, block: Any) -> int:
        self.data += block
        return len(block)


# -- the cases ----------------------------------------------------------------------------------------


def _cut(d: Path, where: bytes, offset: int) -> Path:
    data = pyav_webm(d / "full.webm").read_bytes()
    (d / "full.webm").unlink()
    return _write(d / "x.webm", data[: data.index(where) + offset])


@case("mkv-truncated-in-header")
def _(d: Path) -> Case:
    return Case("", _cut(d, b"webm", 2), "error", "truncated")


@case("mkv-truncated-in-tags")
def _(d: Path) -> Case:
    return Case("", _cut(d, b"COMMENT", 12), "error", "truncated")


@case("mkv-truncated-in-cluster")
def _(d: Path) -> Case:
    return Case("", _cut(d, b"\x1f\x43\xb6\x75", 40), "error", "truncated")


@case("mkv-truncated-in-element-header")
def _(d: Path) -> Case:
    data = matroska(comment_tags(), segment_size=UNKNOWN) + b"\x1f\x43"
    return Case("", _write(d / "x.webm", data), "error", "cut at byte")


@case("mkv-size-past-parent")
def _(d: Path) -> Case:
    inner = string(TAG_NAME, "COMMENT") + el(TAG_STRING, COMMENT.encode(), size=size_vint(len(COMMENT) + 500))
    data = matroska(el(TAGS, el(TAG, el(SIMPLE_TAG, inner))), el(VOID, b"\x00" * 1000))
    return Case("", _write(d / "x.webm", data), "error", "past the end of its parent")


@case("mkv-segment-claims-exabytes")
def _(d: Path) -> Case:
    data = matroska(comment_tags(), segment_size=b"\x01\xff\xff\xff\xff\xff\xff\xfe")
    return Case("", _write(d / "x.mkv", data), "error", "72,057,594,037,927,934 bytes")


@case("mkv-void-claims-exabytes")
def _(d: Path) -> Case:
    data = matroska(comment_tags(), el(VOID, size=b"\x01\x00\xff\xff\xff\xff\xff\xff"), segment_size=UNKNOWN)
    return Case("", _write(d / "x.mkv", data), "error", "past the end")


@case("mkv-tagstring-claims-2-gib")
def _(d: Path) -> Case:
    """Every element around the TagString claims room for it: the outermost claim past the file is refused."""
    claim = 0x8000_0000
    value = el(TAG_STRING, b"{}", size=size_vint(claim))
    simple = el(SIMPLE_TAG, string(TAG_NAME, "PROMPT"), value, size=size_vint(claim + 16))
    tags = el(TAGS, el(TAG, simple, size=size_vint(claim + 32)), size=size_vint(claim + 48))
    return Case("", _write(d / "x.webm", matroska(tags, segment_size=UNKNOWN)), "error", "2,147,483,")


@case("mkv-simpletags-100000-deep")
def _(d: Path) -> Case:
    deep = nested(SIMPLE_TAG, 100_000, string(TAG_NAME, "X"), prefix=string(TAG_NAME, "X"))
    data = matroska(comment_tags(), el(TAGS, el(TAG, deep)), segment_size=UNKNOWN)
    return Case("", _write(d / "x.webm", data), "error", "nest deeper")


@case("mkv-unknown-size-simpletags-100000-deep")
def _(d: Path) -> Case:
    deep = nested(SIMPLE_TAG, 100_000, b"", unknown=True)
    data = matroska(comment_tags(), el(TAGS, el(TAG, deep)), segment_size=UNKNOWN)
    return Case("", _write(d / "x.webm", data), "error", "unknown size")


@case("mkv-unknown-size-tags-100000-deep")
def _(d: Path) -> Case:
    data = matroska(comment_tags(), nested(TAGS, 100_000, b"", unknown=True), segment_size=UNKNOWN)
    return Case("", _write(d / "x.webm", data), "error", "unknown size")


@case("mkv-unknown-size-clusters-100000-deep")
def _(d: Path) -> Case:
    """Unknown-size Clusters 'nested': each ends where the next begins, so they are 100,000 in a row."""
    data = matroska(comment_tags(), nested(CLUSTER, 100_000, b"", unknown=True), segment_size=UNKNOWN)
    return Case("", _write(d / "x.webm", data), "reads")


@case("mkv-unknown-size-segments-100000-deep")
def _(d: Path) -> Case:
    data = matroska(comment_tags(), nested(SEGMENT, 100_000, b"", unknown=True), segment_size=UNKNOWN)
    return Case("", _write(d / "x.webm", data), "reads")


@case("mkv-million-voids")
def _(d: Path) -> Case:
    data = matroska(comment_tags(), b"\xec\x80" * 1_000_000, segment_size=UNKNOWN)
    return Case("", _write(d / "x.webm", data), "error", "more than 250,000 matroska elements")


@case("mkv-million-voids-in-a-cluster")
def _(d: Path) -> Case:
    cluster = el(CLUSTER, uint(CLUSTER_TIMESTAMP, 0), simple_block(1, 0), b"\xec\x80" * 1_000_000)
    data = matroska(el(TRACKS, video_track()), comment_tags(), cluster)
    return Case("", _write(d / "x.webm", data), "error", "more than 250,000 matroska elements")


@case("mkv-invalid-vint")
def _(d: Path) -> Case:
    data = matroska(comment_tags(), el(TAGS, b"\x00\x81\x00"))
    return Case("", _write(d / "x.webm", data), "error", "invalid ebml number")


@case("mkv-id-longer-than-4-bytes")
def _(d: Path) -> Case:
    data = matroska(comment_tags(), b"\x08\x01\x02\x03\x04\x81\x00")
    return Case("", _write(d / "x.webm", data), "error", "longer than 4 bytes")


@case("mkv-doctype-evil")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.mkv", matroska(comment_tags(), doctype="evil")), "error", "doctype 'evil'")


@case("mkv-no-segment")
def _(d: Path) -> Case:
    return Case("", _write(d / "x.mkv", header("matroska") + el(VOID, b"\x00" * 8)), "error", "no segment")


@case("mkv-block-too-short")
def _(d: Path) -> Case:
    cluster = el(CLUSTER, uint(CLUSTER_TIMESTAMP, 0), el(SIMPLE_BLOCK, b"\x81"))
    data = matroska(el(TRACKS, video_track()), comment_tags(), cluster)
    return Case("", _write(d / "x.webm", data), "error", "too short")


@case("mkv-track-number-9-bytes")
def _(d: Path) -> Case:
    entry = el(TRACK_ENTRY, el(TRACK_NUMBER, b"\x01" * 9), uint(TRACK_TYPE, 1))
    return Case("", _write(d / "x.webm", matroska(el(TRACKS, entry), comment_tags())), "error", "not a number")


@case("mkv-tagstring-not-utf8")
def _(d: Path) -> Case:
    """A broken string is shown with replacement characters; the comment next to it still reads."""
    tags = el(TAGS, tag(simple_tag("TITLE", "x"), el(SIMPLE_TAG, string(TAG_NAME, "ARTIST"), b"\x44\x87\x82\xff\xfe")))
    data = matroska(tags, comment_tags())
    return Case("", _write(d / "x.webm", data), "reads")

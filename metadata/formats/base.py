"""What every container format shares: targets, payloads, placement plans, the format registry."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import import_module
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..budget import Budget
from ..record import Placement, Record

# Targets a user can switch on and off, each a different audience.
A1111 = "a1111"  # A1111/Forge/Civitai infotext: PNG `parameters`, EXIF UserComment
COMFYUI = "comfyui"  # ComfyUI's prompt/workflow, so drag-and-drop reloads the graph
RECORD = "record"  # the canonical JSON record, embedded
XMP = "xmp"  # XMP/IPTC for photo tools and DAMs
SIDECAR_JSON = "sidecar_json"  # <image>.json, the full record
SIDECAR_XMP = "sidecar_xmp"  # <image>.xmp, the XMP packet
SIDECAR_TXT = "sidecar_txt"  # <image>.txt, the infotext
MANIFEST = "manifest"  # a line per saved file in manifest.jsonl, beside it (metadata/manifest_log.py)
C2PA = "c2pa"  # a signed C2PA manifest (Content Credentials), the last write (metadata/credentials)
TARGETS = (A1111, COMFYUI, RECORD, XMP, SIDECAR_JSON, SIDECAR_XMP, SIDECAR_TXT, MANIFEST, C2PA)
DEFAULT_TARGETS = frozenset({A1111, COMFYUI, RECORD, XMP})


def parse_targets(value: str | Iterable[str]) -> frozenset[str]:
    """Targets from a list or a comma-separated string; ValueError naming the allowed ones otherwise."""
    items = value.split(",") if isinstance(value, str) else list(value)
    chosen = frozenset(t.strip() for t in items if t and t.strip())
    unknown = sorted(chosen - set(TARGETS))
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ValueError(f"unknown target{plural} {', '.join(unknown)}; allowed: {', '.join(TARGETS)}")
    return chosen


# Record keys that may live elsewhere in the same file (ComfyUI's own chunks) or in the sidecar.
GRAPH_KEYS = ("prompt", "workflow")


@dataclass
class Payloads:
    """The bytes-to-be of each target, built once from the final record."""

    record: Record
    infotext: str | None = None
    # ComfyUI's chunks in core's order: ("prompt", json) then every extra_pnginfo key.
    comfy: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Plan:
    """Where a format puts each payload; what it cannot hold goes to a sidecar."""

    placements: list[Placement] = field(default_factory=list)
    # Record keys the embedded record leaves out, with where a reader finds them instead.
    record_refs: dict[str, str] = field(default_factory=dict)
    needs_sidecar_json: bool = False
    needs_sidecar_txt: bool = False
    needs_sidecar_xmp: bool = False
    # EXIF or XMP bytes the plan already built and measured, reused by the encode.
    exif: bytes | None = None
    xmp: bytes | None = None
    # The c2pa target's signature to be (credentials.signer.Seal), when this file is signed.
    seal: Any = None

    def place(self, target: str, location: str, status: str = "written", reason: str | None = None) -> None:
        self.placements.append(Placement(target=target, location=location, status=status, reason=reason))

    def move(self, target: str, sidecar: str, reason: str) -> None:
        self.place(target, sidecar, "moved", reason)
        if sidecar == "sidecar:json":
            self.needs_sidecar_json = True
        elif sidecar == "sidecar:txt":
            self.needs_sidecar_txt = True
        elif sidecar == "sidecar:xmp":
            self.needs_sidecar_xmp = True


@dataclass
class Embedded:
    """What a reader found in a file, raw: each field None when absent."""

    format: str
    record_json: str | None = None
    infotext: str | None = None
    comfy: dict[str, str] = field(default_factory=dict)
    xmp: bytes | None = None
    width: int | None = None
    height: int | None = None
    # The container says the pixels have an alpha channel (WEBP VP8X flag or VP8L bit).
    alpha: bool = False
    # Video and audio: what the container says it holds, each key present only when known:
    # frames, fps, duration_s, codec, pix_fmt (video); audio = {codec, sample_rate, channels}.
    media: dict[str, Any] = field(default_factory=dict)


@dataclass
class Animation:
    """Frames written as one animated image (WEBP, APNG, GIF): every frame kept, none merged.

    Pillow and libwebp fold a frame identical to the one before into it (longer duration, fewer
    frames); the writers of these formats assemble the frames themselves instead, so the file
    holds the frames and timing asked for.
    """

    frames: list[Any]  # Pillow images of one size and mode
    fps: Fraction
    loop: int = 0  # plays; 0 is forever

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size  # type: ignore[no-any-return]

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def mode(self) -> str:
        return self.frames[0].mode  # type: ignore[no-any-return]

    def durations(self, per_second: int) -> list[int]:
        """Each frame's duration in 1/`per_second` s (ms: 1000, GIF's centiseconds: 100), rounded so
        the running total never drifts more than half a unit from the exact time (at least 1 each)."""
        out, shown = [], 0
        for index in range(1, len(self.frames) + 1):
            end = round(Fraction(index * per_second) / self.fps)
            step = max(1, end - shown)
            out.append(step)
            shown += step
        return out


@dataclass
class AudioClip:
    """Sound to be written: a (channels, samples) float array in -1..1, as ComfyUI's AUDIO holds it."""

    waveform: Any
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.waveform.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.waveform.shape[1]) / self.sample_rate


@dataclass
class Clip:
    """A video to be written: (frames, height, width, 1, 3 or 4) pixels, a frame rate, maybe sound.

    The pixels stay as ComfyUI hands them (floats 0..1, or uint8) and each frame is converted only
    when it is encoded: converting a whole batch at once holds two float copies of it (gigabytes for
    a long 720p clip) and costs a quarter of the save.
    """

    frames: Any
    fps: Fraction
    audio: AudioClip | None = None

    @property
    def count(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def alpha(self) -> bool:
        return int(self.frames.shape[3]) == 4

    def frame(self, index: int, *, pad: tuple[int, int] = (0, 0)) -> Any:
        """Frame `index` as (height, width, 3 or 4) uint8, as core converts it (clipped, truncated),
        with `pad` (columns, rows) of its last column and row repeated."""
        import numpy as np

        pixels = self.frames[index]
        if pixels.dtype != np.uint8:
            pixels = np.clip(pixels * 255.0, 0, 255).astype(np.uint8)
        if pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        if pad != (0, 0):
            pixels = np.pad(pixels, ((0, pad[1]), (0, pad[0]), (0, 0)), mode="edge")
        return pixels


@dataclass(frozen=True)
class MediaOptions:
    """How a video or audio file is encoded; what the save node's inputs become."""

    format: str
    # Constant rate factor (mp4/mkv H.264: 0-51, webm VP9: 0-63; lower is better); None: the codec's default.
    crf: int | None = None
    lossless: bool = False
    quality: int = 90  # animated WEBP quality
    bitrate: int | None = None  # mp3/opus bits per second; None: core's 128k
    compress_level: int = 4  # APNG
    targets: frozenset[str] = DEFAULT_TARGETS
    disable_metadata: bool = False
    lora_tags: bool = True


class MediaFormat(Protocol):
    """A video or audio container written from a Clip or AudioClip, or restamped by remuxing."""

    @property
    def name(self) -> str: ...

    @property
    def extensions(self) -> tuple[str, ...]: ...

    @property
    def mime(self) -> str: ...

    def plan(self, payloads: Payloads, targets: frozenset[str]) -> Plan: ...

    def encode(
        self, media: Any, payloads: Payloads | None, plan: Plan | None, options: MediaOptions, fp: BinaryIO
    ) -> None:
        """The clip encoded with the planned metadata (none when payloads is None, core's alone when plan is None)."""
        ...

    def restamp(self, src: BinaryIO, payloads: Payloads, plan: Plan, options: Any, dst: BinaryIO) -> None:
        """Copy `src` to `dst` with the planned metadata in place of its own, every packet copied, none re-encoded."""
        ...

    def check(self, source: Path, written: Path) -> None:
        """Raise unless `written` holds exactly the packets of `source` (a restamp's proof)."""
        ...


MEDIA: dict[str, MediaFormat] = {}


def register_media(fmt: MediaFormat) -> MediaFormat:
    MEDIA[fmt.name] = fmt
    return fmt


def media_by_name(name: str) -> MediaFormat:
    for module in MEDIA_MODULES:
        import_module(f"{__package__}.{module}")
    try:
        return MEDIA[name]
    except KeyError:
        raise ValueError(f"unknown video or audio format {name!r}; allowed: {', '.join(sorted(MEDIA))}") from None


# The modules that register a MediaFormat when imported.
MEDIA_MODULES: tuple[str, ...] = ("video", "audio")


def embedded_record_json(record: Record, refs: dict[str, str], *, stub: bool = False) -> str:
    """The record as embedded: keys stored elsewhere become null and are listed under `$refs`.

    A stub keeps only what identifies the record and points at the sidecar holding the rest.
    """
    data = record.to_dict()
    if stub:
        data = {"schema": data["schema"], "provenance": data["provenance"], "$refs": {"*": "sidecar:json"}}
    else:
        for key in refs:
            data[key] = None
        if refs:
            data["$refs"] = dict(refs)
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


class Format(Protocol):
    """A container: writes pixels plus planned payloads in one encode (or restamps a file), and reads them back."""

    name: str
    extensions: tuple[str, ...]
    mime: str

    def plan(self, payloads: Payloads, targets: frozenset[str]) -> Plan: ...

    def encode(self, image: Any, payloads: Payloads, plan: Plan, options: Any, fp: BinaryIO) -> None: ...

    def encode_pixels(self, image: Any, options: Any, fp: BinaryIO) -> None:
        """The pixels alone, as `encode` would write them (the save restamps its metadata in afterwards)."""
        ...

    def encode_core(self, image: Any, payloads: Payloads, options: Any, fp: BinaryIO) -> None: ...

    def restamp(self, src: BinaryIO, payloads: Payloads, plan: Plan, options: Any, dst: BinaryIO) -> None:
        """Copy `src` to `dst` with the planned metadata in place of its own; pixels are copied, never decoded."""
        ...

    def sniff(self, head: bytes) -> bool: ...

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """What the file embeds, raw; every size checked against the file and the budget first."""
        ...


class Container(Protocol):
    """A video or audio container the readers understand; writing goes through metadata/media.py."""

    name: str
    extensions: tuple[str, ...]
    mime: str

    def sniff(self, head: bytes) -> bool:
        """Whether the first 16 bytes of a file are this container's."""
        ...

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """What the file embeds, raw; every size checked against the file and the budget first."""
        ...


FORMATS: dict[str, Format] = {}
EXTENSIONS: dict[str, str] = {}
# Video and audio containers, read only through this table (SaveOptions' formats are the images').
CONTAINERS: dict[str, Container] = {}
# The modules that register a container when imported (each a reader with its writer side by side).
CONTAINER_MODULES: tuple[str, ...] = ("mp4", "matroska", "flac", "mp3", "ogg")


def register(fmt: Format) -> Format:
    FORMATS[fmt.name] = fmt
    for ext in fmt.extensions:
        EXTENSIONS[ext] = fmt.name
    return fmt


def by_name(name: str) -> Format:
    from . import gif, jpeg, png, webp  # noqa: F401 - importing registers them

    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; allowed: {', '.join(sorted(FORMATS))}") from None


def register_container(container: Container) -> Container:
    CONTAINERS[container.name] = container
    return container


def sniffers() -> list[Format | Container]:
    """Every readable container, images first (cheapest sniffs)."""
    from . import gif, jpeg, png, webp  # noqa: F401 - importing registers them

    for module in CONTAINER_MODULES:
        import_module(f"{__package__}.{module}")
    return [*FORMATS.values(), *CONTAINERS.values()]

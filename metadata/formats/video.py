"""MP4 (H.264), WebM (VP9) and MKV (H.264) written through PyAV, with our tags where every reader looks.

MP4: PyAV encodes with no tags, then mp4.rewrite puts `moov` first (faststart) holding ComfyUI's
prompt and workflow and our record as QuickTime `mdta` keys (what `movflags=use_metadata_tags`
writes, where core's frontend and ffprobe read them), the A1111 text in `udta/©cmt` (players and
exiftool show it as the comment) and the XMP packet in `udta/XMP_` (exiftool reads it).
WebM/MKV: the tags go on the container before any stream, so the Matroska muxer writes them as
SimpleTags at the head of the file (PROMPT, WORKFLOW, COMMENT, COMFYUI_PROVENANCE: it upper-cases
names). Core's frontend reads only the first 2 MiB of a WebM and finds the end of the JSON by
counting braces, quoted ones included: braces inside JSON strings are written as \\u007b/\\u007d
escapes (the same JSON value), and a workflow past the window is said so in the record. Exiftool
reads no XMP from Matroska, so there it goes to the `.xmp` sidecar. Restamping copies every packet
(mp4: the boxes around an untouched `mdat`; Matroska: a PyAV stream copy), checked packet by packet.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import SerializeError
from ..limits import MIB
from . import mp4, xmp
from .base import (
    A1111,
    COMFYUI,
    RECORD,
    XMP,
    Clip,
    MediaOptions,
    Payloads,
    Plan,
    embedded_record_json,
    register_media,
)
from .tags import RECORD_TAG

# Core's frontend reads this much of a WebM (ebml.ts) and of an MP4 (isobmff.ts).
WEBM_WINDOW = 2 * MIB
MP4_WINDOW = 64 * MIB
# What precedes the tags in our WebM (EBML header, SeekHead, Info, Tracks), with room to spare.
WEBM_HEAD = 8 * 1024
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def brace_end(text: str) -> int:
    """Where core's frontend ends a JSON value in a WebM tag: at the brace that closes the first one,
    counting every brace, those inside strings too (ebml.ts); -1 when it never closes."""
    depth = 0
    for index, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return -1


def brace_safe(text: str) -> str:
    """The same JSON with braces inside strings escaped (\\u007b, \\u007d), when counting would cut it short."""
    start = text.find("{")
    if start < 0 or brace_end(text[start:]) == len(text) - start:
        return text
    return _STRING.sub(lambda m: m.group(0).replace("{", "\\u007b").replace("}", "\\u007d"), text)


@dataclass(frozen=True)
class Codecs:
    video: str
    audio: str
    audio_rate: int | None  # resampled to this rate; None keeps the source's
    crf: int | None  # the codec's default when the user gives none (None: the encoder's own)
    crf_max: int


class VideoFormat:
    """One PyAV-written video container: what goes in which tag, the encode, the restamp."""

    def __init__(self, name: str, extension: str, mime: str, muxer: str, codecs: Codecs) -> None:
        self.name = name
        self.extensions: tuple[str, ...] = (extension,)
        self.mime = mime
        self.muxer = muxer
        self.codecs = codecs

    @property
    def matroska(self) -> bool:
        return self.muxer != "mp4"

    # -- planning ---------------------------------------------------------------------------------
    def plan(self, payloads: Payloads, targets: frozenset[str]) -> Plan:
        plan = Plan()
        tag = "matroska:tag" if self.matroska else "mp4:keys"
        if COMFYUI in targets and payloads.comfy:
            reason = self._frontend_problem(payloads)
            plan.place(COMFYUI, f"{tag}:prompt,workflow", reason=reason)
            if reason is not None:
                payloads.record.warn(f"ComfyUI's frontend cannot load this file's workflow by drag-and-drop: {reason}")
            plan.record_refs = {key: f"{tag}:{key}" for key, _ in payloads.comfy if key in ("prompt", "workflow")}
        if A1111 in targets and payloads.infotext is not None:
            plan.place(A1111, "matroska:tag:COMMENT" if self.matroska else "mp4:udta/©cmt")
        if RECORD in targets:
            plan.place(RECORD, f"{tag}:{RECORD_TAG}")
        if XMP in targets:
            if self.matroska:
                plan.move(XMP, "sidecar:xmp", "exiftool and photo tools read no XMP from Matroska tags")
            else:
                plan.place(XMP, "mp4:udta/XMP_")
        return plan

    def _frontend_problem(self, payloads: Payloads) -> str | None:
        """Why core's frontend would not find the workflow in this file, or None."""
        graphs = [(k, v) for k, v in payloads.comfy if k in ("prompt", "workflow")]
        size = sum(len(k) + len(v.encode("utf-8")) + 16 for k, v in payloads.comfy)
        if self.matroska:
            if self.name == "mkv":
                return "the frontend has no loader for MKV files (WebM and MP4 load)"
            if WEBM_HEAD + size > WEBM_WINDOW:
                return f"the graphs take {size:,} bytes and the frontend reads only the first 2 MiB of a WebM"
            return None
        if size + (1 * MIB) > MP4_WINDOW and graphs:
            return f"the graphs take {size:,} bytes and the frontend reads only the first 64 MiB of an MP4"
        return None

    def tags(self, payloads: Payloads, plan: Plan, *, core_only: bool = False) -> list[tuple[str, str]]:
        """(name, value) in file order: ComfyUI's graphs first (the frontend's window), the record last."""
        placed = {p.target for p in plan.placements if p.status == "written"}
        out: list[tuple[str, str]] = []
        if COMFYUI in placed or core_only:
            for key, text in payloads.comfy:
                out.append((key, brace_safe(text) if self.name == "webm" else text))
        if core_only:
            return out
        if self.matroska and A1111 in placed and payloads.infotext is not None:
            out.append(("comment", payloads.infotext))
        if RECORD in placed:
            out.append((RECORD_TAG, embedded_record_json(payloads.record, plan.record_refs)))
        return out

    def _comment_and_xmp(self, payloads: Payloads, plan: Plan) -> tuple[str | None, bytes | None]:
        placed = {p.target for p in plan.placements if p.status == "written"}
        comment = payloads.infotext if A1111 in placed else None
        packet = None
        if XMP in placed:
            record = payloads.record
            packet = plan.xmp or xmp.build(record, record_json=None)
        return comment, packet

    # -- writing ----------------------------------------------------------------------------------
    def encode(
        self, media: Any, payloads: Payloads | None, plan: Plan | None, options: MediaOptions, fp: BinaryIO
    ) -> None:
        """The clip encoded; with the planned tags, with core's alone (plan None), or with none (payloads None)."""
        clip: Clip = media
        if payloads is None:
            tags: list[tuple[str, str]] = []
            comment, packet = None, None
        elif plan is None:
            tags, comment, packet = self.tags(payloads, Plan(), core_only=True), None, None
        else:
            tags = self.tags(payloads, plan)
            comment, packet = self._comment_and_xmp(payloads, plan)
        if self.matroska:
            encode_clip(clip, fp, muxer=self.muxer, codecs=self.codecs, options=options, tags=tags)
            return
        with tempfile.TemporaryFile() as raw:
            encode_clip(clip, raw, muxer=self.muxer, codecs=self.codecs, options=options, tags=[])
            raw.seek(0)
            mp4.rewrite(raw, fp, tags=tags, comment=comment, xmp=packet)

    def restamp(self, src: BinaryIO, payloads: Payloads, plan: Plan, options: Any, dst: BinaryIO) -> None:
        tags = self.tags(payloads, plan)
        if not self.matroska:
            comment, packet = self._comment_and_xmp(payloads, plan)
            mp4.rewrite(src, dst, tags=tags, comment=comment, xmp=packet)
            return
        remux(src, dst, muxer=self.muxer, tags=tags)

    def check(self, source: Path, written: Path) -> None:
        same_packets(source, written)


# Tags the muxer writes itself, and ours and core's (replaced by the restamp's).
MUXER_TAGS = frozenset({"encoder", "duration"})
REPLACED_TAGS = frozenset({"prompt", "workflow", "comment", RECORD_TAG})


def remux(src: BinaryIO, dst: BinaryIO, *, muxer: str, tags: list[tuple[str, str]]) -> None:
    """Every packet of `src` copied into a new `muxer` file with `tags` in place of ours and core's.

    Other tags stay where they were (a title on the container, a language on a stream); Ogg keeps
    its tags on the stream, where the muxer's container tags would lose to a stale copy.
    """
    import av

    drop = MUXER_TAGS | REPLACED_TAGS | {name.lower() for name, _ in tags}
    with av.open(src, mode="r") as source, av.open(dst, mode="w", format=muxer) as out:
        for key, value in source.metadata.items():
            if key.lower() not in drop:
                out.metadata[key] = value
        for key, value in tags:
            out.metadata[key] = value
        streams = [s for s in source.streams if s.type in ("video", "audio")]
        if not streams:
            raise SerializeError("the file holds no video or audio stream to copy")
        mapping = {}
        for stream in streams:
            copy = out.add_stream_from_template(stream)
            for key, value in stream.metadata.items():
                if key.lower() not in drop:
                    copy.metadata[key] = value
            mapping[stream.index] = copy
        for packet in source.demux(streams):
            if packet.dts is None and packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)


def packet_digests(path: Path) -> list[tuple[str, int, str]]:
    """Per stream (in order): its kind, how many packets, and a digest of every packet's bytes and timing."""
    import av

    out = []
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        digests = {s.index: hashlib.sha256() for s in streams}
        counts = dict.fromkeys(digests, 0)
        for packet in container.demux(streams):
            if packet.dts is None and packet.size == 0:
                continue
            index = packet.stream.index
            digest = digests[index]
            digest.update(f"{packet.pts}:{packet.dts}:{packet.size}:".encode())
            digest.update(bytes(packet))
            counts[index] += 1
        for stream in streams:
            out.append((stream.type, counts[stream.index], digests[stream.index].hexdigest()))
    return out


# How far the two files' stream interleaving may differ before the check gives up (packets held).
INTERLEAVE_SLACK = 4096
DIFFER = "the restamped file's packets differ from the original's (nothing was replaced)"


def same_packets(source: Path, written: Path) -> None:
    """SerializeError unless both files hold the same streams with byte-identical packets and timing.

    Both files are demuxed side by side and each packet compared in place (no copies, no hashing);
    a muxer may interleave the streams differently, so the source's packets wait per stream until
    the written file's packet of that stream comes.
    """
    import av

    with av.open(str(source)) as old, av.open(str(written)) as new:
        old_streams, new_streams = _media_streams(old), _media_streams(new)
        if [s.type for s in old_streams] != [s.type for s in new_streams]:
            raise SerializeError(DIFFER)
        position = {s.index: n for n, s in enumerate(old_streams)}
        waiting: list[deque[Any]] = [deque() for _ in old_streams]
        held = 0
        source_packets = _packets(old, old_streams)
        for packet in _packets(new, new_streams):
            wanted = new_streams.index(packet.stream)
            while not waiting[wanted]:
                earlier = next(source_packets, None)
                if earlier is None or held > INTERLEAVE_SLACK:
                    raise SerializeError(DIFFER)
                waiting[position[earlier.stream.index]].append(earlier)
                held += 1
            earlier = waiting[wanted].popleft()
            held -= 1
            same = (earlier.pts, earlier.dts, earlier.size) == (packet.pts, packet.dts, packet.size)
            # numpy compares the two packets' buffers in place (a memoryview compares item by item).
            if not same or not np.array_equal(np.frombuffer(earlier, np.uint8), np.frombuffer(packet, np.uint8)):
                raise SerializeError(DIFFER)
        if any(waiting) or next(source_packets, None) is not None:
            raise SerializeError(DIFFER)


def _media_streams(container: Any) -> list[Any]:
    return [s for s in container.streams if s.type in ("video", "audio")]


def _packets(container: Any, streams: list[Any]) -> Iterator[Any]:
    for packet in container.demux(streams):
        if packet.dts is None and packet.size == 0:
            continue  # the demuxer's end-of-stream marker
        yield packet


# -- encoding ---------------------------------------------------------------------------------------
def even_padding(clip: Clip) -> tuple[int, int]:
    """yuv420 needs even sizes: the columns and rows to repeat where one is odd (the record says so)."""
    width, height = clip.size
    return width % 2, height % 2


def frame_rate(fps: Fraction) -> Fraction:
    """Core's rate: milliframes per second, so 23.976 stays 23.976 and a time base stays small."""
    return Fraction(round(fps * 1000), 1000)


def encode_clip(
    clip: Clip, fp: BinaryIO, *, muxer: str, codecs: Codecs, options: MediaOptions, tags: list[tuple[str, str]]
) -> None:
    """Core's encode (rgb24 → BT.709 yuv420p, one audio frame trimmed to the video's length) with our tags."""
    import av
    from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc

    pad = even_padding(clip)
    alpha = clip.alpha and codecs.video == "libvpx-vp9"
    pix_fmt = "yuva420p" if alpha else "yuv420p"
    with av.open(fp, mode="w", format=muxer) as out:
        for key, value in tags:  # before any stream, so the tags lead the file
            out.metadata[key] = value
        rate = frame_rate(clip.fps)
        stream = out.add_stream(codecs.video, rate=rate)
        stream.width, stream.height = clip.size[0] + pad[0], clip.size[1] + pad[1]
        stream.pix_fmt = pix_fmt
        stream.options = _video_options(codecs, options)
        if codecs.video == "libvpx-vp9":
            stream.bit_rate = 0  # constant quality: crf alone decides
        context = stream.codec_context
        context.color_primaries, context.color_trc = ColorPrimaries.BT709, ColorTrc.IEC61966_2_1
        context.colorspace, context.color_range = 1, ColorRange.MPEG
        audio = _audio_stream(out, clip, codecs, rate)
        for pixels in _frames(clip, alpha, pad):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgba" if alpha else "rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace=1)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            _encode_audio(out, audio, clip, rate)


def _frames(clip: Clip, alpha: bool, pad: tuple[int, int]) -> Iterator[np.ndarray]:
    channels = 4 if alpha else 3
    for index in range(clip.count):
        yield np.ascontiguousarray(clip.frame(index, pad=pad)[..., :channels])


def _video_options(codecs: Codecs, options: MediaOptions) -> dict[str, str]:
    if options.lossless:
        return {"lossless": "1"} if codecs.video == "libvpx-vp9" else {"crf": "0", "qp": "0"}
    crf = options.crf if options.crf is not None else codecs.crf
    if crf is None:
        return {}
    if not 0 <= crf <= codecs.crf_max:
        raise ValueError(f"crf must be 0..{codecs.crf_max} for {codecs.video}, got {crf}")
    return {"crf": str(crf)}


def _audio_stream(out: Any, clip: Clip, codecs: Codecs, rate: Fraction) -> Any:
    if clip.audio is None:
        return None
    layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(clip.audio.channels, "stereo")
    return out.add_stream(codecs.audio, rate=codecs.audio_rate or clip.audio.sample_rate, layout=layout)


def _encode_audio(out: Any, stream: Any, clip: Clip, rate: Fraction) -> None:
    import av

    assert clip.audio is not None
    source_rate = clip.audio.sample_rate
    samples = -(-source_rate * clip.count * rate.denominator // rate.numerator)  # ceil, as core trims
    waveform = np.ascontiguousarray(clip.audio.waveform[:, :samples], dtype=np.float32)
    layout = stream.layout.name
    frame = av.AudioFrame.from_ndarray(waveform, format="fltp", layout=layout)
    frame.sample_rate, frame.pts = source_rate, 0
    frames = [frame]
    resampler = None
    if stream.rate != source_rate:
        resampler = av.audio.resampler.AudioResampler(format="fltp", layout=layout, rate=stream.rate)
        frames = resampler.resample(frame) + resampler.resample(None)
    for item in frames:
        out.mux(stream.encode(item))
    out.mux(stream.encode(None))


MP4 = register_media(
    VideoFormat("mp4", ".mp4", "video/mp4", "mp4", Codecs("libx264", "aac", None, crf=None, crf_max=51))
)
WEBM = register_media(
    VideoFormat("webm", ".webm", "video/webm", "webm", Codecs("libvpx-vp9", "libopus", 48000, crf=32, crf_max=63))
)
MKV = register_media(
    VideoFormat("mkv", ".mkv", "video/x-matroska", "matroska", Codecs("libx264", "aac", None, crf=None, crf_max=51))
)

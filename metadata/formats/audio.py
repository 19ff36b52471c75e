"""FLAC, MP3 and Opus written through PyAV exactly as core's SaveAudio nodes do, plus our tags.

The tags go where core puts ComfyUI's (container metadata before the stream: FLAC Vorbis comment
`prompt=`, MP3 ID3v2 `TXXX:prompt`, Opus the stream's OpusTags), with the A1111 text as the
standard comment (Vorbis DESCRIPTION, ffmpeg's name for it; ID3 COMM, which ffmpeg cannot write, so
id3.py turns its TXXX into one), which players and exiftool show, and our record as
`comfyui_provenance`. None of these carries XMP that exiftool reads, so XMP goes to the sidecar.
Core's frontend reads an Ogg's first two pages only: a workflow longer than that is said so in the
record. Restamping is a PyAV stream copy, checked packet by packet.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import id3
from .base import A1111, COMFYUI, RECORD, XMP, AudioClip, MediaOptions, Payloads, Plan, register_media
from .tags import RECORD_TAG
from .video import remux, same_packets

# Opus encodes at these rates only (libopus); core picks the next one up, at most 48 kHz.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
# Core's frontend reads an Ogg's first two pages (ogg.ts): OpusHead fills the first, leaving the tags one
# page of at most 255 × 255 bytes.
OGG_WINDOW = 255 * 255


@dataclass(frozen=True)
class AudioFormat:
    name: str
    extension: str
    mime: str
    muxer: str
    codec: str

    @property
    def extensions(self) -> tuple[str, ...]:
        return (self.extension,)

    def plan(self, payloads: Payloads, targets: frozenset[str]) -> Plan:
        plan = Plan()
        where = f"{self.name}:tag"
        if COMFYUI in targets and payloads.comfy:
            reason = None
            size = sum(len(k) + len(v.encode("utf-8")) + 8 for k, v in payloads.comfy)
            if self.muxer == "ogg" and size > OGG_WINDOW:
                reason = f"the graphs take {size:,} bytes and the frontend reads only an Ogg file's first two pages"
                payloads.record.warn(f"ComfyUI's frontend cannot load this file's workflow by drag-and-drop: {reason}")
            plan.place(COMFYUI, f"{where}:prompt,workflow", reason=reason)
            plan.record_refs = {key: f"{where}:{key}" for key, _ in payloads.comfy if key in ("prompt", "workflow")}
        if A1111 in targets and payloads.infotext is not None:
            plan.place(A1111, "mp3:ID3 COMM" if self.name == "mp3" else f"{where}:comment")
        if RECORD in targets:
            plan.place(RECORD, f"{where}:{RECORD_TAG}")
        if XMP in targets:
            plan.move(XMP, "sidecar:xmp", f"exiftool and photo tools read no XMP from {self.name.upper()} tags")
        return plan

    def tags(self, payloads: Payloads, plan: Plan) -> list[tuple[str, str]]:
        from .base import embedded_record_json

        placed = {p.target for p in plan.placements if p.status == "written"}
        out = list(payloads.comfy) if COMFYUI in placed else []
        if A1111 in placed and payloads.infotext is not None:
            out.append(("comment", payloads.infotext))
        if RECORD in placed:
            out.append((RECORD_TAG, embedded_record_json(payloads.record, plan.record_refs)))
        return out

    def encode(
        self, media: Any, payloads: Payloads | None, plan: Plan | None, options: MediaOptions, fp: BinaryIO
    ) -> None:
        if payloads is None:
            tags: list[tuple[str, str]] = []
        elif plan is None:
            tags = list(payloads.comfy)
        else:
            tags = self.tags(payloads, plan)
        comment = _comment(tags) if self.name == "mp3" else None
        if comment is None:
            encode_audio(media, fp, self, options, tags)
            return
        with tempfile.TemporaryFile() as raw:
            encode_audio(media, raw, self, options, tags)
            raw.seek(0)
            id3.with_comment(raw, fp, comment)

    def restamp(self, src: BinaryIO, payloads: Payloads, plan: Plan, options: Any, dst: BinaryIO) -> None:
        tags = self.tags(payloads, plan)
        comment = _comment(tags) if self.name == "mp3" else None
        if comment is None:
            remux(src, dst, muxer=self.muxer, tags=tags)
            return
        with tempfile.TemporaryFile() as raw:
            remux(src, raw, muxer=self.muxer, tags=tags)
            raw.seek(0)
            id3.with_comment(raw, dst, comment)

    def check(self, source: Path, written: Path) -> None:
        same_packets(source, written)

    def rate_for(self, sample_rate: int) -> int:
        if self.codec != "libopus":
            return sample_rate
        return next((r for r in OPUS_RATES if r >= sample_rate), 48000)


# Core's SaveAudioMP3/SaveAudioOpus default ("128k").
DEFAULT_BITRATE = 128_000


def _comment(tags: list[tuple[str, str]]) -> str | None:
    """The A1111 text among the tags (ffmpeg writes it to MP3 as TXXX; id3.py makes it the COMM frame)."""
    return next((value for name, value in tags if name == "comment"), None)


def encode_audio(
    audio: AudioClip, fp: BinaryIO, fmt: AudioFormat, options: MediaOptions, tags: list[tuple[str, str]]
) -> None:
    """Core's encode: one interleaved float frame, resampled only where Opus needs it."""
    import av

    layout = "mono" if audio.channels == 1 else "stereo"
    waveform = np.asarray(audio.waveform, dtype=np.float32)[:2]
    rate = fmt.rate_for(audio.sample_rate)
    with av.open(fp, mode="w", format=fmt.muxer) as out:
        for key, value in tags:
            out.metadata[key] = value
        stream = out.add_stream(fmt.codec, rate=rate, layout=layout)
        if fmt.codec != "flac":
            stream.bit_rate = options.bitrate or DEFAULT_BITRATE
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(waveform.T.reshape(1, -1)), format="flt", layout=layout)
        frame.sample_rate, frame.pts = audio.sample_rate, 0
        frames = [frame]
        if rate != audio.sample_rate:
            resampler = av.audio.resampler.AudioResampler(format="flt", layout=layout, rate=rate)
            frames = resampler.resample(frame) + resampler.resample(None)
        for item in frames:
            out.mux(stream.encode(item))
        out.mux(stream.encode(None))


FLAC = register_media(AudioFormat("flac", ".flac", "audio/flac", "flac", "flac"))
MP3 = register_media(AudioFormat("mp3", ".mp3", "audio/mpeg", "mp3", "libmp3lame"))
OPUS = register_media(AudioFormat("opus", ".opus", "audio/ogg", "ogg", "libopus"))

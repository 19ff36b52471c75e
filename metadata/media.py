"""The save path for video and audio, shared by the nodes and the CLI: name, plan, encode once, publish.

The same steps as save.py's for images, on one clip instead of a batch: the record (parsed graph,
merged runtime capture, model hashes) gets what the file really holds (frames, fps, duration,
codec, pixel format, sound) before the format plans where each target goes; sidecars are staged,
the clip is encoded with its metadata in one pass, and file and sidecars are published together.
Animated WEBP, APNG and GIF go through the image formats with an `Animation` (every frame kept);
MP4, WebM, MKV, FLAC, MP3 and Opus through the media formats (PyAV). A metadata failure falls back
to what core would have written, then to the bare clip; only a clip that cannot be encoded at all
fails the save.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image as PILImage

from . import files, manifest_log
from . import runtime as runtime_merge
from .capture import SaveContext, build_record, short, stamp_media
from .formats import sidecar
from .formats.base import COMFYUI, Animation, AudioClip, Clip, MediaOptions, Payloads, by_name, media_by_name
from .formats.video import frame_rate
from .parser.parse import fill_size_from_pixels
from .record import Record
from .save import MAX_NAME_ATTEMPTS, Hasher, Namer, SavedFile, default_namer, hash_record, prepare, stage

logger = logging.getLogger(__name__)

# Video formats a user picks, and the container each becomes (apng is a PNG file).
VIDEO_FORMATS = ("mp4", "webm", "mkv", "webp", "apng", "gif")
AUDIO_FORMATS = ("flac", "mp3", "opus")
ANIMATED = {"webp": "webp", "apng": "png", "gif": "gif"}
# What each video container holds: (codec, pixel format without alpha, with alpha, time unit of a frame's duration).
HOLDS: dict[str, tuple[str, str, str, int | None]] = {
    "mp4": ("h264", "yuv420p", "yuv420p", None),
    "mkv": ("h264", "yuv420p", "yuv420p", None),
    "webm": ("vp9", "yuv420p", "yuva420p", None),
    "webp": ("webp", "rgb24", "rgba", 1000),
    "apng": ("apng", "rgb24", "rgba", None),
    "gif": ("gif", "pal8", "pal8", 100),
}
AUDIO_HOLDS = {"mp4": "aac", "mkv": "aac", "webm": "opus"}


@dataclass
class _Writer:
    """How one file is encoded three ways: with everything planned, with core's metadata, bare."""

    name: str
    extension: str
    full: Callable[[Payloads, Any, BinaryIO], None]
    core: Callable[[Payloads, BinaryIO], None]
    bare: Callable[[BinaryIO], None]
    plan_with: Any  # the format whose plan() decides placements


def _video_writer(clip: Clip, options: MediaOptions) -> _Writer:
    name = options.format
    if name in ANIMATED:
        fmt = by_name(ANIMATED[name])
        anim = Animation(frames=[_pil(clip.frame(i)) for i in range(clip.count)], fps=clip.fps)
        return _Writer(
            name,
            fmt.extensions[0],
            lambda p, plan, fp: fmt.encode(anim, p, plan, options, fp),
            lambda p, fp: fmt.encode_core(anim, p, options, fp),
            lambda fp: fmt.encode_pixels(anim, options, fp),
            fmt,
        )
    return _media_writer(media_by_name(name), clip, options)


def _media_writer(fmt: Any, media: Clip | AudioClip, options: MediaOptions) -> _Writer:
    return _Writer(
        fmt.name,
        fmt.extensions[0],
        lambda p, plan, fp: fmt.encode(media, p, plan, options, fp),
        lambda p, fp: fmt.encode(media, p, None, options, fp),
        lambda fp: fmt.encode(media, None, None, options, fp),
        fmt,
    )


def _pil(frame: np.ndarray) -> PILImage.Image:
    return PILImage.fromarray(frame, "RGBA" if frame.shape[2] == 4 else "RGB")


def clip_from(frames: Any, fps: float | Fraction, audio: AudioClip | None = None) -> Clip:
    """A Clip from ComfyUI's IMAGE batch (floats 0..1, or uint8), checked; ValueError in words otherwise.

    A CPU tensor's numpy view shares its memory: nothing is copied or converted here (Clip.frame).
    """
    array = frames.cpu().numpy() if hasattr(frames, "cpu") else np.asarray(frames)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[0] == 0 or array.shape[3] not in (1, 3, 4):
        raise ValueError(f"expected a batch of RGB or RGBA frames, got an array of shape {tuple(array.shape)}")
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    if rate <= 0:
        raise ValueError(f"fps must be above 0, got {float(fps)}")
    return Clip(frames=array, fps=rate, audio=audio)


def describe(clip: Clip, options: MediaOptions) -> dict[str, Any]:
    """What the file will hold: frames, fps, duration, codec, pixel format, size, sound."""
    codec, pix_fmt, pix_fmt_alpha, unit = HOLDS[options.format]
    alpha = clip.alpha
    width, height = clip.size
    count = clip.count
    if options.format in ("mp4", "mkv", "webm"):
        fps = frame_rate(clip.fps)
        duration = Fraction(count) / fps
        width, height = width + width % 2, height + height % 2
    elif unit is not None:
        duration = Fraction(sum(Animation(frames=[None] * count, fps=clip.fps).durations(unit)), unit)
        fps = Fraction(count) / duration
    else:
        fps, duration = clip.fps, Fraction(count) / clip.fps
    info: dict[str, Any] = {
        "frames": count,
        "fps": round(float(fps), 3),
        "duration_s": round(float(duration), 3),
        "codec": codec,
        "pix_fmt": pix_fmt_alpha if alpha else pix_fmt,
        "width": width,
        "height": height,
    }
    if (width, height) != clip.size:
        info["padded_from"] = list(clip.size)
    if alpha and options.format in ("mp4", "mkv"):
        info["alpha_dropped"] = True
    if clip.audio is not None and options.format in AUDIO_HOLDS:
        rate = 48000 if options.format == "webm" else clip.audio.sample_rate
        info["audio"] = {
            "codec": AUDIO_HOLDS[options.format],
            "sample_rate": rate,
            "channels": min(clip.audio.channels, 2),
        }
    return info


def save_video(
    clip: Clip,
    context: SaveContext,
    output_dir: Path,
    filename_prefix: str,
    options: MediaOptions,
    *,
    version: str | None = None,
    namer: Namer | None = None,
    hasher: Hasher | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> SavedFile:
    """Save one clip as `options.format`; the file's path, its record and its sidecars."""
    if options.format not in VIDEO_FORMATS:
        raise ValueError(f"format must be one of {', '.join(VIDEO_FORMATS)}, got {options.format!r}")
    writer = _video_writer(clip, options)
    info = describe(clip, options)
    name = (namer or default_namer(output_dir))(filename_prefix, *clip.size)
    record = _base_record(context, options, version=version, hasher=hasher, runtime=runtime, info=info)
    return _save(writer, name, context, record, options=options, info=info, trailing="_")


def save_audio(
    audio: AudioClip,
    context: SaveContext,
    output_dir: Path,
    filename_prefix: str,
    options: MediaOptions,
    *,
    version: str | None = None,
    namer: Namer | None = None,
    hasher: Hasher | None = None,
    runtime: Mapping[str, Any] | None = None,
    index: int = 0,
) -> SavedFile:
    """Save one sound as flac, mp3 or opus, named as core's SaveAudio names it (`<prefix>_00001.flac`)."""
    if options.format not in AUDIO_FORMATS:
        raise ValueError(f"format must be one of {', '.join(AUDIO_FORMATS)}, got {options.format!r}")
    fmt = media_by_name(options.format)
    writer = _media_writer(fmt, audio, options)
    info = {
        "codec": fmt.name,  # flac, mp3, opus: each its codec's name
        "sample_rate": getattr(fmt, "rate_for", lambda r: r)(audio.sample_rate),
        "channels": min(audio.channels, 2),
        "duration_s": round(audio.duration_s, 3),
    }
    folder, base, counter, subfolder = (namer or default_namer(output_dir))(filename_prefix, 0, 0)
    name = (folder, base.replace("%batch_num%", str(index)), counter, subfolder)
    record = _base_record(context, options, version=version, hasher=hasher, runtime=runtime, info=info)
    return _save(writer, name, context, record, options=options, info=info, trailing="")


def _save(
    writer: _Writer,
    name: tuple[Path, str, int, str],
    context: SaveContext,
    record: Record | None,
    *,
    options: MediaOptions,
    info: dict[str, Any],
    trailing: str,
) -> SavedFile:
    """The file under the first free `<base>_<counter>{trailing}<ext>`, published with its sidecars."""
    folder, base, counter, subfolder = name
    chunks = context.scrubbed().chunks
    comfy = [] if options.disable_metadata else list(chunks or [])
    files.sweep_once(folder)
    for _ in range(MAX_NAME_ATTEMPTS):
        path, counter = _free(folder, base, counter, writer.extension, trailing=trailing)
        try:
            saved = _write(writer, path, subfolder, base_record=record, comfy=comfy, options=options, info=info)
            manifest_log.note(saved, options.targets)  # guarded: a failure is a warning
            return saved
        except files.NameTaken:  # another save published this name first: take the next one
            counter += 1
    raise OSError(f"no free file name for {base!r} in {folder} after {MAX_NAME_ATTEMPTS} tries")


def _base_record(
    context: SaveContext,
    options: MediaOptions,
    *,
    version: str | None,
    hasher: Hasher | None,
    runtime: Mapping[str, Any] | None,
    info: dict[str, Any],
) -> Record | None:
    if options.disable_metadata:
        return None
    record = build_record(context, version, runtime=runtime)
    fill_size_from_pixels(record, info.get("width"), info.get("height"))
    if hasher is not None:
        hash_record(record, hasher)
    return record


def _free(folder: Path, base: str, counter: int, ext: str, *, trailing: str) -> tuple[Path, int]:
    for attempt in range(MAX_NAME_ATTEMPTS):
        path = folder / f"{base}_{counter + attempt:05}{trailing}{ext}"
        if not os.path.lexists(path):
            return path, counter + attempt
    raise OSError(f"no free file name for {base!r} in {folder} after {MAX_NAME_ATTEMPTS} tries")


def _write(
    writer: _Writer,
    path: Path,
    subfolder: str,
    *,
    base_record: Record | None,
    comfy: list[tuple[str, str]],
    options: MediaOptions,
    info: dict[str, Any],
) -> SavedFile:
    publication = files.Publication(path)
    if base_record is None:
        publication.stage_image(writer.bare)
        publication.publish()
        return SavedFile(path=path, subfolder=subfolder, record=None)
    record = base_record
    stamp_media(record, info, fmt=writer.name, name=path.name)
    spill = runtime_merge.spill(record, sidecar.path_for(path, runtime_merge.SIDECAR).name)
    try:
        payloads, plan = prepare(record, comfy, writer.plan_with, options.targets, spill, lora_tags=options.lora_tags)
    except Exception as err:
        if spill is not None:
            record.runtime = spill.block
        return _fallback(
            writer,
            path,
            subfolder,
            record=record,
            comfy=comfy,
            options=options,
            message=f"planning metadata failed: {err}",
        )
    try:
        stage(publication, record, payloads, plan, spill, lambda fp: writer.full(payloads, plan, fp))
    except Exception as err:
        publication.abandon()
        logger.debug("provenance: embedding metadata in %s failed", path.name, exc_info=True)
        return _fallback(
            writer,
            path,
            subfolder,
            record=record,
            comfy=comfy,
            options=options,
            message=f"embedding metadata failed: {err}",
        )
    written = publication.publish()
    return SavedFile(path=path, subfolder=subfolder, record=record, sidecars=written)


def _fallback(
    writer: _Writer,
    path: Path,
    subfolder: str,
    *,
    record: Record,
    comfy: list[tuple[str, str]],
    options: MediaOptions,
    message: str,
) -> SavedFile:
    """Core's metadata alone, the full record in the JSON sidecar; the bare clip if even that fails."""
    logger.warning("provenance: %s; saving %s with ComfyUI core's metadata only", message, path.name)
    record.warn(short(message))
    payloads = Payloads(record=record, comfy=comfy if COMFYUI in options.targets else [])
    publication = files.Publication(path)
    try:
        publication.add_sidecar(sidecar.path_for(path, "sidecar:json"), sidecar.record_bytes(record))
    except Exception as err:
        logger.warning("provenance: the fallback JSON sidecar failed too: %s", err)
    try:
        publication.stage_image(lambda fp: writer.core(payloads, fp))
    except Exception as err:
        logger.warning("provenance: core metadata failed too (%s); saving the clip alone", err)
        try:
            publication.stage_image(writer.bare)
        except BaseException:
            publication.abandon()
            raise
    sidecars = publication.publish()
    return SavedFile(path=path, subfolder=subfolder, record=record, sidecars=sidecars)

"""What "Save Video (Provenance)" and "Save Audio (Provenance)" do, shared by their V3 nodes and V1 fallbacks."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from .. import __version__, compat
from ..metadata.capture import SaveContext
from ..metadata.formats.base import DEFAULT_TARGETS, TARGETS, AudioClip, Clip, MediaOptions
from ..metadata.media import AUDIO_FORMATS, VIDEO_FORMATS, clip_from, save_audio, save_video
from ..metadata.save import SavedFile
from .save_image import TOOLTIPS as IMAGE_TOOLTIPS
from .save_image import comfyui_hasher, node_targets, node_value, previews, with_session

logger = logging.getLogger(__name__)

VIDEO_ID = "ProvenanceSaveVideo"
VIDEO_NAME = "Save Video (Provenance)"
AUDIO_ID = "ProvenanceSaveAudio"
AUDIO_NAME = "Save Audio (Provenance)"
VIDEO_CATEGORY = "image/video/provenance"
AUDIO_CATEGORY = "audio/provenance"
VIDEO_DESCRIPTION = (
    "Saves frames (IMAGE + fps) or a VIDEO as MP4, WebM, MKV, animated WEBP, APNG or GIF, and makes the file "
    "carry how it was made: ComfyUI's prompt and workflow where the frontend's drag-and-drop finds them, the "
    "A1111 parameters as the container's comment, XMP/IPTC AI labels and the full provenance record, with "
    "sidecars where a container cannot hold something. Every frame is kept; the record says what the file holds "
    "(frames, fps, duration, codec). Honours ComfyUI's --disable-metadata."
)
AUDIO_DESCRIPTION = (
    "Saves AUDIO as FLAC, MP3 or Opus like core's Save Audio nodes, and makes each file carry how it was made: "
    "ComfyUI's prompt and workflow as core writes them, the A1111 parameters as the comment, the provenance "
    "record, and XMP in a sidecar. Honours ComfyUI's --disable-metadata."
)
VIDEO_PREFIX = "video/ComfyUI"
AUDIO_PREFIX = "audio/ComfyUI"
# The format combos, as the nodes offer them.
VIDEO_CHOICES = list(VIDEO_FORMATS)
AUDIO_CHOICES = list(AUDIO_FORMATS)
BITRATES = ["64k", "96k", "128k", "192k", "256k", "320k"]
DEFAULT_TARGET_LIST = [t for t in TARGETS if t in DEFAULT_TARGETS]
TOOLTIPS = {
    "images": "Frames to save as one video (give fps). Leave empty when `video` is connected.",
    "video": "A VIDEO (from Create Video, Load Video…) to save. Leave empty when `images` is connected.",
    "audio": "Sound to put in the video (mp4, webm, mkv; the animated image formats have none).",
    "fps": "Frames per second of `images` (a VIDEO brings its own rate).",
    "filename_prefix": "Prefix for the file name, as in Save Video: may contain a subfolder and %date% tokens.",
    "format": "mp4 (H.264) plays everywhere; webm (VP9) keeps alpha; mkv (H.264); webp, apng and gif are "
    "animated images (every frame kept, alpha kept).",
    "crf": "Constant rate factor for mp4/mkv (H.264, 0-51) and webm (VP9, 0-63): lower is better and bigger. "
    "-1 uses the codec's default (H.264 23, VP9 32).",
    "lossless": "Lossless encoding where the codec has it (H.264, VP9, WEBP). APNG is always lossless.",
    "quality": "Animated WEBP quality (1-100) when not lossless.",
    "targets": "Where the metadata goes: a1111 (the container's comment), comfyui (prompt+workflow), record "
    "(canonical JSON), xmp (IPTC/Dublin Core), sidecar_json/sidecar_xmp/sidecar_txt (files beside the file), "
    "manifest (a line per file in the folder's manifest.jsonl).",
    "prefer_runtime": "Merge what the executor really saw (PROVENANCE_HOOKS=1) into the record.",
    "lora_tags": "Append the LoRAs to the A1111 prompt as <lora:name:weight> tags.",
    "audio_in": "The sound to save; each item of a batch becomes its own file.",
    "audio_format": "flac (lossless), mp3 or opus, as core's Save Audio nodes write them.",
    "bitrate": "mp3/opus bitrate (flac is lossless).",
    "options": IMAGE_TOOLTIPS["options"],
}


def _options(fmt: str, targets: str | Iterable[str] | None, lora_tags: bool | None, **codec: Any) -> MediaOptions:
    """What the save writes; inside with_session, where the node's `options` and the settings apply."""
    return MediaOptions(
        format=fmt,
        targets=node_targets(targets),
        disable_metadata=compat.metadata_disabled(),
        lora_tags=node_value("lora_tags", lora_tags) is not False,
        **codec,
    )


def audio_clips(audio: Any) -> list[AudioClip]:
    """ComfyUI's AUDIO ({"waveform": (batch, channels, samples), "sample_rate"}) as one clip per batch item."""
    if not isinstance(audio, Mapping) or "waveform" not in audio or "sample_rate" not in audio:
        raise ValueError("audio must be ComfyUI's AUDIO: a dict with 'waveform' and 'sample_rate'")
    waveform = audio["waveform"]
    array = waveform.cpu().float().numpy() if hasattr(waveform, "cpu") else np.asarray(waveform, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[2] == 0:
        raise ValueError(f"audio waveform must be (batch, channels, samples), got shape {tuple(array.shape)}")
    return [AudioClip(waveform=item, sample_rate=int(audio["sample_rate"])) for item in array]


def clip_of(images: Any, video: Any, audio: Any, fps: float) -> Clip:
    """One clip from `images` + fps or from a VIDEO (its own frames, rate and sound); `audio` overrides the sound."""
    if (images is None) == (video is None):
        raise ValueError("connect exactly one of `images` (with fps) or `video`")
    sound = audio_clips(audio)[0] if audio is not None else None
    if video is not None:
        parts = video.get_components()
        if sound is None and parts.audio is not None:
            sound = audio_clips(parts.audio)[0]
        return clip_from(parts.images, Fraction(parts.frame_rate), sound)
    return clip_from(images, fps, sound)


def run_video(
    *,
    images: Any,
    video: Any,
    audio: Any,
    fps: float,
    filename_prefix: str,
    format: str,
    crf: int,
    lossless: bool,
    quality: int,
    targets: str | Iterable[str] | None,
    prompt: Mapping[str, Any] | None,
    extra_pnginfo: Mapping[str, Any] | None,
    unique_id: str | None,
    prefer_runtime: bool | None = None,
    lora_tags: bool | None = None,
    options: str | Mapping[str, Any] | None = None,
) -> list[dict[str, str]]:
    """Save one video; the preview entries core's SaveVideo shows ({"images": [...], "animated": [true]})."""
    if format not in VIDEO_FORMATS:
        raise ValueError(f"format must be one of {', '.join(VIDEO_FORMATS)}, got {format!r}")
    clip = clip_of(images, video, audio, fps)
    codec = {"crf": None if crf is None or crf < 0 else crf, "lossless": bool(lossless), "quality": quality}

    def save(context: SaveContext, snapshot: Mapping[str, Any] | None) -> list[SavedFile]:
        saved = save_video(
            clip,
            context,
            compat.output_directory(),
            filename_prefix,
            _options(format, targets, lora_tags, **codec),
            version=__version__,
            namer=compat.save_namer(),
            hasher=comfyui_hasher,
            runtime=snapshot,
        )
        return [saved]

    disabled = compat.metadata_disabled()
    saved = with_session(
        prompt, extra_pnginfo, unique_id, prefer_runtime=prefer_runtime, disabled=disabled, save=save, options=options
    )
    return previews(saved)


def run_audio(
    *,
    audio: Any,
    filename_prefix: str,
    format: str,
    bitrate: str,
    targets: str | Iterable[str] | None,
    prompt: Mapping[str, Any] | None,
    extra_pnginfo: Mapping[str, Any] | None,
    unique_id: str | None,
    prefer_runtime: bool | None = None,
    lora_tags: bool | None = None,
    options: str | Mapping[str, Any] | None = None,
) -> list[dict[str, str]]:
    """Save each sound of the batch; the preview entries core's SaveAudio shows ({"audio": [...]})."""
    if format not in AUDIO_FORMATS:
        raise ValueError(f"format must be one of {', '.join(AUDIO_FORMATS)}, got {format!r}")
    if bitrate not in BITRATES:
        raise ValueError(f"bitrate must be one of {', '.join(BITRATES)}, got {bitrate!r}")
    clips = audio_clips(audio)

    def save(context: SaveContext, snapshot: Mapping[str, Any] | None) -> list[SavedFile]:
        namer, chosen = compat.save_namer(), _options(format, targets, lora_tags, bitrate=int(bitrate[:-1]) * 1000)
        return [
            save_audio(
                clip,
                context,
                compat.output_directory(),
                filename_prefix,
                chosen,
                version=__version__,
                namer=namer,
                hasher=comfyui_hasher,
                runtime=snapshot,
                index=index,
            )
            for index, clip in enumerate(clips)
        ]

    disabled = compat.metadata_disabled()
    saved = with_session(
        prompt, extra_pnginfo, unique_id, prefer_runtime=prefer_runtime, disabled=disabled, save=save, options=options
    )
    return previews(saved)

"""What external readers (ffprobe, exiftool, PyAV, the ComfyUI frontend's loaders) get from a media file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The frontend's loaders are ported in frontend_loaders.py; callers reach them through this module.
from frontend_loaders import MIME_TYPES, NO_LOADER, FrontendResult, frontend_load, parse_json  # noqa: F401
from readers.common import unavailable

TIMEOUT = 120
STREAM_KEYS = ("codec_type", "codec_name", "r_frame_rate", "avg_frame_rate", "width", "height", "pix_fmt", "channels")


def _program(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        unavailable(f"{name} is not on PATH (Debian package {'ffmpeg' if name == 'ffprobe' else name})")
    return exe


def _run(args: list[str]) -> bytes:
    out = subprocess.run(args, capture_output=True, timeout=TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({out.returncode}): {out.stderr.decode(errors='replace')[:500]}")
    return out.stdout


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "", "N/A") else None


def _float(value: Any) -> float | None:
    return float(value) if value not in (None, "", "N/A") else None


def ffprobe(path: Path) -> dict[str, Any]:
    """{"format_name", "duration", "format_tags", "streams": [{codec_type, codec_name, nb_frames (header count or
    None), nb_read_packets (demuxed), r_frame_rate, avg_frame_rate, width, height, pix_fmt, sample_rate,
    channels, tags}]}; tag keys as stored (mp4 mdta `prompt`, Matroska `PROMPT`, Opus tags on the stream)."""
    args = ["-v", "error", "-show_format", "-show_streams", "-count_packets", "-of", "json", str(path)]
    data = json.loads(_run([_program("ffprobe"), *args]))
    fmt = data.get("format", {})
    streams = [
        {key: s.get(key) for key in STREAM_KEYS}
        | {key: _int(s.get(key)) for key in ("nb_frames", "nb_read_packets", "sample_rate")}
        | {"tags": s.get("tags", {})}
        for s in data.get("streams", [])
    ]
    duration = _float(fmt.get("duration"))
    return {
        "format_name": fmt.get("format_name"),
        "duration": duration,
        "format_tags": fmt.get("tags", {}),
        "streams": streams,
    }


def exiftool(path: Path) -> dict[str, Any]:
    """`exiftool -j -a -G1:4 -b -struct`: every tag as "Group:Tag" (e.g. "Keys:Prompt", "Matroska:Prompt",
    "Vorbis:Prompt", "IFD0:Model"), values in full; a tag found N > 1 times maps to a list of its N values."""
    # JSON output cannot repeat a key and silently keeps one of them (ID3 writes one TXXX, i.e. one
    # UserDefinedText, per key); family 4 names the others "Group:CopyN:Tag", folded back here.
    # -b: binary values come as "base64:..." instead of a placeholder; JSON output never shortens text.
    args = ["-j", "-a", "-G1:4", "-b", "-struct", "-api", "LargeFileSupport=1", str(path)]
    data: dict[str, Any] = json.loads(_run([_program("exiftool"), *args]))[0]
    out: dict[str, Any] = {}
    copies: dict[str, list[Any]] = {}
    for key, value in data.items():
        if copy := re.fullmatch(r"(.*):Copy\d+:([^:]*)", key):
            copies.setdefault(f"{copy[1]}:{copy[2]}", []).append(value)
        else:
            out[key] = value
    for key, values in copies.items():  # the copies are the earlier occurrences in the file
        out[key] = [*values, out[key]] if key in out else values
    return out


def exiftool_tag(tags: Mapping[str, Any], name: str) -> str | None:
    """The text of tag `name` (any group, any case); ID3 "UserDefinedText" values "(name) text" count too."""
    wanted = name.lower()
    for key, value in tags.items():
        for item in value if isinstance(value, list) else [value]:
            if key.rsplit(":", 1)[-1].lower() == wanted:
                return str(item)
            if key.endswith(":UserDefinedText") and str(item).lower().startswith(f"({wanted}) "):
                return str(item)[len(wanted) + 3 :]
    return None


def pyav(path: Path) -> dict[str, Any]:
    """{"format_name", "duration", "format_tags": container.metadata, "streams": [{codec_type, codec_name,
    tags: stream.metadata, frames (decoded), fps (average_rate), pix_fmt, width, height, sample_rate,
    channels, samples (decoded)}]}."""
    try:
        import av
    except ImportError as err:
        unavailable(f"PyAV is not installed ({err})")
    with av.open(str(path)) as container:
        streams: list[dict[str, Any]] = []
        for s in container.streams:
            ctx = s.codec_context
            info: dict[str, Any] = {"codec_type": s.type, "codec_name": ctx.codec.canonical_name if ctx else None}
            info |= {"tags": dict(s.metadata), "frames": 0, "samples": 0}
            if s.type == "video":
                fps = float(s.average_rate) if s.average_rate else None
                info |= {"fps": fps, "width": ctx.width, "height": ctx.height, "pix_fmt": ctx.pix_fmt}
            elif s.type == "audio":
                info |= {"sample_rate": ctx.sample_rate, "channels": ctx.channels}
            streams.append(info)
        for packet in container.demux():
            if packet.stream.type in ("video", "audio"):
                for frame in packet.decode():
                    streams[packet.stream.index]["frames"] += 1
                    streams[packet.stream.index]["samples"] += getattr(frame, "samples", 0)
        duration = container.duration / 1_000_000 if container.duration is not None else None
        tags = dict(container.metadata)
        return {"format_name": container.format.name, "duration": duration, "format_tags": tags, "streams": streams}


def tag(result: Mapping[str, Any], name: str) -> str | None:
    """A tag of an ffprobe() or pyav() result, any case: the container's first, then each stream's."""
    for tags in [result["format_tags"], *(s["tags"] for s in result["streams"])]:
        for key, value in tags.items():
            if key.lower() == name.lower():
                return str(value)
    return None

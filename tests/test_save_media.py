"""Save Video / Save Audio (Provenance): every container round-trips, and real readers see what we wrote.

Each file is written by metadata/media.py from a real corpus graph (HunyuanVideo text-to-video,
Stable Audio) with its save node swapped for ours, read back by our reader, and by ffprobe,
exiftool, PyAV and a port of ComfyUI's frontend loaders (tests/media_readers.py).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import media_readers as readers
import numpy as np
import pytest
from conftest import expected, load_workflow
from PIL import Image as PILImage

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.formats.base import (
    A1111,
    COMFYUI,
    DEFAULT_TARGETS,
    RECORD,
    SIDECAR_JSON,
    XMP,
    AudioClip,
    MediaOptions,
)
from comfyui_provenance.metadata.media import clip_from, save_audio, save_video
from comfyui_provenance.metadata.read import extract, read

VIDEO = "hunyuan_video_text_to_video"
AUDIO = "audio_stable_audio_example"
VIDEO_FORMATS = ["mp4", "webm", "mkv", "webp", "apng", "gif"]
# Where ComfyUI's frontend loads a workflow by drag-and-drop (it has no MKV or GIF loader).
FRONTEND_LOADS = {"mp4", "webm", "webp", "apng"}
EXTENSION = {"apng": ".png"}


def video_context(name: str = VIDEO, fmt: str = "mp4", **edit: Any) -> SaveContext:
    api, ui = load_workflow(name)
    save_id = next(k for k, v in api.items() if v["class_type"] == "SaveVideo")
    api[save_id] = {
        "class_type": "ProvenanceSaveVideo",
        "inputs": {"video": api[save_id]["inputs"]["video"], "filename_prefix": "video/ComfyUI", "format": fmt},
    }
    for node_id, inputs in edit.items():
        api[node_id]["inputs"].update(inputs)
    return context(api, ui, save_id)


def context(api: dict[str, Any], ui: dict[str, Any], save_id: str) -> SaveContext:
    return SaveContext(
        prompt=api, extra_pnginfo={"workflow": ui}, save_node_id=save_id, prompt_id="p", comfyui_version="0"
    )


def audio_context() -> SaveContext:
    api, ui = load_workflow(AUDIO)
    save_id = next(k for k, v in api.items() if v["class_type"].startswith("SaveAudio"))
    api[save_id] = {"class_type": "ProvenanceSaveAudio", "inputs": {"audio": api[save_id]["inputs"]["audio"]}}
    return context(api, ui, save_id)


def frames(count: int = 8, width: int = 64, height: int = 48, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, height // 8 + 1, width // 8 + 1, channels), dtype=np.uint8)
    big = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)[:, :height, :width]
    shift = np.arange(count, dtype=np.uint8)[:, None, None, None] * 16
    return (big + shift).astype(np.uint8)


def sine(seconds: float = 1.0, rate: int = 44100, channels: int = 2) -> AudioClip:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    return AudioClip(waveform=np.stack([wave] * channels), sample_rate=rate)


def decoded(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) as a decoder sees the file: PyAV, or Pillow for animated WEBP (FFmpeg's
    WEBP decoder has no animation support, for core's files as for ours)."""
    if path.suffix == ".webp":
        with PILImage.open(path) as image:
            return image.n_frames, image.width, image.height
    stream = next(s for s in readers.pyav(path)["streams"] if s["codec_type"] == "video")
    return stream["frames"], stream["width"], stream["height"]


def save(tmp_path: Path, fmt: str, pixels: np.ndarray | None = None, context: SaveContext | None = None, **opts: Any):  # type: ignore[no-untyped-def]
    audio = opts.pop("audio", None)
    fps = opts.pop("fps", 24)
    clip = clip_from(frames() if pixels is None else pixels, fps, audio)
    options = MediaOptions(format=fmt, **opts)
    return save_video(clip, context or video_context(fmt=fmt), tmp_path, "video/ComfyUI", options, version="test")


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    saved = save(tmp_path, fmt)
    assert saved.path.name == f"ComfyUI_00001_{EXTENSION.get(fmt, '.' + fmt)}"
    assert saved.path.parent == tmp_path / "video"
    record = read(saved.path)
    want = expected(VIDEO)
    gen = record.generation
    assert (gen.positive, gen.seed, gen.steps) == (want["positive"], want["seed"], want["steps"])
    assert gen.sampler == want["sampler"]
    assert gen.frames == 8 and gen.other["frames_in_graph"] == want["frames"]
    assert gen.fps == pytest.approx(24, abs=0.5)
    assert record.image.format == fmt and (record.image.width, record.image.height) == (64, 48)
    held = record.image.other["video"]
    assert held["frames"] == 8
    assert {m.name for m in record.models} >= {want["unet"], want["vae"]}
    assert record.prompt is not None and record.workflow is not None
    found = extract(saved.path)
    assert json.loads(found.comfy["prompt"]) == record.prompt
    assert found.media.get("frames") == 8, found.media
    assert found.record_json is not None or found.xmp is not None
    if fmt not in ("webp",):  # a WEBP's A1111 text is its EXIF UserComment
        assert found.infotext is not None and "Steps: 20" in found.infotext
    assert decoded(saved.path) == (8, 64, 48)


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
def test_frontend_loads_the_workflow(tmp_path: Path, fmt: str) -> None:
    saved = save(tmp_path, fmt)
    result = readers.frontend_load(saved.path)
    context = video_context(fmt=fmt)
    if fmt in FRONTEND_LOADS:
        assert result.loaded == "workflow", result.reason
        assert result.workflow == context.extra_pnginfo["workflow"]  # type: ignore[index]
    else:
        assert result.loaded is None
        record = read(saved.path)
        if fmt == "mkv":
            assert any("no loader for MKV" in w for w in record.provenance.warnings)


@pytest.mark.parametrize("fmt", ["mp4", "webm", "mkv"])
def test_ffprobe_and_exiftool_show_our_tags(tmp_path: Path, fmt: str) -> None:
    saved = save(tmp_path, fmt)
    probe = readers.ffprobe(saved.path)
    prompt = readers.tag(probe, "prompt")
    assert prompt is not None and json.loads(prompt)["80"]["class_type"] == "ProvenanceSaveVideo"
    record_text = readers.tag(probe, "comfyui_provenance")
    assert record_text is not None and json.loads(record_text)["schema"] == "comfyui-provenance/1"
    comment = readers.tag(probe, "comment")
    assert comment is not None and "Steps: 20" in comment
    tags = readers.exiftool(saved.path)
    assert readers.exiftool_tag(tags, "Prompt") is not None
    assert "Steps: 20" in (readers.exiftool_tag(tags, "Comment") or "")
    if fmt == "mp4":
        assert any(k.startswith("XMP") and k.endswith("DigitalSourceType") for k in tags), sorted(tags)
    else:
        assert saved.path.with_name(saved.path.name + ".xmp").is_file()


def test_audio_and_video(tmp_path: Path) -> None:
    for fmt in ("mp4", "webm", "mkv"):
        saved = save(tmp_path / fmt, fmt, audio=sine(0.5))
        streams = readers.pyav(saved.path)["streams"]
        assert [s["codec_type"] for s in streams] == ["video", "audio"]
        audio = read(saved.path).image.other["video"]["audio"]
        assert audio["codec"] == {"webm": "opus"}.get(fmt, "aac")
        assert audio["sample_rate"] == (48000 if fmt == "webm" else 44100)


def test_identical_neighbouring_frames_are_all_kept(tmp_path: Path) -> None:
    a, b = frames(1, seed=1)[0], frames(1, seed=2)[0]
    pixels = np.stack([a, a, b, b, a])
    for fmt in VIDEO_FORMATS:
        saved = save(tmp_path / fmt, fmt, pixels)
        assert decoded(saved.path)[0] == 5, fmt
        assert read(saved.path).generation.frames == 5


def test_one_frame(tmp_path: Path) -> None:
    for fmt in VIDEO_FORMATS:
        saved = save(tmp_path / fmt, fmt, frames(1))
        assert read(saved.path).generation.frames == 1, fmt


def test_odd_sizes_are_padded_where_yuv420_needs_it(tmp_path: Path) -> None:
    pixels = frames(3, width=65, height=47)
    for fmt in VIDEO_FORMATS:
        saved = save(tmp_path / fmt, fmt, pixels)
        record = read(saved.path)
        size = decoded(saved.path)[1:]
        if fmt in ("mp4", "webm", "mkv"):
            assert size == (66, 48)
            assert record.image.other["video"]["padded_from"] == [65, 47]
            assert any("odd-sized" in w for w in record.provenance.warnings)
        else:
            assert size == (65, 47), fmt


def test_rgba(tmp_path: Path) -> None:
    pixels = frames(3, channels=4)
    pixels[..., 3] = 128
    for fmt in VIDEO_FORMATS:
        saved = save(tmp_path / fmt, fmt, pixels)
        record = read(saved.path)
        if fmt in ("mp4", "mkv"):
            assert any("transparency was dropped" in w for w in record.provenance.warnings)
        else:
            assert record.image.other["video"]["pix_fmt"] in ("yuva420p", "rgba", "pal8"), fmt


def test_non_ascii_and_unbalanced_braces_still_load(tmp_path: Path) -> None:
    text = "猫 {unbalanced and ünïcödé ✓"
    context = video_context(fmt="webm", **{"44": {"text": text}})
    for fmt in ("mp4", "webm"):
        saved = save(tmp_path / fmt, fmt, context=context)
        assert read(saved.path).generation.positive == text
        result = readers.frontend_load(saved.path)
        assert result.loaded == "workflow", (fmt, result.reason)
        assert result.prompt is not None and result.prompt["44"]["inputs"]["text"] == text


def test_workflow_over_two_mib(tmp_path: Path) -> None:
    _, ui = load_workflow(VIDEO)
    ui = dict(ui, extra={"padding": "x" * (3 << 20)})
    for fmt in ("mp4", "webm"):
        context = video_context(fmt=fmt)
        context.extra_pnginfo = {"workflow": ui}
        saved = save(tmp_path / fmt, fmt, context=context)
        record = read(saved.path)
        assert record.workflow == ui
        result = readers.frontend_load(saved.path)
        if fmt == "mp4":
            assert result.loaded == "workflow"
        else:  # the frontend reads 2 MiB of a WebM: the record says why it cannot load
            assert result.loaded != "workflow"
            assert any("first 2 MiB" in w for w in record.provenance.warnings)


@pytest.mark.parametrize(
    "targets",
    [frozenset(), frozenset({A1111}), frozenset({COMFYUI}), frozenset({RECORD}), DEFAULT_TARGETS | {SIDECAR_JSON}],
    ids=["none", "a1111", "comfyui", "record", "all"],
)
@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
def test_targets(tmp_path: Path, fmt: str, targets: frozenset[str]) -> None:
    saved = save(tmp_path, fmt, targets=targets)
    found = extract(saved.path)
    assert ("prompt" in found.comfy) == (COMFYUI in targets), found.comfy.keys()
    has_record = found.record_json is not None or (found.xmp is not None and b"cprov:Record" in found.xmp)
    if RECORD in targets and (XMP in targets or fmt not in ("webp", "gif")):
        assert has_record
    if not targets:
        assert found.infotext is None and not has_record
    assert (saved.path.with_name(saved.path.name + ".json").is_file()) == (
        SIDECAR_JSON in targets or (RECORD in targets and XMP not in targets and fmt in ("webp",))
    )


def test_disable_metadata(tmp_path: Path) -> None:
    for fmt in VIDEO_FORMATS:
        saved = save(tmp_path / fmt, fmt, disable_metadata=True)
        assert saved.record is None
        found = extract(saved.path)
        assert not found.comfy and found.record_json is None and found.infotext is None and found.xmp is None
        assert [p.name for p in saved.path.parent.iterdir()] == [saved.path.name]


@pytest.mark.parametrize("fmt", ["flac", "mp3", "opus"])
def test_audio_round_trip(tmp_path: Path, fmt: str) -> None:
    saved = save_audio(sine(), audio_context(), tmp_path, "audio/ComfyUI", MediaOptions(format=fmt), version="test")
    assert saved.path.name == f"ComfyUI_00001.{fmt}"
    record = read(saved.path)
    want = expected(AUDIO)
    gen = record.generation
    assert (gen.positive, gen.seed, gen.steps, gen.cfg) == (want["positive"], want["seed"], want["steps"], want["cfg"])
    audio = record.image.other["audio"]
    assert audio["codec"] == fmt and audio["channels"] == 2
    assert audio["sample_rate"] == (48000 if fmt == "opus" else 44100)
    probe = readers.ffprobe(saved.path)
    assert readers.tag(probe, "prompt") is not None and readers.tag(probe, "comfyui_provenance") is not None
    assert "Steps: 50" in (readers.tag(probe, "comment") or "")
    tags = readers.exiftool(saved.path)
    assert readers.exiftool_tag(tags, "Prompt") is not None
    # The comment players show: Vorbis DESCRIPTION, an ID3 COMM frame (not ffmpeg's TXXX).
    comment = {"flac": "Vorbis:Description", "mp3": "ID3v2_4:Comment", "opus": "Vorbis:Description"}[fmt]
    assert "Steps: 50" in str(tags.get(comment)), sorted(tags)
    assert readers.frontend_load(saved.path).loaded == "workflow"
    assert saved.path.with_name(saved.path.name + ".xmp").is_file()


def test_fps_fraction_is_kept(tmp_path: Path) -> None:
    saved = save(tmp_path, "mp4", fps=Fraction(24000, 1001))
    stream = next(s for s in readers.ffprobe(saved.path)["streams"] if s["codec_type"] == "video")
    assert stream["r_frame_rate"] in ("24000/1001", "2997/125")
    assert read(saved.path).generation.fps == pytest.approx(23.976, abs=1e-3)


def test_cli_read_says_what_the_file_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = save(tmp_path, "mp4", audio=sine(0.5)).path
    sound = save_audio(sine(), audio_context(), tmp_path, "a", MediaOptions(format="flac"), version="test").path
    assert main(["read", str(video), str(sound)]) == 0
    out = capsys.readouterr().out
    assert "  file      : mp4 h264 yuv420p, 64x48, 8 frames, 24 fps, 0.333 s, aac 44100 Hz 2 ch" in out
    assert "  file      : flac 44100 Hz 2 ch 1 s" in out
    assert "frames 8  fps 24" in out


@pytest.mark.parametrize(
    "targets",
    [frozenset(), frozenset({A1111}), frozenset({COMFYUI}), frozenset({RECORD}), DEFAULT_TARGETS | {SIDECAR_JSON}],
    ids=["none", "a1111", "comfyui", "record", "all"],
)
@pytest.mark.parametrize("fmt", ["flac", "mp3", "opus"])
def test_audio_targets(tmp_path: Path, fmt: str, targets: frozenset[str]) -> None:
    options = MediaOptions(format=fmt, targets=targets)
    saved = save_audio(sine(0.3), audio_context(), tmp_path, "a", options, version="test")
    found = extract(saved.path)
    assert ("prompt" in found.comfy) == (COMFYUI in targets)
    assert (found.record_json is not None) == (RECORD in targets)
    assert (found.infotext is not None) == (A1111 in targets)
    assert saved.path.with_name(saved.path.name + ".xmp").is_file() == (XMP in targets)
    assert saved.path.with_name(saved.path.name + ".json").is_file() == (SIDECAR_JSON in targets)
    if targets:
        assert read(saved.path).generation.seed == expected(AUDIO)["seed"]


@pytest.mark.parametrize("fmt", ["flac", "mp3", "opus"])
def test_audio_disable_metadata(tmp_path: Path, fmt: str) -> None:
    options = MediaOptions(format=fmt, disable_metadata=True)
    saved = save_audio(sine(0.3), audio_context(), tmp_path, "a", options, version="test")
    assert saved.record is None
    found = extract(saved.path)
    assert not found.comfy and found.record_json is None and found.infotext is None
    assert readers.tag(readers.ffprobe(saved.path), "prompt") is None
    assert [p.name for p in tmp_path.iterdir()] == [saved.path.name]

"""The media reader harness against files written the way core ComfyUI 0.33 writes them.

The writers below follow core's code paths (research/video-frontend-engines.md §1.1-1.2):
`VideoFromComponents.save_to` (SaveVideo), `SaveWEBM.execute`, `AudioSaveHelper.save_audio` and
`ImageSaveHelper.save_animated_webp` / `save_animated_png`, with PyAV and Pillow as core calls them.
"""

from __future__ import annotations

import copy
import io
import json
import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REQUIRE_READERS, load_workflow
from media_readers import NO_LOADER, exiftool, exiftool_tag, ffprobe, frontend_load, parse_json, pyav, tag
from PIL import Image
from PIL.PngImagePlugin import PngInfo

try:
    import av
except ImportError:  # the writers need PyAV; in CI every reader is installed
    if REQUIRE_READERS:
        raise
    pytest.skip("PyAV is not installed", allow_module_level=True)

CORPUS_MP3 = sorted((Path(__file__).parent / "corpus" / "images").glob("*.mp3"))
FPS, FRAMES, SIZE = 24.0, 4, 64


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Any], dict[str, Any]]:
    """(API prompt, UI workflow) of the corpus' default workflow."""
    return load_workflow("default")


def _frames(n: int = FRAMES) -> list[np.ndarray]:
    ramp = np.linspace(0, 255, SIZE, dtype=np.uint8)
    return [np.stack([np.roll(ramp, 8 * i)[None, :].repeat(SIZE, 0)] * 3, axis=-1) for i in range(n)]


def save_video(path: Path, prompt: dict[str, Any], workflow: dict[str, Any], movflags: str | None = "auto") -> None:
    """VideoFromComponents.save_to with h264 (SaveVideo): mp4 gets use_metadata_tags(+faststart for a path)."""
    container = {".mp4": "mp4", ".mkv": "matroska"}[path.suffix]
    kwargs: dict[str, Any] = {"mode": "w", "format": container}
    if container == "mp4" and movflags:
        kwargs["options"] = {"movflags": "use_metadata_tags+faststart" if movflags == "auto" else movflags}
    with av.open(str(path), **kwargs) as output:
        for key, value in {"workflow": workflow, "prompt": prompt}.items():  # set before any stream
            output.metadata[key] = json.dumps(value)
        stream = output.add_stream("h264", rate=Fraction(round(FPS * 1000), 1000))
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "yuv420p"
        for image in _frames():
            output.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")))
        output.mux(stream.encode(None))


def save_webm(path: Path, prompt: dict[str, Any], workflow: dict[str, Any]) -> None:
    """SaveWEBM.execute with codec vp9 (no --disable-metadata check there)."""
    container = av.open(str(path), mode="w")
    container.metadata["prompt"] = json.dumps(prompt)
    container.metadata["workflow"] = json.dumps(workflow)
    stream = container.add_stream("libvpx-vp9", rate=Fraction(round(FPS * 1000), 1000))
    stream.width, stream.height, stream.pix_fmt, stream.bit_rate = SIZE, SIZE, "yuv420p", 0
    stream.options = {"crf": "32.0"}
    for image in _frames():
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    container.mux(stream.encode())
    container.close()


def save_audio(path: Path, prompt: dict[str, Any], workflow: dict[str, Any], ascii_only: bool = True) -> None:
    """AudioSaveHelper.save_audio: flac, mp3 (128k) or opus (128k), encoded into a BytesIO."""
    fmt, rate = path.suffix[1:], 48000
    buffer = io.BytesIO()
    output = av.open(buffer, mode="w", format=fmt)
    dumps = {
        "prompt": json.dumps(prompt, ensure_ascii=ascii_only),
        "workflow": json.dumps(workflow, ensure_ascii=ascii_only),
    }
    for key, value in dumps.items():
        output.metadata[key] = value
    codec = {"opus": "libopus", "mp3": "libmp3lame", "flac": "flac"}[fmt]
    stream = output.add_stream(codec, rate=rate, layout="stereo")
    assert isinstance(stream, av.AudioStream)
    if fmt != "flac":
        stream.bit_rate = 128000
    t = np.arange(rate // 5, dtype=np.float32) / rate
    waveform = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]) * 0.3
    frame = av.AudioFrame.from_ndarray(waveform.T.reshape(1, -1).astype(np.float32), format="flt", layout="stereo")
    frame.sample_rate, frame.pts = rate, 0
    output.mux(stream.encode(frame))
    output.mux(stream.encode(None))
    output.close()
    path.write_bytes(buffer.getbuffer())


def _images() -> list[Image.Image]:
    return [Image.fromarray(image) for image in _frames()]


def save_animated_webp(path: Path, prompt: dict[str, Any], workflow: dict[str, Any]) -> None:
    """save_animated_webp: EXIF IFD0 0x0110 (Model) "prompt:json", extra_pnginfo from 0x010F (Make) down."""
    images = _images()
    exif = images[0].getexif()
    exif[0x0110] = f"prompt:{json.dumps(prompt)}"
    exif[0x010F] = f"workflow:{json.dumps(workflow)}"
    duration = int(1000.0 / FPS)
    images[0].save(path, save_all=True, duration=duration, append_images=images[1:], exif=exif, quality=80, method=4)


def save_animated_png(path: Path, prompt: dict[str, Any], workflow: dict[str, Any]) -> None:
    """save_animated_png: one private `comf` chunk per key, after IDAT, "key\\0json" in latin-1."""
    info = PngInfo()
    for key, value in {"prompt": prompt, "workflow": workflow}.items():
        info.add(b"comf", key.encode("latin-1") + b"\0" + json.dumps(value).encode("latin-1"), after_idat=True)
    images = _images()
    images[0].save(path, pnginfo=info, compress_level=4, save_all=True, duration=41, append_images=images[1:])


Writer = Callable[[Path, dict[str, Any], dict[str, Any]], None]


@pytest.mark.parametrize(("name", "writer"), [("video.mp4", save_video), ("webm.webm", save_webm)])
def test_core_video_every_reader(tmp_path: Path, graph: Any, name: str, writer: Writer) -> None:
    prompt, workflow = graph
    path = tmp_path / name
    writer(path, prompt, workflow)

    loaded = frontend_load(path)
    assert (loaded.loaded, loaded.reason) == ("workflow", None)
    assert (loaded.workflow, loaded.prompt) == (workflow, prompt)

    probe, decoded, tags = ffprobe(path), pyav(path), exiftool(path)
    stored = "prompt" if path.suffix == ".mp4" else "PROMPT"  # the Matroska muxer upper-cases tag names
    assert probe["format_tags"][stored] == decoded["format_tags"][stored] == json.dumps(prompt)
    assert tags["Keys:Prompt" if path.suffix == ".mp4" else "Matroska:Prompt"] == json.dumps(prompt)
    assert exiftool_tag(tags, "workflow") == tag(probe, "workflow") == json.dumps(workflow)
    video = probe["streams"][0]
    assert video["codec_name"] == ("h264" if path.suffix == ".mp4" else "vp9")
    assert (video["width"], video["height"], video["pix_fmt"], video["avg_frame_rate"]) == (64, 64, "yuv420p", "24/1")
    assert video["nb_read_packets"] == FRAMES
    assert video["nb_frames"] == (FRAMES if path.suffix == ".mp4" else None)  # Matroska has no frame count
    assert decoded["streams"][0]["frames"] == FRAMES and decoded["streams"][0]["fps"] == FPS


@pytest.mark.parametrize("suffix", [".flac", ".mp3", ".opus"])
def test_core_audio_every_reader(tmp_path: Path, graph: Any, suffix: str) -> None:
    prompt, workflow = graph
    path = tmp_path / f"audio{suffix}"
    save_audio(path, prompt, workflow)

    loaded = frontend_load(path)
    assert (loaded.loaded, loaded.workflow, loaded.prompt) == ("workflow", workflow, prompt)
    probe, decoded = ffprobe(path), pyav(path)
    assert (
        tag(probe, "prompt") == tag(decoded, "prompt") == exiftool_tag(exiftool(path), "prompt") == json.dumps(prompt)
    )
    if suffix == ".opus":  # Ogg keeps the Vorbis comments on the stream, not the container
        assert "prompt" not in probe["format_tags"] and "prompt" in probe["streams"][0]["tags"]
    audio = decoded["streams"][0]
    assert (audio["codec_type"], audio["sample_rate"], audio["channels"]) == ("audio", 48000, 2)
    assert audio["samples"] >= 48000 // 5


@pytest.mark.parametrize(("name", "writer"), [("anim.webp", save_animated_webp), ("anim.png", save_animated_png)])
def test_core_animated_images(tmp_path: Path, graph: Any, name: str, writer: Writer) -> None:
    prompt, workflow = graph
    path = tmp_path / name
    writer(path, prompt, workflow)
    loaded = frontend_load(path)
    assert (loaded.loaded, loaded.workflow, loaded.prompt) == ("workflow", workflow, prompt)
    if path.suffix == ".webp":
        tags = exiftool(path)
        assert tags["IFD0:Model"] == f"prompt:{json.dumps(prompt)}"
        assert tags["IFD0:Make"] == f"workflow:{json.dumps(workflow)}"


@pytest.mark.parametrize("path", CORPUS_MP3, ids=lambda p: p.name)
def test_real_core_mp3(path: Path) -> None:
    loaded = frontend_load(path)
    assert loaded.loaded == "workflow" and loaded.workflow and loaded.workflow["nodes"]
    assert loaded.prompt and all("class_type" in node for node in loaded.prompt.values())
    probe = ffprobe(path)
    for text in (tag(probe, "prompt"), tag(pyav(path), "prompt"), exiftool_tag(exiftool(path), "prompt")):
        assert text is not None and json.loads(text) == loaded.prompt
    assert json.loads(tag(probe, "workflow") or "") == loaded.workflow


def test_mkv_and_gif_have_no_frontend_loader(tmp_path: Path, graph: Any) -> None:
    prompt, workflow = graph
    save_video(tmp_path / "video.mkv", prompt, workflow)
    assert tag(ffprobe(tmp_path / "video.mkv"), "prompt") == json.dumps(prompt)  # there, but never looked at
    _images()[0].save(tmp_path / "still.gif", comment=json.dumps(prompt))
    for name in ("video.mkv", "still.gif"):
        loaded = frontend_load(tmp_path / name)
        assert (loaded.loaded, loaded.reason, loaded.workflow) == (None, NO_LOADER, None)


# ---- where the real frontend fails, the emulation fails too ------------------------------------------


def test_webm_workflow_over_2_mib_is_out_of_reach(tmp_path: Path, graph: Any) -> None:
    prompt, workflow = graph
    big = copy.deepcopy(workflow)
    big["extra"]["padding"] = "x" * (2 * 1024 * 1024)
    path = tmp_path / "big.webm"
    save_webm(path, prompt, big)
    loaded = frontend_load(path)
    # getFromWebmFile reads 2 MiB: the WORKFLOW SimpleTag ends past it, the PROMPT before it.
    assert loaded.workflow is None
    assert (loaded.loaded, loaded.prompt) == ("prompt", prompt)
    assert json.loads(tag(pyav(path), "workflow") or "") == big  # the file itself is complete


def test_webm_unbalanced_brace_in_prompt_text(tmp_path: Path, graph: Any) -> None:
    prompt, workflow = copy.deepcopy(graph[0]), copy.deepcopy(graph[1])
    prompt["6"]["inputs"]["text"] = "a {glass bottle"
    for node in workflow["nodes"]:
        if node["id"] == 6:
            node["widgets_values"][0] = "a {glass bottle"
    save_webm(tmp_path / "brace.webm", prompt, workflow)
    loaded = frontend_load(tmp_path / "brace.webm")
    # findJsonEnd counts the '{' inside the JSON string: neither PROMPT nor WORKFLOW ever closes.
    assert (loaded.loaded, loaded.workflow, loaded.prompt) == (None, None, None)
    assert "LoadVideo" in (loaded.reason or "")
    save_video(tmp_path / "brace.mp4", prompt, workflow)  # isobmff.ts takes the whole data box
    assert frontend_load(tmp_path / "brace.mp4").workflow == workflow


def test_mp4_without_use_metadata_tags_drops_the_graph(tmp_path: Path, graph: Any) -> None:
    prompt, workflow = graph
    path = tmp_path / "plain.mp4"
    save_video(path, prompt, workflow, movflags=None)
    loaded = frontend_load(path)
    assert (loaded.loaded, loaded.workflow, loaded.prompt) == (None, None, None)
    # The mov muxer writes only the keys it knows (no mdta `keys` box), so no reader sees a prompt.
    assert tag(pyav(path), "prompt") is None and tag(ffprobe(path), "prompt") is None
    assert exiftool_tag(exiftool(path), "prompt") is None


def test_opus_workflow_past_the_first_ogg_page(tmp_path: Path, graph: Any) -> None:
    prompt, workflow = graph
    big = copy.deepcopy(workflow)
    big["extra"]["padding"] = "x" * 70_000  # OpusTags over one Ogg page (255 * 255 bytes)
    path = tmp_path / "big.opus"
    save_audio(path, prompt, big)
    loaded = frontend_load(path)
    # ogg.ts reads up to the second 4096-byte block holding "OggS\0"; a page header then splits the JSON.
    assert (loaded.loaded, loaded.workflow, loaded.prompt) == ("prompt", None, prompt)
    assert json.loads(tag(ffprobe(path), "workflow") or "") == big


def _with_gap_before_moov(path: Path, gap: int) -> None:
    """Insert a `free` box of `gap` bytes (sparse on disk) between mdat and a trailing moov."""
    data = path.read_bytes()
    moov = data.rindex(b"moov") - 4
    assert data[moov:].startswith(struct.pack(">I", len(data) - moov))  # moov is the last top-level box
    with path.open("wb") as f:
        f.write(data[:moov] + struct.pack(">I4s", gap, b"free"))
        f.seek(gap - 8, io.SEEK_CUR)
        f.write(data[moov:])


def test_mp4_moov_beyond_64_mib(tmp_path: Path, graph: Any) -> None:
    prompt, workflow = graph
    path = tmp_path / "late.mp4"
    save_video(path, prompt, workflow, movflags="use_metadata_tags")  # core's BytesIO path: no faststart
    assert frontend_load(path).loaded == "workflow"  # small: moov still inside the window
    _with_gap_before_moov(path, 64 * 1024 * 1024)
    loaded = frontend_load(path)
    assert (loaded.loaded, loaded.workflow, loaded.prompt) == (None, None, None)
    assert tag(ffprobe(path), "prompt") == json.dumps(prompt)


# ---- ported rules, one by one -------------------------------------------------------------------------


def test_parse_json_replaces_bare_non_finite_tokens_only() -> None:
    assert parse_json('{"a": NaN, "b": -Infinity, "c": "NaN"}') == {"a": None, "b": None, "c": "NaN"}
    with pytest.raises(ValueError):
        parse_json('{"a": 1NaN}')


def test_png_text_chunks_and_itxt(tmp_path: Path, graph: Any) -> None:
    prompt, workflow = graph
    info = PngInfo()
    info.add_itxt("workflow", json.dumps(workflow), zip=False)
    info.add_text("prompt", json.dumps(prompt))
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler")
    Image.new("RGB", (8, 8)).save(tmp_path / "still.png", pnginfo=info)
    loaded = frontend_load(tmp_path / "still.png")
    assert (loaded.loaded, loaded.workflow, loaded.prompt) == ("workflow", workflow, prompt)
    assert loaded.parameters == "a cat\nSteps: 20, Sampler: Euler"


def test_a_compressed_itxt_chunk_never_loads(tmp_path: Path, graph: Any) -> None:
    """Any compressed iTXt, even a tiny one beside plain graphs, leaves the frontend's load pending."""
    _, workflow = graph
    info = PngInfo()
    info.add_text("workflow", json.dumps(workflow))
    info.add_itxt("note", "x", zip=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "still.png", pnginfo=info)
    loaded = frontend_load(tmp_path / "still.png")
    assert loaded.loaded is None and "never settles" in (loaded.reason or "")


@pytest.mark.parametrize("suffix", [".flac", ".mp3", ".opus"])
def test_audio_loaders_read_latin_1(tmp_path: Path, graph: Any, suffix: str) -> None:
    """flac.ts/mp3.ts/ogg.ts build text with String.fromCharCode: raw UTF-8 arrives mangled, \\u escapes do not."""
    prompt, workflow = copy.deepcopy(graph[0]), graph[1]
    prompt["6"]["inputs"]["text"] = "café"
    save_audio(tmp_path / f"raw{suffix}", prompt, workflow, ascii_only=False)
    loaded = frontend_load(tmp_path / f"raw{suffix}")
    assert loaded.prompt is not None and loaded.prompt["6"]["inputs"]["text"] == "cafÃ©"
    save_audio(tmp_path / f"escaped{suffix}", prompt, workflow)  # core: json.dumps, ensure_ascii=True
    assert frontend_load(tmp_path / f"escaped{suffix}").prompt == prompt


def test_consumer_order_prompt_then_parameters(tmp_path: Path, graph: Any) -> None:
    prompt, _ = graph
    info = PngInfo()
    info.add_text("workflow", "not json")
    info.add_text("prompt", json.dumps(prompt))
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png", pnginfo=info)
    assert frontend_load(tmp_path / "a.png").loaded == "prompt"  # an unparsable workflow falls through
    info = PngInfo()
    info.add_text("prompt", json.dumps({"workflow": {"nodes": []}}))  # not API JSON
    info.add_text("parameters", "a cat")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png", pnginfo=info)
    assert frontend_load(tmp_path / "b.png").loaded == "parameters"


def test_webm_dispatch_is_by_mime_type(tmp_path: Path, graph: Any) -> None:
    prompt, workflow = graph
    save_webm(tmp_path / "clip.webm", prompt, workflow)
    assert frontend_load(tmp_path / "clip.webm", mime="").reason == NO_LOADER
    assert frontend_load(tmp_path / "clip.webm", mime="video/webm").loaded == "workflow"


@pytest.mark.parametrize("reader", [ffprobe, exiftool])
def test_missing_program_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch, reader: Any) -> None:
    monkeypatch.setattr("media_readers.shutil.which", lambda name: None)
    monkeypatch.delenv("PROVENANCE_REQUIRE_READERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not on PATH"):
        reader(CORPUS_MP3[0])
    monkeypatch.setenv("PROVENANCE_REQUIRE_READERS", "1")
    with pytest.raises(pytest.fail.Exception, match="PROVENANCE_REQUIRE_READERS=1"):
        reader(CORPUS_MP3[0])

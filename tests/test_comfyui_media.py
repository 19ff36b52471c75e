"""Against a real ComfyUI (COMFYUI_PATH): Save Video and Save Audio (Provenance) end to end.

One loopback server gets a PNG and a WAV in its input folder; LoadImage → RepeatImageBatch feeds
our video node in every format, an SD1.5 txt2img batch of 8 becomes an mp4, LoadAudio feeds our
audio node, and core's own SaveVideo, SaveWEBM, SaveAnimatedWEBP and SaveAudio outputs are stamped
by `convert` (a remux: every packet the same). Each file is read back with the pack's reader and
dropped on a port of the frontend's loaders. Without COMFYUI_PATH every test here is skipped.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comfyui_harness as harness
import media_readers as readers
import numpy as np
import pytest
from PIL import Image as PILImage
from test_comfyui import (
    CHECKPOINT,
    DEBUG_ARGS,
    DEBUG_ENV,
    core_view,
    file_hashes,
    files_of,
    model_files,
    posted_view,
    require_sd,
    sd_graph,
    targets_value,
    ui_workflow,
)

from comfyui_provenance.metadata.convert import CONVERTED, convert_file
from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.formats.video import packet_digests
from comfyui_provenance.metadata.read import read

pytestmark = pytest.mark.comfyui

VIDEO_FORMATS = ["mp4", "webm", "mkv", "webp", "apng", "gif"]
EXTENSIONS = {"apng": "png"}
FRONTEND_LOADS = {"mp4", "webm", "webp", "apng"}
FRAMES, FPS = 6, 12.0


@pytest.fixture(scope="module")
def checkout() -> Path:
    return harness.require_checkout("Save Video/Audio end-to-end tests")


@pytest.fixture(scope="module")
def feats(checkout: Path) -> harness.Features:
    found = harness.features(checkout)
    if not found.v3:
        pytest.skip("VIDEO inputs need ComfyUI's V3 API (comfy_api.latest, ≥ 0.3.48)")
    return found


@pytest.fixture(scope="module")
def server(checkout: Path, feats: harness.Features, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("comfyui_media")
    inputs = base / "input"
    inputs.mkdir()
    rng = np.random.default_rng(3)
    PILImage.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(inputs / "frame.png")
    rate = 22050
    tone = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 8000).astype("<i2")
    with wave.open(str(inputs / "tone.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(tone.tobytes())
    started = harness.Server(checkout, base, *DEBUG_ARGS, env=DEBUG_ENV)
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def frames_graph(save: dict[str, Any]) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "frame.png"}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": FRAMES}},
        "3": save,
    }


def video_node(source: dict[str, Any], prefix: str, fmt: str, **extra: Any) -> dict[str, Any]:
    return {
        "class_type": "ProvenanceSaveVideo",
        "inputs": {"filename_prefix": prefix, "format": fmt, "fps": FPS, **source, **extra},
    }


def run(server: Any, prompt: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    workflow = ui_workflow(prompt)
    prompt_id, entry = server.run(prompt, {"extra_pnginfo": {"workflow": workflow}})
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    return prompt_id, entry, workflow


def test_nodes_are_listed_with_their_contract(server: Any) -> None:
    info = server.get("/object_info")
    video, audio = info["ProvenanceSaveVideo"], info["ProvenanceSaveAudio"]
    assert list(video["input"]["required"]) == ["filename_prefix"]
    assert {"images", "video", "audio", "fps", "format", "crf", "lossless", "quality", "targets"} <= set(
        video["input"]["optional"]
    )
    assert video["input"]["optional"]["format"][1]["options"] == VIDEO_FORMATS
    assert video["input"]["required"]["filename_prefix"][1]["default"] == "video/ComfyUI"
    assert list(audio["input"]["required"]) == ["audio", "filename_prefix"]
    assert audio["input"]["optional"]["format"][1]["options"] == ["flac", "mp3", "opus"]
    assert video["output_node"] and audio["output_node"]
    assert video["description"] and audio["description"]


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
def test_repeated_image_in_every_format(server: Any, feats: harness.Features, fmt: str) -> None:
    save = video_node({"images": ["2", 0]}, f"media/rep_{fmt}", fmt, targets=targets_value(list(TARGETS), feats))
    prompt = frames_graph(save)
    prompt_id, entry, workflow = run(server, prompt)
    ui = entry["outputs"]["3"]
    ext = EXTENSIONS.get(fmt, fmt)
    assert ui["images"] == [{"filename": f"rep_{fmt}_00001_.{ext}", "subfolder": "media", "type": "output"}]
    assert ui["animated"] == [True]  # core's SaveVideo preview
    (path,) = files_of(server, ui["images"])
    record = read(path)
    assert record.provenance.prompt_id == prompt_id and record.provenance.save_node_id == "3"
    assert core_view(record.prompt) == posted_view(prompt)
    assert record.workflow == workflow
    assert record.generation.frames == FRAMES and record.generation.fps == pytest.approx(FPS, abs=0.2)
    assert (record.image.format, record.image.width, record.image.height) == (fmt, 64, 48)
    assert path.with_name(path.name + ".json").is_file()  # the sidecar target
    loaded = readers.frontend_load(path)
    if fmt in FRONTEND_LOADS:
        assert loaded.loaded == "workflow" and loaded.workflow == workflow, loaded.reason
    else:
        assert loaded.loaded is None


def test_sd15_batch_of_eight_to_mp4(server: Any, checkout: Path) -> None:
    require_sd(checkout)
    graph = sd_graph(11, {"20": video_node({"images": ["8", 0]}, "media/sd15", "mp4")})
    graph["5"]["inputs"]["batch_size"] = 8
    _, entry, workflow = run(server, graph)
    (path,) = files_of(server, entry["outputs"]["20"]["images"])
    record = read(path)
    gen = record.generation
    assert (gen.seed, gen.steps, gen.cfg, gen.sampler, gen.scheduler) == (11, 2, 6.5, "euler", "normal")
    assert gen.positive == "a lighthouse on a cliff, storm" and gen.frames == 8
    checkpoint = next(m for m in record.models if m.role == "checkpoint")
    assert checkpoint.name == CHECKPOINT
    assert checkpoint.hashes.get("sha256") == file_hashes(model_files(checkout)["checkpoint"])["sha256"]
    assert readers.frontend_load(path).workflow == workflow
    stream = next(s for s in readers.ffprobe(path)["streams"] if s["codec_type"] == "video")
    assert (stream["codec_name"], stream["nb_read_packets"]) == ("h264", 8)


def test_video_input_with_audio(server: Any) -> None:
    prompt = {
        **frames_graph({"class_type": "LoadAudio", "inputs": {"audio": "tone.wav"}}),
        "4": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 8.0, "audio": ["3", 0]}},
        "5": video_node({"video": ["4", 0]}, "media/from_video", "mp4"),
    }
    _, entry, _ = run(server, prompt)
    (path,) = files_of(server, entry["outputs"]["5"]["images"])
    record = read(path)
    assert record.generation.frames == FRAMES and record.generation.fps == pytest.approx(8.0)
    assert record.image.other["video"]["audio"]["codec"] == "aac"
    assert [s["codec_type"] for s in readers.pyav(path)["streams"]] == ["video", "audio"]


@pytest.mark.parametrize("fmt", ["flac", "mp3", "opus"])
def test_audio_node(server: Any, fmt: str) -> None:
    prompt = {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": "tone.wav"}},
        "2": {
            "class_type": "ProvenanceSaveAudio",
            "inputs": {"audio": ["1", 0], "filename_prefix": f"media/a_{fmt}", "format": fmt},
        },
    }
    _, entry, workflow = run(server, prompt)
    ui = entry["outputs"]["2"]
    assert ui["audio"] == [{"filename": f"a_{fmt}_00001.{fmt}", "subfolder": "media", "type": "output"}]
    (path,) = files_of(server, ui["audio"])
    record = read(path)
    assert record.workflow == workflow and record.image.other["audio"]["codec"] == fmt
    assert readers.frontend_load(path).workflow == workflow


CORE_SAVES = {
    "SaveVideo": (
        {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": FPS}},
        {
            "class_type": "SaveVideo",
            "inputs": {"video": ["4", 0], "filename_prefix": "core/v", "format": "mp4", "codec": "h264"},
        },
    ),
    "SaveWEBM": (
        None,
        {
            "class_type": "SaveWEBM",
            "inputs": {"images": ["2", 0], "filename_prefix": "core/w", "codec": "vp9", "fps": FPS, "crf": 32.0},
        },
    ),
    "SaveAnimatedWEBP": (
        None,
        {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["2", 0],
                "filename_prefix": "core/a",
                "fps": FPS,
                "lossless": True,
                "quality": 80,
                "method": "default",
            },
        },
    ),
    "SaveAudio": (
        {"class_type": "LoadAudio", "inputs": {"audio": "tone.wav"}},
        {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0], "filename_prefix": "core/s"}},
    ),
}


@pytest.mark.parametrize("node", list(CORE_SAVES))
def test_core_outputs_are_stamped_by_convert(server: Any, node: str) -> None:
    source, save = CORE_SAVES[node]
    prompt = frames_graph(save)
    if source is not None:
        prompt["4"] = source
    _, entry, workflow = run(server, prompt)
    outputs = entry["outputs"]["3"]
    (path,) = files_of(server, outputs.get("images") or outputs.get("audio"))
    before = packet_digests(path) if path.suffix != ".webp" else None
    outcome = convert_file(path, version="test")
    assert outcome.status == CONVERTED, outcome.reason
    if before is not None:
        assert packet_digests(path) == before
    record = read(path)
    assert record.workflow == workflow and record.provenance.capture_mode == "imported"
    assert core_view(record.prompt) == posted_view(prompt)
    if node == "SaveAnimatedWEBP":  # core's (Pillow's) writer merged the 6 identical frames into one still
        with PILImage.open(path) as image:
            assert image.n_frames == 1 and record.generation.frames is None
    elif node != "SaveAudio":
        assert record.generation.frames == FRAMES
    assert readers.frontend_load(path).workflow == workflow

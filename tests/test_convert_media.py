"""`provenance convert` on video and audio that core ComfyUI and VideoHelperSuite wrote: a remux, never a re-encode.

The files are written exactly as core's SaveVideo, SaveWEBM and SaveAudio nodes write them
(test_media_readers' writers) and as VHS's ffmpeg command writes them (both its layouts), stamped
by convert_file, then checked: every packet identical (bytes and timing), our record read back with
the graph's facts and the file's frames, and ffprobe, exiftool and the frontend emulation still
finding the workflow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import av
import media_readers as readers
import pytest
from conftest import REQUIRE_READERS, expected, load_workflow
from test_media_readers import save_audio, save_video, save_webm

from comfyui_provenance.metadata.convert import CONVERTED, SKIPPED, convert_file
from comfyui_provenance.metadata.errors import SerializeError
from comfyui_provenance.metadata.formats.video import packet_digests, same_packets
from comfyui_provenance.metadata.read import extract, read

WORKFLOW = "default"


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Any], dict[str, Any]]:
    return load_workflow(WORKFLOW)


def converted(path: Path) -> Any:
    before = packet_digests(path)
    outcome = convert_file(path, version="test")
    assert outcome.status == CONVERTED, outcome.reason
    assert packet_digests(path) == before  # a remux: every packet the same, none re-encoded
    return outcome


def check_record(path: Path, frames: int | None) -> None:
    record = read(path)
    want = expected(WORKFLOW)
    assert (record.generation.seed, record.generation.steps) == (want["seed"], want["steps"])
    assert record.provenance.capture_mode == "imported"
    assert extract(path).record_json is not None
    if frames is not None:
        assert record.generation.frames == frames and record.image.other["video"]["frames"] == frames


@pytest.mark.parametrize(
    ("name", "writer", "frames"),
    [("x.mp4", save_video, 4), ("x.mkv", save_video, 4), ("x.webm", save_webm, 4)],
)
def test_core_video(tmp_path: Path, graph: Any, name: str, writer: Any, frames: int) -> None:
    path = tmp_path / name
    writer(path, *graph)
    outcome = converted(path)
    check_record(path, frames)
    probe = readers.ffprobe(path)
    assert json.loads(readers.tag(probe, "prompt") or "null") == graph[0]
    assert readers.tag(probe, "comfyui_provenance") is not None
    assert "Steps: " in (readers.tag(probe, "comment") or "")
    if name != "x.mkv":
        assert readers.frontend_load(path).loaded == "workflow"
    assert outcome.record.image.format == name.rsplit(".", 1)[1]
    assert convert_file(path).status == SKIPPED  # stamped once


@pytest.mark.parametrize("suffix", [".flac", ".mp3", ".opus"])
def test_core_audio(tmp_path: Path, graph: Any, suffix: str) -> None:
    path = tmp_path / f"x{suffix}"
    save_audio(path, *graph)
    converted(path)
    check_record(path, None)
    assert readers.frontend_load(path).loaded == "workflow"
    assert readers.tag(readers.ffprobe(path), "comfyui_provenance") is not None


def test_mp4_moov_moves_to_the_front(tmp_path: Path, graph: Any) -> None:
    path = tmp_path / "late.mp4"
    save_video(path, *graph, movflags="use_metadata_tags")  # core writing to a BytesIO: moov at the end
    assert path.read_bytes().find(b"moov") > path.read_bytes().find(b"mdat")
    converted(path)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")


def ffmpeg_vhs(path: Path, tags: dict[str, str]) -> None:
    """VHS_VideoCombine's ffmpeg call: an FFMETADATA file as input 0, -movflags use_metadata_tags."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        if REQUIRE_READERS:
            pytest.fail("ffmpeg is not installed")
        pytest.skip("ffmpeg is not installed")
    meta = path.with_suffix(".txt")

    def escape(text: str) -> str:
        for char in "\\=;#\n":
            text = text.replace(char, "\\" + char)
        return text

    meta.write_text(";FFMETADATA1\n" + "".join(f"{k}={escape(v)}\n" for k, v in tags.items()), "utf-8")
    command = [ffmpeg, "-v", "error", "-y", "-i", str(meta), "-f", "lavfi", "-i", "testsrc=size=64x64:rate=8"]
    command += ["-frames:v", "6", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-map_metadata", "0"]
    command += ["-movflags", "use_metadata_tags", str(path)]
    subprocess.run(command, check=True, capture_output=True)


def test_vhs_both_layouts(tmp_path: Path, graph: Any) -> None:
    prompt, workflow = graph
    layouts = {
        "new.mp4": {"prompt": json.dumps(prompt), "workflow": json.dumps(workflow)},
        "old.mp4": {"comment": json.dumps({"prompt": prompt, "workflow": workflow})},
        "new.mkv": {"prompt": json.dumps(prompt), "workflow": json.dumps(workflow)},
    }
    for name, tags in layouts.items():
        path = tmp_path / name
        ffmpeg_vhs(path, tags)
        converted(path)
        check_record(path, 6)
        assert read(path).generation.fps == pytest.approx(8)


def test_the_packet_check_refuses_a_re_encode(tmp_path: Path, graph: Any) -> None:
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    save_video(a, *graph)
    shutil.copyfile(a, tmp_path / "copy.mkv")
    same_packets(a, tmp_path / "copy.mkv")  # identical: no error
    with av.open(str(a)) as source, av.open(str(b), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.options = {"crf": "40"}
        for frame in source.decode(video=0):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(SerializeError, match="packets differ"):
        same_packets(a, b)

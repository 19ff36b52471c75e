"""The Matroska/WebM reader on files PyAV, the ffmpeg CLI and the EBML writer in hostile_matroska made.

Round trips first (core's SaveWEBM layout, ours, VHS's through the ffmpeg CLI): the same tags come back,
and the media facts match what PyAV, ffprobe and exiftool read from the same file. Then layouts only
some writers make (unknown sizes, lacing, nested and targeted tags), the limits, and every hostile case.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import hostile
import hostile_matroska as mk
import numpy as np
import pytest
from conftest import expected, load_workflow

from comfyui_provenance.metadata import read
from comfyui_provenance.metadata.budget import Budget, BudgetExceeded
from comfyui_provenance.metadata.errors import ReadError
from comfyui_provenance.metadata.formats import matroska
from comfyui_provenance.metadata.formats.base import Embedded

PROMPT = {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20}}}
WORKFLOW = {"nodes": [{"id": 3, "type": "KSampler", "widgets_values": [5, "fixed", 20]}], "links": []}
RECORD = json.dumps({"schema": "comfyui-provenance/1", "generation": {"seed": 5}})
INFOTEXT = "a red fox\nNegative prompt: blurry\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x48"


def ours() -> dict[str, str]:
    """What our save node writes: core's graphs, our record, the A1111 text as the comment."""
    graphs = {"prompt": json.dumps(PROMPT), "workflow": json.dumps(WORKFLOW)}
    return {**graphs, "comfyui_provenance": RECORD, "comment": INFOTEXT}


def pyav_facts(path: Path) -> dict[str, Any]:
    """What PyAV (libavformat) reads from the same file, in the reader's vocabulary."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        facts: dict[str, Any] = {"width": video.width, "height": video.height, "codec": video.codec_context.name}
        facts["fps"] = round(float(video.average_rate), 3)
        if container.duration is not None:
            facts["duration_s"] = container.duration / 1e6
        if container.streams.audio:
            sound = container.streams.audio[0]
            facts["audio"] = {"codec": sound.codec_context.name, "sample_rate": sound.rate, "channels": sound.channels}
        facts["frames"] = sum(1 for packet in container.demux(video) if packet.size)
    return facts


def reader_facts(found: Embedded) -> dict[str, Any]:
    facts = {"width": found.width, "height": found.height, **found.media}
    if "duration_s" in facts:
        facts["duration_s"] = round(facts["duration_s"], 6)
    return facts


def check_ours(found: Embedded) -> None:
    assert found.comfy == {"prompt": json.dumps(PROMPT), "workflow": json.dumps(WORKFLOW)}
    assert found.record_json == RECORD
    assert found.infotext == INFOTEXT


# -- round trips ----------------------------------------------------------------------------------------


def test_webm_vp9_opus_reads_back_our_tags_and_what_pyav_sees(tmp_path: Path) -> None:
    path = mk.video(tmp_path / "a.webm", audio="libopus", metadata=ours())
    found = read.extract(path)
    assert found.format == "webm"
    check_ours(found)
    assert reader_facts(found) == pyav_facts(path)
    assert found.media["frames"] == 5 and found.media["fps"] == 24.0 and found.media["codec"] == "vp9"
    assert found.media["audio"] == {"codec": "opus", "sample_rate": 48000, "channels": 2}


def test_mkv_h264_aac_reads_back_our_tags_and_what_pyav_sees(tmp_path: Path) -> None:
    path = mk.video(tmp_path / "a.mkv", codec="libx264", audio="aac", rate=Fraction(16), frames=9, metadata=ours())
    found = read.extract(path)
    assert found.format == "mkv"
    check_ours(found)
    assert reader_facts(found) == pyav_facts(path)
    assert (found.media["codec"], found.media["frames"], found.media["fps"]) == ("h264", 9, 16.0)


def test_core_savewebm_layout_reads_as_the_workflow(tmp_path: Path) -> None:
    """comfy_extras SaveWEBM: json.dumps of the prompt and each extra_pnginfo key, VP9, yuv420p, no audio."""
    prompt, workflow = load_workflow("default")
    path = tmp_path / "ComfyUI_00001_.webm"
    with av.open(str(path), mode="w") as container:
        container.metadata["prompt"] = json.dumps(prompt)
        for key, value in {"workflow": workflow}.items():
            container.metadata[key] = json.dumps(value)
        stream = container.add_stream("libvpx-vp9", rate=Fraction(round(8.0 * 1000), 1000))
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 64, 48, "yuv420p", 0
        stream.options = {"crf": "32"}
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 80, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        container.mux(stream.encode())
    found = read.extract(path)
    assert json.loads(found.comfy["prompt"]) == prompt and json.loads(found.comfy["workflow"]) == workflow
    assert found.record_json is None and found.infotext is None and "audio" not in found.media
    assert (found.media["frames"], found.media["fps"]) == (3, 8.0)
    record = read.read(path)
    want = expected("default")
    assert (record.generation.seed, record.generation.steps) == (want["seed"], want["steps"])
    assert record.generation.positive == want["positive"]
    assert record.image.format == "webm"


def test_a_value_quoted_twice_comes_back_quoted_once(tmp_path: Path) -> None:
    twice = {"prompt": json.dumps(json.dumps(PROMPT)), "workflow": json.dumps(json.dumps(WORKFLOW))}
    found = read.extract(mk.video(tmp_path / "q.webm", metadata=twice, frames=2))
    assert found.comfy == {"prompt": json.dumps(PROMPT), "workflow": json.dumps(WORKFLOW)}


def test_non_ascii_prompts_come_back_as_written(tmp_path: Path) -> None:
    prompt = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "一只猫 🐱, Größe, ελληνικά"}}}
    tags = {"prompt": json.dumps(prompt, ensure_ascii=False), "comment": "ein Fuchs 🦊\nSteps: 4, Seed: 1"}
    found = read.extract(mk.video(tmp_path / "u.mkv", codec="libx264", metadata=tags, frames=2))
    assert found.comfy["prompt"] == tags["prompt"] and "一只猫 🐱" in found.comfy["prompt"]
    assert found.infotext == tags["comment"]


def test_a_3_mib_workflow_comes_back_whole(tmp_path: Path) -> None:
    nodes = [{"id": i, "type": "Note", "widgets_values": ["x" * 300]} for i in range(10_000)]
    workflow = json.dumps({"nodes": nodes, "links": []})
    assert len(workflow) > 3 * (1 << 20)
    found = read.extract(mk.video(tmp_path / "big.webm", metadata={"prompt": "{}", "workflow": workflow}, frames=2))
    assert found.comfy["workflow"] == workflow


def test_a_one_frame_video(tmp_path: Path) -> None:
    path = mk.video(tmp_path / "one.webm", frames=1, rate=Fraction(12), metadata=ours())
    found = read.extract(path)
    check_ours(found)
    assert found.media["frames"] == 1 and found.media["fps"] == 12.0
    assert reader_facts(found) == pyav_facts(path)


def test_an_audio_only_mka(tmp_path: Path) -> None:
    path = tmp_path / "a.mka"
    with av.open(str(path), "w") as container:
        container.metadata["comment"] = INFOTEXT
        sound = container.add_stream("libopus", rate=48000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 9600), np.float32), format="flt", layout="mono")
        samples.sample_rate = 48000
        container.mux(sound.encode(samples))
        container.mux(sound.encode())
    with av.open(str(path)) as container:
        duration = container.duration / 1e6
        channels = container.streams.audio[0].channels
    found = read.extract(path)
    assert found.format == "mkv" and found.infotext == INFOTEXT and found.width is None
    audio = {"codec": "opus", "sample_rate": 48000, "channels": channels}
    assert found.media == {"duration_s": pytest.approx(duration), "audio": audio}


def test_container_tags_beat_track_tags_and_track_tags_still_count(tmp_path: Path) -> None:
    both = mk.video(tmp_path / "b.webm", metadata={"prompt": '{"s": 1}'}, stream_metadata={"prompt": '{"t": 1}'})
    assert read.extract(both).comfy["prompt"] == '{"s": 1}'
    track_only = mk.video(tmp_path / "t.webm", stream_metadata={"workflow": '{"t": 1}'})
    assert read.extract(track_only).comfy == {"workflow": '{"t": 1}'}


# -- other readers agree --------------------------------------------------------------------------------


def needs(tool: str) -> Any:
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed")


def run_json(*command: str) -> Any:
    return json.loads(subprocess.run(command, capture_output=True, check=True, text=True).stdout)


@pytest.mark.readers
@needs("ffprobe")
def test_ffprobe_reads_the_same_tags_and_facts(tmp_path: Path) -> None:
    path = mk.video(tmp_path / "p.webm", audio="libopus", metadata=ours())
    probe = run_json(
        "ffprobe", "-v", "error", "-count_packets", "-show_format", "-show_streams", "-of", "json", str(path)
    )
    found = read.extract(path)
    tags = probe["format"]["tags"]
    assert tags["PROMPT"] == found.comfy["prompt"] and tags["WORKFLOW"] == found.comfy["workflow"]
    assert tags["COMFYUI_PROVENANCE"] == found.record_json and tags["COMMENT"] == found.infotext
    video, sound = probe["streams"]
    assert (video["codec_name"], video["width"], video["height"]) == (found.media["codec"], found.width, found.height)
    assert int(video["nb_read_packets"]) == found.media["frames"]
    assert float(probe["format"]["duration"]) == pytest.approx(found.media["duration_s"])
    assert (sound["codec_name"], int(sound["sample_rate"]), sound["channels"]) == tuple(found.media["audio"].values())


@pytest.mark.readers
@needs("exiftool")
def test_exiftool_reads_the_same_tags_and_facts(tmp_path: Path) -> None:
    path = mk.video(tmp_path / "e.mkv", codec="libx264", audio="aac", metadata=ours())
    tool = run_json("exiftool", "-j", "-a", "-G1", str(path))[0]
    found = read.extract(path)
    assert tool["Matroska:DocType"] == "matroska"
    assert tool["Matroska:Prompt"] == found.comfy["prompt"] and tool["Matroska:Workflow"] == found.comfy["workflow"]
    assert tool["Matroska:ComfyuiProvenance"] == found.record_json and tool["Matroska:Comment"] == found.infotext
    assert (tool["Track1:ImageWidth"], tool["Track1:ImageHeight"]) == (found.width, found.height)
    assert tool["Track1:VideoFrameRate"] == found.media["fps"]
    assert tool["Track2:AudioSampleRate"] == found.media["audio"]["sample_rate"]
    assert tool["Track2:AudioChannels"] == found.media["audio"]["channels"]


# -- the ffmpeg CLI (VideoHelperSuite's path) ----------------------------------------------------------


def ffmpeg(*args: str) -> None:
    source = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=8:duration=1"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *args], check=True, capture_output=True)


def ffmetadata(tags: dict[str, str]) -> str:
    """An FFMETADATA file as VHS writes one: = ; # \\ and newlines escaped with a backslash."""
    lines = [";FFMETADATA1"]
    for key, value in tags.items():
        escaped = value
        for char in "\\=;#\n":
            escaped = escaped.replace(char, "\\" + char)
        lines.append(f"{key}={escaped}")
    return "\n".join(lines) + "\n"


TRICKY = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a=b; #tag \\ back\nslash"}}}


@pytest.mark.readers
@needs("ffmpeg")
def test_ffmpeg_cli_metadata_options(tmp_path: Path) -> None:
    path = tmp_path / "vhs.webm"
    prompt, workflow = json.dumps(TRICKY), json.dumps(WORKFLOW)
    ffmpeg("-c:v", "libvpx-vp9", "-metadata", f"prompt={prompt}", "-metadata", f"workflow={workflow}", str(path))
    found = read.extract(path)
    assert found.comfy == {"prompt": prompt, "workflow": workflow}
    assert reader_facts(found) == pyav_facts(path)
    assert found.media["frames"] == 8


@pytest.mark.readers
@needs("ffmpeg")
@pytest.mark.parametrize(
    ("tags", "extension"),
    [
        ({"prompt": json.dumps(TRICKY), "workflow": json.dumps(WORKFLOW)}, "mkv"),
        # VHS before 2026-01: one comment holding {"prompt": {...}, "workflow": {...}}.
        ({"comment": json.dumps({"prompt": TRICKY, "workflow": WORKFLOW})}, "webm"),
    ],
)
def test_an_ffmetadata_file_as_vhs_writes_one(tags: dict[str, str], extension: str, tmp_path: Path) -> None:
    meta = tmp_path / "metadata.txt"
    meta.write_text(ffmetadata(tags), "utf-8")
    path = tmp_path / f"vhs.{extension}"
    codec = "libx264" if extension == "mkv" else "libvpx-vp9"
    ffmpeg("-i", str(meta), "-map_metadata", "1", "-c:v", codec, "-metadata", "creation_time=now", str(path))
    found = read.extract(path)
    assert json.loads(found.comfy["prompt"]) == TRICKY and json.loads(found.comfy["workflow"]) == WORKFLOW


# -- layouts only some writers make ---------------------------------------------------------------------


def test_unknown_size_segment_as_the_muxer_writes_to_a_pipe(tmp_path: Path) -> None:
    pipe = mk.Pipe()
    mk.video(pipe, muxer="webm", frames=7, metadata=ours())
    path = tmp_path / "piped.webm"
    path.write_bytes(bytes(pipe.data))
    segment_at = sum(mk.element_header(pipe.data, 0)[1:])
    assert mk.element_header(pipe.data, segment_at)[1] == (1 << 56) - 1  # the Segment's size: unknown
    found = read.extract(path)
    check_ours(found)
    assert "duration_s" not in found.media
    facts = pyav_facts(path)
    assert found.media["frames"] == facts["frames"] == 7 and found.media["fps"] == facts["fps"] == 24.0


def test_unknown_size_clusters_end_where_the_next_level_1_element_begins(tmp_path: Path) -> None:
    """What browsers' MediaRecorder writes: Segment and Clusters of unknown size, Tags after the Clusters."""
    source = mk.video(tmp_path / "s.webm", metadata=ours(), frames=40)
    data = source.read_bytes()
    children = mk.segment_children(data)
    clusters = [mk.el(i, p, size=mk.UNKNOWN) for i, p in children if i == mk.CLUSTER]
    others = [mk.el(i, p) for i, p in children if i not in (mk.CLUSTER, mk.TAGS, 0x114D9B74, 0x1C53BB6B)]
    tags = [mk.el(i, p) for i, p in children if i == mk.TAGS]
    header_end = sum(mk.element_header(data, 0)[1:])
    path = tmp_path / "recorded.webm"
    # The clusters twice, so an unknown-size Cluster also ends where the next one begins.
    path.write_bytes(data[:header_end] + mk.el(mk.SEGMENT, *others, *clusters, *clusters, *tags, size=mk.UNKNOWN))
    found = read.extract(path)
    check_ours(found)
    assert found.media["frames"] == 80 == pyav_facts(path)["frames"]


def test_fps_from_block_timestamps_when_default_duration_is_absent(tmp_path: Path) -> None:
    for rate, frames in ((Fraction(24), 48), (Fraction(16), 33), (Fraction(30000, 1001), 90)):
        data = bytearray(mk.video(tmp_path / "d.webm", rate=rate, frames=frames).read_bytes())
        at = data.index(b"\x23\xe3\x83\x84")  # DefaultDuration, 4 bytes: becomes a Void of the same length
        data[at : at + 8] = b"\xec\x86" + b"\x00" * 6
        path = tmp_path / "no-default-duration.webm"
        path.write_bytes(bytes(data))
        found = read.extract(path)
        assert found.media["fps"] == round(float(rate), 3) == pyav_facts(path)["fps"]
        assert found.media["frames"] == frames


def test_hand_built_blocks_lacing_targets_and_nesting(tmp_path: Path) -> None:
    """Laced frames count one each, BlockGroups count, other tracks do not; chapter-targeted tags are
    dropped, nested ones named PARENT/CHILD (so no sub-tag passes for the prompt), as ffprobe does."""
    tags = mk.el(
        mk.TAGS,
        mk.tag(mk.simple_tag("TITLE", "t", mk.simple_tag("PROMPT", '{"nested": 1}'))),
        mk.tag(mk.simple_tag("PROMPT", '{"chapter": 1}'), chapter_uid=7),
        mk.tag(mk.simple_tag("PROMPT", '{"track": 1}'), track_uid=101),
        mk.tag(mk.simple_tag("WORKFLOW", '{"segment": 1}')),
    )
    cluster = mk.el(
        mk.CLUSTER,
        mk.uint(mk.CLUSTER_TIMESTAMP, 1000),
        mk.simple_block(1, 0),
        mk.simple_block(2, 0),
        mk.simple_block(1, 125, laced_frames=3),
        mk.el(mk.BLOCK_GROUP, mk.el(mk.BLOCK, mk.size_vint(1), b"\x01\xf4\x00\x00")),
        mk.el(mk.VOID, b"\x00" * 3),
        mk.el(0xBF, b"\x00" * 4),  # CRC-32
    )
    info = mk.el(mk.INFO, mk.uint(mk.TIMESTAMP_SCALE, 1_000_000), mk.el(mk.DURATION, b"\x44\x7a\x00\x00"))
    tracks = mk.el(mk.TRACKS, mk.video_track(codec="V_AV1"), mk.audio_track(codec="A_AAC/MPEG4/LC", rate=44100.0))
    path = tmp_path / "hand.mkv"
    path.write_bytes(mk.matroska(mk.el(mk.VOID, b"\x00" * 5), info, tracks, tags, cluster, doctype="matroska"))
    found = read.extract(path)
    assert found.comfy == {"prompt": '{"track": 1}', "workflow": '{"segment": 1}'}
    assert (found.width, found.height) == (64, 48)
    assert found.media == {
        "duration_s": 1.0,
        "codec": "av1",
        "frames": 5,
        "fps": 8.0,  # 4 intervals over 500 ms: 8 frames a second
        "audio": {"codec": "aac", "sample_rate": 44100, "channels": 2},
    }
    if shutil.which("ffprobe"):
        tags_seen = run_json("ffprobe", "-v", "error", "-show_format", "-of", "json", str(path))["format"]["tags"]
        assert tags_seen == {"TITLE": "t", "TITLE/PROMPT": '{"nested": 1}', "WORKFLOW": '{"segment": 1}'}


# -- limits ---------------------------------------------------------------------------------------------


def test_a_tagstring_over_the_budget_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = mk.video(tmp_path / "b.webm", metadata={"prompt": json.dumps({"text": "x" * 20_000})}, frames=1)
    with pytest.raises(BudgetExceeded, match="a TagString"):
        read.extract(path, Budget(metadata_max=10_000))


def test_past_the_blocks_counted_the_frames_are_left_out(tmp_path: Path) -> None:
    count = matroska.BLOCKS_COUNTED_MAX + 1
    cluster = mk.el(mk.CLUSTER, mk.uint(mk.CLUSTER_TIMESTAMP, 0), mk.simple_block(1, 0) * count)
    tracks = mk.el(mk.TRACKS, mk.video_track(default_duration=40_000_000))
    path = tmp_path / "long.webm"
    path.write_bytes(mk.matroska(tracks, mk.comment_tags(), cluster, cluster))
    found = read.extract(path)
    assert found.infotext == mk.COMMENT
    assert found.media == {"codec": "vp9", "fps": 25.0}


# -- hostile files, in this process ---------------------------------------------------------------------

MATROSKA_CASES = [name for name in hostile.CASES if name.startswith("mkv-")]


def test_the_hostile_cases_cover_the_brief() -> None:
    names = " ".join(MATROSKA_CASES)
    for needed in ("truncated", "past-parent", "exabytes", "2-gib", "100000-deep", "million-voids", "vint", "evil"):
        assert needed in names, needed


@pytest.mark.parametrize("name", MATROSKA_CASES)
def test_hostile_matroska_file(name: str, tmp_path: Path) -> None:
    made = hostile.CASES[name](tmp_path / name)
    if made.expect == "reads":
        record = read.read(made.image)
        assert record.generation.seed == 1234
        return
    with pytest.raises(ReadError) as caught:
        read.read(made.image)
    message = str(caught.value)
    assert "\n" not in message and str(made.image) not in message and made.image.name not in message
    assert made.says is not None and made.says in message.lower(), message

"""FLAC, MP3 and Ogg readers: PyAV-written files in core's layout plus ours, the real ComfyUI MP3s of
the corpus, hand-built ID3 variants, and what ffprobe and exiftool read from the very same files."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from corpus_facts import facts, missing, same
from hostile_audio import MPEG_HEADER, id3_frame, id3_tag, mpeg_frames, syncsafe

from comfyui_provenance.metadata.budget import Budget
from comfyui_provenance.metadata.errors import ReadError
from comfyui_provenance.metadata.formats import flac, mp3, ogg
from comfyui_provenance.metadata.read import extract, read

CORPUS = Path(__file__).parent / "corpus" / "images"
MIB = 1 << 20
PROMPT = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "stable_audio_open_1.0.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "rain on a tin roof, 猫", "clip": ["4", 1]}},
    "3": {
        "class_type": "KSampler",
        "inputs": {"seed": 7, "steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
    },
}
WORKFLOW = {"last_node_id": 6, "nodes": [{"id": 6, "type": "CLIPTextEncode", "widgets_values": ["rain, 猫"]}]}
RECORD = json.dumps(
    {
        "schema": "comfyui-provenance/1",
        "generation": {"positive": "rain on a tin roof, 猫 ✓", "seed": 7},
        "provenance": {},
    },
    ensure_ascii=False,
)
INFOTEXT = "rain on a tin roof, café, 猫\nNegative prompt: x\nSteps: 20, Sampler: Euler, CFG scale: 5, Seed: 7"

# kind: (muxer, encoder, sample rate, extension, codec read, Embedded.format)
KINDS = {
    "flac": ("flac", "flac", 44_100, ".flac", "flac", "flac"),
    "mp3": ("mp3", "libmp3lame", 44_100, ".mp3", "mp3", "mp3"),
    "opus": ("opus", "libopus", 48_000, ".opus", "opus", "opus"),
    "vorbis": ("ogg", "vorbis", 44_100, ".ogg", "vorbis", "ogg"),
}
CONTAINERS = {"flac": flac.FlacContainer(), "mp3": mp3.Mp3Container(), "ogg": ogg.OggContainer()}


def tags(workflow: dict[str, Any] | None = None) -> dict[str, str]:
    """Core's SaveAudio keys (json.dumps of each) plus ours, as every writer passes them to PyAV."""
    return {
        "prompt": json.dumps(PROMPT),
        "workflow": json.dumps(workflow or WORKFLOW),
        "comfyui_provenance": RECORD,
        "comment": INFOTEXT,
    }


def write(path: Path, kind: str, metadata: dict[str, str]) -> Path:
    """One second of a 440 Hz sine in stereo, encoded by PyAV with `metadata` as container tags."""
    muxer, encoder, rate = KINDS[kind][:3]
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    stereo = np.stack([wave, wave])
    with av.open(str(path), "w", format=muxer) as out:
        for key, value in metadata.items():
            out.metadata[key] = value
        stream = out.add_stream(encoder, rate=rate, layout="stereo", options={"strict": "experimental"})
        for start in range(0, rate, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(stereo[:, start : start + 1024]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    return {kind: write(folder / f"x{KINDS[kind][3]}", kind, tags()) for kind in KINDS}


def pyav_media(path: Path) -> tuple[int, int, float]:
    with av.open(str(path)) as container:
        context = container.streams.audio[0].codec_context
        return context.sample_rate, context.channels, container.duration / 1e6


def tool(*argv: str) -> Any:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    done = subprocess.run(argv, capture_output=True, check=True)
    return json.loads(done.stdout)


# -- PyAV-written files --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_pyav_written_file_reads_back(kind: str, files: dict[str, Path]) -> None:
    found = extract(files[kind])
    assert found.format == KINDS[kind][5]
    assert found.comfy == {"prompt": json.dumps(PROMPT), "workflow": json.dumps(WORKFLOW)}
    assert found.record_json == RECORD
    assert found.infotext == INFOTEXT
    rate, channels, duration = pyav_media(files[kind])
    assert found.media["audio"] == {"codec": KINDS[kind][4], "sample_rate": rate, "channels": channels}
    assert (rate, channels) == (KINDS[kind][2], 2)
    assert abs(found.media["duration_s"] - duration) < 0.1
    assert abs(found.media["duration_s"] - 1.0) < 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_the_record_reads_from_every_kind(kind: str, files: dict[str, Path]) -> None:
    record = read(files[kind])
    assert record.generation.positive == "rain on a tin roof, 猫 ✓"
    assert record.generation.seed == 7


@pytest.mark.parametrize("kind", ["flac", "mp3", "opus"])
def test_a_3_mib_workflow(kind: str, tmp_path: Path) -> None:
    big = {"last_node_id": 1, "nodes": [], "notes": "猫 and rain, " * (3 * MIB // 16)}
    path = write(tmp_path / f"big{KINDS[kind][3]}", kind, tags(big))
    found = extract(path)
    assert len(found.comfy["workflow"]) > 3 * MIB // 2
    assert json.loads(found.comfy["workflow"]) == big
    assert found.comfy["prompt"] == json.dumps(PROMPT)


def test_flac_in_ogg(files: dict[str, Path], tmp_path: Path) -> None:
    """FLAC mapped into Ogg (PyAV's muxer refuses it, so ffmpeg copies the PyAV-written stream)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    path = tmp_path / "x.oga"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(files["flac"]), "-c", "copy", str(path)], check=True)
    found = extract(path)
    assert found.format == "ogg"
    assert found.comfy["prompt"] == json.dumps(PROMPT)
    assert found.infotext == INFOTEXT
    assert found.media["audio"] == {"codec": "flac", "sample_rate": 44_100, "channels": 2}
    assert abs(found.media["duration_s"] - pyav_media(path)[2]) < 0.1


# -- what other readers see in the same files ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_ffprobe_sees_the_same(kind: str, files: dict[str, Path]) -> None:
    probe = tool("ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(files[kind]))
    stream = probe["streams"][0]
    # Ogg keeps the comments in the stream's header packets, so ffprobe lists them there.
    seen = stream["tags"] if KINDS[kind][0] in ("ogg", "opus") else probe["format"]["tags"]
    found = extract(files[kind])
    assert seen["prompt"] == found.comfy["prompt"] == json.dumps(PROMPT)
    assert seen["workflow"] == found.comfy["workflow"]
    assert seen["comfyui_provenance"] == found.record_json == RECORD
    assert seen["comment"] == found.infotext == INFOTEXT
    audio = found.media["audio"]
    assert (stream["codec_name"], int(stream["sample_rate"]), stream["channels"]) == (
        audio["codec"],
        audio["sample_rate"],
        audio["channels"],
    )


@pytest.mark.parametrize("kind", KINDS)
def test_exiftool_sees_the_same(kind: str, files: dict[str, Path]) -> None:
    # -G1:4 tells ID3's several UserDefinedText tags apart (Copy1, Copy2...): one JSON key would hide them.
    groups = "-G1:4" if kind == "mp3" else "-G1"
    seen = tool("exiftool", "-j", "-a", groups, str(files[kind]))[0]
    found = extract(files[kind])
    if kind == "mp3":
        texts = {v.partition(") ")[0][1:]: v.partition(") ")[2] for k, v in seen.items() if "UserDefinedText" in k}
        assert texts == {
            "prompt": found.comfy["prompt"],
            "workflow": found.comfy["workflow"],
            "comfyui_provenance": found.record_json,
            "comment": found.infotext,
        }
        assert seen["MPEG:SampleRate"] == found.media["audio"]["sample_rate"]
        return
    assert seen["Vorbis:Prompt"] == found.comfy["prompt"] == json.dumps(PROMPT)
    assert seen["Vorbis:Workflow"] == found.comfy["workflow"]
    assert seen["Vorbis:ComfyuiProvenance"] == found.record_json
    assert seen["Vorbis:Description"] == found.infotext == INFOTEXT  # ffmpeg writes `comment` as DESCRIPTION


# -- the corpus: MP3s written by ComfyUI's SaveAudioMP3 --------------------------------------------

EXPECTED = json.loads((CORPUS / "expected.json").read_text("utf-8"))
CORPUS_MP3 = sorted(name for name in EXPECTED if name.endswith(".mp3"))


@pytest.mark.parametrize("name", CORPUS_MP3)
def test_corpus_mp3(name: str) -> None:
    path, want = CORPUS / name, EXPECTED[name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == want["sha256"]
    found = extract(path)
    assert sorted(found.comfy) == want["embedded_keys"]
    prompt, workflow = json.loads(found.comfy["prompt"]), json.loads(found.comfy["workflow"])
    assert len(prompt) == want["prompt_nodes"]
    assert len(workflow["nodes"]) == want["workflow_nodes"]
    assert found.media["audio"] == {"codec": "mp3", "sample_rate": 44_100, "channels": 2}
    assert abs(found.media["duration_s"] - pyav_media(path)[2]) < 0.1
    record = read(path)
    checked = list(facts(name, record, want["expected_from_prompt"]))
    wrong = [f for f in checked if not same(f.got, f.want) and not missing(f.got, f.want)]
    assert not wrong, wrong
    if "api_node" not in want["expected_from_prompt"]:
        assert all(same(f.got, f.want) for f in checked), [f for f in checked if not same(f.got, f.want)]


def test_corpus_api_mp3_prompt_holds_the_expected_inputs() -> None:
    """The API node is not parsed into generation fields, but the prompt read is the one written."""
    name = "api_stability_ai_text_to_audio-1.mp3"
    want = EXPECTED[name]["expected_from_prompt"]
    prompt = json.loads(extract(CORPUS / name).comfy["prompt"])
    node = next(n for n in prompt.values() if n["class_type"] == want["api_node"])
    inputs = node["inputs"]
    assert (inputs["prompt"], inputs["seed"], inputs["steps"]) == (want["positive"], want["seed"], want["steps"])
    assert (inputs["model"], inputs["duration"]) == (want["model"], want["duration"])


# -- hand-built ID3 tags in front of real MPEG audio -------------------------------------------------


@pytest.fixture(scope="module")
def mpeg_audio(files: dict[str, Path]) -> bytes:
    """The PyAV-written MP3's frames (its Info frame first), without its ID3 tag."""
    data = files["mp3"].read_bytes()
    return data[mp3.id3_size(data[:10]) :]


def unsynchronised(data: bytes) -> bytes:
    """ID3 unsynchronisation: a zero after every 0xFF that a sync pattern or a zero follows."""
    out = bytearray()
    for index, byte in enumerate(data):
        out.append(byte)
        if byte == 0xFF and (index + 1 == len(data) or data[index + 1] >= 0xE0 or data[index + 1] == 0):
            out.append(0)
    return bytes(out)


def text_frame(version: int, frame_id: bytes, encoding: int, *strings: str, lang: bytes = b"") -> bytes:
    codec = {0: "latin-1", 1: "utf-16", 2: "utf-16-be", 3: "utf-8"}[encoding]
    null = b"\x00\x00" if encoding in (1, 2) else b"\x00"
    return id3_frame(version, frame_id, bytes([encoding]) + lang + null.join(s.encode(codec) for s in strings))


def exiftool_id3(path: Path) -> dict[str, Any]:
    return tool("exiftool", "-j", "-a", "-G1:4", "-ID3:all", str(path))[0]  # type: ignore[no-any-return]


def test_id3v23_unsynchronised_with_a_compressed_frame(mpeg_audio: bytes, tmp_path: Path) -> None:
    """A 2.3 tag unsynchronised as a whole (its prompt holds 0xFF 0xE0 and 0xFF 0xFF) with the workflow
    in a zlib-compressed frame; exiftool reads the same (ffmpeg takes 2.3 frame sizes as they are on
    disk, so it cuts unsynchronised frames short and reads no 2.3 compressed frame)."""
    prompt = json.dumps({"1": {"inputs": {"text": "ÿàÿÿ rain"}}}, ensure_ascii=False)
    packed = b"\x00workflow\x00" + json.dumps(WORKFLOW).encode()
    frames = [
        text_frame(3, b"TXXX", 0, "prompt", prompt),
        id3_frame(3, b"TXXX", len(packed).to_bytes(4, "big") + zlib.compress(packed), flags=b"\x00\x80"),
        text_frame(3, b"TIT2", 0, "ÿ title"),
        text_frame(3, b"COMM", 0, "", INFOTEXT.encode("utf-8").decode("latin-1"), lang=b"eng"),
    ]
    body = unsynchronised(b"".join(frames) + bytes(8))
    assert body.count(b"\xff\x00") >= 2
    path = tmp_path / "v23.mp3"
    path.write_bytes(b"ID3\x03\x00\x80" + syncsafe(len(body)) + body + mpeg_audio)
    found = extract(path)
    assert found.comfy == {"prompt": prompt, "workflow": json.dumps(WORKFLOW)}
    assert found.infotext is not None and found.infotext.startswith("rain on a tin roof")
    assert found.media["audio"] == {"codec": "mp3", "sample_rate": 44_100, "channels": 2}
    seen = exiftool_id3(path)
    assert seen["ID3v2_3:Copy1:UserDefinedText"] == f"(prompt) {prompt}"
    assert seen["ID3v2_3:UserDefinedText"] == f"(workflow) {json.dumps(WORKFLOW)}"
    assert seen["ID3v2_3:Title"] == "ÿ title"


def test_id3v24_compressed_frame_with_its_data_length(mpeg_audio: bytes, tmp_path: Path) -> None:
    packed = b"\x03workflow\x00" + json.dumps(WORKFLOW, ensure_ascii=False).encode()
    frame = id3_frame(4, b"TXXX", syncsafe(len(packed)) + zlib.compress(packed), flags=b"\x00\x09")
    path = tmp_path / "v24z.mp3"
    path.write_bytes(id3_tag(4, [frame, text_frame(4, b"TIT2", 3, "猫")]) + mpeg_audio)
    assert extract(path).comfy == {"workflow": json.dumps(WORKFLOW, ensure_ascii=False)}
    probe = tool("ffprobe", "-v", "error", "-show_entries", "format_tags", "-of", "json", str(path))
    assert probe["format"]["tags"]["workflow"] == json.dumps(WORKFLOW, ensure_ascii=False)
    assert exiftool_id3(path)["ID3v2_4:Title"] == "猫"


@pytest.mark.parametrize(("version", "encoding"), [(4, 1), (4, 2), (3, 1)])
def test_utf16_txxx_and_comm(version: int, encoding: int, mpeg_audio: bytes, tmp_path: Path) -> None:
    prompt = json.dumps(PROMPT, ensure_ascii=False)
    frames = [
        text_frame(version, b"TXXX", encoding, "prompt", prompt),
        text_frame(version, b"COMM", encoding, "", INFOTEXT, lang=b"eng"),
        text_frame(version, b"COMM", encoding, "comfyui_provenance", RECORD, lang=b"eng"),
    ]
    path = tmp_path / f"utf16-{version}-{encoding}.mp3"
    path.write_bytes(id3_tag(version, frames) + mpeg_audio)
    found = extract(path)
    assert found.comfy == {"prompt": prompt}
    assert found.infotext == INFOTEXT
    assert found.record_json == RECORD  # a COMM frame whose description names the value
    seen = exiftool_id3(path)
    assert seen[f"ID3v2_{version}:UserDefinedText"] == f"(prompt) {prompt}"


def test_id3v22_three_letter_frames(mpeg_audio: bytes, tmp_path: Path) -> None:
    frames = [
        text_frame(2, b"TXX", 1, "prompt", json.dumps(PROMPT)),
        text_frame(2, b"COM", 0, "", "a cat\nSteps: 4, Seed: 1", lang=b"eng"),
        text_frame(2, b"TT2", 0, "rain"),
    ]
    path = tmp_path / "v22.mp3"
    path.write_bytes(id3_tag(2, frames) + mpeg_audio)
    found = extract(path)
    assert found.comfy == {"prompt": json.dumps(PROMPT)}
    assert found.infotext == "a cat\nSteps: 4, Seed: 1"
    assert exiftool_id3(path)["ID3v2_2:Title"] == "rain"


def test_id3v24_plain_frame_sizes_as_itunes_wrote_them(mpeg_audio: bytes, tmp_path: Path) -> None:
    """Sizes of 128 bytes and more written as plain integers in a 2.4 tag: the next frame says which."""
    prompt = json.dumps(PROMPT)
    frames = []
    for description, value in (("prompt", prompt), ("workflow", json.dumps(WORKFLOW))):
        data = b"\x03" + description.encode() + b"\x00" + value.encode()
        frames.append(b"TXXX" + len(data).to_bytes(4, "big") + b"\x00\x00" + data)
    path = tmp_path / "itunes.mp3"
    path.write_bytes(id3_tag(4, frames) + mpeg_audio)
    assert extract(path).comfy == {"prompt": prompt, "workflow": json.dumps(WORKFLOW)}


def test_cbr_duration_without_an_info_frame(tmp_path: Path) -> None:
    """40 frames of 128 kbps at 44.1 kHz and an ID3v1 tag at the end: the duration comes from the bytes."""
    path = tmp_path / "cbr.mp3"
    path.write_bytes(id3_tag(4, [text_frame(4, b"TXXX", 3, "prompt", "{}")]) + mpeg_frames(40) + b"TAG" + bytes(125))
    found = extract(path)
    assert found.media["audio"] == {"codec": "mp3", "sample_rate": 44_100, "channels": 2}
    assert abs(found.media["duration_s"] - 40 * 1152 / 44_100) < 0.01


def test_flac_behind_an_id3_tag(files: dict[str, Path], tmp_path: Path) -> None:
    """Legal, and written by some taggers: sniffed as MP3 (both start `ID3`), read as FLAC."""
    path = tmp_path / "id3.flac"
    path.write_bytes(id3_tag(3, [text_frame(3, b"TIT2", 0, "rain")]) + files["flac"].read_bytes())
    found = extract(path)
    assert found.format == "flac"
    assert found.comfy["prompt"] == json.dumps(PROMPT)
    assert found.record_json == RECORD
    assert found.media["audio"] == {"codec": "flac", "sample_rate": 44_100, "channels": 2}
    with path.open("rb") as fp:
        direct = CONTAINERS["flac"].read(fp, Budget())
    assert direct.comfy == found.comfy


def test_sniffing() -> None:
    assert CONTAINERS["flac"].sniff(b"fLaC\x00\x00\x00\x22")
    assert not CONTAINERS["flac"].sniff(b"ID3\x04\x00\x00\x00\x00\x00\x10")  # left to mp3, which hands over
    assert CONTAINERS["mp3"].sniff(b"ID3\x04\x00\x00\x00\x00\x00\x10")
    assert CONTAINERS["mp3"].sniff(MPEG_HEADER + bytes(12))
    assert not CONTAINERS["mp3"].sniff(b"\xff\xfb\xf0\x64" + bytes(12))  # bitrate index 15
    assert not CONTAINERS["mp3"].sniff(b"\xff\xf1\x50\x80" + bytes(12))  # ADTS AAC: layer 0
    assert not CONTAINERS["mp3"].sniff(b"\xff\xd8\xff\xe0" + bytes(12))  # JPEG
    assert CONTAINERS["ogg"].sniff(b"OggS\x00\x02" + bytes(10))


@pytest.mark.parametrize("kind", KINDS)
def test_cut_files_fail_in_words_or_keep_their_tags(kind: str, files: dict[str, Path], tmp_path: Path) -> None:
    """Cut anywhere: a ReadError saying so while the cut falls in the metadata, the same tags after it."""
    data = files[kind].read_bytes()
    whole = extract(files[kind])
    path = tmp_path / f"cut{KINDS[kind][3]}"
    outcomes = set()
    for cut in [*range(0, 1500, 7), *range(1500, len(data), 997)]:
        path.write_bytes(data[:cut])
        try:
            found = extract(path)
        except ReadError as err:
            assert "truncated" in str(err) or str(err).startswith("not a"), (cut, str(err))
            outcomes.add("error")
        else:
            assert (found.comfy, found.record_json, found.infotext) == (whole.comfy, whole.record_json, whole.infotext)
            outcomes.add("reads")
    assert outcomes == {"error", "reads"}

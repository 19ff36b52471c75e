"""MP4/MOV: rewrite real PyAV-written files and read them back with PyAV, ffprobe, exiftool, our reader and a
port of the ComfyUI frontend's reader."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import hostile
import hostile_mp4  # noqa: F401 - registers the mp4 cases, which the writer must survive too
import numpy as np
import pytest
from conftest import REQUIRE_READERS, load_workflow

from comfyui_provenance.metadata import read
from comfyui_provenance.metadata.budget import Budget
from comfyui_provenance.metadata.errors import LimitExceeded, ReadError, SerializeError
from comfyui_provenance.metadata.formats import mp4, xmp
from comfyui_provenance.metadata.record import Record

INFOTEXT = "a1111 text… ein Kätzchen, 猫\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42"
RECORD = Record()
RECORD_JSON = json.dumps(RECORD.to_dict(), separators=(",", ":"))
PACKET = xmp.build(RECORD, record_json=None)


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        if REQUIRE_READERS:
            pytest.fail(f"{tool} is not installed")
        pytest.skip(f"{tool} is not installed")


def make_video(
    path: Path, *, fmt: str = "mp4", metadata: dict[str, str] | None = None, movflags: str = "", audio: bool = True
) -> Path:
    """A few 64x64 h264 frames (and AAC audio) written by PyAV, as core's SaveVideo and VHS write them."""
    container = av.open(str(path), "w", format=fmt, options={"movflags": movflags} if movflags else {})
    video = container.add_stream("libx264", rate=Fraction(24, 1))
    video.width = video.height = 64
    video.pix_fmt = "yuv420p"
    sound = container.add_stream("aac", rate=44100) if audio else None
    if sound is not None:
        sound.layout = "stereo"
    for key, value in (metadata or {}).items():
        container.metadata[key] = value
    rng = np.random.default_rng(3)
    for _ in range(5):
        frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), format="rgb24")
        container.mux(video.encode(frame))
    container.mux(video.encode())
    if sound is not None:
        for i in range(5):
            samples = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            samples.sample_rate, samples.pts = 44100, i * 1024
            container.mux(sound.encode(samples))
        container.mux(sound.encode())
    container.close()
    return path


def rewritten(src: Path, dst: Path, **kwargs: Any) -> Path:
    with src.open("rb") as fin, dst.open("wb") as fout:
        mp4.rewrite(fin, fout, **kwargs)
    return dst


def packets(path: Path) -> list[tuple[bytes, int | None, int | None, int]]:
    with av.open(str(path)) as container:
        return [(bytes(p), p.pts, p.dts, p.stream.index) for p in container.demux() if p.size]


def top_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, size) of each top-level box."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        out.append((kind, pos, size or len(data) - pos))
        pos += size or len(data)
    return out


def frontend_graphs(data: bytes) -> dict[str, Any]:
    """The ComfyUI frontend's ISOBMFF reader (src/scripts/metadata/isobmff.ts), ported line for line:
    its first 64 MiB, udta at the top level or else in moov, the FIRST meta there, keys + ilst, and the
    JSON from the first `{` to the end of the data box."""
    data = data[: 64 << 20]

    def u32(pos: int) -> int:
        return int.from_bytes(data[pos : pos + 4], "big") if pos + 4 <= len(data) else 0

    def find(start: int, end: int, kind: bytes) -> tuple[int, int] | None:
        pos = start
        while pos < end - 8:
            size = u32(pos)
            if size >= 8:
                if data[pos + 4 : pos + 8] == kind:
                    return pos + 8, pos + size
                if pos + size > end:
                    return None
                pos += size - 1
            pos += 1
        return None

    udta = find(0, len(data), b"udta")
    if udta is None and (moov := find(0, len(data), b"moov")) is not None:
        udta = find(*moov, b"udta")
    meta = find(*udta, b"meta") if udta else None
    keys = find(meta[0] + 4, meta[1], b"keys") if meta else None
    ilst = find(meta[0] + 4, meta[1], b"ilst") if meta else None
    if keys is None or ilst is None:
        return {}
    names, pos = {}, keys[0] + 8
    for index in range(1, u32(keys[0] + 4) + 1):
        size = u32(pos)
        if pos + 8 > keys[1] or size < 8 or pos + size > keys[1]:
            break
        names[index] = data[pos + 8 : pos + size].decode()
        pos += size
    found, pos = {}, ilst[0]
    while pos < ilst[1] - 8:
        size = u32(pos)
        if size <= 8 or pos + size > ilst[1]:
            break
        name = names.get(u32(pos + 4), "")
        box = find(pos + 8, pos + size, b"data")
        if box and name.lower() in ("prompt", "workflow"):
            text = data[box[0] + 8 : box[1]]
            found[name.lower()] = json.loads(text[text.index(b"{") :].decode())
        pos += size
    return found


LAYOUTS = {
    "mp4-moov-at-end": ("mp4", {}, ""),
    "mp4-core": (
        "mp4",
        {"prompt": '{"1": {"inputs": {}}}', "workflow": '{"nodes": []}'},
        "use_metadata_tags+faststart",
    ),
    "mov-plain": ("mov", {}, ""),
    "mov-core": ("mov", {"prompt": "{}", "comment": "old"}, "use_metadata_tags"),
}


@pytest.fixture(scope="module")
def graphs() -> tuple[str, str]:
    api, ui = load_workflow("default")
    return json.dumps(api), json.dumps(ui)


def ours(graphs: tuple[str, str]) -> dict[str, Any]:
    prompt, workflow = graphs
    tags = [("prompt", prompt), ("workflow", workflow), ("comfyui_provenance", RECORD_JSON)]
    return {"tags": tags, "comment": INFOTEXT, "xmp": PACKET}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_rewrite_is_read_by_every_reader(layout: str, graphs: tuple[str, str], tmp_path: Path) -> None:
    fmt, metadata, movflags = LAYOUTS[layout]
    src = make_video(tmp_path / f"in.{fmt}", fmt=fmt, metadata=metadata, movflags=movflags)
    out = rewritten(src, tmp_path / f"out.{fmt}", **ours(graphs))
    prompt, workflow = graphs

    with av.open(str(out)) as container:
        assert container.metadata["prompt"] == prompt
        assert container.metadata["workflow"] == workflow
        assert container.metadata["comfyui_provenance"] == RECORD_JSON
        assert container.metadata["comment"] == INFOTEXT
        assert container.metadata["encoder"].startswith("Lavf")  # ffmpeg's ©too, ©swr or mdta key, kept
    assert packets(out) == packets(src)
    kinds = [k for k, _, _ in top_boxes(out.read_bytes())]
    assert kinds.index(b"moov") < kinds.index(b"mdat")
    assert frontend_graphs(out.read_bytes()) == {"prompt": json.loads(prompt), "workflow": json.loads(workflow)}

    found = read.extract(out)
    assert found.format == fmt
    assert found.comfy == {"prompt": prompt, "workflow": workflow}
    assert found.record_json == RECORD_JSON
    assert found.infotext == INFOTEXT
    assert found.xmp == PACKET
    assert (found.width, found.height) == (64, 64)
    assert found.media["codec"] == "h264" and found.media["frames"] == 5 and found.media["fps"] == 24.0
    assert found.media["duration_s"] == pytest.approx(0.21, abs=0.01)
    assert found.media["audio"] == {"codec": "aac", "sample_rate": 44100, "channels": 2}
    assert read.read(out).to_dict()["schema"] == RECORD.to_dict()["schema"]

    again = rewritten(out, tmp_path / f"again.{fmt}", **ours(graphs))
    assert again.read_bytes() == out.read_bytes()


def test_ffprobe_and_exiftool_read_the_tags(graphs: tuple[str, str], tmp_path: Path) -> None:
    need("ffprobe")
    need("exiftool")
    src = make_video(tmp_path / "in.mp4")
    out = rewritten(src, tmp_path / "out.mp4", **ours(graphs))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(out)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    assert probe.stderr == ""
    tags = json.loads(probe.stdout)["format"]["tags"]
    assert tags["prompt"] == graphs[0] and tags["workflow"] == graphs[1]
    assert tags["comfyui_provenance"] == RECORD_JSON and tags["comment"] == INFOTEXT
    exif = json.loads(
        subprocess.run(["exiftool", "-j", "-a", "-G1", str(out)], capture_output=True, check=True).stdout
    )[0]
    assert exif["Keys:Prompt"] == graphs[0] and exif["Keys:Workflow"] == graphs[1]
    assert exif["UserData:Comment"] == INFOTEXT
    assert exif["XMP-xmp:CreatorTool"] == "ComfyUI Provenance"
    assert exif["XMP-iptcExt:DigitalSourceType"].endswith("trainedAlgorithmicMedia")
    assert not any("Warning" in key for key in exif), exif


def test_mdta_layout_is_ffmpegs_byte_for_byte(tmp_path: Path) -> None:
    """The meta box equals the one ffmpeg's mov muxer writes with use_metadata_tags for the same keys."""
    tags = {"prompt": '{"1": {}}', "workflow": '{"nodes": ["é"]}', "comfyui_provenance": "{}"}
    by_ffmpeg = make_video(tmp_path / "ffmpeg.mp4", metadata=tags, movflags="use_metadata_tags")
    data = by_ffmpeg.read_bytes()
    with av.open(str(by_ffmpeg)) as container:
        encoder = container.metadata["encoder"]
    plain = make_video(tmp_path / "plain.mp4")
    out = rewritten(plain, tmp_path / "out.mp4", tags=[*tags.items(), ("encoder", encoder)], comment=None, xmp=None)

    def meta(blob: bytes) -> bytes:
        start = blob.index(b"meta\x00\x00\x00\x00\x00\x00\x00\x21hdlr\x00\x00\x00\x00\x00\x00\x00\x00mdta") - 4
        return blob[start : start + int.from_bytes(blob[start : start + 4], "big")]

    assert meta(out.read_bytes()) == meta(data)


def test_existing_tags_are_kept_or_replaced(tmp_path: Path) -> None:
    """Keys not named stay before ours; an old prompt, comment (iTunes, mdta or text atom) and XMP go;
    ffmpeg's own udta children (the encoder) stay."""
    src = make_video(
        tmp_path / "in.mov", fmt="mov", metadata={"prompt": "{}", "artist": "me"}, movflags="use_metadata_tags"
    )
    step = rewritten(src, tmp_path / "a.mov", tags=[], comment="first", xmp=b"<old/>")
    out = rewritten(step, tmp_path / "b.mov", tags=[("PROMPT", '{"2": {}}')], comment="second", xmp=PACKET)
    with av.open(str(out)) as container:
        meta = dict(container.metadata)
    assert meta["artist"] == "me" and meta["encoder"].startswith("Lavf")
    assert meta["PROMPT"] == '{"2": {}}' and "prompt" not in meta
    assert meta["comment"] == "second"
    data = out.read_bytes()
    assert data.count(b"\xa9cmt") == 1 and data.count(b"XMP_") == 1 and b"<old/>" not in data

    itunes = make_video(tmp_path / "itunes.mp4", metadata={"comment": "old one", "title": "T"})
    out = rewritten(itunes, tmp_path / "c.mp4", tags=[], comment="new one", xmp=None)
    assert b"old one" not in out.read_bytes()
    with av.open(str(out)) as container:
        assert container.metadata["comment"] == "new one" and container.metadata["title"] == "T"
        assert container.metadata["encoder"].startswith("Lavf")  # the iTunes ©too item, kept
    assert read.extract(out).infotext is None  # "new one" is a comment, not A1111 parameters


def test_big_workflow_and_non_ascii_text(tmp_path: Path) -> None:
    workflow = json.dumps({"nodes": [], "extra": {"note": "ünïcödé 漢字 " * 150_000}}, ensure_ascii=False)
    assert len(workflow.encode()) > 2 << 20
    src = make_video(tmp_path / "in.mp4")
    out = rewritten(src, tmp_path / "out.mp4", tags=[("workflow", workflow)], comment=INFOTEXT, xmp=None)
    found = read.extract(out)
    assert found.comfy == {"workflow": workflow} and found.infotext == INFOTEXT
    with av.open(str(out)) as container:
        assert container.metadata["workflow"] == workflow and container.metadata["comment"] == INFOTEXT
    assert frontend_graphs(out.read_bytes())["workflow"] == json.loads(workflow)


def test_mdat_over_64_mib_moves_behind_the_moov(tmp_path: Path) -> None:
    """moov at the end of a 65 MiB file comes out in the first KiB; packets unchanged."""
    small = make_video(tmp_path / "small.mp4").read_bytes()
    (ftyp, free, mdat, moov) = top_boxes(small)
    assert [ftyp[0], free[0], mdat[0], moov[0]] == [b"ftyp", b"free", b"mdat", b"moov"]
    pad = 65 << 20  # after the samples, so the chunk offsets stay right
    big = tmp_path / "big.mp4"
    with big.open("wb") as fp:
        fp.write(small[: mdat[1]] + struct.pack(">I4s", mdat[2] + pad, b"mdat") + small[mdat[1] + 8 : moov[1]])
        fp.truncate(fp.tell() + pad)
        fp.seek(0, 2)
        fp.write(small[moov[1] :])
    out = rewritten(big, tmp_path / "out.mp4", tags=[("prompt", "{}")], comment=None, xmp=None)
    with out.open("rb") as fp:
        head = fp.read(4096)
    moov_at = next(start for kind, start, _ in top_boxes(head) if kind == b"moov")
    assert moov_at < 1024
    assert packets(out) == packets(big)
    assert read.extract(out).comfy == {"prompt": "{}"}


def test_moov_between_two_mdats(tmp_path: Path) -> None:
    """Samples split over two mdat boxes with the moov between them: both move, every offset follows."""
    small = make_video(tmp_path / "small.mp4").read_bytes()
    _ftyp, _free, mdat, moov = top_boxes(small)
    payload, first = small[mdat[1] + 8 : moov[1]], mdat[1] + 8
    split = sorted(o for _, table in _offset_tables(small[moov[1] :], b"stco") for o in table)[3]
    moov_bytes = bytearray(small[moov[1] :])
    for pos, table in _offset_tables(bytes(moov_bytes), b"stco"):
        moved = [o + 8 + len(moov_bytes) if o >= split else o for o in table]
        moov_bytes[pos + 12 : pos + 12 + 4 * len(table)] = b"".join(struct.pack(">I", o) for o in moved)
    head, tail = payload[: split - first], payload[split - first :]
    src = tmp_path / "two.mp4"
    src.write_bytes(
        small[: mdat[1]] + struct.pack(">I4s", 8 + len(head), b"mdat") + head + bytes(moov_bytes)
        + struct.pack(">I4s", 8 + len(tail), b"mdat") + tail
    )  # fmt: skip
    assert packets(src) == packets(tmp_path / "small.mp4")
    out = rewritten(src, tmp_path / "out.mp4", tags=[("prompt", "{}")], comment=None, xmp=None)
    assert [k for k, _, _ in top_boxes(out.read_bytes())] == [b"ftyp", b"free", b"moov", b"mdat", b"mdat"]
    assert packets(out) == packets(src)


class Sparse(io.RawIOBase):
    """A read-only file of `size` bytes, zeros except `parts` {offset: bytes}: a 4 GiB source in no memory."""

    def __init__(self, size: int, parts: dict[int, bytes]) -> None:
        self.size, self.parts, self.pos = size, parts, 0

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n < 0 else min(self.size, self.pos + n)
        hits = [(o, b) for o, b in self.parts.items() if o < end and o + len(b) > self.pos]
        if not hits:
            out = bytes(max(0, end - self.pos))
        else:
            buf = bytearray(max(0, end - self.pos))
            for offset, blob in hits:
                lo, hi = max(offset, self.pos), min(offset + len(blob), end)
                buf[lo - self.pos : hi - self.pos] = blob[lo - offset : hi - offset]
            out = bytes(buf)
        self.pos = end
        return out


class Sink(io.RawIOBase):
    """Keeps the first 64 KiB and the last two blocks written; counts the rest."""

    def __init__(self) -> None:
        self.head, self.blocks, self.size = bytearray(), [b"", b""], 0

    def write(self, data: Any) -> int:
        if len(self.head) < 1 << 16:
            self.head += bytes(data[: (1 << 16) - len(self.head)])
        self.blocks = [self.blocks[1], bytes(data)]
        self.size += len(data)
        return len(data)

    @property
    def tail(self) -> bytes:
        return b"".join(self.blocks)


def _offset_tables(moov: bytes, kind: bytes) -> list[tuple[int, list[int]]]:
    """(position, offsets) of each `kind` (stco/co64) table in a moov, found by its fourcc."""
    out, pos = [], moov.find(kind)
    while pos >= 0:
        count = int.from_bytes(moov[pos + 8 : pos + 12], "big")
        width = 8 if kind == b"co64" else 4
        table = [int.from_bytes(moov[pos + 12 + i * width : pos + 12 + (i + 1) * width], "big") for i in range(count)]
        out.append((pos, table))
        pos = moov.find(kind, pos + 1)
    return out


def test_chunk_offsets_past_4_gib_become_co64(tmp_path: Path) -> None:
    """Samples just under 4 GiB: moving the moov in front pushes them past it, so stco turns into co64
    and each offset still points at the same bytes."""
    small = make_video(tmp_path / "small.mp4").read_bytes()
    _ftyp, _free, mdat, moov = top_boxes(small)
    samples = small[mdat[1] + 8 : moov[1]]
    at = (1 << 32) - len(samples) - 100  # where the samples start in the big file
    shift = at - (mdat[1] + 8)
    moov_bytes = bytearray(small[moov[1] :])
    for pos, table in _offset_tables(bytes(moov_bytes), b"stco"):
        moov_bytes[pos + 12 : pos + 12 + 4 * len(table)] = b"".join(struct.pack(">I", o + shift) for o in table)
    mdat_size = at + len(samples) - mdat[1]
    source_parts = {0: small[: mdat[1]] + struct.pack(">I4s", mdat_size, b"mdat"), at: samples}
    source_parts[mdat[1] + mdat_size] = bytes(moov_bytes)
    src = Sparse(mdat[1] + mdat_size + len(moov_bytes), source_parts)
    sink = Sink()
    mp4.rewrite(src, sink, tags=[("prompt", "{}")], comment=None, xmp=None)  # type: ignore[arg-type]

    assert sink.size > 1 << 32
    new_moov = next((s, n) for k, s, n in top_boxes(bytes(sink.head[:1024])) if k == b"moov")
    head = bytes(sink.head[new_moov[0] : new_moov[0] + new_moov[1]])
    tail = sink.tail
    tail_start = sink.size - len(tail)
    after_tables = sorted(_offset_tables(head, b"stco") + _offset_tables(head, b"co64"))
    widened = {pos for pos, _ in _offset_tables(head, b"co64")}
    assert widened, "no table was widened"
    for (_, old), (pos, new) in zip(_offset_tables(bytes(moov_bytes), b"stco"), after_tables, strict=True):
        assert (pos in widened) == (max(new) > 0xFFFF_FFFF)
        for before, after in zip(old, new, strict=True):
            assert after == before + new_moov[1]
            want = samples[before - at : before - at + 16]
            assert after >= tail_start and tail[after - tail_start : after - tail_start + 16] == want


def test_reads_core_and_vhs_layouts(tmp_path: Path) -> None:
    core = make_video(
        tmp_path / "core.mp4", metadata={"prompt": json.dumps('{"1": {}}'), "workflow": '{"n": 1}'},
        movflags="use_metadata_tags+faststart",
    )  # fmt: skip
    assert read.extract(core).comfy == {"prompt": '{"1": {}}', "workflow": '{"n": 1}'}  # core quotes the prompt twice
    vhs = make_video(tmp_path / "vhs.mp4", metadata={"comment": json.dumps({"prompt": "{}", "workflow": {"n": 2}})})
    assert read.extract(vhs).comfy == {"prompt": "{}", "workflow": '{"n": 2}'}  # VHS's old iTunes comment


def test_reads_audio_only_and_top_level_xmp(tmp_path: Path) -> None:
    src = tmp_path / "a.m4a"
    container = av.open(str(src), "w", format="ipod")
    sound = container.add_stream("aac", rate=48000)
    sound.layout = "mono"
    for i in range(3):
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        samples.sample_rate, samples.pts = 48000, i * 1024
        container.mux(sound.encode(samples))
    container.mux(sound.encode())
    container.close()
    data = src.read_bytes() + struct.pack(">I4s", 24 + len(PACKET), b"uuid") + mp4.XMP_UUID + PACKET
    src.write_bytes(data)
    found = read.extract(src)
    assert found.xmp == PACKET and found.width is None
    assert found.media["audio"] == {"codec": "aac", "sample_rate": 48000, "channels": 1}
    assert "frames" not in found.media
    out = rewritten(src, tmp_path / "b.m4a", tags=[], comment=None, xmp=b"<new/>")
    assert mp4.XMP_UUID not in out.read_bytes() and read.extract(out).xmp == b"<new/>"


def test_sniff() -> None:
    sniff = mp4.Mp4Container().sniff
    assert sniff(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00")
    assert sniff(b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00")
    assert sniff(b"\x00\x00\x00\x08wide\x00\x00\x00\x10mdat")
    assert sniff(b"\x00\x00\x00\x01mdat\x00\x00\x00\x00\x00\x00\x10\x00")
    assert not sniff(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00")  # a still image
    assert not sniff(b"\x00\x00\x00\x03free\x00\x00\x00\x00\x00\x00\x00\x00")
    assert not sniff(b"RIFF\x00\x00\x00\x00WEBPVP8X")


def test_what_is_not_rewritten(tmp_path: Path) -> None:
    fragmented = make_video(tmp_path / "frag.mp4", movflags="frag_keyframe+empty_moov")
    with pytest.raises(SerializeError, match="fragmented"):
        rewritten(fragmented, tmp_path / "x.mp4", tags=[], comment=None, xmp=None)
    plain = make_video(tmp_path / "plain.mp4")
    with pytest.raises(LimitExceeded, match="comment"):
        rewritten(plain, tmp_path / "x.mp4", tags=[], comment="x" * 70_000, xmp=None)


def _damaged(data: bytes, kind: bytes, edit: Any) -> bytes:
    pos = data.index(kind) - 4
    return edit(bytearray(data), pos)


@pytest.mark.parametrize(
    "name",
    ["truncated", "stco-count", "stco-outside", "moov-twice", "keys-count"],
)
def test_damaged_files_are_read_errors(name: str, tmp_path: Path) -> None:
    data = make_video(tmp_path / "in.mp4", metadata={"prompt": "{}"}, movflags="use_metadata_tags").read_bytes()
    moov = data.index(b"moov") - 4
    if name == "truncated":
        data = data[: moov + 200]
    elif name == "stco-count":
        data = _damaged(data, b"stco", lambda b, p: b[: p + 12] + struct.pack(">I", 1 << 30) + b[p + 16 :])
    elif name == "stco-outside":
        data = _damaged(data, b"stco", lambda b, p: b[: p + 16] + struct.pack(">I", len(data) + 5) + b[p + 20 :])
    elif name == "moov-twice":
        data += data[moov:]
    else:
        data = _damaged(data, b"keys", lambda b, p: b[: p + 12] + struct.pack(">I", 1 << 31) + b[p + 16 :])
    src = tmp_path / "bad.mp4"
    src.write_bytes(bytes(data))
    with pytest.raises(ReadError) as err:
        rewritten(src, tmp_path / "out.mp4", tags=[("prompt", "{}")], comment=None, xmp=None)
    assert "\n" not in str(err.value) and "bad.mp4" not in str(err.value)
    if name in ("truncated", "keys-count"):
        with pytest.raises(ReadError):
            mp4.Mp4Container().read(io.BytesIO(bytes(data)), Budget())


@pytest.mark.parametrize("name", [n for n in hostile.CASES if n.startswith("mp4-")])
def test_hostile_files_through_rewrite(name: str, tmp_path: Path) -> None:
    """The writer on every hostile MP4: a one-line ReadError/SerializeError naming no file, or a file that
    rewrites to itself (so nothing it kept was misread)."""
    made = hostile.CASES[name](tmp_path / "case")
    ours = {"tags": [("prompt", "{}")], "comment": "c", "xmp": b"<x/>"}
    try:
        out = rewritten(made.image, tmp_path / "out.mp4", **ours)
    except (ReadError, SerializeError) as err:
        assert "\n" not in str(err) and "x.mp4" not in str(err), err
        return
    assert rewritten(out, tmp_path / "again.mp4", **ours).read_bytes() == out.read_bytes()
    if made.expect == "reads":  # damage the writer copies as it is (a lying stsz) still fails to read
        assert read.extract(out).comfy == {"prompt": "{}"}

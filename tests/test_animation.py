"""Animated WEBP, APNG and GIF keep every frame asked for, with its timing, and carry the metadata.

Pillow and libwebp fold a frame identical to the one before into it (a,a,b,b,a saved becomes three
frames); our writers assemble the frames themselves. Every file here is decoded by Pillow, read by
our reader, and where the tool is installed shown by exiftool and ffprobe.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REQUIRE_READERS, context_for, load_workflow
from PIL import Image, PngImagePlugin
from test_convert import convert, core_exif, decoded, png_chunks, webp_chunks
from test_external_readers import _with_positive
from test_roundtrip import big_context

from comfyui_provenance.metadata.capture import SaveContext, build_record
from comfyui_provenance.metadata.convert import CONVERTED, SKIPPED
from comfyui_provenance.metadata.formats.base import DEFAULT_TARGETS, Animation, Payloads, by_name
from comfyui_provenance.metadata.formats.gif import XMP_MAGIC
from comfyui_provenance.metadata.read import extract, read
from comfyui_provenance.metadata.record import Record
from comfyui_provenance.metadata.save import SaveOptions, prepare, save_images

FORMATS = ("webp", "png", "gif")
SUFFIX = {"webp": ".webp", "png": ".png", "gif": ".gif"}
FPS = Fraction(24)
OPTIONS = SaveOptions(format="webp", lossless=True)
ORDER = (0, 0, 1, 1, 0)  # a, a, b, b, a: the repeats Pillow would fold
WIDTH, HEIGHT = 96, 64
ALPHA = np.tile(np.linspace(0, 255, WIDTH).astype(np.uint8), (HEIGHT, 1))


def gradient(shift: int, alpha: bool = False) -> Image.Image:
    """A smooth image (a palette holds it well), different for every shift."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([(x * 2 + shift) % 256, (y * 3 + shift) % 256, (x + y + shift * 5) % 256], -1).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, ALPHA]) if alpha else rgb)


def animation(count: int = 5, *, alpha: bool = False, fps: Fraction = FPS, loop: int = 0) -> Animation:
    sources = [gradient(0, alpha), gradient(60, alpha)]
    return Animation([sources[ORDER[i % 5]] for i in range(count)], fps, loop=loop)


def write(tmp_path: Path, fmt: str, anim: Animation, context: SaveContext | None = None) -> tuple[Path, Payloads]:
    """The animation with the default targets' metadata, through prepare() and the format's encode."""
    context = (context or context_for("lora")).scrubbed()
    record = build_record(context, "test")
    target = by_name(fmt)
    payloads, plan = prepare(record, list(context.chunks or []), target, DEFAULT_TARGETS)
    path = tmp_path / f"anim{SUFFIX[fmt]}"
    with path.open("wb") as fp:
        target.encode(anim, payloads, plan, OPTIONS, fp)
    return path, payloads


def frames_of(path: Path, mode: str) -> list[tuple[np.ndarray, float]]:
    """Every frame as Pillow decodes it, with the duration Pillow reports (ms)."""
    out = []
    with Image.open(path) as image:
        for index in range(image.n_frames):
            image.seek(index)
            pixels = np.asarray(image.convert(mode)).astype(int)
            out.append((pixels, image.info["duration"]))
    return out


def expected_ms(fmt: str, anim: Animation) -> list[float]:
    if fmt == "png":
        return [1000 / anim.fps] * len(anim.frames)  # APNG holds 1/fps exactly
    unit = 1000 if fmt == "webp" else 100
    return [d * 1000 / unit for d in anim.durations(unit)]


def assert_same_pixels(fmt: str, got: np.ndarray, source: Image.Image) -> None:
    want = np.asarray(source).astype(int)
    if source.mode == "RGBA":  # a fully clear pixel's color is not kept (libwebp, GIF's index)
        want[want[..., 3] == 0, :3] = 0
        got = got.copy()
        got[got[..., 3] == 0, :3] = 0
    if fmt == "gif":
        if source.mode == "RGBA":
            assert np.array_equal(got[..., 3], np.where(want[..., 3] < 128, 0, 255))
            got, want = got[want[..., 3] >= 128, :3], want[want[..., 3] >= 128, :3]
        error = np.abs(got - want)
        assert error.mean() < 6 and error.max() <= 24, (error.mean(), error.max())
    else:
        assert np.array_equal(got, want)


# -- every frame, every duration -----------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [False, True], ids=["rgb", "rgba"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_frame_is_kept_with_its_timing(fmt: str, alpha: bool, tmp_path: Path) -> None:
    anim = animation(alpha=alpha)
    path, _ = write(tmp_path, fmt, anim)
    mode = "RGBA" if alpha else "RGB"
    frames = frames_of(path, mode)
    assert len(frames) == 5
    for (pixels, _ms), source in zip(frames, anim.frames, strict=True):
        assert_same_pixels(fmt, pixels, source)
    assert [ms for _pixels, ms in frames] == pytest.approx(expected_ms(fmt, anim))
    assert np.array_equal(frames[0][0], frames[1][0]) and np.array_equal(frames[0][0], frames[4][0])
    media = extract(path).media
    assert media["frames"] == 5
    assert media["duration_s"] == pytest.approx(sum(expected_ms(fmt, anim)) / 1000)
    assert media["fps"] == round(5 / media["duration_s"], 3)
    if fmt == "webp":
        assert extract(path).alpha is alpha


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_one_frame_animation(fmt: str, tmp_path: Path) -> None:
    anim = animation(1)
    path, _ = write(tmp_path, fmt, anim)
    frames = frames_of(path, "RGB")
    assert len(frames) == 1
    assert_same_pixels(fmt, frames[0][0], anim.frames[0])
    assert extract(path).media["frames"] == 1
    assert read(path).generation.seed is not None


@pytest.mark.parametrize("fmt", FORMATS)
def test_pixels_only_and_core_layouts_keep_every_frame(fmt: str, tmp_path: Path) -> None:
    anim = animation()
    context = context_for("lora").scrubbed()
    target = by_name(fmt)
    bare, core = tmp_path / f"bare{SUFFIX[fmt]}", tmp_path / f"core{SUFFIX[fmt]}"
    with bare.open("wb") as fp:
        target.encode_pixels(anim, OPTIONS, fp)
    with core.open("wb") as fp:
        target.encode_core(anim, Payloads(record=Record(), comfy=list(context.chunks or [])), OPTIONS, fp)
    assert [len(frames_of(p, "RGB")) for p in (bare, core)] == [5, 5]
    assert extract(bare).comfy == {}
    assert extract(core).comfy == dict(context.chunks or [])
    assert extract(core).record_json is None and extract(core).infotext is None


# -- metadata --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_round_trip(fmt: str, tmp_path: Path) -> None:
    path, payloads = write(tmp_path, fmt, animation())
    assert read(path).to_dict() == payloads.record.to_dict()
    found = extract(path)
    assert found.infotext == payloads.infotext
    assert {k: found.comfy[k] for k in ("prompt", "workflow")} == dict(payloads.comfy)
    assert all(p.status == "written" for p in payloads.record.provenance.embedding)


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_ascii_infotext(fmt: str, tmp_path: Path) -> None:
    text = "Über die Straße, 猫, 😀, مرحبا"
    path, payloads = write(tmp_path, fmt, animation(), _with_positive("default", text))
    assert payloads.infotext is not None and text in payloads.infotext
    assert extract(path).infotext == payloads.infotext
    assert read(path).generation.positive == text


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_workflow_over_2_mib_stays_in_the_file(fmt: str, tmp_path: Path) -> None:
    context = big_context(pad=2_500_000)
    assert len(json.dumps(context.workflow)) > 2 * 1024 * 1024
    path, payloads = write(tmp_path, fmt, animation(), context)
    comfyui = [p for p in payloads.record.provenance.embedding if p.target == "comfyui"]
    assert len(comfyui) == 2 and all(p.status == "written" for p in comfyui)
    assert read(path).to_dict() == payloads.record.to_dict()
    assert extract(path).comfy["workflow"] == dict(payloads.comfy)["workflow"]


def test_a_still_gif_saves_and_reads_back(tmp_path: Path) -> None:
    image = np.dstack([np.asarray(gradient(0)), ALPHA])
    saved = save_images([image], context_for("lora"), tmp_path, "still", SaveOptions(format="gif"), version="t")[0]
    assert saved.record is not None and saved.path.suffix == ".gif" and saved.sidecars == []
    assert read(saved.path).to_dict() == saved.record.to_dict()
    with Image.open(saved.path) as back:
        assert back.n_frames == 1 and "loop" not in back.info
    assert extract(saved.path).media == {}


# -- what each container holds ---------------------------------------------------------------------------------


def test_webp_layout(tmp_path: Path) -> None:
    anim = animation(loop=3)
    path, _ = write(tmp_path, "webp", anim)
    chunks = webp_chunks(path)
    assert [c for c, _ in chunks] == ["VP8X", "ANIM", *["ANMF"] * 5, "EXIF", "XMP "]
    assert chunks[0][1][0] == 0x02 | 0x08 | 0x04  # animation, EXIF, XMP; no alpha
    assert struct.unpack("<H", chunks[1][1][4:6]) == (3,)
    frames = [body for c, body in chunks if c == "ANMF"]
    assert [int.from_bytes(f[12:15], "little") for f in frames] == anim.durations(1000)
    assert {(f[:6], f[15]) for f in frames} == {(bytes(6), 0x02)}  # at 0,0; no blending, no disposal


def test_apng_layout(tmp_path: Path) -> None:
    path, _ = write(tmp_path, "png", animation(loop=2))
    chunks = png_chunks(path)
    types = [c for c, _ in chunks]
    first_image = types.index(b"IDAT")
    assert types[0] == b"IHDR" and types[-1] == b"IEND"
    # Text after the frames: ffmpeg takes the file for an APNG only when IDAT starts within its 2 KiB probe.
    assert {b"tEXt", b"iTXt"} <= set(types[types.index(b"IDAT") :]) and len(
        b"".join(b for _c, b in chunks[:first_image])
    ) < 2048
    assert types.index(b"acTL") < types.index(b"fcTL") < first_image
    assert struct.unpack(">II", chunks[types.index(b"acTL")][1]) == (5, 2)
    numbered = [(c, struct.unpack(">I", body[:4])[0]) for c, body in chunks if c in (b"fcTL", b"fdAT")]
    assert [n for _c, n in numbered] == list(range(len(numbered)))
    controls = [struct.unpack(">IIIIIHHBB", body) for c, body in chunks if c == b"fcTL"]
    assert {c[1:] for c in controls} == {(WIDTH, HEIGHT, 0, 0, 1, 24, 0, 0)}


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(70001, 1000)], ids=["ntsc", "past-16-bits"])
def test_apng_delays_are_exact_where_16_bits_hold_them(fps: Fraction, tmp_path: Path) -> None:
    anim = animation(fps=fps)
    path, _ = write(tmp_path, "png", anim)
    delays = [struct.unpack(">HH", body[20:24]) for c, body in png_chunks(path) if c == b"fcTL"]
    if fps.denominator <= 0xFFFF and fps.numerator <= 0xFFFF:
        assert delays == [(fps.denominator, fps.numerator)] * 5
    else:  # 1000/70001 s does not fit: milliseconds that never drift
        assert delays == [(ms, 1000) for ms in anim.durations(1000)]


def gif_blocks(path: Path) -> list[tuple[int, list[bytes]]]:
    """(label, sub-blocks) per block; an image as (0x2C, [descriptor])."""
    data, out = path.read_bytes(), []
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while data[pos] != 0x3B:
        if data[pos] == 0x2C:
            descriptor, pos = data[pos + 1 : pos + 10], pos + 10
            pos += (3 << ((descriptor[8] & 7) + 1) if descriptor[8] & 0x80 else 0) + 1
            out.append((0x2C, [descriptor]))
            label = 0
        else:
            label, pos = data[pos + 1], pos + 2
        parts = []
        while data[pos]:
            parts.append(data[pos + 1 : pos + 1 + data[pos]])
            pos += 1 + data[pos]
        pos += 1
        if label:
            out.append((label, parts))
    return out


def test_gif_layout(tmp_path: Path) -> None:
    anim = animation(alpha=True, loop=3)
    path, payloads = write(tmp_path, "gif", anim)
    blocks = gif_blocks(path)
    assert blocks[0] == (0xFF, [b"NETSCAPE2.0", b"\x01\x02\x00"])  # 3 plays: 2 repeats after the first
    controls = [parts[0] for label, parts in blocks if label == 0xF9]
    assert [struct.unpack("<H", c[1:3])[0] for c in controls] == anim.durations(100)
    assert {c[0] for c in controls} == {0x08 | 0x01}  # clear pixels: restore to background; transparency
    assert all(parts[0][8] & 0x80 for label, parts in blocks if label == 0x2C)  # each frame's own palette
    data = path.read_bytes()
    assert b"XMP DataXMP<?xpacket begin=" in data and data.count(XMP_MAGIC) == 1
    ours = [b"".join(parts[1:]) for label, parts in blocks if label == 0xFF and parts[0] == b"COMFYPRV1.0"]
    assert [tuple(o.split(b"\x00", 1)) for o in ours] == [(k.encode(), v.encode()) for k, v in payloads.comfy]
    assert all(len(part) <= 255 for _label, parts in blocks for part in parts)
    comments = [b"".join(parts) for label, parts in blocks if label == 0xFE]
    assert payloads.infotext is not None and comments == [payloads.infotext.encode()]


def test_clear_gif_pixels_never_show_the_frame_before(tmp_path: Path) -> None:
    """An opaque frame, then one clear on its left half: the left half must be clear, not the first frame."""
    opaque = np.dstack([np.asarray(gradient(0)), np.full((HEIGHT, WIDTH), 255, np.uint8)])
    left_clear = np.tile(np.where(np.arange(WIDTH) < WIDTH // 2, 0, 255).astype(np.uint8), (HEIGHT, 1))
    half = np.dstack([np.asarray(gradient(60)), left_clear])
    anim = Animation([Image.fromarray(opaque), Image.fromarray(half)], FPS)
    path, _ = write(tmp_path, "gif", anim)
    (first, _), (second, _) = frames_of(path, "RGBA")
    assert (first[..., 3] == 255).all()
    assert (second[:, : WIDTH // 2, 3] == 0).all() and (second[:, WIDTH // 2 :, 3] == 255).all()
    ffmpeg = tool("ffmpeg")
    raw = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-vsync", "0", "-f", "rawvideo", "-pix_fmt", "rgba", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, HEIGHT, WIDTH, 4)
    assert len(frames) == 2 and (frames[1][:, : WIDTH // 2, 3] == 0).all()


def test_gif_loop_once_has_no_loop_extension(tmp_path: Path) -> None:
    path, _ = write(tmp_path, "gif", animation(loop=1))
    controls = [parts[0] for label, parts in gif_blocks(path) if label == 0xF9]
    assert len(controls) == 5 and {c[0] for c in controls} == {0x04}  # opaque: do not dispose, no transparency
    assert all(parts[:1] != [b"NETSCAPE2.0"] for _label, parts in gif_blocks(path))
    with Image.open(path) as image:
        assert image.n_frames == 5 and "loop" not in image.info


# -- other tools -----------------------------------------------------------------------------------------------


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if REQUIRE_READERS:
            pytest.fail(f"{name} is not installed")
        pytest.skip(f"{name} is not installed")
    return found


@pytest.mark.parametrize("fmt", ["webp", "gif"])
def test_exiftool_shows_the_metadata(fmt: str, tmp_path: Path) -> None:
    path, payloads = write(tmp_path, fmt, animation())
    run = subprocess.run([tool("exiftool"), "-j", "-a", "-G1", str(path)], capture_output=True, text=True, check=True)
    tags = json.loads(run.stdout)[0]
    record = json.loads(tags["XMP-cprov:Record"])
    assert record["generation"] == payloads.record.to_dict()["generation"]
    assert tags["XMP-cprov:Seed"] == payloads.record.generation.seed
    assert payloads.infotext is not None
    if fmt == "gif":
        assert tags["File:Comment"] == payloads.infotext
        assert tags["GIF:FrameCount"] == 5
    else:
        assert tags["ExifIFD:UserComment"] == payloads.infotext
        assert tags["IFD0:ImageDescription"] == "prompt:" + dict(payloads.comfy)["prompt"]
        assert tags["IFD0:Make"] == "workflow:" + dict(payloads.comfy)["workflow"]


def test_ffprobe_shows_the_gif_comment_and_frames(tmp_path: Path) -> None:
    path, payloads = write(tmp_path, "gif", animation())
    ffprobe = tool("ffprobe")
    shown = subprocess.run(
        [ffprobe, "-v", "error", "-show_format", "-of", "json", str(path)], capture_output=True, text=True, check=True
    )
    assert json.loads(shown.stdout)["format"]["tags"]["comment"] == payloads.infotext
    counted = subprocess.run(
        [ffprobe, "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(counted.stdout)["streams"][0]["nb_read_frames"] == "5"


# -- convert ---------------------------------------------------------------------------------------------------


def core_animation(folder: Path, fmt: str) -> Path:
    """What a ComfyUI save writes with Pillow: SaveAnimatedWEBP's EXIF, SaveAnimatedPNG's `comf` chunks
    after the image data, and a GIF with VideoHelperSuite's older JSON comment."""
    api, ui = load_workflow("lora")
    frames = [gradient(shift) for shift in (0, 60, 120)]
    path = folder / f"core{SUFFIX[fmt]}"
    extra: dict[str, Any] = {"exif": core_exif("lora")} if fmt == "webp" else {}
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        for key, value in (("prompt", api), ("workflow", ui)):
            info.add(b"comf", key.encode() + b"\x00" + json.dumps(value).encode("latin-1"), after_idat=True)
        extra = {"pnginfo": info}
    if fmt == "gif":
        extra = {"comment": json.dumps({"prompt": json.dumps(api), "workflow": json.dumps(ui)})}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=125, loop=0, **extra)
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_convert_keeps_every_frame_of_a_core_animation(fmt: str, tmp_path: Path) -> None:
    source = core_animation(tmp_path, fmt)
    before = decoded(source)
    assert len(before["frames"]) == 3
    outcome = convert(source, tmp_path / "out" / source.name)
    assert outcome.status == CONVERTED and outcome.dest is not None, outcome
    assert decoded(outcome.dest) == before
    assert outcome.record is not None and read(outcome.dest).to_dict() == outcome.record.to_dict()
    assert extract(outcome.dest).media == extract(source).media
    assert extract(outcome.dest).comfy["prompt"] == json.dumps(load_workflow("lora")[0])
    if fmt == "png":  # ours replace core's `comf` chunks, which ComfyUI's frontend reads as tEXt too
        assert b"comf" not in [ctype for ctype, _ in png_chunks(outcome.dest)]


def test_convert_skips_a_gif_without_comfyui_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.gif"
    frames = [gradient(shift) for shift in (0, 60)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = path.read_bytes()
    outcome = convert(path)
    assert outcome.status == SKIPPED and "no ComfyUI metadata" in (outcome.reason or "")
    assert path.read_bytes() == data


@pytest.mark.parametrize("fmt", FORMATS)
def test_our_animations_restamp_in_place(fmt: str, tmp_path: Path) -> None:
    path, _ = write(tmp_path, fmt, animation())
    before = decoded(path)
    outcome = convert(path, force=True)
    assert outcome.status == CONVERTED, outcome
    assert decoded(path) == before and len(before["frames"]) == 5
    assert outcome.record is not None and read(path).to_dict() == outcome.record.to_dict()

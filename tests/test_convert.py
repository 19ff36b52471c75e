"""`provenance convert`: ComfyUI core's files restamped in place or into a folder, pixels untouched.

Inputs are real SaveAnimatedWEBP files (tests/corpus/images) and files written here exactly as
core's SaveImage / SaveAnimatedWEBP write them. Every external reader is run on the results
with the conventions of test_external_readers.py: a reader that cannot get something (a KNOWN
bug or limit) is asserted to get nothing, so a change shows up here.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
from conftest import context_for, load_workflow, pixels
from PIL import Image, PngImagePlugin
from readers import FIELDS, GRAPH, INFOTEXT, NATIVE, READERS, Reading, comfyui, stem
from test_external_readers import NEVER, SOURCES, expected_fields

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.convert import ALPHA_NOTE, CONVERTED, FAILED, SKIPPED, Outcome, convert_file
from comfyui_provenance.metadata.formats import exif as exif_format
from comfyui_provenance.metadata.formats.base import DEFAULT_TARGETS, TARGETS, by_name
from comfyui_provenance.metadata.read import NOT_OURS, read
from comfyui_provenance.metadata.record import GENERATOR_NAME, Generation, Model, Record
from comfyui_provenance.metadata.save import SaveOptions, prepare, save_images

IMAGES = Path(__file__).parent / "corpus" / "images"
CORE_WEBPS = ("image_to_video_wan-1.webp", "text_to_video_wan-1.webp", "txt_to_image_to_video-1.webp")
WORKFLOWS = ("default", "lora")
KINDS = ("png", "jpeg", "webp", "animated")  # what core-style file is written for a corpus workflow
SUFFIX = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "animated": ".webp"}
TAG_MAKE, TAG_MODEL, TAG_DESCRIPTION = 0x010F, 0x0110, 0x010E
# A1111's labels for the corpus WEBPs' samplers, written out so the expectation is not the library's.
A1111_SAMPLERS = {"uni_pc": "UniPC", "euler": "Euler"}
A1111_SCHEDULERS = {"simple": "Simple", "karras": "Karras"}


# -- core-style inputs --------------------------------------------------------------------------------------


def core_png(path: Path, name: str, image: np.ndarray | None = None) -> Path:
    """What SaveImage writes: tEXt prompt, then each extra_pnginfo key, compress_level 4."""
    api, ui = load_workflow(name)
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(api))
    info.add_text("workflow", json.dumps(ui))
    Image.fromarray(pixels() if image is None else image).save(path, pnginfo=info, compress_level=4)
    return path


def core_exif(name: str) -> Image.Exif:
    """SaveAnimatedWEBP's EXIF: prompt in IFD0 Model, extra_pnginfo keys from Make downwards."""
    api, ui = load_workflow(name)
    exif = Image.Exif()
    exif[TAG_MODEL] = "prompt:" + json.dumps(api)
    exif[TAG_MAKE] = "workflow:" + json.dumps(ui)
    return exif


def core_webp(path: Path, name: str, frames: int = 1) -> Path:
    """SaveAnimatedWEBP's call (one frame makes Pillow write a still extended WEBP)."""
    images = [Image.fromarray(pixels(seed=i)) for i in range(frames)]
    images[0].save(
        path, save_all=True, duration=100, append_images=images[1:], exif=core_exif(name), quality=80, method=4
    )
    return path


def comfy_jpeg(path: Path, name: str) -> Path:
    """Core writes no JPEG; custom save nodes put core's WEBP EXIF layout into one (JFIF APP0, APP1 Exif)."""
    Image.fromarray(pixels()).save(path, "JPEG", quality=90, exif=core_exif(name))
    return path


def core_file(folder: Path, name: str, kind: str) -> Path:
    path = folder / f"{name}_{kind}{SUFFIX[kind]}"
    if kind == "png":
        return core_png(path, name)
    if kind == "jpeg":
        return comfy_jpeg(path, name)
    return core_webp(path, name, frames=3 if kind == "animated" else 1)


def corpus_copy(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes((IMAGES / name).read_bytes())
    return path


# -- what must not change --------------------------------------------------------------------------------------


def decoded(path: Path) -> dict[str, Any]:
    """Every frame's pixels and timing as Pillow decodes them."""
    with Image.open(path) as image:
        frames = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append((image.convert("RGBA").tobytes(), image.info.get("duration")))
        return {"size": image.size, "mode": image.mode, "loop": image.info.get("loop"), "frames": frames}


def webp_chunks(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    chunks = comfyui.webp_chunks(data)
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8, "RIFF size does not match the file"
    assert 12 + sum(8 + len(body) + (len(body) & 1) for _, body in chunks) == len(data), "chunk sizes or padding"
    return chunks


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data, out, pos = path.read_bytes(), [], 8
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(ctype + body)
        out.append((ctype, body))
        pos += 12 + length
    return out


def jpeg_layout(path: Path) -> tuple[list[tuple[int, bytes]], bytes]:
    """(header segments, everything from the start of scan on)."""
    data, out, pos = path.read_bytes(), [], 2
    while data[pos + 1] != 0xDA:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        out.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return out, data[pos:]


def image_data(path: Path) -> Any:
    """The container's image data, byte for byte: what a restamp must never touch."""
    if path.suffix == ".png":
        return [body for ctype, body in png_chunks(path) if ctype == b"IDAT"]
    if path.suffix == ".jpg":
        return jpeg_layout(path)[1]
    return [(c, b) for c, b in webp_chunks(path) if c not in ("VP8X", "EXIF", "XMP ")]


def assert_untouched(before: Path, after: Path) -> None:
    assert image_data(after) == image_data(before)
    assert decoded(after) == decoded(before)


def ifd0_raw(exif: bytes) -> dict[int, bytes]:
    """IFD0 ASCII values as stored (without the NUL), whatever the byte order."""
    tiff = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    out = {}
    for i in range(count):
        tag, kind, n, offset = struct.unpack(order + "HHII", tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i])
        if kind == 2 and n > 4:
            out[tag] = tiff[offset : offset + n - 1]
    return out


def exif_of(path: Path) -> bytes:
    if path.suffix == ".jpg":
        return next(body for marker, body in jpeg_layout(path)[0] if marker == 0xE1 and body.startswith(b"Exif"))
    return next(body for ctype, body in webp_chunks(path) if ctype == "EXIF")


def assert_faithful(outcome: Outcome) -> Record:
    """Converted, read back as the record it reported, imported from ComfyUI, stamped by us just now."""
    assert outcome.status == CONVERTED, outcome
    assert outcome.dest is not None and outcome.record is not None
    back = read(outcome.dest)
    assert back.to_dict() == outcome.record.to_dict()
    prov = back.provenance
    assert (prov.capture_mode, prov.other.get("imported_from")) == ("imported", "comfyui")
    assert (prov.generator.name, prov.generator.version) == (GENERATOR_NAME, "test")
    assert prov.created is not None
    with Image.open(outcome.dest) as image:
        assert (back.image.width, back.image.height) == image.size
    assert back.image.filename == outcome.dest.name
    return back


def convert(source: Path, dest: Path | None = None, **kwargs: Any) -> Outcome:
    return convert_file(source, dest, version="test", **kwargs)


# -- real SaveAnimatedWEBP files -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Outcome]]:
    folder = tmp_path_factory.mktemp("corpus_webp")
    out = {}
    for name in CORE_WEBPS:
        source = corpus_copy(folder, name)
        out[name] = (source, convert(source, folder / "out" / name))
    return out


@pytest.mark.parametrize("name", CORE_WEBPS)
def test_core_animated_webp_keeps_every_frame_and_its_timing(
    converted_corpus: dict[str, tuple[Path, Outcome]], name: str
) -> None:
    source, outcome = converted_corpus[name]
    assert_faithful(outcome)
    assert outcome.dest is not None
    before, after = decoded(source), decoded(outcome.dest)
    want = json.loads((IMAGES / "expected.json").read_text("utf-8"))[name]
    assert len(after["frames"]) == int(want["container"].split("(")[1].split()[0])
    assert after == before
    assert image_data(outcome.dest) == image_data(source)  # ANIM and every ANMF byte for byte
    assert source.read_bytes() == (IMAGES / name).read_bytes()  # --out never touches the source


@pytest.mark.parametrize("name", CORE_WEBPS)
def test_core_webp_graph_moves_out_of_model_byte_for_byte(
    converted_corpus: dict[str, tuple[Path, Outcome]], name: str
) -> None:
    """Core's UTF-8 JSON goes from IFD0 Model to ImageDescription unchanged; Model holds SwarmUI's
    ASCII JSON instead, since these files have alpha (test_rgba_webp.py), and is no ComfyUI key."""
    source, outcome = converted_corpus[name]
    assert outcome.dest is not None
    old, new = ifd0_raw(exif_of(source)), ifd0_raw(exif_of(outcome.dest))
    assert old[TAG_MODEL].startswith(b"prompt:{") and new[TAG_MODEL].startswith(b'{"sui_image_params": {')
    assert new[TAG_MODEL].isascii()
    assert new[TAG_DESCRIPTION] == old[TAG_MODEL]
    assert new[TAG_MAKE] == old[TAG_MAKE]
    assert exif_format.parse(exif_of(outcome.dest)).comfy == exif_format.parse(exif_of(source)).comfy
    with Image.open(outcome.dest) as image:
        assert set(json.loads(image.getexif()[TAG_MODEL])) == {"sui_image_params"}


@pytest.mark.parametrize("name", CORE_WEBPS)
def test_core_webp_container_layout(converted_corpus: dict[str, tuple[Path, Outcome]], name: str) -> None:
    """VP8X first with EXIF and XMP flags, the metadata after the frames, alpha kept and reported."""
    source, outcome = converted_corpus[name]
    assert outcome.dest is not None
    chunks = [c for c, _ in webp_chunks(outcome.dest)]
    assert chunks[:2] == ["VP8X", "ANIM"]
    assert chunks[-2:] == ["EXIF", "XMP "]
    flags = dict(webp_chunks(outcome.dest))["VP8X"][0]
    assert flags == dict(webp_chunks(source))["VP8X"][0] | 0x08 | 0x04
    assert flags & 0x10 and flags & 0x02  # alpha and animation, as core wrote them
    assert outcome.notes == [ALPHA_NOTE]
    assert outcome.record is not None and ALPHA_NOTE not in outcome.record.provenance.warnings  # nothing is lost


def corpus_expected(name: str, source: str) -> dict[str, Any]:
    want = json.loads((IMAGES / "expected.json").read_text("utf-8"))[name]["expected_from_prompt"]
    a1111 = source in (INFOTEXT, NATIVE)
    return {
        "prompt": want["positive"],
        "negative_prompt": want["negative"],
        "seed": want["seed"],
        "steps": want["steps"],
        "cfg": float(want["cfg"]),
        "sampler": A1111_SAMPLERS[want["sampler"]] if a1111 else want["sampler"],
        "scheduler": A1111_SCHEDULERS[want["scheduler"]] if a1111 else want["scheduler"],
        "model": stem(want.get("unet") or want["checkpoint"]),
        "width": want["width"],
        "height": want["height"],
    }


def _explain(reading: Reading) -> str:
    raw = json.dumps(reading.raw, default=str, ensure_ascii=False)
    return f"{reading.reader}: source={reading.source} error={reading.error} raw={raw[:1500]}"


@pytest.mark.readers
@pytest.mark.parametrize("name", CORE_WEBPS)
@pytest.mark.parametrize("reader", list(READERS))
def test_readers_on_converted_core_webp(
    converted_corpus: dict[str, tuple[Path, Outcome]], reader: str, name: str
) -> None:
    source, outcome = converted_corpus[name]
    assert outcome.dest is not None
    if reader == "python-xmp-toolkit":
        # KNOWN: Exempi 2.6 cannot open an animated WEBP at all, before or after.
        for path in (source, outcome.dest):
            with pytest.raises(Exception, match="bad file format"):
                READERS[reader](path)
        return
    reading = READERS[reader](outcome.dest)
    if reader == "sd-prompt-reader":
        # Core's file crashed it (`prompt:` in IFD0 Model). It ignores UserComment on a WEBP with alpha
        # (readers.md §7.7), so it reads ours from the SwarmUI JSON in Model: all but the scheduler.
        assert "JSONDecodeError" in (READERS[reader](source).error or "")
        assert reading.raw["tool"] == "StableSwarmUI" and reading.raw["status"] == "READ_SUCCESS", _explain(reading)
        assert reading.source == NATIVE
        want = {**corpus_expected(name, NATIVE), **dict.fromkeys(NEVER[reader])}
        assert reading.fields == want, _explain(reading)
        return
    if reader == "comfyui":  # the frontend loads the workflow and walks the very same graph as before
        assert reading.raw["loads"] == "workflow", _explain(reading)
        assert reading.source == GRAPH and reading.fields == READERS[reader](source).fields
        assert reading.raw["parsed"] == READERS[reader](source).raw["parsed"]
        return
    expected_source = NATIVE if reader == "sd-parsers" else INFOTEXT
    assert reading.source == expected_source, _explain(reading)
    assert reading.fields == corpus_expected(name, expected_source), _explain(reading)


# -- core-style PNG, JPEG, still and animated WEBP -----------------------------------------------------------


@pytest.fixture(scope="module")
def converted_core(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[Path, Outcome]]:
    folder = tmp_path_factory.mktemp("core_files")
    out = {}
    for name in WORKFLOWS:
        for kind in KINDS:
            source = core_file(folder, name, kind)
            out[name, kind] = (source, convert(source, folder / "out" / source.name))
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", WORKFLOWS)
def test_core_files_convert_without_touching_pixels(
    converted_core: dict[tuple[str, str], tuple[Path, Outcome]], name: str, kind: str
) -> None:
    source, outcome = converted_core[name, kind]
    back = assert_faithful(outcome)
    assert outcome.dest is not None
    assert_untouched(source, outcome.dest)
    assert back.workflow == load_workflow(name)[1] and back.prompt == load_workflow(name)[0]
    assert back.image.format == ("png" if kind == "png" else "jpeg" if kind == "jpeg" else "webp")
    if kind != "png":
        new = ifd0_raw(exif_of(outcome.dest))
        assert TAG_MODEL not in new
        assert new[TAG_DESCRIPTION] == ifd0_raw(exif_of(source))[TAG_MODEL]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_png_chunks_core_text_kept_ours_before_the_image_data(
    converted_core: dict[tuple[str, str], tuple[Path, Outcome]], name: str
) -> None:
    source, outcome = converted_core[name, "png"]
    assert outcome.dest is not None
    old, new = png_chunks(source), png_chunks(outcome.dest)
    texts = [(c, body.partition(b"\x00")[0]) for c, body in new if c in (b"tEXt", b"iTXt", b"zTXt")]
    assert texts == [
        (b"tEXt", b"prompt"),
        (b"tEXt", b"workflow"),
        (b"iTXt", b"XML:com.adobe.xmp"),  # the first iTXt: Exempi sees no XMP after another one
        (b"tEXt", b"parameters"),
        (b"iTXt", b"comfyui_provenance"),
    ]
    first_idat = [c for c, _ in new].index(b"IDAT")
    assert all(i < first_idat for i, (c, _) in enumerate(new) if c in (b"tEXt", b"iTXt"))
    for key in (b"prompt", b"workflow"):  # core's text, byte for byte
        assert [b for c, b in new if b.startswith(key + b"\x00")] == [b for c, b in old if b.startswith(key + b"\x00")]
    assert [c for c, _ in new if c not in (b"tEXt", b"iTXt")] == [c for c, _ in old if c != b"tEXt"]


def test_jpeg_segments_app0_then_exif_then_xmp(converted_core: dict[tuple[str, str], tuple[Path, Outcome]]) -> None:
    source, outcome = converted_core["default", "jpeg"]
    assert outcome.dest is not None
    old, new = jpeg_layout(source)[0], jpeg_layout(outcome.dest)[0]
    assert old[0][0] == 0xE0 and old[1][1].startswith(b"Exif\x00\x00")
    assert new[0] == old[0]  # JFIF stays first
    assert new[1][1].startswith(b"Exif\x00\x00MM")
    assert new[2][1].startswith(b"http://ns.adobe.com/xap/1.0/\x00")
    assert [s for s in new[3:]] == [s for s in old[2:]]  # quantization, Huffman, frame header: as they were


@pytest.mark.readers
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", WORKFLOWS)
@pytest.mark.parametrize("reader", list(READERS))
def test_readers_on_converted_core_files(
    converted_core: dict[tuple[str, str], tuple[Path, Outcome]], reader: str, name: str, kind: str
) -> None:
    """Converted files read like files our node saved (test_external_readers.SOURCES)."""
    _source, outcome = converted_core[name, kind]
    assert outcome.dest is not None
    fmt = "webp" if kind == "animated" else kind
    if reader == "python-xmp-toolkit" and kind == "animated":
        with pytest.raises(Exception, match="bad file format"):  # KNOWN: Exempi opens no animated WEBP
            READERS[reader](outcome.dest)
        return
    reading = READERS[reader](outcome.dest)
    source = SOURCES[reader][fmt]
    if source is None:
        assert not reading.found, f"KNOWN limit no longer holds: {_explain(reading)}"
        return
    assert reading.source == source, _explain(reading)
    want = expected_fields(name, source)
    never = NEVER.get(reader, set())
    got = {k: reading[k] for k in FIELDS if k not in never}
    assert got == {k: v for k, v in want.items() if k not in never}, _explain(reading)
    if reader == "comfyui":
        assert reading.raw["loads"] == "workflow"


# -- simple WEBP (no VP8X) and restamp on its own ---------------------------------------------------------------


def _record() -> Record:
    record = Record(generation=Generation(positive="a red fox", negative="blurry", seed=7, steps=20, cfg=5.0))
    record.generation.sampler, record.generation.scheduler = "euler", "normal"
    record.generation.width, record.generation.height = 96, 64
    record.models.append(Model(role="checkpoint", name="model.safetensors"))
    return record


@pytest.mark.parametrize("lossless,alpha", [(False, False), (True, False), (True, True)])
def test_simple_webp_gets_a_vp8x_header(tmp_path: Path, lossless: bool, alpha: bool) -> None:
    image = pixels()
    if alpha:
        image = np.dstack([image, np.full(image.shape[:2], 77, dtype=np.uint8)])
    source = tmp_path / "simple.webp"
    Image.fromarray(image).save(source, lossless=lossless, quality=80)
    assert [c for c, _ in webp_chunks(source)] == ["VP8L" if lossless else "VP8 "]
    fmt = by_name("webp")
    record = _record()
    payloads, plan = prepare(record, [], fmt, DEFAULT_TARGETS)
    dest = tmp_path / "stamped.webp"
    with source.open("rb") as src, dest.open("wb") as dst:
        fmt.restamp(src, payloads, plan, SaveOptions(format="webp"), dst)
    chunks = webp_chunks(dest)
    assert [c for c, _ in chunks] == ["VP8X", "VP8L" if lossless else "VP8 ", "EXIF", "XMP "]
    vp8x = chunks[0][1]
    assert vp8x[0] == 0x08 | 0x04 | (0x10 if alpha else 0)
    assert (int.from_bytes(vp8x[4:7], "little") + 1, int.from_bytes(vp8x[7:10], "little") + 1) == (96, 64)
    assert_untouched(source, dest)
    assert read(dest).to_dict() == record.to_dict()
    assert READERS["pillow"](dest)["prompt"] == "a red fox"


def test_png_restamp_puts_xmp_before_a_foreign_itxt_and_replaces_old_parameters(tmp_path: Path) -> None:
    api, ui = load_workflow("default")
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Comment", "made by hand, ünïcödé", zip=False)
    info.add_text("parameters", "stale\nSteps: 1, Sampler: Euler, CFG scale: 1, Seed: 1, Size: 1x1")
    info.add_text("prompt", json.dumps(api))
    info.add_text("workflow", json.dumps(ui))
    source = tmp_path / "hand.png"
    Image.fromarray(pixels()).save(source, pnginfo=info)
    outcome = convert(source, tmp_path / "out" / "hand.png")
    assert_faithful(outcome)
    assert outcome.dest is not None
    texts = [(c, b.partition(b"\x00")[0]) for c, b in png_chunks(outcome.dest) if c in (b"tEXt", b"iTXt")]
    assert texts.index((b"iTXt", b"XML:com.adobe.xmp")) < texts.index((b"iTXt", b"Comment"))
    assert [k for _, k in texts].count(b"parameters") == 1
    with Image.open(outcome.dest) as image:
        assert image.text["Comment"] == "made by hand, ünïcödé"
        assert "stale" not in image.text["parameters"]
    assert_untouched(source, outcome.dest)


def test_itxt_workflow_from_another_tool_becomes_text_the_frontend_loads(tmp_path: Path) -> None:
    """KNOWN frontend limit (readers.md §4): iTXt breaks its JSON.parse. The converted chunk is tEXt."""
    api, ui = load_workflow("default")
    ui = {**ui, "extra": {"note": "狐狸 in the snow"}}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(api))
    info.add_itxt("workflow", json.dumps(ui, ensure_ascii=False))
    source = tmp_path / "itxt.png"
    Image.fromarray(pixels()).save(source, pnginfo=info)
    assert comfyui.read(source).raw["loads"] == "prompt"  # the workflow did not parse
    outcome = convert(source)
    back = assert_faithful(outcome)
    assert back.workflow == ui
    assert outcome.dest == source
    assert [c for c, b in png_chunks(source) if b.startswith(b"workflow\x00")] == [b"tEXt"]
    assert comfyui.read(source).raw["loads"] == "workflow"


def test_out_inside_the_walked_folder_is_not_walked(mixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = mixed / "stamped"
    assert cli(capsys, str(mixed), "--out", str(out))[0] == 0
    code, stdout, _ = cli(capsys, str(mixed), "--out", str(out))
    sources = [line.split()[1].rstrip(":") for line in stdout.splitlines()[:-1] if not line.startswith(" ")]
    assert code == 0 and len(sources) == 4 and not any(s.startswith(str(out)) for s in sources)
    assert stdout.splitlines()[-1] == "0 converted, 4 skipped, 0 failed (4 files)"


def test_credentials_in_core_text_are_scrubbed(tmp_path: Path) -> None:
    api, ui = load_workflow("default")
    secret = "sk-do-not-leak-0123456789"
    api["3"]["inputs"]["api_key_comfy_org"] = secret
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(api))
    info.add_text("workflow", json.dumps(ui))
    source = tmp_path / "secret.png"
    Image.fromarray(pixels()).save(source, pnginfo=info)
    outcome = convert(source, tmp_path / "out" / "secret.png", targets=TARGETS)
    back = assert_faithful(outcome)
    assert back.prompt is not None and "api_key_comfy_org" not in back.prompt["3"]["inputs"]
    for path in (outcome.dest, *outcome.sidecars):
        assert path is not None and secret.encode() not in path.read_bytes()


# -- the CLI: folders, --out, --in-place, summary ------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["convert", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


WAN = Path("videos") / "image_to_video_wan-1.webp"


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A folder as a user has it: a file already stamped (with its JSON sidecar), core files, a
    sub-folder, a non-image."""
    folder = tmp_path / "outputs"
    (folder / "videos").mkdir(parents=True)
    core_png(folder / "ComfyUI_00001_.png", "default")
    assert convert_file(folder / "ComfyUI_00001_.png", targets=DEFAULT_TARGETS | {"sidecar_json"}).status == CONVERTED
    core_png(folder / "ComfyUI_00002_.png", "lora")
    corpus_copy(folder / "videos", "image_to_video_wan-1.webp")
    (folder / "notes.txt").write_text("not an image")
    Image.fromarray(pixels()).save(folder / "plain.png")
    return folder


def test_out_walks_folders_and_keeps_names(mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(mixed)
    out = tmp_path / "stamped"
    code, stdout, stderr = cli(capsys, str(mixed), "--out", str(out))
    assert code == 0 and stderr == ""  # no progress bar when stderr is not a terminal
    assert tree(mixed) == before
    assert sorted(tree(out)) == ["ComfyUI_00002_.png", str(WAN)]
    assert stdout.splitlines() == [
        f"skipped    {mixed / 'ComfyUI_00001_.png'}: already stamped: it carries a provenance record",
        f"converted  {mixed / 'ComfyUI_00002_.png'} -> {out / 'ComfyUI_00002_.png'}",
        f"skipped    {mixed / 'plain.png'}: no ComfyUI metadata",
        f"converted  {mixed / WAN} -> {out / WAN}",
        f"  note: {ALPHA_NOTE}",
        "2 converted, 2 skipped, 0 failed (4 files)",
    ]
    for name in ("ComfyUI_00002_.png", str(WAN)):
        assert read(out / name).provenance.other["imported_from"] == "comfyui"
        assert_untouched(mixed / name, out / name)
    code, stdout, _ = cli(capsys, str(mixed), "--out", str(out))  # again: nothing left to do
    assert code == 0 and stdout.splitlines()[-1] == "0 converted, 4 skipped, 0 failed (4 files)"
    assert stdout.count("already converted") == 2
    code, stdout, _ = cli(capsys, str(mixed), "--out", str(out), "--force")
    assert code == 0 and stdout.splitlines()[-1] == "3 converted, 1 skipped, 0 failed (4 files)"


def test_in_place_then_idempotent(mixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(mixed / "ComfyUI_00002_.png", 0o640)
    originals = tree(mixed)
    code, stdout, _ = cli(capsys, str(mixed), "--in-place")
    assert code == 0 and stdout.splitlines()[-1] == "2 converted, 2 skipped, 0 failed (4 files)"
    assert sorted(tree(mixed)) == sorted(originals)  # no temp files, no sidecars with the default targets
    assert stat.S_IMODE((mixed / "ComfyUI_00002_.png").stat().st_mode) == 0o640
    for name in ("ComfyUI_00002_.png", str(WAN)):
        assert (mixed / name).read_bytes() != originals[name]
    assert image_data(mixed / "videos" / "image_to_video_wan-1.webp") == image_data(
        IMAGES / "image_to_video_wan-1.webp"
    )
    stamped = tree(mixed)
    code, stdout, _ = cli(capsys, str(mixed), "--in-place")
    assert code == 0 and stdout.splitlines()[-1] == "0 converted, 4 skipped, 0 failed (4 files)"
    assert stdout.count("already stamped") == 3  # and plain.png: no ComfyUI metadata
    assert tree(mixed) == stamped


def test_a_stray_sidecar_does_not_make_a_file_stamped(tmp_path: Path) -> None:
    source = core_png(tmp_path / "ComfyUI_00001_.png", "default")
    (tmp_path / "ComfyUI_00001_.png.json").write_text('{"schema": "comfyui-provenance/1"}')
    assert convert(source).status == CONVERTED  # only the image itself says it is stamped
    assert convert(source).status == SKIPPED


def test_force_restamps_our_own_file(tmp_path: Path) -> None:
    api, ui = load_workflow("default")
    (saved,) = save_images([pixels()], context_for("default"), tmp_path, "ours", SaveOptions(), version="x")
    assert convert(saved.path).status == SKIPPED
    outcome = convert(saved.path, force=True)
    back = assert_faithful(outcome)
    assert back.prompt == api and back.workflow == ui


def test_progress_bar_and_summary(mixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = cli(capsys, str(mixed), "--in-place", "--progress")
    assert code == 0
    assert stderr.startswith("\r[") and stderr.endswith("\n") and stderr.count("\n") == 1
    assert stderr.rstrip().endswith("[" + "#" * 28 + "] 4/4 done")
    assert "converted" in stdout and "skipped" in stdout


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("garbage.png", bytes(range(256)) * 4, "not a PNG, JPEG, WEBP"),
        ("garbage.webp", b"RIFF\x00\x10\x00\x00WEBP" + bytes(range(256)) * 4, "truncated"),
        ("empty.jpg", b"", "not a PNG, JPEG, WEBP"),
    ],
)
def test_garbage_fails_with_a_reason_and_the_rest_converts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes, reason: str
) -> None:
    (tmp_path / name).write_bytes(data)
    good = core_png(tmp_path / "good.png", "default")
    code, stdout, _ = cli(capsys, str(tmp_path), "--in-place")
    assert code == 1
    failed = [line for line in stdout.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and str(tmp_path / name) in failed[0] and reason in failed[0], stdout
    assert (tmp_path / name).read_bytes() == data
    assert read(good).provenance.embedding
    assert stdout.splitlines()[-1] == "1 converted, 0 skipped, 1 failed (2 files)"


@pytest.mark.parametrize("kind", ["png", "jpeg", "animated"])
def test_truncated_core_files_fail_untouched(tmp_path: Path, kind: str) -> None:
    whole = core_file(tmp_path, "default", kind).read_bytes()
    for cut in (len(whole) // 3, len(whole) // 2, len(whole) - 3):
        path = tmp_path / f"cut{SUFFIX[kind]}"
        path.write_bytes(whole[:cut])
        outcome = convert(path)
        assert outcome.status == FAILED and "truncated" in (outcome.reason or ""), (cut, outcome)
        assert path.read_bytes() == whole[:cut]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({f"default_{kind}{SUFFIX[kind]}", path.name})


def test_unsupported_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bmp = tmp_path / "image.bmp"
    Image.fromarray(pixels()).save(bmp)
    code, stdout, _ = cli(capsys, str(bmp), str(tmp_path / "missing.png"), "--in-place")
    assert code == 1
    assert f"skipped    {bmp}: unsupported: {NOT_OURS}" in stdout
    assert f"failed     {tmp_path / 'missing.png'}: no such file or folder" in stdout


def test_a1111_and_plain_files_are_skipped(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 96x64")
    a1111 = tmp_path / "a1111.png"
    Image.fromarray(pixels()).save(a1111, pnginfo=info)
    outcome = convert(a1111)
    assert (outcome.status, outcome.reason) == (SKIPPED, "no ComfyUI metadata (A1111 parameters only)")


def test_two_sources_with_one_destination(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        core_png(tmp_path / sub / "ComfyUI_00001_.png", "default")
    first, second = tmp_path / "a" / "ComfyUI_00001_.png", tmp_path / "b" / "ComfyUI_00001_.png"
    code, stdout, _ = cli(capsys, str(first), str(second), "--out", str(tmp_path / "out"))
    assert code == 1
    assert f"failed     {second}: {first} converts to the same {tmp_path / 'out' / 'ComfyUI_00001_.png'}" in stdout
    code, stdout, _ = cli(capsys, str(first), "--out", str(tmp_path / "a"))
    assert code == 1 and "use --in-place" in stdout


def test_unknown_target_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = cli(capsys, str(tmp_path), "--in-place", "--targets", "a1111,nope")
    assert code == 2 and "nope" in stderr and "sidecar_json" in stderr


# -- atomicity ----------------------------------------------------------------------------------------------


def _half_then(error: BaseException) -> Any:
    def restamp(src: BinaryIO, payloads: Any, plan: Any, options: Any, dst: BinaryIO) -> None:
        dst.write(src.read(1000))
        raise error

    return restamp


@pytest.mark.parametrize("kind", ["png", "animated"])
def test_in_place_failure_mid_write_leaves_the_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    source = core_file(tmp_path, "default", kind)
    original = source.read_bytes()
    monkeypatch.setattr(by_name(source.suffix[1:]), "restamp", _half_then(OSError(errno.ENOSPC, "No space left")))
    code, stdout, _ = cli(capsys, str(source), "--in-place", "--targets", ",".join(TARGETS))
    assert code == 1 and f"failed     {source}: No space left" in stdout
    assert source.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == [source.name]  # no temp file, no sidecar


def test_interrupted_write_leaves_the_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = core_png(tmp_path / "core.png", "default")
    original = source.read_bytes()
    monkeypatch.setattr(by_name("png"), "restamp", _half_then(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        convert(source)
    assert source.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["core.png"]


def test_output_that_does_not_read_back_never_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The finished temporary file is read back before the rename: a broken one is refused."""
    source = core_png(tmp_path / "core.png", "default")
    original = source.read_bytes()

    def broken(src: BinaryIO, payloads: Any, plan: Any, options: Any, dst: BinaryIO) -> None:
        dst.write(src.read()[:-20])  # no IEND

    monkeypatch.setattr(by_name("png"), "restamp", broken)
    outcome = convert(source)
    assert outcome.status == FAILED and "truncated" in (outcome.reason or "")
    assert source.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["core.png"]

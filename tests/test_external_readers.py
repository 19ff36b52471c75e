"""Real external readers on files written by save_images: what each tool gets (research/readers.md).

Every reader is asserted on every format. Where readers.md documents that a reader cannot get
something (a bug or a limit of that reader), the test asserts exactly that, so a change in
either the reader or our layout shows up here instead of being skipped.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest
from conftest import context_for, expected, pixels
from PIL import Image
from readers import FIELDS, GRAPH, INFOTEXT, NATIVE, READERS, XMP, Reading, cli, comfyui, libs, stem
from readers import infotext as mini_infotext

from comfyui_provenance.metadata import infotext as library_infotext
from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.record import TRAINED
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images

pytestmark = pytest.mark.readers

WORKFLOWS = ("default", "lora", "hiresfix_latent_workflow", "sdxl_refiner_prompt_example")
FORMATS = ("png", "jpeg", "webp")
# A1111's labels for the corpus' samplers and schedulers, written out here so the expectation
# does not come from the library's own table.
A1111_SAMPLERS = {"euler": "Euler", "dpmpp_2m": "DPM++ 2M", "dpmpp_sde": "DPM++ SDE"}
A1111_SCHEDULERS = {"normal": "Normal", "karras": "Karras"}

# Where each reader finds our data, per format; None = it finds nothing (a KNOWN limit, asserted).
ALL_INFOTEXT = {"png": INFOTEXT, "jpeg": INFOTEXT, "webp": INFOTEXT}
EXIV2 = {"png": XMP, "jpeg": INFOTEXT, "webp": INFOTEXT}  # exiv2 exposes no PNG text chunk but XMP
SOURCES: dict[str, dict[str, str | None]] = {
    "exiftool": ALL_INFOTEXT,
    "exiv2": EXIV2,
    "pyexiv2": EXIV2,
    # Exempi returns no XMP at all for a WEBP that has an EXIF chunk ("Unrecognized TIFF prefix").
    "python-xmp-toolkit": {"png": XMP, "jpeg": INFOTEXT, "webp": None},
    "pillow": ALL_INFOTEXT,
    "piexif": {"png": None, "jpeg": INFOTEXT, "webp": INFOTEXT},  # piexif.load cannot open PNG
    "sd-prompt-reader": {"png": NATIVE, "jpeg": NATIVE, "webp": NATIVE},
    "sd-parsers": {"png": NATIVE, "jpeg": NATIVE, "webp": NATIVE},
    "exifreader": ALL_INFOTEXT,
    "comfyui": {"png": GRAPH, "jpeg": None, "webp": GRAPH},  # the frontend loads no workflow from JPEG
}
# Fields a reader never reports at all.
NEVER = {"sd-prompt-reader": {"scheduler"}}  # its parameter dict has no scheduler key


def _save(folder: Path, context: SaveContext, fmt: str, image: np.ndarray | None = None, **options: Any) -> SavedFile:
    files = save_images(
        [pixels() if image is None else image], context, folder, fmt, SaveOptions(format=fmt, **options), version="test"
    )
    return files[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    folder = tmp_path_factory.mktemp("external_readers")
    return {(name, fmt): _save(folder, context_for(name), fmt).path for name in WORKFLOWS for fmt in FORMATS}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def a1111_prompt(want: dict[str, Any]) -> str:
    """The prompt as an A1111 reader sees it: the LoRAs appended as A1111 writes them, `<lora:name:w>`,
    or `<lora:name:te:unet>` (CLIP strength, then model strength) when the two differ."""
    tags = []
    for lora in want["loras"]:
        te, unet = lora["strength_clip"], lora["strength_model"]
        weights = _number(unet) if te == unet else f"{_number(te)}:{_number(unet)}"
        tags.append(f"<lora:{stem(lora['name'])}:{weights}>")
    positive = want["positive"]
    shown = f"{positive} {', '.join(tags)}" if tags else positive
    return "\n".join(line.strip() for line in shown.strip().split("\n"))


def expected_fields(name: str, source: str) -> dict[str, Any]:
    """The corpus' independent expectation, spelled as `source` spells it."""
    want = expected(name)
    a1111 = source in (INFOTEXT, NATIVE)
    return {
        "prompt": a1111_prompt(want) if a1111 else want["positive"].strip(),
        "negative_prompt": want["negative"].strip(),
        "seed": want["seed"],
        "steps": want["steps"],
        "cfg": float(want["cfg"]),
        "sampler": A1111_SAMPLERS[want["sampler"]] if a1111 else want["sampler"],
        "scheduler": A1111_SCHEDULERS[want["scheduler"]] if a1111 else want["scheduler"],
        "model": stem(want["checkpoint"]),
        "width": want["width"],
        "height": want["height"],
    }


def _explain(reading: Reading) -> str:
    raw = json.dumps(reading.raw, default=str, ensure_ascii=False)
    return f"{reading.reader}: source={reading.source} error={reading.error} raw={raw[:1500]}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", WORKFLOWS)
@pytest.mark.parametrize("reader", list(READERS))
def test_reader_gets_every_field(files: dict[tuple[str, str], Path], reader: str, name: str, fmt: str) -> None:
    reading = READERS[reader](files[name, fmt])
    source = SOURCES[reader][fmt]
    if source is None:
        assert not reading.found, f"KNOWN limit no longer holds, update SOURCES: {_explain(reading)}"
        return
    assert reading.source == source, _explain(reading)
    want = expected_fields(name, source)
    never = NEVER.get(reader, set())
    got = {k: reading[k] for k in FIELDS}
    assert {k: v for k, v in got.items() if k in never} == dict.fromkeys(never & set(FIELDS))
    assert {k: v for k, v in got.items() if k not in never} == {k: v for k, v in want.items() if k not in never}


def test_minimal_and_library_infotext_parsers_agree(files: dict[tuple[str, str], Path]) -> None:
    """The text exiftool returns parses the same with the library's A1111 rules and ours."""
    for name in WORKFLOWS:
        text = cli.exiftool_tags(files[name, "png"])["PNG:Parameters"]
        mini, library = mini_infotext.parse(text), library_infotext.parse(text)
        assert mini is not None
        assert mini.prompt == a1111_prompt(expected(name))  # as A1111 reads it: the LoRA tags in the prompt
        assert library.positive.strip() == expected(name)["positive"].strip()  # ours takes off what it appended
        mini.params.pop(library_infotext.LORA_TAGS, None)
        assert mini.negative == (library.negative or "").strip()
        assert mini.params == library.params


@pytest.mark.parametrize("name", WORKFLOWS)
def test_png_comfyui_chunks_are_text_and_json(files: dict[tuple[str, str], Path], name: str) -> None:
    chunks = {key: (ctype, rest) for ctype, key, rest in comfyui.png_chunks(files[name, "png"].read_bytes())}
    for key in ("prompt", "workflow"):
        ctype, rest = chunks[key]
        assert ctype == "tEXt", f"{key} is {ctype}: the frontend's JSON.parse needs tEXt"
        assert isinstance(json.loads(rest.decode("utf-8")), dict)
    assert chunks["parameters"][0] == "tEXt"
    assert comfyui.read(files[name, "png"]).raw["loads"] == "workflow"


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_exif_ifd0_carries_graphs_in_make_and_description_never_model(
    files: dict[tuple[str, str], Path], fmt: str
) -> None:
    path = files["default", fmt]
    data = path.read_bytes()
    exif = (
        next(body for ctype, body in comfyui.webp_chunks(data) if ctype == "EXIF")
        if fmt == "webp"
        else Image.open(path).info["exif"]
    )
    ascii_tags = comfyui.ifd0_ascii(exif)
    assert ascii_tags[0x010F].startswith("workflow:{")
    assert ascii_tags[0x010E].startswith("prompt:{")
    json.loads(ascii_tags[0x010F].partition(":")[2])
    json.loads(ascii_tags[0x010E].partition(":")[2])
    # RGB pixels: Model is left out (sd-prompt-reader json-decodes it); only alpha gets SwarmUI JSON there.
    assert 0x0110 not in Image.open(path).getexif(), "IFD0 Model makes sd-prompt-reader crash"
    assert "IFD0:Model" not in cli.exiftool_tags(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_xmp_has_no_user_comment(files: dict[tuple[str, str], Path], fmt: str) -> None:
    """exifreader merges XMP over EXIF by name: an XMP UserComment would blank Civitai's."""
    path = files["lora", fmt]
    with Image.open(path) as image:
        packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    assert packet, "no XMP packet written"
    text = packet.decode("utf-8") if isinstance(packet, bytes) else packet
    root = ElementTree.fromstring(text[text.index("<x:xmpmeta") : text.index("</x:xmpmeta>") + 12])
    names = {n for e in root.iter() for n in (e.tag, *e.attrib)}
    assert not [n for n in names if n.endswith("}UserComment")], sorted(names)
    assert not any(k.startswith("XMP-exif:") for k in cli.exiftool_tags(path))
    reading = READERS["exifreader"](path)
    assert reading.source == INFOTEXT, _explain(reading)


@pytest.mark.parametrize("fmt", FORMATS)
def test_xmp_fields_read_by_exiftool_and_pyexiv2(files: dict[tuple[str, str], Path], fmt: str) -> None:
    path = files["lora", fmt]
    prompt = expected("lora")["positive"]
    tags = cli.exiftool_tags(path)
    assert tags["XMP-dc:Description"] == prompt
    assert tags["XMP-xmp:CreatorTool"].startswith("ComfyUI Provenance")
    assert tags["XMP-iptcExt:DigitalSourceType"] == TRAINED
    pyexiv2 = libs.pyexiv2_tags(path)
    assert pyexiv2["Xmp.dc.description"] == prompt
    assert pyexiv2["Xmp.xmp.CreatorTool"] == tags["XMP-xmp:CreatorTool"]
    assert pyexiv2["Xmp.iptcExt.DigitalSourceType"] == TRAINED


def test_exiv2_sees_only_xmp_in_png(files: dict[tuple[str, str], Path]) -> None:
    """KNOWN: exiv2 cannot return PNG tEXt/iTXt values other than XMP."""
    keys = cli.exiv2_tags(files["lora", "png"])["keys"]
    assert keys and all(k.startswith("Xmp.") for k in keys), keys


def test_exempi_reads_no_xmp_from_webp_with_exif(files: dict[tuple[str, str], Path]) -> None:
    """KNOWN: Exempi 2.6 finds no XMP in a WEBP that also has EXIF; exiftool does."""
    path = files["lora", "webp"]
    reading = READERS["python-xmp-toolkit"](path)
    assert reading.raw["xmp"] is False
    assert "XMP-dc:Description" in cli.exiftool_tags(path)


def test_sd_prompt_reader_exposes_no_scheduler(files: dict[tuple[str, str], Path]) -> None:
    """KNOWN: the schedule type only survives in its raw settings string."""
    reading = READERS["sd-prompt-reader"](files["lora", "jpeg"])
    assert "scheduler" not in reading.raw["parameter"]
    assert "Schedule type: Karras" in reading.raw["setting"]


UMLAUT_PROMPT = "Über die Straße, a glass bottle"


def _with_positive(name: str, text: str) -> SaveContext:
    context = context_for(name)
    prompt = copy.deepcopy(dict(context.prompt or {}))
    sampler = next(n for n in prompt.values() if n["class_type"] == "KSampler")
    prompt[sampler["inputs"]["positive"][0]]["inputs"]["text"] = text
    return dataclasses.replace(context, prompt=prompt)


@pytest.fixture(scope="module")
def umlaut_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("umlaut")
    context = _with_positive("default", UMLAUT_PROMPT)
    return {fmt: _save(folder, context, fmt).path for fmt in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_sd_prompt_reader_reads_nothing_from_umlaut_exif(umlaut_files: dict[str, Path], fmt: str) -> None:
    """KNOWN (readers.md §7.6): sd-prompt-reader reads nothing from JPEG/WEBP whose text has Ü or ß."""
    path = umlaut_files[fmt]
    for reader in ("exiftool", "pillow", "sd-parsers", "exifreader") + (("piexif",) if fmt != "png" else ()):
        reading = READERS[reader](path)
        assert reading["prompt"] == UMLAUT_PROMPT, _explain(reading)
    reading = READERS["sd-prompt-reader"](path)
    if fmt == "png":
        assert reading["prompt"] == UMLAUT_PROMPT, _explain(reading)
    else:
        assert not reading.found, f"KNOWN sd-prompt-reader bug no longer holds: {_explain(reading)}"


CORE_WEBP = Path(__file__).parent / "corpus" / "images" / "image_to_video_wan-1.webp"


def test_sd_prompt_reader_survives_our_webp_not_core_layout(files: dict[tuple[str, str], Path]) -> None:
    """KNOWN: core's SaveAnimatedWEBP puts `prompt:` in IFD0 Model and sd-prompt-reader raises on it."""
    assert Image.open(CORE_WEBP).getexif().get(0x0110, "").startswith("prompt:")
    core = READERS["sd-prompt-reader"](CORE_WEBP)
    assert core.error is not None and "JSONDecodeError" in core.error, _explain(core)
    for fmt in ("jpeg", "webp"):
        ours = READERS["sd-prompt-reader"](files["default", fmt])
        assert ours.error is None and ours.found, _explain(ours)


def test_rgba_input_keeps_alpha_in_webp(tmp_path: Path) -> None:
    """sd-prompt-reader ignores UserComment on a WEBP with alpha (readers.md §7.7), so alpha used to be
    dropped; it is kept now and sd-prompt-reader reads the SwarmUI copy in IFD0 Model (test_rgba_webp.py)."""
    rgba = np.dstack([pixels(), np.full((64, 96), 128, dtype=np.uint8)])
    path = _save(tmp_path, context_for("default"), "webp", image=rgba).path
    with Image.open(path) as image:
        assert image.mode == "RGBA"
    vp8x = dict(comfyui.webp_chunks(path.read_bytes()))["VP8X"]
    assert vp8x[0] & 0x10, "VP8X alpha flag not set"
    reading = READERS["sd-prompt-reader"](path)
    assert reading.raw["tool"] == "StableSwarmUI", _explain(reading)
    assert reading["prompt"] == expected("default")["positive"].strip()


def test_lossless_webp_and_the_frontend_pad_byte(tmp_path: Path) -> None:
    """Lossless VP8L chunks often have odd sizes. Frontend 1.49 skips the RIFF pad byte and loads
    the workflow; older frontends (KNOWN) did not, so they lose EXIF after an odd-sized chunk."""
    path = _save(tmp_path, context_for("default"), "webp", lossless=True).path
    assert comfyui.read(path, pad=True).raw["loads"] == "workflow"
    chunks = comfyui.webp_chunks(path.read_bytes())
    before_exif = chunks[: [c for c, _ in chunks].index("EXIF")]
    odd = any(len(body) % 2 for _, body in before_exif)
    assert (comfyui.read(path, pad=False).raw["loads"] is None) == odd

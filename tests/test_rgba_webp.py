"""WEBPs with alpha: pixels kept, the A1111 parameters also in IFD0 Model as SwarmUI JSON (formats/swarm.py).

sd-prompt-reader 1.3.5 takes a JPEG/WEBP with alpha for NovelAI stealth data and never reads its
UserComment (readers.md §7.7), but it json-decodes IFD0 Model first in every file and parses
SwarmUI's `sui_image_params` from there. Real readers are run on real RGBA files both ways a file
gets our layout: saved from RGBA pixels, and converted from ComfyUI's animated WEBPs with alpha
(core-style ones written here, and the corpus' real SaveAnimatedWEBP files), each field asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REQUIRE_READERS, context_for, expected, load_workflow, pixels
from PIL import Image
from readers import GRAPH, INFOTEXT, NATIVE, READERS, comfyui
from test_convert import (
    CORE_WEBPS,
    TAG_DESCRIPTION,
    TAG_MODEL,
    assert_faithful,
    assert_untouched,
    convert,
    core_exif,
    corpus_copy,
    exif_of,
    ifd0_raw,
)
from test_external_readers import (
    A1111_SAMPLERS,
    NEVER,
    SOURCES,
    UMLAUT_PROMPT,
    WORKFLOWS,
    _explain,
    _with_positive,
    expected_fields,
)
from test_readers_check import HARNESS, TIMEOUT, _env, expectation, installed_readers

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.convert import ALPHA_NOTE, Outcome
from comfyui_provenance.metadata.formats import exif as exif_format
from comfyui_provenance.metadata.formats.base import COMFYUI, RECORD, XMP
from comfyui_provenance.metadata.read import extract, read
from comfyui_provenance.metadata.record import Record
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images

WIDTH, HEIGHT = 96, 64
# Every alpha value from clear to opaque, so a dropped or flattened channel cannot go unnoticed.
ALPHA = np.tile(np.linspace(0, 255, WIDTH).astype(np.uint8), (HEIGHT, 1))
NO_A1111 = frozenset({COMFYUI, RECORD, XMP})
SWARM_KEY = b'{"sui_image_params": {'
SD_PROMPT_READER = "sd-prompt-reader"


def rgba(seed: int = 0) -> np.ndarray:
    return np.dstack([pixels(WIDTH, HEIGHT, seed=seed), ALPHA])


def save_rgba(folder: Path, context: SaveContext, image: np.ndarray | None = None, **options: Any) -> SavedFile:
    options.setdefault("format", "webp")
    image = rgba() if image is None else image
    return save_images([image], context, folder, "rgba", SaveOptions(**options), version="test")[0]


def core_rgba_webp(path: Path, name: str, frames: int = 2) -> Path:
    """SaveAnimatedWEBP's call on RGBA frames (what it writes after a node that adds alpha)."""
    images = [Image.fromarray(rgba(seed=i)) for i in range(frames)]
    images[0].save(
        path, save_all=True, duration=100, append_images=images[1:], exif=core_exif(name), quality=80, method=4
    )
    return path


def model_tag(path: Path) -> bytes | None:
    """IFD0 Model as stored (ASCII, no NUL), or None."""
    return ifd0_raw(exif_of(path)).get(TAG_MODEL)


def swarm_params(path: Path) -> dict[str, Any]:
    raw = model_tag(path)
    assert raw is not None and raw.startswith(SWARM_KEY), raw
    data = json.loads(raw.decode("ascii"))
    assert list(data) == ["sui_image_params"]
    params: dict[str, Any] = data["sui_image_params"]
    return params


def vp8x_flags(path: Path) -> int:
    return dict(comfyui.webp_chunks(path.read_bytes()))["VP8X"][0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SavedFile]:
    folder = tmp_path_factory.mktemp("rgba_saved")
    return {name: save_rgba(folder, context_for(name)) for name in WORKFLOWS}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Outcome]]:
    """Core-style animated RGBA WEBPs of the corpus workflows, and the real corpus files, converted."""
    folder = tmp_path_factory.mktemp("rgba_converted")
    out = {}
    for name in WORKFLOWS:
        source = core_rgba_webp(folder / f"{name}.webp", name)
        out[name] = (source, convert(source, folder / "out" / source.name))
    for name in CORE_WEBPS:
        source = corpus_copy(folder, name)
        out[name] = (source, convert(source, folder / "out" / name))
    return out


def _dest(converted: dict[str, tuple[Path, Outcome]], name: str) -> Path:
    dest = converted[name][1].dest
    assert dest is not None
    return dest


# -- the layout ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lossless", [False, True])
def test_saved_rgba_keeps_its_alpha(tmp_path: Path, lossless: bool) -> None:
    path = save_rgba(tmp_path, context_for("default"), lossless=lossless).path
    assert vp8x_flags(path) & 0x10
    with Image.open(path) as image:
        assert image.mode == "RGBA"
        assert np.array_equal(np.asarray(image)[:, :, 3], ALPHA)  # libwebp codes alpha losslessly by default
        if lossless:  # libwebp clears the colour of fully transparent pixels unless told `exact`
            visible = ALPHA > 0
            assert np.array_equal(np.asarray(image)[visible], rgba()[visible])


@pytest.mark.parametrize("name", WORKFLOWS)
def test_saved_model_is_swarmui_json_of_the_generation(saved: dict[str, SavedFile], name: str) -> None:
    """SwarmUI's keys and spellings, from the corpus' independent expectation; ComfyUI names plus
    the A1111 label under `autowebuisampler` (the only sampler key sd-prompt-reader reads)."""
    want = expected(name)
    params = swarm_params(saved[name].path)
    assert {k: params.get(k) for k in ("prompt", "negativeprompt", "seed", "steps", "cfgscale")} == {
        "prompt": want["positive"],
        "negativeprompt": want["negative"],
        "seed": want["seed"],
        "steps": want["steps"],
        "cfgscale": want["cfg"],
    }
    assert (params["width"], params["height"]) == (want["width"], want["height"])
    assert params["model"] == Path(want["checkpoint"]).stem
    assert (params["sampler"], params["scheduler"]) == (want["sampler"], want["scheduler"])
    assert params["autowebuisampler"] == A1111_SAMPLERS[want["sampler"]]
    loras = want.get("loras") or []
    assert params.get("loras") == ([Path(x["name"]).stem for x in loras] or None)
    assert params.get("loraweights") == ([str(x["strength_model"]) for x in loras] or None)


def test_model_json_is_ascii_whatever_the_prompt(tmp_path: Path) -> None:
    """Pillow (so sd-prompt-reader) decodes EXIF ASCII as Latin-1: UTF-8 there would come back garbled."""
    path = save_rgba(tmp_path, _with_positive("default", UMLAUT_PROMPT + " 瓶")).path
    raw = model_tag(path)
    assert raw is not None and raw.isascii()
    assert swarm_params(path)["prompt"] == UMLAUT_PROMPT + " 瓶"
    with Image.open(path) as image:
        assert json.loads(image.getexif()[TAG_MODEL])["sui_image_params"]["prompt"] == UMLAUT_PROMPT + " 瓶"


def test_opaque_rgba_is_saved_as_rgb_without_model(tmp_path: Path) -> None:
    """An all-opaque alpha channel carries nothing (libwebp drops it anyway): plain layout f2."""
    opaque = np.dstack([pixels(WIDTH, HEIGHT), np.full((HEIGHT, WIDTH), 255, dtype=np.uint8)])
    path = save_rgba(tmp_path, context_for("default"), image=opaque).path
    with Image.open(path) as image:
        assert image.mode == "RGB"
    assert not vp8x_flags(path) & 0x10
    assert model_tag(path) is None


def test_no_model_without_the_a1111_target(tmp_path: Path) -> None:
    """The SwarmUI JSON is a copy of the A1111 parameters: with that target off, alpha alone changes nothing."""
    path = save_rgba(tmp_path, context_for("default"), targets=NO_A1111).path
    assert vp8x_flags(path) & 0x10
    assert model_tag(path) is None
    source = core_rgba_webp(tmp_path / "core.webp", "default")
    outcome = convert(source, tmp_path / "out" / "core.webp", targets=NO_A1111)
    assert outcome.dest is not None and outcome.notes == []
    tags = ifd0_raw(exif_of(outcome.dest))
    assert TAG_MODEL not in tags and tags[TAG_DESCRIPTION].startswith(b"prompt:{")


@pytest.mark.parametrize("name", [*WORKFLOWS, *CORE_WEBPS])
def test_converted_rgba_keeps_pixels_and_gets_model_json(converted: dict[str, tuple[Path, Outcome]], name: str) -> None:
    """Core's `prompt:` leaves Model for ImageDescription byte for byte; SwarmUI's JSON takes its place."""
    source, outcome = converted[name]
    assert_faithful(outcome)
    dest = _dest(converted, name)
    assert_untouched(source, dest)
    assert vp8x_flags(dest) & 0x10 and vp8x_flags(dest) & 0x02
    assert outcome.notes == [ALPHA_NOTE]
    old = ifd0_raw(exif_of(source))
    assert old[TAG_MODEL].startswith(b"prompt:{")
    assert ifd0_raw(exif_of(dest))[TAG_DESCRIPTION] == old[TAG_MODEL]
    params = swarm_params(dest)
    record = outcome.record
    assert record is not None
    assert (params["seed"], params["steps"], params["cfgscale"]) == (
        record.generation.seed,
        record.generation.steps,
        record.generation.cfg,
    )


# -- our reader ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", WORKFLOWS)
def test_our_reader_takes_model_json_for_no_comfyui_key(saved: dict[str, SavedFile], name: str) -> None:
    path, record = saved[name].path, saved[name].record
    assert record is not None
    assert sorted(extract(path).comfy) == ["prompt", "workflow"]
    assert read(path).to_dict() == record.to_dict()


def test_exif_parse_skips_a_json_object_in_model() -> None:
    """Compact JSON makes `{"sui_image_params":{...` split at its first ':' into a `{`-value, which
    parse used to take for a ComfyUI key; SwarmUI's own files are not ComfyUI's either."""
    swarm = json.dumps({"sui_image_params": {"prompt": "a"}}, separators=(",", ":"))
    tiff = exif_format.build(exif_format.ExifContent(swarm=swarm, comfy={"prompt": '{"1": {}}'}))
    assert exif_format.parse(tiff).comfy == {"prompt": '{"1": {}}'}
    core = Image.Exif()
    core[TAG_MODEL] = "prompt:" + json.dumps(load_workflow("default")[0])
    assert set(exif_format.parse(core.tobytes()).comfy) == {"prompt"}  # core's own Model still reads


# -- external readers ------------------------------------------------------------------------------------------


def _want(reader: str, name: str, source: str) -> dict[str, Any]:
    """What test_external_readers expects from an RGB WEBP, except that sd-prompt-reader reads the
    SwarmUI JSON: the literal prompt (LoRAs are SwarmUI's `loras`, never `<lora:…>` tags) and no scheduler."""
    want = {**expected_fields(name, source), **dict.fromkeys(NEVER.get(reader, ()))}
    if reader == "sd-prompt-reader":
        want["prompt"] = expected(name)["positive"].strip()
    return want


@pytest.mark.readers
@pytest.mark.parametrize("name", WORKFLOWS)
@pytest.mark.parametrize("reader", list(READERS))
def test_readers_on_saved_rgba(saved: dict[str, SavedFile], reader: str, name: str) -> None:
    """Every reader gets what it gets from an RGB WEBP (test_external_readers), sd-prompt-reader from Model."""
    reading = READERS[reader](saved[name].path)
    source = SOURCES[reader]["webp"]
    if source is None:
        assert not reading.found, f"KNOWN limit no longer holds: {_explain(reading)}"
        return
    assert reading.source == source, _explain(reading)
    assert reading.fields == _want(reader, name, source), _explain(reading)
    if reader == "sd-prompt-reader":
        assert reading.raw["tool"] == "StableSwarmUI" and reading.raw["status"] == "READ_SUCCESS"


@pytest.mark.readers
@pytest.mark.parametrize("name", WORKFLOWS)
@pytest.mark.parametrize("reader", list(READERS))
def test_readers_on_converted_rgba(converted: dict[str, tuple[Path, Outcome]], reader: str, name: str) -> None:
    source, _ = converted[name]
    dest = _dest(converted, name)
    if reader == "python-xmp-toolkit":  # KNOWN: Exempi 2.6 cannot open an animated WEBP, before or after
        for path in (source, dest):
            with pytest.raises(Exception, match="bad file format"):
                READERS[reader](path)
        return
    reading = READERS[reader](dest)
    if reader == "sd-prompt-reader":
        assert "JSONDecodeError" in (READERS[reader](source).error or ""), "core's layout no longer crashes it"
        assert reading.raw["tool"] == "StableSwarmUI", _explain(reading)
    expected_source = {"sd-prompt-reader": NATIVE, "sd-parsers": NATIVE, "comfyui": GRAPH}.get(reader, INFOTEXT)
    assert reading.source == expected_source, _explain(reading)
    assert reading.fields == _want(reader, name, expected_source), _explain(reading)


@pytest.mark.readers
@pytest.mark.parametrize("name", WORKFLOWS)
def test_comfyui_frontend_loads_the_workflow_past_the_model_json(saved: dict[str, SavedFile], name: str) -> None:
    """getWebpMetadata splits every IFD0 ASCII value at its first ':': the JSON becomes an unused key."""
    path = saved[name].path
    texts = comfyui.texts(path)
    assert '{"sui_image_params"' in texts
    assert json.loads(texts["workflow"]) == load_workflow(name)[1]
    reading = comfyui.read(path)
    assert reading.raw["loads"] == "workflow" and reading.raw["errors"] == {}


@pytest.mark.readers
def test_civitai_still_takes_the_a1111_text(saved: dict[str, SavedFile]) -> None:
    """Civitai's parsers in order (src/utils/metadata/index.ts): automatic wins on a UserComment holding
    `Steps: `; swarmui reads only that text or PNG `parameters`, never Model; comfy wants Model `prompt:`."""
    reading = READERS["exifreader"](saved["lora"].path)
    tags = reading.raw
    assert "Steps: " in tags["UserComment"] and "sui_image_params" not in tags["UserComment"]
    assert tags["Model"].startswith('{"sui_image_params"') and not tags["Model"].startswith("prompt:")
    assert reading.source == INFOTEXT and reading.fields == expected_fields("lora", INFOTEXT)


@pytest.mark.readers
def test_sd_prompt_reader_reads_umlauts_from_alpha_webp(tmp_path: Path) -> None:
    """The Ü/ß bug (readers.md §7.6) lives in its UserComment probe, which alpha files never reach."""
    path = save_rgba(tmp_path, _with_positive("default", UMLAUT_PROMPT)).path
    reading = READERS["sd-prompt-reader"](path)
    assert reading["prompt"] == UMLAUT_PROMPT, _explain(reading)
    assert READERS["exifreader"](path)["prompt"] == UMLAUT_PROMPT


def _harness(path: Path, record: Record, folder: Path, *, ignore: dict[str, list[str]] | None = None) -> None:
    """readers_check.py --expect, run as test_readers_check runs it (the prompt as A1111 readers see it,
    then the literal one), except that sd-prompt-reader reads the SwarmUI JSON: the literal prompt."""
    installed = set(installed_readers())
    tagged = expectation(record, "webp", installed)
    tagged["ignore"].setdefault(SD_PROMPT_READER, []).append("prompt")
    literal = expectation(record, "webp", installed, literal_prompt=True)
    literal["ignore"].pop(SD_PROMPT_READER, None)
    if SD_PROMPT_READER in installed or REQUIRE_READERS:
        literal["readers"].append(SD_PROMPT_READER)
    specs = (tagged, literal) if record.generation.positive is not None else (tagged,)  # svd: no prompt at all
    for index, spec in enumerate(specs):
        for reader, names in (ignore or {}).items():
            spec["ignore"].setdefault(reader, []).extend(names)
        expect = folder / f"{path.stem}.{index}.expect.json"
        expect.write_text(json.dumps(spec), "utf-8")
        out = subprocess.run(
            [sys.executable, str(HARNESS), str(path), "--expect", str(expect)],
            capture_output=True,
            timeout=TIMEOUT,
            env=_env(),
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 0, (out.stdout + out.stderr).decode("utf-8", errors="replace")


@pytest.mark.readers
@pytest.mark.parametrize("name", WORKFLOWS)
def test_readers_check_passes_on_saved_rgba(saved: dict[str, SavedFile], name: str, tmp_path: Path) -> None:
    record = saved[name].record
    assert record is not None
    _harness(saved[name].path, record, tmp_path)


@pytest.mark.readers
@pytest.mark.parametrize("name", [*WORKFLOWS, *CORE_WEBPS])
def test_readers_check_passes_on_converted_rgba(
    converted: dict[str, tuple[Path, Outcome]], name: str, tmp_path: Path
) -> None:
    record = converted[name][1].record
    assert record is not None
    # The harness's graph walker is not the frontend: on these video graphs it takes the positive text
    # for the negative too. The frontend itself only loads the workflow (test_convert asserts that).
    ignore = {"comfyui-frontend": ["negative_prompt"]} if name in CORE_WEBPS else None
    _harness(_dest(converted, name), record, tmp_path, ignore=ignore)


def test_rgb_webp_layout_is_unchanged(tmp_path: Path) -> None:
    """RGB pixels: no Model tag at all (layout f2), whatever the targets."""
    path = save_images([pixels()], context_for("default"), tmp_path, "rgb", SaveOptions(format="webp"))[0].path
    assert model_tag(path) is None
    with Image.open(path) as image:
        assert image.mode == "RGB"

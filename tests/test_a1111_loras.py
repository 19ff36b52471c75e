"""The A1111 text never guesses a size and carries every LoRA with its weight, as A1111 writes them.

`<lora:name:w>` (or A1111's `<lora:name:te:unet>` when CLIP and model strengths differ) is appended
to the A1111 prompt; the record and ComfyUI's own graph keep the literal prompt; our reader takes
the appended tags off again. A size is written only when the generation size is known, or when the
graph shows the saved pixels are the generator's (decoded, nothing resized in between).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import context_for, load_workflow, pixels
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from readers import cli as reader_cli
from test_infotext import TRICKY

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata import infotext
from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.convert import convert_file
from comfyui_provenance.metadata.formats import xmp
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Generation, Model, Record
from comfyui_provenance.metadata.save import SaveOptions, save_images


def save(tmp_path: Path, context: SaveContext, fmt: str = "png", image: Any = None, **options: Any) -> Any:
    (saved,) = save_images(
        [pixels() if image is None else image], context, tmp_path, "t", SaveOptions(format=fmt, **options), version="t"
    )
    return saved


def parameters_of(path: Path) -> str:
    with Image.open(path) as image:
        return str(image.text["parameters"])


# -- LoRA tags --------------------------------------------------------------------------------------


def record_with(loras: list[tuple[str, float | None, float | None]], positive: str = "a cat") -> Record:
    record = Record(generation=Generation(positive=positive, negative="dull", seed=1, steps=20, cfg=7.0))
    for name, model, clip in loras:
        record.models.append(Model(role="lora", name=name, strength_model=model, strength_clip=clip))
    return record


@pytest.mark.parametrize(
    "loras,tags",
    [
        ([("detail.safetensors", 0.8, 0.8)], ["<lora:detail:0.8>"]),
        ([("sub/blindbox_v1_mix.safetensors", 0.75, 1.0)], ["<lora:blindbox_v1_mix:1:0.75>"]),  # te, then unet
        ([("style.safetensors", 0.6, None)], ["<lora:style:0:0.6>"]),  # LoraLoaderModelOnly: no CLIP
        ([("unknown.safetensors", None, None)], []),  # a strength the graph does not fix is never guessed
        ([("a.safetensors", 1.0, 1.0), ("b.pt", 0.5, 0.25)], ["<lora:a:1>", "<lora:b:0.25:0.5>"]),
    ],
)
def test_tags_as_a1111_writes_them(loras: list[tuple[str, float | None, float | None]], tags: list[str]) -> None:
    record = record_with(loras)
    assert infotext.lora_tags(record) == tags
    text = infotext.build(record)
    first_line = text.split("\n")[0]
    assert first_line == ("a cat " + ", ".join(tags) if tags else "a cat")
    assert "Exact prompt" not in text  # the tags come off again by count, no copy of the prompt is needed
    back = infotext.parse(text)
    assert back.positive == "a cat"
    assert infotext.build(record, with_lora_tags=False).split("\n")[0] == "a cat"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([*TRICKY, "a", "b", " ", ","]), max_size=12).map("".join),
    st.lists(st.tuples(st.sampled_from(["x", "y z", "w-1"]), st.sampled_from([0.5, 1.0, 0.25])), max_size=3),
)
def test_any_prompt_comes_back_exactly_with_its_lora_strengths(positive: str, loras: list[tuple[str, float]]) -> None:
    record = record_with([(f"{n}.safetensors", w, w / 2) for n, w in loras], positive=positive)
    back = infotext.to_record(infotext.parse(infotext.build(record)))
    assert back.generation.positive == positive
    got = {m.name: (m.strength_model, m.strength_clip) for m in back.loras()}
    want = {n: (w, w / 2) for n, w in loras}
    # A tag typed in the prompt itself is a LoRA by A1111's rules too (the record, when present, knows better).
    assert {k: v for k, v in got.items() if k in want or "<lora:" not in positive} == want


def test_a1111_files_with_inline_tags_give_their_loras_strengths() -> None:
    text = (
        "a castle, <lora:add_detail:0.6>, <lora:film:te=0.3:unet=0.9>\nNegative prompt: ugly\n"
        'Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 512x512, Lora hashes: "add_detail: 7c6bad76eb54"'
    )
    record = infotext.to_record(infotext.parse(text))
    assert record.generation.positive == "a castle, <lora:add_detail:0.6>, <lora:film:te=0.3:unet=0.9>"
    got = {m.name: (m.strength_model, m.strength_clip, m.hashes.get("autov3")) for m in record.loras()}
    assert got == {"add_detail": (0.6, 0.6, "7c6bad76eb54"), "film": (0.9, 0.3, None)}


def test_saved_files_carry_the_tags_and_the_record_keeps_the_literal_prompt(tmp_path: Path) -> None:
    saved = save(tmp_path, context_for("lora"))
    text = parameters_of(saved.path)
    literal = saved.record.generation.positive
    assert text.startswith(literal + " <lora:blindbox_v1_mix:1:0.75>\n")
    assert "Lora tags appended: 1" in text
    back = read(saved.path)
    assert back.generation.positive == literal
    prompt = json.loads(Image.open(saved.path).text["prompt"])  # ComfyUI's own graph: untouched
    assert "<lora" not in json.dumps(prompt)
    off = save(tmp_path / "off", context_for("lora"), lora_tags=False)
    assert parameters_of(off.path).startswith(literal + "\n") and "Lora tags" not in parameters_of(off.path)


def test_convert_without_models_dir_still_names_the_lora_with_its_weight(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    api, ui = load_workflow("lora")
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(api))
    info.add_text("workflow", json.dumps(ui))
    source = tmp_path / "core.png"
    Image.fromarray(pixels()).save(source, pnginfo=info)
    assert convert_file(source).status == "converted"
    assert "<lora:blindbox_v1_mix:1:0.75>" in parameters_of(source)
    plain = tmp_path / "plain.png"
    Image.fromarray(pixels()).save(plain, pnginfo=info)
    assert main(["convert", "--in-place", "--no-lora-tags", str(plain)]) == 0
    assert "<lora:" not in parameters_of(plain)


def test_xmp_loras_carry_name_strengths_and_hashes(tmp_path: Path) -> None:
    record = record_with([("blindbox_v1_mix.safetensors", 0.75, 1.0)])
    record.models[0].hashes = {"sha256": "ab" * 32, "autov2": "ab" * 5, "autov3": "cd" * 32}
    fields = xmp.parse(xmp.build(record))
    assert fields["Loras"] == [
        {"Name": "blindbox_v1_mix.safetensors", "StrengthModel": "0.75", "StrengthClip": "1.0", "SHA256": "ab" * 32,
         "AutoV3": "cd" * 32}
    ]  # fmt: skip
    saved = save(tmp_path, context_for("lora"), fmt="jpeg")
    tags = reader_cli.exiftool_tags(saved.path)  # a real reader sees the structure
    assert tags.get("XMP-cprov:LorasName") == "blindbox_v1_mix.safetensors"
    assert float(tags["XMP-cprov:LorasStrengthModel"]) == 0.75
    assert float(tags["XMP-cprov:LorasStrengthClip"]) == 1.0


# -- no guessed Size --------------------------------------------------------------------------------


def runtime_sized(upscale: bool) -> SaveContext:
    """The lora workflow with the latent width linked to a node no rule knows (set at run time), and
    optionally a 2x pixel upscale before the save."""
    api, ui = load_workflow("lora")
    api = copy.deepcopy(api)
    latent = next(k for k, v in api.items() if v["class_type"] == "EmptyLatentImage")
    api["900"] = {"class_type": "SomePackResolution", "inputs": {"preset": "portrait"}}
    api[latent]["inputs"]["width"] = ["900", 0]
    api[latent]["inputs"]["height"] = ["900", 1]
    save_id = next(k for k, v in api.items() if v["class_type"] == "SaveImage")
    if upscale:
        api["901"] = {
            "class_type": "ImageScaleBy",
            "inputs": {"image": api[save_id]["inputs"]["images"], "upscale_method": "lanczos", "scale_by": 2.0},
        }
        api[save_id]["inputs"]["images"] = ["901", 0]
    return SaveContext(prompt=api, extra_pnginfo={"workflow": ui}, save_node_id=save_id, prompt_id="p")


def test_no_size_when_the_pixels_were_resized_after_a_size_set_at_run_time(tmp_path: Path) -> None:
    saved = save(tmp_path, runtime_sized(upscale=True), image=pixels(192, 128))
    assert saved.record.generation.width is None
    assert {u["input"] for u in saved.record.provenance.other["unresolved"]} >= {"width", "height"}
    assert "Size:" not in parameters_of(saved.path)


def test_the_pixel_size_is_the_generation_size_when_nothing_resized_them(tmp_path: Path) -> None:
    saved = save(tmp_path, runtime_sized(upscale=False), image=pixels(96, 64))
    gen = saved.record.generation
    assert (gen.width, gen.height) == (96, 64)
    assert saved.record.provenance.field_sources["width"] == "pixels"
    assert "Size: 96x64" in parameters_of(saved.path)
    assert (read(saved.path).generation.width, read(saved.path).generation.height) == (96, 64)

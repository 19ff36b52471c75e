"""Civitai parity of the infotext: model and LoRA hashes, Hashes JSON, hires and refiner passes.

Records come from real corpus graphs; the hashes are set by the test (hashing has its own tests).
The text is read back by an independent A1111-rules parser (tests/readers/infotext.py) and by the
balanced-brace `Hashes` extraction Civitai uses, not only by our own parser.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from conftest import expected, load_workflow, save_node_of
from readers import infotext as independent
from test_external_readers import a1111_prompt

from comfyui_provenance.metadata import infotext
from comfyui_provenance.metadata.parser.parse import parse
from comfyui_provenance.metadata.record import Record


def fake_hashes(name: str) -> dict[str, str]:
    full = hashlib.sha256(name.encode()).hexdigest()
    data = hashlib.sha256(b"data:" + name.encode()).hexdigest()
    return {"sha256": full, "autov2": full[:10], "autov3": data}


def record_for(name: str) -> Record:
    api, ui = load_workflow(name)
    record = parse(api, save_node_of(api), ui)
    for model in record.models:
        model.hashes = fake_hashes(model.name)
    record.provenance.comfyui_version = "0.33.0"
    return record


def civitai_hashes(text: str) -> dict[str, str]:
    """Civitai's automatic.metadata.ts: `, Hashes: {...}` with balanced braces on the Steps line."""
    line = next(line for line in text.split("\n") if line.startswith("Steps: "))
    start = line.index(", Hashes: {") + len(", Hashes: ")
    depth = 0
    for end, char in enumerate(line[start:], start):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return json.loads(line[start : end + 1])  # type: ignore[no-any-return]
    raise AssertionError("unbalanced Hashes JSON")


def civitai_quoted_map(value: str) -> dict[str, str]:
    """Civitai parses a quoted value recursively as `key: value` pairs (how Lora hashes becomes a map)."""
    return {k.strip(): v.strip() for k, v in (item.split(":", 1) for item in value.strip('"').split(","))}


def test_lora_hashes_and_civitai_hashes() -> None:
    record = record_for("lora_multiple")
    text = infotext.build(record)
    steps_line = text.split("\n")[-1]
    assert steps_line.startswith("Steps: ")
    checkpoint = record.first_model("checkpoint")
    assert checkpoint is not None
    assert f"Model hash: {checkpoint.hashes['autov2']}" in steps_line
    assert "Model: dreamshaper_8," in steps_line
    lora_value = re.search(r'Lora hashes: ("(?:\\.|[^\\"])+")', steps_line)
    assert lora_value is not None
    loras = civitai_quoted_map(json.loads(lora_value.group(1)))
    want = {m.name.rsplit(".", 1)[0]: m.hashes["autov3"][:12] for m in record.loras()}
    assert loras == want and len(want) == 2
    hashes = civitai_hashes(text)
    assert hashes["model"] == checkpoint.hashes["autov2"]
    assert {k: v for k, v in hashes.items() if k.startswith("lora:")} == {
        f"lora:{m.name.rsplit('.', 1)[0]}": m.hashes["autov2"] for m in record.loras()
    }
    back = infotext.to_record(infotext.parse(text))
    assert {m.name: m.hashes for m in back.loras()} == {
        m.name.rsplit(".", 1)[0]: {"autov3": m.hashes["autov3"][:12], "autov2": m.hashes["autov2"]}
        for m in record.loras()
    }
    assert back.first_model("checkpoint").hashes == {"autov2": checkpoint.hashes["autov2"]}  # type: ignore[union-attr]


def test_embeddings_become_ti_hashes() -> None:
    record = record_for("embedding_example")
    text = infotext.build(record)
    assert 'TI hashes: "SDA768: ' in text
    assert '"embed:SDA768": ' in text


def test_hires_pass_fields() -> None:
    record = record_for("hiresfix_latent_workflow")
    base, hires = record.passes[0], record.passes[1]
    text = infotext.build(record)
    line = text.split("\n")[-1]
    assert f"Size: {base.width}x{base.height}" in line
    assert f"Hires upscale: {hires.width / base.width:g}" in line  # type: ignore[operator]
    assert f"Hires steps: {hires.steps}" in line
    assert f"Denoising strength: {hires.denoise:g}" in line
    back = infotext.to_record(infotext.parse(text))
    assert back.generation.denoise is None  # the first pass of a hires fix is a full txt2img
    assert [(p.steps, p.denoise, p.width, p.height) for p in back.passes[1:]] == [
        (hires.steps, hires.denoise, hires.width, hires.height)
    ]


def test_refiner_pass_fields() -> None:
    record = record_for("sdxl_refiner_prompt_example")
    refiner = record.passes[1]
    assert refiner.start_step and refiner.steps
    text = infotext.build(record)
    assert "Refiner: sd_xl_refiner_1.0" in text
    assert f"Refiner switch at: {refiner.start_step / refiner.steps:g}" in text
    assert "Hires" not in text
    back = infotext.to_record(infotext.parse(text))
    assert back.passes[1].model == "sd_xl_refiner_1.0"
    assert back.passes[1].start_step == refiner.start_step


@pytest.mark.parametrize("name", ["default", "lora", "hiresfix_latent_workflow", "sdxl_refiner_prompt_example"])
def test_independent_parser_agrees_on_every_field(name: str) -> None:
    record = record_for(name)
    text = infotext.build(record)
    parsed = independent.parse(text)
    assert parsed is not None
    got = independent.fields(parsed)
    gen = record.generation
    assert got["prompt"] == a1111_prompt(expected(name))  # A1111 sees the LoRA tags in the prompt
    assert (got["seed"], got["steps"]) == (str(gen.seed), str(gen.steps))
    assert got["sampler"] == infotext.sampler_label(gen.sampler or "")

"""WorkflowParser against hand-checked expectations for the core-node corpus, plus hostile graphs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import corpus_names, deadline, expected, load_workflow, save_node_of

from comfyui_provenance.metadata.parser.parse import WorkflowParser, parse
from comfyui_provenance.metadata.record import COMPOSITE, TRAINED, Record

# Workflows built from core nodes only (KSampler/KSamplerAdvanced, CheckpointLoaderSimple, CLIPTextEncode,
# EmptyLatentImage, LatentUpscale, LoraLoader, VAELoader, ControlNet...), whose expectations in
# expected.json the bundled rules must meet exactly.
CORE = [
    "default",
    "lora",
    "lora_multiple",
    "hiresfix_latent_workflow",
    "image2image",
    "inpaint_example",
    "image_sdxl_simple",
    "embedding_example",
    "sdxl_refiner_prompt_example",
    "esrgan_example",
    "2_pass_pose_worship",
    "controlnet_example",
    "gligen_textbox_example",
]
COMPOSITE_WORKFLOWS = {"image2image", "inpaint_example"}
# Text-to-image from an empty latent with no input image at all.
PURE_T2I = {
    "default",
    "lora",
    "lora_multiple",
    "hiresfix_latent_workflow",
    "image_sdxl_simple",
    "embedding_example",
    "sdxl_refiner_prompt_example",
    "esrgan_example",
}
EXACT = ("positive", "negative", "sampler", "scheduler")
INTEGERS = ("seed", "steps", "width", "height", "batch_size")
FLOATS = ("cfg", "denoise")
STAGE_FIELDS = {
    "seed": "seed",
    "steps": "steps",
    "cfg": "cfg",
    "sampler": "sampler",
    "scheduler": "scheduler",
    "denoise": "denoise",
    "start_at_step": "start_step",
    "end_at_step": "end_step",
    "positive": "positive",
    "negative": "negative",
    "checkpoint": "model",
}


def parsed(name: str) -> Record:
    api, ui = load_workflow(name)
    return parse(api, save_node_of(api), ui)


def assert_value(got: Any, want: Any, what: str) -> None:
    if isinstance(want, float) or (isinstance(want, (int, float)) and isinstance(got, float)):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), what
    else:
        assert got == want, what


# -- the corpus -----------------------------------------------------------------------------------------


def test_core_list_is_in_the_corpus() -> None:
    assert set(CORE) <= set(corpus_names())


@pytest.mark.parametrize("name", CORE)
def test_generation_matches_expectations(name: str) -> None:
    want = expected(name)
    gen = parsed(name).generation
    for key in (*EXACT, *INTEGERS, *FLOATS):
        if key in want:
            assert_value(getattr(gen, key), want[key], f"{name}: generation.{key}")
    for key in INTEGERS:
        value = getattr(gen, key)
        assert value is None or (isinstance(value, int) and not isinstance(value, bool)), key


@pytest.mark.parametrize("name", CORE)
def test_models_match_expectations(name: str) -> None:
    want = expected(name)
    rec = parsed(name)
    checkpoints = [m.name for m in rec.models if m.role == "checkpoint"]
    assert checkpoints[0] == want["checkpoint"]
    if "refiner_checkpoint" in want:
        assert want["refiner_checkpoint"] in checkpoints
    got_loras = sorted((m.name, m.strength_model, m.strength_clip) for m in rec.loras())
    want_loras = sorted((w["name"], w["strength_model"], w.get("strength_clip")) for w in want["loras"])
    assert len(got_loras) == len(want_loras)
    for got, wanted in zip(got_loras, want_loras, strict=True):
        assert got[0] == wanted[0]
        assert got[1] == pytest.approx(wanted[1])
        assert got[2] == (None if wanted[2] is None else pytest.approx(wanted[2]))
    roles = {(m.role, m.name) for m in rec.models}
    if "vae" in want:
        assert ("vae", want["vae"]) in roles
    if "upscale_model" in want:
        assert ("upscaler", want["upscale_model"]) in roles
    for net in want.get("controlnets", []):
        assert ("controlnet", net["name"]) in roles
    for embedding in want.get("embeddings", []):
        assert ("embedding", embedding) in roles
    for model in rec.models:
        assert model.name and model.role


@pytest.mark.parametrize("name", [n for n in CORE if "stages" in expected(n)])
def test_stages_become_passes_in_order(name: str) -> None:
    want = expected(name)["stages"]
    rec = parsed(name)
    assert [p.node_id for p in rec.passes] == [s["node"] for s in want]
    for stage, got in zip(want, rec.passes, strict=True):
        for key, attr in STAGE_FIELDS.items():
            if key in stage:
                assert_value(getattr(got, attr), stage[key], f"{name}: pass {got.node_id}.{attr}")
    # generation is the base pass, as A1111 reports it
    base = rec.passes[0]
    assert (rec.generation.seed, rec.generation.steps) == (base.seed, base.steps)


@pytest.mark.parametrize("name", CORE)
def test_one_pass_per_stage_and_no_warnings(name: str) -> None:
    rec = parsed(name)
    api = load_workflow(name)[0]
    samplers = [k for k, v in api.items() if v["class_type"] in ("KSampler", "KSamplerAdvanced")]
    stages = expected(name).get("stages") or [{"node": k} for k in samplers]
    assert len(rec.passes) == len(stages)
    assert rec.provenance.field_sources["seed"] == stages[0]["node"]
    assert not rec.provenance.warnings
    assert "unresolved" not in rec.provenance.other


@pytest.mark.parametrize("name", sorted(COMPOSITE_WORKFLOWS | PURE_T2I))
def test_digital_source_type(name: str) -> None:
    want = COMPOSITE if name in COMPOSITE_WORKFLOWS else TRAINED
    assert parsed(name).provenance.digital_source_type == want


@pytest.mark.parametrize("name", corpus_names())
def test_parser_never_mutates_its_input(name: str) -> None:
    api, ui = load_workflow(name)
    api_before, ui_before = copy.deepcopy(api), copy.deepcopy(ui)
    save_id = next((k for k, v in api.items() if v.get("class_type") in ("SaveImage", "SaveAnimatedWEBP")), None)
    with deadline(5):
        rec = parse(api, save_id, ui)
    assert api == api_before
    assert ui == ui_before
    assert rec.prompt == api_before


# -- hand-made hard cases -----------------------------------------------------------------------------------


def default_api() -> dict[str, Any]:
    return copy.deepcopy(load_workflow("default")[0])


def run(api: dict[str, Any], save_id: str | None = "9") -> Record:
    before = copy.deepcopy(api)
    with deadline(5):
        rec = WorkflowParser().parse(api, save_id)
    assert api == before, "the parser mutated its input"
    return rec


DEFAULT = expected("default")


def test_latent_cycle_terminates() -> None:
    api = default_api()
    api["3"]["inputs"]["latent_image"] = ["20", 0]
    api["20"] = {"class_type": "LatentLoopCustom", "inputs": {"samples": ["3", 0], "fallback": ["5", 0]}}
    rec = run(api)
    assert [p.node_id for p in rec.passes] == ["3"]
    assert (rec.generation.seed, rec.generation.steps) == (DEFAULT["seed"], DEFAULT["steps"])


def test_conditioning_cycle_terminates_and_still_finds_the_text() -> None:
    api = default_api()
    api["3"]["inputs"]["positive"] = ["30", 0]
    api["30"] = {"class_type": "CondLoopA", "inputs": {"conditioning": ["31", 0]}}
    api["31"] = {"class_type": "CondLoopB", "inputs": {"conditioning": ["30", 0], "base": ["6", 0]}}
    rec = run(api)
    assert rec.generation.positive == DEFAULT["positive"]
    assert rec.generation.negative == DEFAULT["negative"]


def test_model_cycle_terminates() -> None:
    api = default_api()
    api["3"]["inputs"]["model"] = ["40", 0]
    api["40"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "model": ["41", 0],
            "clip": ["4", 1],
            "lora_name": "a.safetensors",
            "strength_model": 0.5,
            "strength_clip": 1.0,
        },
    }
    api["41"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "model": ["40", 0],
            "clip": ["4", 1],
            "lora_name": "b.safetensors",
            "strength_model": 0.25,
            "strength_clip": 1.0,
        },
    }
    rec = run(api)
    assert sorted((m.name, m.strength_model) for m in rec.loras()) == [("a.safetensors", 0.5), ("b.safetensors", 0.25)]
    assert rec.passes[0].model is None  # no checkpoint is reachable through the loop


def test_constant_cycle_is_unresolved_not_infinite() -> None:
    api = default_api()
    api["3"]["inputs"]["seed"] = ["71", 0]
    api["71"] = {"class_type": "PrimitiveInt", "inputs": {"value": ["72", 0]}}
    api["72"] = {"class_type": "PrimitiveInt", "inputs": {"value": ["71", 0]}}
    rec = run(api)
    assert rec.generation.seed is None
    assert rec.provenance.other["unresolved"]


def test_dangling_links_leave_nulls() -> None:
    api = default_api()
    api["3"]["inputs"]["positive"] = ["999", 0]
    api["3"]["inputs"]["model"] = ["998", 0]
    api["3"]["inputs"]["latent_image"] = ["997", 0]
    rec = run(api)
    gen = rec.generation
    assert gen.positive is None
    assert gen.negative == DEFAULT["negative"]
    assert (gen.width, gen.height) == (None, None)
    assert (gen.seed, gen.steps, gen.sampler) == (DEFAULT["seed"], DEFAULT["steps"], DEFAULT["sampler"])
    assert rec.passes[0].model is None


def test_save_node_not_in_the_prompt_reads_every_output() -> None:
    rec = run(default_api(), save_id="12345")
    assert any("12345" in w and "not in the prompt" in w for w in rec.provenance.warnings)
    assert rec.generation.seed == DEFAULT["seed"]
    assert rec.generation.positive == DEFAULT["positive"]
    assert rec.provenance.save_node_id == "12345"


def test_graph_without_a_sampler() -> None:
    api = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    rec = run(api, save_id="3")
    assert rec.passes == []
    assert all(v is None for v in rec.generation.to_dict().values())
    assert any("no sampler" in w for w in rec.provenance.warnings)


@pytest.mark.parametrize(
    "api", [{}, {"1": 5, "2": {"inputs": None}, "3": {"class_type": 7, "inputs": []}}], ids=["empty", "malformed-nodes"]
)
def test_degenerate_prompts_are_data_not_errors(api: dict[str, Any]) -> None:
    rec = run(api, save_id=None)
    assert rec.passes == [] and rec.models == []
    assert rec.generation.seed is None


def test_samplers_outside_the_save_path_are_ignored() -> None:
    api = default_api()
    api["100"] = copy.deepcopy(api["3"])
    api["100"]["inputs"]["seed"] = 1
    api["101"] = {"class_type": "VAEDecode", "inputs": {"samples": ["100", 0], "vae": ["4", 2]}}
    api["102"] = {"class_type": "PreviewImage", "inputs": {"images": ["101", 0]}}
    rec = run(api)
    assert [p.node_id for p in rec.passes] == ["3"]
    assert rec.generation.seed == DEFAULT["seed"]


def test_unknown_custom_nodes_in_the_conditioning_path() -> None:
    api = default_api()
    api["50"] = {"class_type": "MyConditioningTweak", "inputs": {"conditioning": ["6", 0], "strength": 0.5}}
    api["51"] = {"class_type": "SomeoneElsesNode", "inputs": {"cond": ["50", 0], "mode": "fancy"}}
    api["3"]["inputs"]["positive"] = ["51", 0]
    rec = run(api)
    assert rec.generation.positive == DEFAULT["positive"]
    assert rec.generation.negative == DEFAULT["negative"]
    assert rec.provenance.field_sources["positive"] == "6"


def test_unknown_custom_text_encoder_is_not_guessed() -> None:
    """A custom encoder is not a CLIPTextEncode: its widget is not reported as the prompt."""
    api = default_api()
    api["60"] = {"class_type": "MyFancyTextEncode", "inputs": {"text": "custom words", "clip": ["4", 1]}}
    api["3"]["inputs"]["positive"] = ["60", 0]
    rec = run(api)
    assert rec.generation.positive is None
    assert rec.generation.negative == DEFAULT["negative"]


def test_seed_from_an_unknown_node_is_unresolved_never_guessed() -> None:
    api = default_api()
    api["70"] = {"class_type": "MySeedGenerator", "inputs": {"seed": 42, "mode": "randomize"}}
    api["3"]["inputs"]["seed"] = ["70", 0]
    rec = run(api)
    assert rec.generation.seed is None
    assert rec.passes[0].seed is None
    assert {"node_id": "3", "input": "seed", "depends_on": "70"} in rec.provenance.other["unresolved"]
    assert rec.generation.steps == DEFAULT["steps"]


def test_values_from_primitive_nodes_are_resolved() -> None:
    api = default_api()
    api["71"] = {"class_type": "PrimitiveInt", "inputs": {"value": 33}}
    api["72"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "from a primitive"}}
    api["73"] = {"class_type": "PrimitiveInt", "inputs": {"value": ["71", 0]}}
    api["3"]["inputs"]["steps"] = ["73", 0]
    api["6"]["inputs"]["text"] = ["72", 0]
    rec = run(api)
    assert rec.generation.steps == 33
    assert rec.generation.positive == "from a primitive"
    assert "unresolved" not in rec.provenance.other


def test_linked_cfg_from_a_known_non_constant_node_is_unresolved() -> None:
    api = default_api()
    api["3"]["inputs"]["cfg"] = ["4", 0]
    rec = run(api)
    assert rec.generation.cfg is None
    assert {"node_id": "3", "input": "cfg", "depends_on": "4"} in rec.provenance.other["unresolved"]


def test_parser_does_not_mutate_the_workflow_either() -> None:
    api, ui = load_workflow("lora")
    ui_before = copy.deepcopy(ui)
    rec = WorkflowParser().parse(api, "9", ui)
    assert ui == ui_before
    assert rec.workflow == ui_before

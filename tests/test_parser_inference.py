"""Node classes with no rule: rules inferred from their schemas, and never a wrong value.

Each test gives the parser a graph with classes no rule names, their schemas as ComfyUI's /object_info
describes them (or none at all), and checks what the record says: the right value where the schema
makes it sure, nothing (with the reason recorded) where it does not.
"""

from __future__ import annotations

import copy
from typing import Any

from conftest import deadline

from comfyui_provenance.metadata.infotext.write import build
from comfyui_provenance.metadata.parser.infer import infer
from comfyui_provenance.metadata.parser.parse import WorkflowParser
from comfyui_provenance.metadata.parser.rules import bundled
from comfyui_provenance.metadata.parser.runtime_view import RuntimeView
from comfyui_provenance.metadata.parser.schemas import NodeSchema, SchemaSet, from_object_info
from comfyui_provenance.metadata.record import Record

Prompt = dict[str, Any]


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def described(
    inputs: dict[str, Any], outputs: list[str], names: list[str] | None = None, *, api: bool = False
) -> dict[str, Any]:
    """One /object_info entry: inputs {name: type or (type, options)}, outputs by type (and name)."""
    required = {n: list(t) if isinstance(t, tuple) else [t] for n, t in inputs.items()}
    entry: dict[str, Any] = {"input": {"required": required}, "output": outputs, "output_name": names or outputs}
    if api:
        entry["api_node"] = True
    return entry


def schemas(**classes: dict[str, Any]) -> SchemaSet:
    return from_object_info(classes, "test")


def one(class_type: str, entry: dict[str, Any]) -> NodeSchema:
    found = from_object_info({class_type: entry}, "test").get(class_type)
    assert found is not None
    return found


def run(api: Prompt, known: SchemaSet | None = None, save_id: str = "9", runtime: RuntimeView | None = None) -> Record:
    before = copy.deepcopy(api)
    with deadline(5):
        rec = WorkflowParser(bundled(), known).parse(api, save_id, runtime=runtime)
    assert api == before, "the parser mutated its input"
    return rec


def base(**sampler: Any) -> Prompt:
    """checkpoint 4 -> KSampler 3 <- text 6/7, latent 5; decode 8 -> save 9."""
    inputs = {
        "seed": 7,
        "steps": 20,
        "cfg": 6.5,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
        "model": ["4", 0],
        "positive": ["6", 0],
        "negative": ["7", 0],
        "latent_image": ["5", 0],
    }
    inputs.update(sampler)
    return {
        "3": node("KSampler", **inputs),
        "4": node("CheckpointLoaderSimple", ckpt_name="base.safetensors"),
        "5": node("EmptyLatentImage", width=832, height=1216, batch_size=1),
        "6": node("CLIPTextEncode", text="a castle", clip=["4", 1]),
        "7": node("CLIPTextEncode", text="blurry", clip=["4", 1]),
        "8": node("VAEDecode", samples=["3", 0], vae=["4", 2]),
        "9": node("SaveImage", images=["8", 0], filename_prefix="x"),
    }


def ambiguous(rec: Record) -> dict[str, list[str]]:
    return {a["field"]: a["candidates"] for a in rec.provenance.other.get("ambiguous", [])}


# -- routing by output name and type ---------------------------------------------------------------------

PAIR = described(
    {"positive": "CONDITIONING", "negative": "CONDITIONING", "strength": "FLOAT"},
    ["CONDITIONING", "CONDITIONING"],
    ["positive", "negative"],
)


def test_two_conditioning_outputs_are_routed_by_name_not_position() -> None:
    api = base(positive=["10", 0], negative=["10", 1])
    api["10"] = node("AcmeCondPair", positive=["6", 0], negative=["7", 0], strength=0.5)
    rec = run(api, schemas(AcmeCondPair=PAIR))
    assert (rec.generation.positive, rec.generation.negative) == ("a castle", "blurry")
    assert rec.provenance.other["inferred_rules"] == {"AcmeCondPair": "inferred:test"}
    # Outputs listed negative first: the name decides, never the slot.
    flipped = described(
        {"positive": "CONDITIONING", "negative": "CONDITIONING"}, ["CONDITIONING"] * 2, ["negative", "positive"]
    )
    api["3"]["inputs"].update(positive=["10", 1], negative=["10", 0])
    rec = run(api, schemas(AcmeCondPair=flipped))
    assert (rec.generation.positive, rec.generation.negative) == ("a castle", "blurry")


def test_conditioning_outputs_not_named_after_an_input_are_not_guessed() -> None:
    entry = described({"cond_a": "CONDITIONING", "cond_b": "CONDITIONING"}, ["CONDITIONING"] * 2, ["out_a", "out_b"])
    api = base(positive=["10", 0], negative=["10", 1])
    api["10"] = node("AcmeCondMixer", cond_a=["6", 0], cond_b=["7", 0])
    rec = run(api, schemas(AcmeCondMixer=entry))
    # Which input each output carries is unknown: no prompt, both readings named, neither recorded.
    assert (rec.generation.positive, rec.generation.negative) == (None, None)
    assert ambiguous(rec) == {
        "generation.positive": ["a castle", "blurry"],
        "generation.negative": ["a castle", "blurry"],
    }


def test_a_node_known_nowhere_never_gives_the_negative_as_the_positive() -> None:
    api = base(positive=["10", 0], negative=["10", 1])
    api["10"] = node("AcmeCondPair", positive=["6", 0], negative=["7", 0], strength=0.5)
    rec = run(api)  # no schema: not live, not in the snapshot, no workflow
    assert (rec.generation.positive, rec.generation.negative) == (None, None)
    assert ambiguous(rec)["generation.positive"] == ["a castle", "blurry"]
    assert "a castle" not in build(rec).splitlines()[0]
    # One branch only: whatever the node does, the prompt behind it is that one.
    api["10"] = node("AcmeCondTweak", conditioning=["6", 0], strength=0.5)
    api["3"]["inputs"]["positive"] = ["10", 0]
    api["3"]["inputs"]["negative"] = ["7", 0]
    rec = run(api)
    assert (rec.generation.positive, rec.generation.negative) == ("a castle", "blurry")
    assert "ambiguous" not in rec.provenance.other


def test_rules_override_inference() -> None:
    """A class with a rule keeps it, even when a schema would say otherwise."""
    api = base(positive=["10", 0], negative=["10", 1])
    api["10"] = node("LTXVConditioning", positive=["6", 0], negative=["7", 0], frame_rate=25.0)
    wrong = described({"positive": "CONDITIONING", "negative": "CONDITIONING"}, ["CONDITIONING"] * 2, ["x", "y"])
    rec = run(api, schemas(LTXVConditioning=wrong))
    assert (rec.generation.positive, rec.generation.negative) == ("a castle", "blurry")
    assert "inferred_rules" not in rec.provenance.other


# -- cloud API nodes ----------------------------------------------------------------------------------------

CLOUD = described(
    {
        "prompt": ("STRING", {"multiline": True}),
        "negative_prompt": ("STRING", {"multiline": True}),
        "model": (["acme-v2", "acme-v3"],),
        "seed": "INT",
        "width": "INT",
        "height": "INT",
        "cfg_scale": "FLOAT",
        "style": (["photo", "anime"],),
    },
    ["IMAGE"],
    api=True,
)


def cloud_prompt() -> Prompt:
    return {
        "1": node(
            "AcmeCloudImage",
            prompt="a lighthouse at dusk",
            negative_prompt="text",
            model="acme-v3",
            seed=99,
            width=1024,
            height=768,
            cfg_scale=4.5,
            style="photo",
        ),
        "9": node("SaveImage", images=["1", 0], filename_prefix="x"),
    }


def test_cloud_api_node_is_a_generation_step() -> None:
    rec = run(cloud_prompt(), schemas(AcmeCloudImage=CLOUD))
    gen = rec.generation
    assert (gen.positive, gen.negative, gen.seed, gen.width, gen.height) == (
        "a lighthouse at dusk",
        "text",
        99,
        1024,
        768,
    )
    assert gen.cfg == 4.5
    assert (rec.passes[0].class_type, rec.passes[0].model) == ("AcmeCloudImage", "acme-v3")
    assert gen.api_node is not None and gen.api_node["options"]["style"] == "photo"
    text = build(rec)
    assert text.startswith("a lighthouse at dusk\nNegative prompt: text\n") and "Seed: 99" in text
    assert not any("no sampler" in w for w in rec.provenance.warnings)


def test_media_node_without_a_multiline_prompt_is_not_a_generator() -> None:
    entry = described({"image": "IMAGE", "label": "STRING"}, ["IMAGE"])
    api = {
        "1": node("LoadImage", image="in.png"),
        "2": node("AcmeStamp", image=["1", 0], label="hello"),
        "9": node("SaveImage", images=["2", 0], filename_prefix="x"),
    }
    assert infer(one("AcmeStamp", entry))["role"] == "passthrough"
    rec = run(api, schemas(AcmeStamp=entry))
    assert rec.generation.positive is None and rec.passes == []


# -- value helpers --------------------------------------------------------------------------------------------


def test_primitive_like_helper_is_evaluated_and_unknown_math_is_unresolved_by_name() -> None:
    primitive = described({"value": "INT"}, ["INT"])
    adder = described({"a": "INT", "b": "INT"}, ["INT"])
    api = base(steps=["10", 0], seed=["11", 0])
    api["10"] = node("AcmeInt", value=28)
    api["11"] = node("AcmeAdd", a=1, b=2)
    rec = run(api, schemas(AcmeInt=primitive, AcmeAdd=adder))
    assert rec.generation.steps == 28
    # A sum is likely, never sure: the seed stays unknown and the record names the node it hangs on.
    assert rec.generation.seed is None
    assert {"node_id": "3", "input": "seed", "depends_on": "11"} in rec.provenance.other["unresolved"]


def test_core_helpers_have_rules_and_are_evaluated() -> None:
    api = base(seed=["10", 0], steps=["11", 0])
    api["10"] = node("PrimitiveInt", value=123)
    api["11"] = node("ComfyMathExpression", expression="a * 2", **{"values.a": 15})
    rec = run(api)
    assert (rec.generation.seed, rec.generation.steps) == (123, 30)
    assert "inferred_rules" not in rec.provenance.other


def test_boolean_switch_with_true_false_inputs_is_resolved() -> None:
    switch = described({"select": "BOOLEAN", "on_true": "*", "on_false": "*"}, ["*"], ["output"])
    api = base(positive=["10", 0])
    api["10"] = node("AcmeSwitch", select=False, on_true=["7", 0], on_false=["6", 0])
    rec = run(api, schemas(AcmeSwitch=switch))
    assert rec.generation.positive == "a castle"
    api["10"]["inputs"]["select"] = True
    assert run(api, schemas(AcmeSwitch=switch)).generation.positive == "blurry"


# -- models -------------------------------------------------------------------------------------------------------


def test_unknown_loader_records_its_file_with_a_role_from_the_output_type() -> None:
    loader = described({"unet_name": (["acme.safetensors"],), "weight_dtype": (["default", "fp8"],)}, ["MODEL"])
    api = base(model=["10", 0])
    api["10"] = node("AcmeUnetLoader", unet_name="acme.safetensors", weight_dtype="fp8")
    rec = run(api, schemas(AcmeUnetLoader=loader))
    assert ("unet", "acme.safetensors", "10") in [(m.role, m.name, m.node_id) for m in rec.models]
    assert rec.passes[0].model == "acme.safetensors"


def test_models_behind_an_unresolved_switch_are_candidates_not_used() -> None:
    api = base(model=["10", 0])
    api["10"] = node("ComfySwitchNode", switch=["11", 0], on_true=["4", 0], on_false=["12", 0])
    api["11"] = node("AcmeRandomBool", chance=0.5)
    api["12"] = node("UNETLoader", unet_name="other.safetensors", weight_dtype="default")
    rec = run(api)
    names = [m.name for m in rec.models]
    assert "other.safetensors" not in names
    candidates = rec.provenance.other["candidate_models"]
    assert [c["name"] for c in candidates if c["role"] == "unet"] == ["other.safetensors"]
    assert all("switch" in c["reason"] for c in candidates)


# -- prompt writers ------------------------------------------------------------------------------------------------


def writer_prompt() -> Prompt:
    api = base()
    api["20"] = node("CLIPLoader", clip_name="gemma_3_4b.safetensors", type="ltxv")
    api["21"] = node(
        "TextGenerate",
        clip=["20", 0],
        prompt="write a prompt about a castle",
        max_length=256,
        sampling_mode="on",
        **{"sampling_mode.temperature": 0.7, "sampling_mode.seed": 42},
    )
    api["6"]["inputs"]["text"] = ["21", 0]
    return api


def test_a_prompt_writing_model_is_not_the_text_encoder_and_its_prompt_is_unresolved() -> None:
    rec = run(writer_prompt())
    assert rec.generation.positive is None
    assert {"node_id": "6", "input": "text", "depends_on": "21"} in rec.provenance.other["unresolved"]
    roles = {m.name: m.role for m in rec.models}
    assert roles == {"base.safetensors": "checkpoint", "gemma_3_4b.safetensors": "prompt_writer"}
    (writer,) = rec.generation.other["prompt_writers"]
    assert writer["instruction"] == "write a prompt about a castle"
    assert (writer["seed"], writer["temperature"], writer["models"]) == (42, 0.7, ["gemma_3_4b.safetensors"])
    # The hooks saw what it wrote: the prompt is filled, and the writer's output is kept beside it.
    runtime = RuntimeView({"nodes": {"21": {"outputs": ["a tall castle in fog"]}}})
    rec = run(writer_prompt(), runtime=runtime)
    assert rec.generation.positive == "a tall castle in fog"
    assert rec.generation.other["prompt_writers"][0]["written"] == "a tall castle in fog"


def test_a_model_that_also_encodes_the_prompt_keeps_its_encoder_role() -> None:
    api = writer_prompt()
    api["6"]["inputs"]["clip"] = ["20", 0]  # the same CLIP writes the prompt and encodes it
    roles = {m.name: m.role for m in run(api).models}
    assert roles["gemma_3_4b.safetensors"] == "clip"


def test_unknown_llm_node_is_inferred_as_a_prompt_writer() -> None:
    llm = described(
        {"prompt": ("STRING", {"multiline": True}), "model": (["acme-chat"],), "seed": "INT"}, ["STRING"], api=True
    )
    api = base()
    api["21"] = node("AcmeChat", prompt="describe a castle", model="acme-chat", seed=3)
    api["6"]["inputs"]["text"] = ["21", 0]
    rec = run(api, schemas(AcmeChat=llm))
    assert rec.generation.positive is None
    (writer,) = rec.generation.other["prompt_writers"]
    assert (writer["class_type"], writer["instruction"], writer["model"]) == (
        "AcmeChat",
        "describe a castle",
        "acme-chat",
    )


# -- auxiliary passes --------------------------------------------------------------------------------------------


def test_a_sampler_feeding_a_guide_is_auxiliary_not_the_base_pass() -> None:
    api = base(positive=["13", 0], negative=["13", 1])
    # A one-step pass makes a depth map; it reaches the output only as a ControlNet image.
    api["30"] = node(
        "KSampler", seed=1, steps=1, cfg=1.0, sampler_name="euler", scheduler="normal", denoise=1.0,
        model=["4", 0], positive=["6", 0], negative=["7", 0], latent_image=["5", 0],
    )  # fmt: skip
    api["31"] = node("VAEDecode", samples=["30", 0], vae=["4", 2])
    api["12"] = node("ControlNetLoader", control_net_name="depth.safetensors")
    api["13"] = node(
        "ControlNetApplyAdvanced", positive=["6", 0], negative=["7", 0], control_net=["12", 0], image=["31", 0],
        strength=1.0, start_percent=0.0, end_percent=1.0,
    )  # fmt: skip
    rec = run(api)
    assert (rec.generation.steps, rec.passes[0].node_id) == (20, "3")
    assert "Steps: 20" in build(rec)
    purposes = {a["node_id"]: a["purpose"] for a in rec.provenance.other["auxiliary"]}
    assert purposes == {"30": "guide"}


def test_a_rule_the_schema_contradicts_gives_no_prompt() -> None:
    """A pack that swapped its outputs since the rule was written: the rule says output 0 carries the
    positive, the schema names it negative. Two readings disagree: both prompts are candidates, none is
    recorded, and the record says why."""
    api = base(positive=["10", 0], negative=["10", 1])
    api["10"] = node("LTXVConditioning", positive=["6", 0], negative=["7", 0], frame_rate=25.0)
    swapped = described(
        {"positive": "CONDITIONING", "negative": "CONDITIONING", "frame_rate": "FLOAT"},
        ["CONDITIONING"] * 2,
        ["negative", "positive"],
    )
    rec = run(api, schemas(LTXVConditioning=swapped))
    assert (rec.generation.positive, rec.generation.negative) == (None, None)
    assert ambiguous(rec)["generation.positive"] == ["a castle", "blurry"]
    disputes = rec.provenance.other["rule_disputes"]
    assert [(d["output"], d["rule"], d["schema"]) for d in disputes] == [
        (0, "positive", "negative"),
        (1, "negative", "positive"),
    ]
    assert any("LTXVConditioning" in w for w in rec.provenance.warnings)

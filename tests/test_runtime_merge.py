"""Runtime capture merged into the record: real corpus graphs, synthetic snapshots in hooks/session.py's shape."""

from __future__ import annotations

import copy
import json
import logging
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import corpus_names, load_workflow, pixels
from jsonschema import Draft202012Validator

from comfyui_provenance.metadata import infotext
from comfyui_provenance.metadata import runtime as runtime_module
from comfyui_provenance.metadata.capture import SECRET_KEYS, SaveContext, build_record
from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.parser import rules as rules_module
from comfyui_provenance.metadata.parser.parse import WorkflowParser
from comfyui_provenance.metadata.parser.runtime_view import ABSENT, RuntimeView
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Record
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images
from comfyui_provenance.nodes import save_image, v1

Prompt = dict[str, Any]
PROMPT_ID = "runtime-test"
FORMATS = ("png", "jpeg", "webp")
PACKAGE = "comfyui_provenance"


# -- helpers ----------------------------------------------------------------------------------------------------


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def ran(
    class_type: str | None,
    inputs: dict[str, Any] | None = None,
    outputs: list[Any] | None = None,
    *,
    cached: bool = False,
    ms: float | None = 1.0,
) -> dict[str, Any]:
    """One node as a hook session reports it."""
    return {
        "class_type": class_type,
        "cached": cached,
        "start_ms": None if cached else 0.5,
        "duration_ms": None if cached else ms,
        "inputs": inputs or {},
        "outputs": outputs,
        "error": None,
    }


def snapshot(nodes: dict[str, dict[str, Any]], order: list[str] | None = None, **more: Any) -> dict[str, Any]:
    """A snapshot as hooks/session.py returns it while the save node runs (so not ended yet)."""
    return {
        "prompt_id": PROMPT_ID,
        "started": "2025-11-21T18:00:00Z",
        "ended": None,
        "complete": True,
        "order": order if order is not None else [i for i, n in nodes.items() if not n["cached"]],
        "nodes": nodes,
        "errors": [],
        **more,
    }


def confirming(prompt: Prompt) -> dict[str, Any]:
    """A snapshot in which every node ran with exactly its widget values (links are tensors)."""
    nodes = {}
    for node_id, entry in prompt.items():
        inputs = {
            k: (v if isinstance(v, (str, int, float, bool)) else {"type": "ANY"})
            for k, v in entry["inputs"].items()
            if v is not None and not isinstance(v, dict)
        }
        nodes[node_id] = ran(entry["class_type"], inputs)
    return snapshot(nodes)


def save_node_of(prompt: Prompt) -> str | None:
    """The graph's save node (SaveImage, SaveVideo, SaveAnimatedWEBP...); None reads every output."""
    return next((k for k, v in prompt.items() if str(v.get("class_type", "")).startswith("Save")), None)


def context(prompt: Prompt, ui: dict[str, Any] | None = None, save_id: str | None = None) -> SaveContext:
    return SaveContext(
        prompt=prompt,
        extra_pnginfo={"workflow": ui or {}},
        save_node_id=save_id or save_node_of(prompt),
        prompt_id=PROMPT_ID,
        comfyui_version="0.33.0",
    )


def both(prompt: Prompt, snap: dict[str, Any], save_id: str | None = None) -> tuple[Record, Record]:
    """(parser only, merged with the snapshot); neither input is changed."""
    before = (copy.deepcopy(prompt), copy.deepcopy(snap))
    ctx = context(prompt, save_id=save_id)
    static, merged = build_record(ctx, "test"), build_record(ctx, "test", runtime=snap)
    assert (prompt, snap) == before, "the merge changed the prompt or the snapshot"
    return static, merged


def unresolved(record: Record) -> list[dict[str, str]]:
    found: list[dict[str, str]] = record.provenance.other.get("unresolved", [])
    return found


def model_names(record: Record, role: str) -> list[str]:
    return [m.name for m in record.models if m.role == role]


def save_one(tmp_path: Path, ctx: SaveContext, snap: dict[str, Any] | None, fmt: str = "png", **opts: Any) -> SavedFile:
    saved = save_images([pixels()], ctx, tmp_path, "rt", SaveOptions(format=fmt, **opts), version="t", runtime=snap)
    return saved[0]


@cache
def validator() -> Draft202012Validator:
    text = resources.files("comfyui_provenance.metadata").joinpath("schema/record-1.schema.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text), format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(record: Record) -> list[str]:
    data = json.loads(record.to_json())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(data)]


# -- graphs: real corpus workflows, with one node made runtime-only -----------------------------------------------


def random_seed_graph() -> Prompt:
    """default: the KSampler's seed comes from a custom random-seed node the rules cannot evaluate."""
    api, _ = load_workflow("default")
    api["3"]["inputs"]["seed"] = ["20", 0]
    api["20"] = node("RandomSeedPro", mode="randomize", salt=["21", 0])
    api["21"] = node("TimestampNow")
    return api


def seed_snapshot(seed: int = 4242, **sampler: Any) -> dict[str, Any]:
    return snapshot(
        {
            "4": ran("CheckpointLoaderSimple", {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"}),
            "21": ran("TimestampNow", {}, [1732212000]),
            "20": ran("RandomSeedPro", {"mode": "randomize", "salt": 1732212000}, [seed]),
            "3": ran("KSampler", {"steps": 20, "cfg": 8, "model": {"type": "MODEL"}, **sampler}, ms=1500.0),
        }
    )


def checkpoint_switch_graph() -> Prompt:
    """default with a second checkpoint; model, CLIP and VAE go through switches sharing a linked selector."""
    api, _ = load_workflow("default")
    api["10"] = node("CheckpointLoaderSimple", ckpt_name="dreamshaper_8.safetensors")
    api["11"] = node("BooleanFromRemoteConfig", key="use_dreamshaper")
    for switch_id, output in (("12", 0), ("13", 1), ("14", 2)):
        api[switch_id] = node("ComfySwitchNode", switch=["11", 0], on_false=["4", output], on_true=["10", output])
    api["3"]["inputs"]["model"] = ["12", 0]
    api["6"]["inputs"]["clip"] = ["13", 0]
    api["7"]["inputs"]["clip"] = ["13", 0]
    api["8"]["inputs"]["vae"] = ["14", 0]
    return api


def wan_graph(runtime_node: str, class_type: str) -> Prompt:
    """WAN 2.2 14B i2v (high/low noise passes, switches, a frame-count math node) with one node made custom."""
    api, _ = load_workflow("video_wan2_2_14B_i2v")
    api[runtime_node] = node(class_type, source=["97", 0])
    return api


def chain_graph(length: int) -> Prompt:
    """default with `length` custom pass-through nodes between the positive prompt and the sampler."""
    api, _ = load_workflow("default")
    previous = ["6", 0]
    for i in range(length):
        node_id = str(100 + i)
        api[node_id] = node("ConditioningNoop", conditioning=previous, note=f"stage {i}")
        previous = [node_id, 0]
    api["3"]["inputs"]["positive"] = previous
    return api


def chain_snapshot(prompt: Prompt) -> dict[str, Any]:
    nodes = {
        i: ran(n["class_type"], {"conditioning": {"type": "CONDITIONING"}, "note": n["inputs"]["note"]}, ms=0.25)
        for i, n in prompt.items()
        if n["class_type"] == "ConditioningNoop"
    }
    return snapshot(nodes)


# -- merge rules ----------------------------------------------------------------------------------------------------


def test_a_seed_drawn_at_run_time_fills_what_the_parser_left_unresolved() -> None:
    static, merged = both(random_seed_graph(), seed_snapshot(4242))
    assert static.generation.seed is None
    assert unresolved(static) == [{"node_id": "3", "input": "seed", "depends_on": "20"}]
    assert static.provenance.capture_mode == "parser"
    assert merged.generation.seed == merged.passes[0].seed == 4242
    assert "unresolved" not in merged.provenance.other
    assert merged.provenance.other["resolved_at_runtime"] == unresolved(static)
    assert merged.provenance.capture_mode == "parser+hooks"
    assert merged.provenance.filled_at_runtime == ["generation.seed"]
    assert merged.provenance.disagreements == []
    assert "Seed: 4242," in infotext.build(merged)  # the A1111 text comes from generation
    # Everything else is the parser's reading.
    same = {k: v for k, v in static.generation.to_dict().items() if k != "seed"}
    assert {k: v for k, v in merged.generation.to_dict().items() if k != "seed"} == same


def test_the_seed_also_resolves_from_the_consuming_nodes_own_inputs() -> None:
    snap = snapshot({"3": ran("KSampler", {"seed": 777, "steps": 20})})  # the seed node itself reported nothing
    _, merged = both(random_seed_graph(), snap)
    assert merged.generation.seed == 777
    assert "unresolved" not in merged.provenance.other


def test_a_switch_with_a_linked_selector_keeps_only_the_branch_that_ran() -> None:
    api = checkpoint_switch_graph()
    static, merged = both(api, snapshot({"11": ran("BooleanFromRemoteConfig", {"key": "use_dreamshaper"}, [True])}))
    both_checkpoints = ["v1-5-pruned-emaonly-fp16.safetensors", "dreamshaper_8.safetensors"]
    assert model_names(static, "checkpoint") == []  # statically both are only candidates
    candidates = [m["name"] for m in static.provenance.other["candidate_models"] if m["role"] == "checkpoint"]
    assert sorted(candidates) == sorted(both_checkpoints)
    assert static.passes[0].model is None
    assert {(u["node_id"], u["input"]) for u in unresolved(static)} >= {("12", "switch"), ("14", "switch")}
    assert model_names(merged, "checkpoint") == ["dreamshaper_8.safetensors"]
    assert merged.passes[0].model == "dreamshaper_8.safetensors"
    assert "unresolved" not in merged.provenance.other
    assert {"models", "passes[0].model"} <= set(merged.provenance.filled_at_runtime or [])
    assert merged.provenance.disagreements == []
    assert "Model: dreamshaper_8," in infotext.build(merged)


def test_the_wan_switches_follow_the_runtime_toggle() -> None:
    api = wan_graph("129:131", "RemoteToggle")  # was a PrimitiveBoolean: now only the run knows
    static, merged = both(api, snapshot({"129:131": ran("RemoteToggle", {}, [False])}))
    assert static.generation.steps is None and static.generation.cfg is None
    assert model_names(static, "lora") == []
    candidates = [m for m in static.provenance.other["candidate_models"] if m["role"] == "lora"]
    assert len(candidates) == 2  # the 4-step LoRAs of the "on" branch: candidates, not recorded as applied
    assert (merged.generation.steps, merged.generation.cfg) == (20, 3.5)
    assert [(p.start_step, p.end_step) for p in merged.passes] == [(0, 10), (10, 20)]
    assert model_names(merged, "lora") == []
    assert "unresolved" not in merged.provenance.other
    assert merged.provenance.disagreements == []


@pytest.mark.parametrize(
    ("runtime_nodes", "how"),
    [
        ({"129:161": ran("AudioDurationSeconds", {"source": {"type": "AUDIO"}}, [3.0])}, "the math node's input"),
        ({"129:98": ran("WanImageToVideo", {"length": 49, "width": 640})}, "the consumer's resolved input"),
    ],
)
def test_a_math_expression_fed_at_run_time(runtime_nodes: dict[str, Any], how: str) -> None:
    """WAN 2.2's frame count is floor(seconds * fps + 1); the seconds now come from a custom node."""
    static, merged = both(wan_graph("129:161", "AudioDurationSeconds"), snapshot(runtime_nodes))
    assert static.generation.frames is None
    assert {"node_id": "129:98", "input": "length", "depends_on": "129:163"} in unresolved(static)
    assert merged.generation.frames == 49, how  # floor(3.0 * 16 + 1)
    assert "generation.frames" in (merged.provenance.filled_at_runtime or [])
    assert "unresolved" not in merged.provenance.other


def test_width_and_height_known_only_at_run_time() -> None:
    """image_flux2 sizes its latent with GetImageSize of the scaled input: unresolved by design, until now."""
    api, _ = load_workflow("image_flux2")
    snap = snapshot(
        {"68:72": ran("GetImageSize", {"image": {"type": "IMAGE", "shape": [1, 768, 1024, 3]}}, [1024, 768, 1])}
    )
    static, merged = both(api, snap)
    assert (static.generation.width, static.generation.height) == (None, None)
    assert (merged.generation.width, merged.generation.height) == (1024, 768)
    assert merged.provenance.filled_at_runtime == ["generation.width", "generation.height"]
    assert "unresolved" not in merged.provenance.other


def test_a_prompt_built_by_a_custom_node_reaches_the_text_encoder() -> None:
    api, _ = load_workflow("default")
    api["6"]["inputs"]["text"] = ["30", 0]
    api["30"] = node("WildcardProcessor", template="a __animal__ in the __place__", seed=5)
    snap = snapshot({"6": ran("CLIPTextEncode", {"text": "a red fox in the snow", "clip": {"type": "CLIP"}})})
    static, merged = both(api, snap)
    assert static.generation.positive is None
    assert merged.generation.positive == merged.passes[0].positive == "a red fox in the snow"
    assert infotext.build(merged).startswith("a red fox in the snow\nNegative prompt: text, watermark\n")


def test_a_disagreement_lists_both_values_and_the_runtime_value_wins() -> None:
    api, _ = load_workflow("default")
    snap = snapshot({"3": ran("KSampler", {"seed": 685468484323813, "steps": 30, "cfg": 8.0, "denoise": 1.0})})
    static, merged = both(api, snap)
    assert static.generation.steps == 20
    assert merged.generation.steps == merged.passes[0].steps == 30
    assert merged.provenance.disagreements == [{"field": "generation.steps", "parser": 20, "runtime": 30}]
    assert merged.provenance.filled_at_runtime == []
    assert "Steps: 30," in infotext.build(merged)


def test_a_runtime_value_the_record_cannot_hold_leaves_the_parsers_value() -> None:
    api, _ = load_workflow("default")
    _, merged = both(api, snapshot({"3": ran("KSampler", {"steps": "twenty", "cfg": True})}))
    assert (merged.generation.steps, merged.generation.cfg) == (20, 8.0)
    assert merged.provenance.disagreements == [] and merged.provenance.filled_at_runtime == []


def test_a_snapshot_that_only_confirms_the_graph_changes_nothing_but_the_mode() -> None:
    api, _ = load_workflow("lora")
    static, merged = both(api, confirming(api))
    assert merged.provenance.disagreements == [] and merged.provenance.filled_at_runtime == []
    for part in ("generation", "passes", "models"):
        assert json.dumps(getattr(merged, part), default=lambda n: n.to_dict()) == json.dumps(
            getattr(static, part), default=lambda n: n.to_dict()
        ), part


@pytest.mark.parametrize("name", corpus_names())
def test_every_corpus_graph_merged_with_a_confirming_snapshot(name: str) -> None:
    api, ui = load_workflow(name)
    ctx = context(api, ui)
    static, merged = build_record(ctx, "t"), build_record(ctx, "t", runtime=confirming(api))
    assert merged.provenance.capture_mode == "parser+hooks"
    assert merged.provenance.disagreements == []
    assert merged.generation.to_dict() == static.generation.to_dict()
    assert [m.to_dict() for m in merged.models] == [m.to_dict() for m in static.models]
    assert not schema_errors(merged)


def test_cached_nodes_still_count() -> None:
    snap = seed_snapshot(99)
    snap["nodes"]["20"] = ran("RandomSeedPro", {"mode": "randomize"}, [31337], cached=True)
    snap["order"] = [i for i in snap["order"] if i != "20"]  # a cached node did not run this time
    _, merged = both(random_seed_graph(), snap)
    assert merged.generation.seed == 31337
    block = merged.runtime
    assert block is not None
    assert block["nodes"]["20"]["cached"] is True
    assert "20" not in block["order"]
    assert block["total_ms"] == 1502.0  # 4, 21 and 3 ran; the cached node cost nothing


def test_the_runtime_block_holds_only_what_feeds_the_save_node() -> None:
    api, _ = load_workflow("default")
    api["30"] = node("PreviewImage", images=["8", 0])  # a sibling output: downstream of 8, not upstream of 9
    api["31"] = node("LoadImage", image="unrelated.png")  # not connected at all
    nodes = {i: ran(api[i]["class_type"], {"x": 1}) for i in ("4", "5", "6", "7", "3", "8", "30", "31", "9")}
    nodes["3.0.0.1"] = ran("SamplerPart", {"x": 1})  # expanded at run time by node 3: belongs to it
    nodes["30.0.0.1"] = ran("PreviewPart", {"x": 1})
    _, merged = both(api, snapshot(nodes))
    block = merged.runtime
    assert block is not None
    assert block["order"] == ["4", "5", "6", "7", "3", "8", "3.0.0.1"]
    assert list(block["nodes"]) == block["order"]
    assert block["prompt_id"] == PROMPT_ID and block["complete"] is True
    assert block["nodes"]["3"] == {
        "class_type": "KSampler",
        "cached": False,
        "start_ms": 0.5,
        "duration_ms": 1.0,
        "error": None,
        "inputs": {"x": 1},
        "outputs": None,
    }


def test_switch_branches_that_were_not_chosen_are_not_in_the_block() -> None:
    api = checkpoint_switch_graph()
    nodes = {i: ran(api[i]["class_type"], {}) for i in ("4", "10", "12", "3")}
    nodes["11"] = ran("BooleanFromRemoteConfig", {}, [False])
    _, merged = both(api, snapshot(nodes))
    assert merged.runtime is not None
    assert "10" not in merged.runtime["nodes"] and "4" in merged.runtime["nodes"]
    assert model_names(merged, "checkpoint") == ["v1-5-pruned-emaonly-fp16.safetensors"]


def test_the_block_is_strict_json_and_carries_no_graph_or_secret() -> None:
    secret = "sk-RUNTIME-SECRET-4242"
    snap = seed_snapshot(5)
    snap["nodes"]["3"]["inputs"].update(
        {
            "cfg": float("nan"),
            "prompt": {"1": {"class_type": "X", "inputs": {}}},  # a hidden PROMPT input: the record has it already
            "options": {"api_key_comfy_org": secret, "auth_token_comfy_org": secret, "n": 2},
            "odd": object(),
        }
    )
    snap["nodes"]["3"]["outputs"] = [float("inf")]
    merged = build_record(context(random_seed_graph()), "t", runtime=snap)  # NaN != NaN: `both` cannot compare
    text = merged.to_json()
    assert secret not in text
    inputs = merged.runtime["nodes"]["3"]["inputs"] if merged.runtime else {}
    assert inputs["cfg"] is None and inputs["odd"] == "<object>" and inputs["options"] == {"n": 2}
    assert "prompt" not in inputs
    assert merged.generation.cfg == 8.0  # a non-finite runtime value is not a value: the widget stands
    assert all(key not in text for key in SECRET_KEYS)


# -- when the snapshot is not used ------------------------------------------------------------------------------------


def test_no_snapshot_is_parser_only_exactly_as_before(tmp_path: Path) -> None:
    api, ui = load_workflow("lora")
    ctx = context(api, ui)
    plain = save_images([pixels()], ctx, tmp_path, "x", SaveOptions(), version="t")[0]
    none = save_one(tmp_path, ctx, None)
    assert none.record is not None
    assert none.record.provenance.capture_mode == "parser"
    assert none.record.runtime is None and none.record.provenance.disagreements is None
    assert none.record.provenance.filled_at_runtime is None

    def stable(path: Path) -> dict[str, Any]:
        data = read(path).to_dict()
        data["provenance"]["created"] = data["image"]["filename"] = None
        return data

    assert stable(none.path) == stable(plain.path)


def test_a_snapshot_of_another_prompt_is_ignored() -> None:
    snap = seed_snapshot(1)
    snap["prompt_id"] = "some-other-prompt"
    _, merged = both(random_seed_graph(), snap)
    assert merged.provenance.capture_mode == "parser"
    assert merged.runtime is None and merged.generation.seed is None
    assert any("runtime capture not used" in w and "some-other-prompt" in w for w in merged.provenance.warnings)


def test_a_failing_merge_keeps_the_parsers_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Record:
        raise RuntimeError("boom")

    monkeypatch.setattr(runtime_module, "merge", broken)
    static, merged = both(random_seed_graph(), seed_snapshot())
    assert merged.provenance.capture_mode == "parser"
    assert merged.generation.to_dict() == static.generation.to_dict()
    assert any("merging it failed: RuntimeError: boom" in w for w in merged.provenance.warnings)


def test_runtime_errors_are_kept_and_warned_about() -> None:
    _, merged = both(random_seed_graph(), {**seed_snapshot(), "errors": ["capture_inputs: KeyError 'x'"]})
    assert merged.runtime is not None and merged.runtime["errors"] == ["capture_inputs: KeyError 'x'"]
    assert any("runtime.errors" in w for w in merged.provenance.warnings)


# -- the inline budget -----------------------------------------------------------------------------------------------


def test_a_big_runtime_block_moves_to_its_sidecar_and_reads_back(tmp_path: Path) -> None:
    api = chain_graph(300)
    snap = chain_snapshot(api)
    full = build_record(context(api), "t", runtime=snap).runtime
    assert full is not None and len(json.dumps(full)) > 32 * 1024
    saved = save_one(tmp_path, context(api), snap)
    sidecar = saved.path.with_name(saved.path.name + ".runtime.json")
    assert sidecar in saved.sidecars and sidecar.exists()
    assert saved.record is not None and saved.record.runtime is not None
    pointer = saved.record.runtime
    assert pointer["sidecar_ref"] == sidecar.name
    assert pointer["node_count"] == 300 and pointer["prompt_id"] == PROMPT_ID
    moved = [p for p in saved.record.provenance.embedding if p.target == "runtime"]
    assert [(p.location, p.status) for p in moved] == [("sidecar:runtime", "moved")]
    assert "inline budget" in (moved[0].reason or "")
    assert json.loads(sidecar.read_text("utf-8")) == full
    got = read(saved.path)
    assert got.runtime == full
    assert got.provenance.to_dict() == saved.record.provenance.to_dict()
    assert not schema_errors(saved.record) and not schema_errors(got)


def test_a_missing_runtime_sidecar_leaves_the_pointer_and_says_so(tmp_path: Path) -> None:
    api = chain_graph(300)
    saved = save_one(tmp_path, context(api), chain_snapshot(api))
    saved.path.with_name(saved.path.name + ".runtime.json").unlink()
    got = read(saved.path)
    assert saved.record is not None and got.runtime == saved.record.runtime
    assert any("which is missing" in w for w in got.provenance.warnings)


def test_a_damaged_runtime_sidecar_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    api = chain_graph(300)
    saved = save_one(tmp_path, context(api), chain_snapshot(api))
    saved.path.with_name(saved.path.name + ".runtime.json").write_text("{not json", "utf-8")
    got = read(saved.path)
    assert got.runtime is not None and "sidecar_ref" in got.runtime
    assert any("does not read" in w for w in got.provenance.warnings)


def test_a_renamed_image_with_its_sidecars_still_finds_the_block(tmp_path: Path) -> None:
    api = chain_graph(300)
    saved = save_one(tmp_path, context(api), chain_snapshot(api))
    renamed = saved.path.with_name("renamed.png")
    saved.path.rename(renamed)
    saved.path.with_name(saved.path.name + ".runtime.json").rename(renamed.with_name("renamed.png.runtime.json"))
    got = read(renamed)
    assert got.runtime is not None and got.runtime["order"][:2] == ["100", "101"]


@pytest.mark.parametrize(
    ("value", "spills"), [("0.5", True), ("0", True), ("1000", False), ("junk", False), ("", False)]
)
def test_the_budget_comes_from_the_environment(
    value: str, spills: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(runtime_module.ENV_INLINE_KB, value)
    api = random_seed_graph()
    saved = save_one(tmp_path, context(api), seed_snapshot())  # a block of about 900 bytes
    assert saved.record is not None and saved.record.runtime is not None
    assert ("sidecar_ref" in saved.record.runtime) is spills
    assert read(saved.path).runtime == build_record(context(api), "t", runtime=seed_snapshot()).runtime
    if value == "junk":
        assert runtime_module.inline_budget() == 32 * 1024


def test_a_raised_budget_keeps_a_big_block_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime_module.ENV_INLINE_KB, "1000")
    api = chain_graph(300)
    saved = save_one(tmp_path, context(api), chain_snapshot(api))
    assert saved.record is not None and saved.record.runtime is not None
    assert "sidecar_ref" not in saved.record.runtime and len(saved.record.runtime["nodes"]) == 300
    assert not saved.path.with_name(saved.path.name + ".runtime.json").exists()


# -- every format, the schema -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_merged_record_round_trips_every_format(fmt: str, tmp_path: Path) -> None:
    api, ui = load_workflow("default")
    api["3"]["inputs"]["seed"] = ["20", 0]
    api["20"] = node("RandomSeedPro", mode="randomize")
    saved = save_one(tmp_path, context(api, ui), seed_snapshot(4242, steps=25), fmt)
    assert saved.record is not None
    assert saved.record.provenance.capture_mode == "parser+hooks"
    assert not saved.sidecars, "a small merged record fits in the file"
    got = read(saved.path)
    assert got.to_dict() == saved.record.to_dict()
    assert (got.generation.seed, got.generation.steps) == (4242, 25)
    assert got.runtime is not None and got.runtime["nodes"]["20"]["outputs"] == [4242]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_spilled_block_round_trips_every_format(fmt: str, tmp_path: Path) -> None:
    api = chain_graph(300)
    snap = chain_snapshot(api)
    saved = save_one(tmp_path, context(api), snap, fmt, targets=frozenset(TARGETS))
    assert saved.record is not None
    got = read(saved.path)
    assert got.runtime == build_record(context(api), "t", runtime=snap).runtime
    assert got.provenance.to_dict() == saved.record.provenance.to_dict()


def test_merged_records_match_the_published_schema() -> None:
    cases = [
        both(random_seed_graph(), seed_snapshot(7))[1],
        both(checkpoint_switch_graph(), snapshot({"11": ran("X", {}, [True])}))[1],
        both(load_workflow("default")[0], snapshot({"3": ran("KSampler", {"steps": 31})}))[1],
    ]
    pointer = copy.copy(cases[0])
    pointer.runtime = {"sidecar_ref": "x.png.runtime.json", "prompt_id": PROMPT_ID, "complete": True, "bytes": 10}
    for record in [*cases, pointer]:
        assert not schema_errors(record)
    bad = copy.copy(cases[0])
    bad.runtime = {"nodes": "not an object"}
    assert schema_errors(bad)


# -- the runtime view on its own ------------------------------------------------------------------------------------


def test_the_view_uses_single_scalars_only() -> None:
    view = RuntimeView(
        {
            "nodes": {
                "1": {"inputs": {"a": 1, "b": [2], "c": [1, 2], "d": {"type": "IMAGE"}, "e": None, "f": float("nan")}},
                "2": {"outputs": [True, {"type": "LATENT"}, "text"]},
                "3": "not a node",
            }
        }
    )
    assert view.input("1", "a") == 1 and view.input("1", "b") == 2
    assert all(view.input("1", k) is ABSENT for k in ("c", "d", "e", "f", "missing"))
    assert view.output("2", 0) is True and view.output("2", 2) == "text"
    assert view.output("2", 1) is ABSENT and view.output("2", 5) is ABSENT and view.output("3", 0) is ABSENT
    assert view.value("1", "missing", ["2", 2]) == "text"
    assert view.value("9", "x", 5) is ABSENT
    assert "1" in view and "3" not in view and len(RuntimeView(None)) == 0


def test_parse_with_a_runtime_view_is_pure_and_analyse_reports_upstream() -> None:
    api = checkpoint_switch_graph()
    before = copy.deepcopy(api)
    view = RuntimeView(snapshot({"11": ran("X", {}, [True])}))
    analysis = WorkflowParser().analyse(api, "9", None, view)
    assert api == before
    assert "10" in analysis.upstream and "4" not in analysis.upstream and "9" not in analysis.upstream
    assert WorkflowParser().parse(api, "9", runtime=view).to_dict() == analysis.record.to_dict()


# -- the node: prefer_runtime, hooks present or not ------------------------------------------------------------------


@dataclass
class FakeSession:
    """hooks/session.py's contract, recording how the node uses it."""

    snap: dict[str, Any] | None = None
    fail: bool = False
    asked: list[str | None] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)

    def snapshot(self, prompt_id: str | None) -> dict[str, Any] | None:
        self.asked.append(prompt_id)
        if self.fail:
            raise RuntimeError("registry broken")
        return copy.deepcopy(self.snap)

    def mark_used(self, prompt_id: str, save_node_id: str) -> None:
        self.used.append((prompt_id, save_node_id))

    def hooks_active(self) -> bool:
        return self.snap is not None


def _install_hooks(monkeypatch: pytest.MonkeyPatch, session: types.ModuleType | None) -> None:
    """Stand in for the hooks package (never importing the real one, which may touch ComfyUI)."""
    package = types.ModuleType(f"{PACKAGE}.hooks")
    package.__path__ = []
    if session is not None:
        package.session = session  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"{PACKAGE}.hooks", package)
    monkeypatch.setitem(sys.modules, f"{PACKAGE}.hooks.session", session)
    monkeypatch.setattr(sys.modules[PACKAGE], "hooks", package, raising=False)


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> FakeSession:
    fake = FakeSession()
    module = types.ModuleType(f"{PACKAGE}.hooks.session")
    for name in ("snapshot", "mark_used", "hooks_active"):
        setattr(module, name, getattr(fake, name))
    _install_hooks(monkeypatch, module)
    return fake


@pytest.fixture
def comfy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Record]:
    """run the node's shared save function with ComfyUI's side faked; returns the saved file's record."""
    from comfyui_provenance import compat

    monkeypatch.setattr(rules_module._UserRules, "folder", None)
    monkeypatch.setattr(compat, "user_directory", lambda: tmp_path / "user")
    monkeypatch.setattr(compat, "metadata_disabled", lambda: False)
    monkeypatch.setattr(compat, "current_prompt_id", lambda: PROMPT_ID)
    monkeypatch.setattr(compat, "comfyui_version", lambda: "0.33.0")
    monkeypatch.setattr(compat, "output_directory", lambda: tmp_path / "out")
    monkeypatch.setattr(compat, "save_namer", lambda: None)
    monkeypatch.setattr(save_image, "comfyui_hasher", lambda models: None)

    def run(api: Prompt, **kwargs: Any) -> Record:
        (tmp_path / "out").mkdir(exist_ok=True)
        entries = save_image.run(
            images=[pixels()],
            filename_prefix="node",
            format="png",
            quality=95,
            lossless=False,
            targets=["record"],
            prompt=api,
            extra_pnginfo={"workflow": {}},
            unique_id="9",
            **kwargs,
        )
        return read(tmp_path / "out" / entries[-1]["filename"])

    return run


def test_the_node_merges_the_snapshot_and_marks_it_used(hooks: FakeSession, comfy: Callable[..., Record]) -> None:
    hooks.snap = seed_snapshot(4242)
    record = comfy(random_seed_graph())
    assert record.provenance.capture_mode == "parser+hooks" and record.generation.seed == 4242
    assert hooks.asked == [PROMPT_ID] and hooks.used == [(PROMPT_ID, "9")]


def test_a_prompt_without_the_input_prefers_runtime(hooks: FakeSession, comfy: Callable[..., Record]) -> None:
    hooks.snap = seed_snapshot(4242)
    assert comfy(random_seed_graph(), prefer_runtime=None).provenance.capture_mode == "parser+hooks"


def test_prefer_runtime_off_is_parser_only(hooks: FakeSession, comfy: Callable[..., Record]) -> None:
    hooks.snap = seed_snapshot(4242)
    record = comfy(random_seed_graph(), prefer_runtime=False)
    assert record.provenance.capture_mode == "parser"
    assert record.generation.seed is None and record.runtime is None
    assert hooks.asked == []
    assert hooks.used == [(PROMPT_ID, "9")]  # the session still learns this save node is done


def test_hooks_on_without_a_session_is_parser_only(hooks: FakeSession, comfy: Callable[..., Record]) -> None:
    record = comfy(random_seed_graph())
    assert record.provenance.capture_mode == "parser" and record.runtime is None
    assert not any("runtime" in w for w in record.provenance.warnings)


def test_a_broken_hooks_registry_never_fails_the_save(
    hooks: FakeSession, comfy: Callable[..., Record], caplog: pytest.LogCaptureFixture
) -> None:
    hooks.snap, hooks.fail = seed_snapshot(), True
    with caplog.at_level(logging.WARNING):
        record = comfy(random_seed_graph())
    assert record.provenance.capture_mode == "parser"
    assert "registry broken" in caplog.text


def test_without_the_hooks_package_the_node_saves_as_before(
    monkeypatch: pytest.MonkeyPatch, comfy: Callable[..., Record]
) -> None:
    _install_hooks(monkeypatch, None)  # importing hooks.session raises ImportError
    record = comfy(random_seed_graph())
    assert record.provenance.capture_mode == "parser" and record.runtime is None


def test_the_v1_node_declares_and_passes_prefer_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = v1.ProvenanceSaveImageV1.INPUT_TYPES()
    kind, options = spec["optional"]["prefer_runtime"]
    assert kind == "BOOLEAN" and options["default"] is True and "PROVENANCE_HOOKS=1" in options["tooltip"]
    assert "prefer_runtime" not in spec["required"]
    seen: dict[str, Any] = {}

    def fake_run(**kwargs: Any) -> list[dict[str, str]]:
        seen.update(kwargs)
        return []

    monkeypatch.setattr(save_image, "run", fake_run)
    widgets = {"filename_prefix": "x", "format": "png", "quality": 95, "lossless": False, "targets": "record"}
    v1.ProvenanceSaveImageV1().save(images=[], prefer_runtime=False, **widgets)
    assert seen["prefer_runtime"] is False
    v1.ProvenanceSaveImageV1().save(images=[], **widgets)  # a prompt from before the input existed
    assert seen["prefer_runtime"] is None  # run() takes the prefer_runtime setting: on unless changed

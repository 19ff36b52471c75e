"""Sampler (Provenance) with ComfyUI faked at compat's boundary: what the engine is given, the report store
(digest, cache-hit lookup, bound, never raising), and the saved record carrying the report with hooks off."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import pixels
from test_engines_fakes import COMFY_SAMPLERS, COMFY_SCHEDULERS, fake_model
from test_record import schema_errors

from comfyui_provenance import compat
from comfyui_provenance.engines import EngineError, report
from comfyui_provenance.metadata import settings
from comfyui_provenance.metadata.parser.parse import WorkflowParser
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Pass, Record
from comfyui_provenance.nodes import sampler, save_image

SAMPLER_INPUTS: dict[str, Any] = {
    "seed": 42,
    "steps": 0,
    "cfg": 0.0,
    "sampler_name": "auto",
    "scheduler": "auto",
    "denoise": 1.0,
    "mode": "normal",
    "preset": "",
    "model": ["4", 0],
    "positive": ["6", 0],
    "negative": ["7", 0],
    "latent_image": ["5", 0],
}


def graph(**changes: Any) -> dict[str, Any]:
    """SD1.5 text to image with our sampler (node 3) and a save (node 9)."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": sampler.NODE_ID, "inputs": {**SAMPLER_INPUTS, **changes}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}},
    }


@pytest.fixture(autouse=True)
def empty_store() -> Iterator[None]:
    report.STORE.clear()
    yield
    report.STORE.clear()


@pytest.fixture
def comfy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """compat faked: common_ksampler records its arguments; the prompt id is settable."""
    state: dict[str, Any] = {"calls": [], "prompt_id": "p1"}

    def common_ksampler(model: Any, positive: Any, negative: Any, latent: Any, **params: Any) -> tuple[Any]:
        state["calls"].append(params)
        return ({"samples": ("sampled", tuple(sorted(params.items())))},)

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(compat, "common_ksampler", common_ksampler)
    monkeypatch.setattr(compat, "sampler_names", lambda: list(COMFY_SAMPLERS))
    monkeypatch.setattr(compat, "scheduler_names", lambda: list(COMFY_SCHEDULERS))
    monkeypatch.setattr(compat, "user_directory", lambda: tmp_path / "user")
    monkeypatch.setattr(compat, "current_prompt_id", lambda: state["prompt_id"])
    monkeypatch.setattr(compat, "metadata_disabled", lambda: False)
    monkeypatch.setattr(compat, "comfyui_version", lambda: "0.33.0")
    monkeypatch.setattr(compat, "output_directory", lambda: out)
    monkeypatch.setattr(compat, "save_namer", lambda: None)
    monkeypatch.setattr(save_image, "comfyui_hasher", lambda models: None)
    monkeypatch.setattr(save_image, "runtime_snapshot", lambda prompt_id: None)  # hooks off
    settings.set_file(None)
    state["out"] = out
    return state


def sample(prompt: dict[str, Any], node_id: str = "3") -> tuple[Any]:
    inputs = {k: v for k, v in prompt[node_id]["inputs"].items() if not isinstance(v, list)}
    return sampler.run(
        model=fake_model("sd15"),
        positive="pos",
        negative="neg",
        latent_image={"samples": "empty"},
        prompt=prompt,
        unique_id=node_id,
        **inputs,
    )


# -- the node's inputs ------------------------------------------------------------------------------------------------
def test_auto_and_zero_are_left_to_the_engine_and_seed_zero_is_a_seed() -> None:
    given = sampler.given_values(seed=0, steps=0, cfg=0.0, sampler_name="auto", scheduler="auto", denoise=1.0)
    assert given == {"seed": 0, "steps": None, "cfg": None, "sampler_name": None, "scheduler": None, "denoise": 1.0}
    given = sampler.given_values(seed=7, steps=3, cfg=6.5, sampler_name="euler", scheduler="karras", denoise=0.5)
    assert given == {"seed": 7, "steps": 3, "cfg": 6.5, "sampler_name": "euler", "scheduler": "karras", "denoise": 0.5}
    assert (sampler.task_of(1.0), sampler.task_of(0.6)) == ("txt2img", "img2img")


def test_sampler_combo_lists_auto_comfyui_then_the_a1111_labels() -> None:
    options = sampler.sampler_options(COMFY_SAMPLERS)
    assert options[0] == "auto"
    assert options[1 : len(COMFY_SAMPLERS) + 1] == COMFY_SAMPLERS
    assert {"DPM++ 2M", "Euler a", "DPM++ 2M Karras", "DPM++ 3M SDE Exponential"} <= set(options)
    assert len(options) == len(set(options))
    assert sampler.scheduler_options(COMFY_SCHEDULERS) == ["auto", *COMFY_SCHEDULERS]


def test_without_the_a1111_table_only_comfyui_names_are_offered(tmp_path: Path) -> None:
    assert sampler.a1111_labels(tmp_path / "missing.json") == []
    (tmp_path / "bad.json").write_text("[1, 2]", "utf-8")
    assert sampler.a1111_labels(tmp_path / "bad.json") == []
    assert sampler.sampler_options(["euler"], labels=[]) == ["auto", "euler"]


def test_the_checkpoint_name_is_found_up_the_model_links() -> None:
    prompt = graph()
    prompt["10"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "lora_name": "x"}}
    prompt["3"]["inputs"]["model"] = ["10", 0]
    assert sampler.checkpoint_name(prompt, "3") == "random_sd15.safetensors"
    prompt["4"]["inputs"]["model"] = ["10", 0]  # a cycle ends the walk
    del prompt["4"]["inputs"]["ckpt_name"]
    assert sampler.checkpoint_name(prompt, "3") is None
    assert sampler.checkpoint_name(None, "3") is None


def test_the_node_samples_with_the_presets_effective_values(comfy: dict[str, Any]) -> None:
    (latent,) = sample(graph())
    assert comfy["calls"] == [
        {"seed": 42, "steps": 20, "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}
    ]
    assert latent["samples"][0] == "sampled"
    (found,) = report.find_reports(graph(), "9", "p1")
    assert found["engine"] == "sd15"
    assert found["plan"]["params"]["steps"] == 20
    assert {e["key"] for e in found["plan"]["applied_preset_patch"]} >= {"steps", "cfg"}
    assert set(found["timings_ms"]) == {"noise", "denoise", "total"}
    assert found["timings_ms"]["total"] >= found["timings_ms"]["denoise"] >= 0
    assert found["peak_memory"]["denoise"]["device"] == "cpu"
    assert found["cached"] is False


def test_an_a1111_label_names_sampler_and_scheduler(comfy: dict[str, Any]) -> None:
    sample(graph(sampler_name="DPM++ 2M Karras", steps=3, cfg=6.5))
    assert comfy["calls"][-1] == {
        "seed": 42,
        "steps": 3,
        "cfg": 6.5,
        "sampler_name": "dpmpp_2m",
        "scheduler": "karras",
        "denoise": 1.0,
    }


def test_bad_input_is_an_engine_error_naming_what_is_allowed(comfy: dict[str, Any]) -> None:
    with pytest.raises(EngineError, match="allowed"):
        sample(graph(preset="no-such-preset"))
    with pytest.raises(ValueError, match="sd15"):
        sample(graph(mode="lcm", steps=30))
    assert comfy["calls"] == []  # refused before sampling
    assert len(report.STORE) == 0


# -- the store ----------------------------------------------------------------------------------------------------
def test_the_digest_is_stable_and_follows_what_comfyui_caches_on() -> None:
    base = report.prompt_digest(graph(), "3")
    assert base is not None and base == report.prompt_digest(json.loads(json.dumps(graph())), "3")
    reordered = dict(reversed(list(graph().items())))
    reordered["3"] = {"inputs": dict(reversed(list(SAMPLER_INPUTS.items()))), "class_type": sampler.NODE_ID}
    assert report.prompt_digest(reordered, "3") == base
    assert report.prompt_digest(graph(steps=4), "3") != base  # its own input
    changed = graph()
    changed["6"]["inputs"]["text"] = "a boat"
    assert report.prompt_digest(changed, "3") != base  # an ancestor's input
    renumbered = graph()
    renumbered["60"] = renumbered.pop("6")
    renumbered["3"]["inputs"]["positive"] = ["60", 0]
    assert report.prompt_digest(renumbered, "3") == base  # ancestors by content, as ComfyUI keys them
    moved = graph()
    moved["30"] = moved.pop("3")
    assert report.prompt_digest(moved, "30") != base  # its own id (UNIQUE_ID is in ComfyUI's key too)
    assert report.prompt_digest(graph(), "404") is None


def test_a_rerun_served_from_comfyuis_cache_still_finds_the_report(comfy: dict[str, Any]) -> None:
    sample(graph())
    (first,) = report.find_reports(graph(), "9", "p1")
    # ComfyUI serves node 3 from its cache: it does not execute, the save recomputes the digest.
    (again,) = report.find_reports(graph(), "9", "p2")
    assert again["cached"] is True and again["plan"] == first["plan"]
    changed = graph()
    changed["6"]["inputs"]["text"] = "a boat"
    assert report.find_reports(changed, "9", "p3") == []  # ComfyUI would run the sampler again


def test_only_samplers_upstream_of_the_save_count() -> None:
    prompt = graph()
    prompt["13"] = {"class_type": sampler.NODE_ID, "inputs": {**SAMPLER_INPUTS, "seed": 1}}
    for node_id in ("3", "13"):
        report.file_report(prompt, node_id, {"class_type": sampler.NODE_ID, "node_id": node_id})
    assert [r["node_id"] for r in report.find_reports(prompt, "9")] == ["3"]
    assert [r["node_id"] for r in report.find_reports(prompt, None)] == ["3", "13"]


def test_the_store_is_bounded_least_recently_used_first() -> None:
    store = report.ReportStore(limit=3)
    for name in "abcd":
        store.put(name, {"class_type": "X", "n": name})
    assert len(store) == 3 and store.get("a") is None
    assert store.get("b") is not None  # b is now the most recent
    store.put("e", {"class_type": "X"})
    assert store.get("c") is None and store.get("b") is not None
    assert store.classes() == frozenset({"X"})


def test_the_store_is_thread_safe() -> None:
    store = report.ReportStore(limit=50)

    def fill(prefix: str) -> None:
        for index in range(500):
            store.put(f"{prefix}{index}", {"class_type": "X"})
            store.get(f"{prefix}{index - 1}")

    threads = [threading.Thread(target=fill, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store) == 50


@pytest.mark.parametrize(
    "prompt",
    [None, {}, {"3": "not a node"}, {"3": {"inputs": {"x": ["3", 0]}}}, {"3": {"inputs": {"x": object()}}}, []],
)
def test_reporting_never_raises(prompt: Any) -> None:
    report.file_report(prompt, "3", {"class_type": "X"})
    report.file_report(prompt, None, {"class_type": "X"})
    assert isinstance(report.find_reports(prompt, "9"), list)
    assert isinstance(report.find_reports(prompt, None), list)
    record = Record(passes=[Pass(node_id="3")])
    report.apply_reports(record, [{"node_id": "3", "plan": "not a plan"}, {"plan": {"params": [1]}}])
    assert len(record.extra["engines"]) == 2


def test_stages_fall_back_to_the_lifetime_peak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(report, "_CLEAR_REFS", str(tmp_path / "no" / "clear_refs"))
    stages = report.Stages()
    with stages.stage("denoise"):
        bytearray(1 << 20)
    assert stages.peak_memory["denoise"]["rss_peak_bytes"] > 0
    assert "ru_maxrss" in stages.peak_memory["denoise"]["note"]


def test_reporting_costs_microseconds(comfy: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    prompt = graph()
    entry = {"class_type": sampler.NODE_ID, "plan": {"params": {"steps": 20}}}
    calls = 2000
    started = time.perf_counter()
    for _ in range(calls):
        stages = report.Stages()
        with stages.stage("denoise"):
            pass
        report.file_report(prompt, "3", entry)
    filing = (time.perf_counter() - started) / calls * 1e6
    started = time.perf_counter()
    for _ in range(calls):
        report.find_reports(prompt, "9", "p1")
    lookup = (time.perf_counter() - started) / calls * 1e6
    with capsys.disabled():
        print(f"\nengine report: {filing:.1f} µs per sampler call (stages + digest + store), {lookup:.1f} µs per save")


# -- the record ---------------------------------------------------------------------------------------------------
def test_the_parser_reads_our_sampler_like_a_ksampler() -> None:
    record = WorkflowParser().parse(graph(steps=3, cfg=6.5, sampler_name="euler", scheduler="karras"), "9")
    (only,) = record.passes
    assert (only.node_id, only.class_type) == ("3", sampler.NODE_ID)
    assert (only.seed, only.steps, only.cfg, only.sampler, only.scheduler, only.denoise) == (
        42,
        3,
        6.5,
        "euler",
        "karras",
        1.0,
    )
    assert (only.positive, only.negative, only.model) == ("a lighthouse", "blurry", "random_sd15.safetensors")
    assert record.generation.steps == 3 and record.provenance.field_sources["steps"] == "3"


def save(comfy: dict[str, Any], prompt: dict[str, Any]) -> Record:
    comfy["calls"].clear()
    before = set(comfy["out"].iterdir())
    save_image.run(
        images=[pixels(64, 64)],
        filename_prefix="t",
        format="png",
        quality=95,
        lossless=False,
        targets=None,
        prompt=prompt,
        extra_pnginfo=None,
        unique_id="9",
    )
    (path,) = set(comfy["out"].iterdir()) - before
    return read(path)


def test_the_record_gets_the_report_and_the_effective_values_with_hooks_off(comfy: dict[str, Any]) -> None:
    sample(graph())
    record = save(comfy, graph())
    assert record.provenance.capture_mode == "parser"
    (engine,) = record.extra["engines"]
    assert engine["node_id"] == "3" and engine["class_type"] == sampler.NODE_ID and engine["engine"] == "sd15"
    assert engine["plan"]["sampler_in"] is None and engine["plan"]["sampler_effective"] == "euler"
    gen = record.generation
    assert (gen.seed, gen.steps, gen.cfg, gen.sampler, gen.scheduler, gen.denoise) == (
        42,
        20,
        8.0,
        "euler",
        "normal",
        1.0,
    )
    sources = record.provenance.field_sources
    assert {sources[f] for f in ("seed", "steps", "cfg", "sampler", "scheduler", "denoise")} == {"engine:3"}
    assert record.passes[0].steps == 20 and record.passes[0].other["sources"]["steps"] == "engine:3"
    assert not schema_errors(json.loads(record.to_json()))

    comfy["prompt_id"] = "p2"  # the rerun: ComfyUI serves the sampler from its cache, the save runs
    rerun = save(comfy, graph())
    assert rerun.extra["engines"][0]["cached"] is True
    assert rerun.generation.steps == 20


def test_without_a_report_the_record_keeps_the_widgets(comfy: dict[str, Any]) -> None:
    record = save(comfy, graph())
    assert "engines" not in record.extra
    assert (record.generation.steps, record.generation.sampler) == (0, "auto")
    assert record.provenance.field_sources["steps"] == "3"


def test_values_from_other_nodes_are_kept(comfy: dict[str, Any]) -> None:
    prompt = graph(seed=["20", 0])
    prompt["20"] = {"class_type": "PrimitiveInt", "inputs": {"value": 42}}
    report.file_report(prompt, "3", {"class_type": sampler.NODE_ID, "plan": {"params": {"seed": 5, "steps": 9}}})
    record = save(comfy, prompt)
    assert record.generation.seed == 42 and record.provenance.field_sources["seed"] != "engine:3"
    assert record.passes[0].seed == 42
    assert record.generation.steps == 9 and record.provenance.field_sources["steps"] == "engine:3"

"""Sampler (Provenance) in a real ComfyUI (COMFYUI_PATH): the same pixels as core KSampler with the same effective
parameters, and a record that carries the engine report with hooks off, also when ComfyUI serves the sampler
from its cache. Skipped without COMFYUI_PATH or the random SD1.5 checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comfyui_harness as harness  # tests/ is on pytest's pythonpath (pyproject)
import numpy as np
import pytest
from PIL import Image as PILImage

from comfyui_provenance.metadata.read import read

pytestmark = pytest.mark.comfyui

CHECKPOINT = "random_sd15.safetensors"
SD_TIMEOUT_S = 300.0
CORE, OURS, ADVANCED = "3", "13", "23"
# (our sampler's inputs, core KSampler's inputs with the effective values the engine must reach)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "euler-normal-from-the-preset": (
        {"steps": 2, "cfg": 0.0, "sampler_name": "auto", "scheduler": "auto"},
        {"steps": 2, "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal"},
    ),
    "dpmpp_2m-karras": (
        {"steps": 3, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras"},
        {"steps": 3, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras"},
    ),
    "a1111-label": (
        {"steps": 3, "cfg": 6.5, "sampler_name": "DPM++ 2M Karras", "scheduler": "auto"},
        {"steps": 3, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras"},
    ),
}


def graph(ours: dict[str, Any], core: dict[str, Any], seed: int, prefix: str) -> dict[str, Any]:
    """One prompt, two branches on the same model and conditioning: core KSampler -> SaveImage, ours -> our save."""
    shared = {"seed": seed, "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0]}
    shared["latent_image"] = ["5", 0]
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff, storm", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, text", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        CORE: {"class_type": "KSampler", "inputs": {**shared, **core}},
        OURS: {"class_type": "ProvenanceSampler", "inputs": {**shared, **ours, "mode": "normal", "preset": ""}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": [CORE, 0], "vae": ["4", 2]}},
        "18": {"class_type": "VAEDecode", "inputs": {"samples": [OURS, 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": f"{prefix}_core"}},
        "19": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["18", 0], "filename_prefix": prefix}},
        # KSamplerAdvanced over every step, as its own node: the other core path our sampler must equal.
        ADVANCED: {"class_type": "KSamplerAdvanced", "inputs": {**advanced(shared, core)}},
        "28": {"class_type": "VAEDecode", "inputs": {"samples": [ADVANCED, 0], "vae": ["4", 2]}},
        "29": {"class_type": "SaveImage", "inputs": {"images": ["28", 0], "filename_prefix": f"{prefix}_advanced"}},
    }


def advanced(shared: dict[str, Any], core: dict[str, Any]) -> dict[str, Any]:
    inputs = {k: v for k, v in shared.items() if k not in ("seed", "denoise")}
    return {
        **inputs,
        **core,
        "noise_seed": shared["seed"],
        "add_noise": "enable",
        "start_at_step": 0,
        "end_at_step": 10000,
        "return_with_leftover_noise": "disable",
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    checkout = harness.require_checkout("real-ComfyUI engine tests")
    if not (checkout / "models" / "checkpoints" / CHECKPOINT).exists():
        pytest.skip(f"{CHECKPOINT} missing from {checkout}/models/checkpoints: the engine tests need it")
    started = harness.Server(checkout, tmp_path_factory.mktemp("comfyui_engines"))  # hooks off: no PROVENANCE_HOOKS
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def saved(server: harness.Server, entry: dict[str, Any], node_id: str) -> Path:
    (image,) = entry["outputs"][node_id]["images"]
    return server.output / image.get("subfolder", "") / image["filename"]


def pixels(path: Path) -> np.ndarray:
    with PILImage.open(path) as pil:
        return np.asarray(pil.convert("RGB"))


def run(server: harness.Server, prompt: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    prompt_id, entry = server.run(prompt, timeout=SD_TIMEOUT_S)
    assert entry["status"]["status_str"] == "success", f"{entry['status']}\n{server.log_tail()}"
    return prompt_id, entry


@pytest.mark.parametrize("case", list(CASES))
def test_same_pixels_as_ksampler_and_a_record_with_the_engine_report(server: harness.Server, case: str) -> None:
    ours, core = CASES[case]
    prompt_id, entry = run(server, graph(ours, core, seed=1234, prefix=case))
    ours_path, core_path = saved(server, entry, "19"), saved(server, entry, "9")
    assert np.array_equal(pixels(ours_path), pixels(core_path)), f"{case}: our pixels differ from KSampler's"
    advanced_path = saved(server, entry, "29")
    assert np.array_equal(pixels(ours_path), pixels(advanced_path)), f"{case}: ours differ from KSamplerAdvanced's"

    record = read(ours_path)
    assert record.provenance.capture_mode == "parser"  # hooks off
    (engine,) = record.extra["engines"]
    assert engine["node_id"] == OURS and engine["class_type"] == "ProvenanceSampler"
    assert engine["engine"] == "sd15" and engine["prompt_id"] == prompt_id and engine["cached"] is False
    plan = engine["plan"]
    assert {k: plan["params"][k] for k in core} == core
    assert plan["sampler_in"] == (None if ours["sampler_name"] == "auto" else ours["sampler_name"])
    assert (plan["sampler_effective"], plan["scheduler_effective"]) == (core["sampler_name"], core["scheduler"])
    patched = {e["key"] for e in plan["applied_preset_patch"]}
    if case == "euler-normal-from-the-preset":
        assert {"cfg", "sampler_name", "scheduler"} <= patched and "steps" not in patched
    else:
        assert not patched & {"steps", "cfg", "sampler_name"}
    timings = engine["timings_ms"]
    assert 0 < timings["noise"] < timings["total"] and 0 < timings["denoise"] <= timings["total"]
    assert engine["peak_memory"]["denoise"]["rss_peak_bytes"] > 0
    gen = record.generation
    assert (gen.steps, gen.cfg, gen.sampler, gen.scheduler, gen.seed) == (
        core["steps"],
        core["cfg"],
        core["sampler_name"],
        core["scheduler"],
        1234,
    )
    assert record.provenance.field_sources["steps"] == f"engine:{OURS}"


def test_a_rerun_served_from_the_cache_still_carries_the_report(server: harness.Server) -> None:
    ours, core = CASES["dpmpp_2m-karras"]
    first_id, first = run(server, graph(ours, core, seed=99, prefix="first"))
    # Only the save nodes' prefixes change: ComfyUI serves both samplers (and decodes) from its cache.
    rerun_id, rerun = run(server, graph(ours, core, seed=99, prefix="rerun"))
    cached = next((m[1]["nodes"] for m in rerun["status"].get("messages", []) if m[0] == "execution_cached"), [])
    assert OURS in cached, f"ComfyUI ran our sampler again ({cached}); the test needs it cached"
    record = read(saved(server, rerun, "19"))
    (engine,) = record.extra["engines"]
    assert engine["cached"] is True and engine["prompt_id"] == first_id != rerun_id
    assert engine["plan"] == read(saved(server, first, "19")).extra["engines"][0]["plan"]
    assert record.generation.steps == core["steps"]
    assert np.array_equal(pixels(saved(server, rerun, "19")), pixels(saved(server, first, "19")))

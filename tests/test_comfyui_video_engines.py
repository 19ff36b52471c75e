"""Video Sampler (Provenance) in a real ComfyUI (COMFYUI_PATH) on tiny random-weight WAN 2.1 T2V-shaped experts:
the same latent bits as the WAN 2.2 templates' two KSamplerAdvanced chain (and as KSampler for one model), and a
record with the engine report (split, boundary, per-expert timings) with hooks off.

The experts come from tests/make_wan_checkpoint.py (ComfyUI detects them as WAN21_T2V, as it does the real WAN
2.2 A14B experts); the conditioning comes from a test-only node (no 11 GB text encoder), and the latent is shown
to the save node by a test-only latent-to-image node (no VAE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import comfyui_harness as harness  # tests/ is on pytest's pythonpath (pyproject)
import make_wan_checkpoint
import numpy as np
import pytest
from safetensors.numpy import load_file

from comfyui_provenance.metadata.read import read

pytestmark = pytest.mark.comfyui

HIGH = "wan2.2_t2v_high_noise_tiny_test.safetensors"
LOW = "wan2.2_t2v_low_noise_tiny_test.safetensors"
TIMEOUT_S = 300.0
SEED = 4321
SHIFT = 5.0  # the templates' ModelSamplingSD3 on both experts
# case → (our sampler's inputs, the chain's effective values: steps, cfg, sampler, scheduler, split)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "preset": (
        {"steps": 0, "cfg": 0.0, "sampler_name": "auto", "scheduler": "auto", "split": 0, "boundary": 0.0},
        {"steps": 20, "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple", "split": 10},
    ),
    # Shift 5, simple, 8 steps: timesteps 1000, 972, 938, 893, … → the first below 900 is step 3.
    "boundary": (
        {"steps": 8, "cfg": 2.0, "sampler_name": "euler", "scheduler": "simple", "split": 0, "boundary": 0.9},
        {"steps": 8, "cfg": 2.0, "sampler_name": "euler", "scheduler": "simple", "split": 3},
    ),
    # An ancestral sampler draws step noise from the seed in both experts.
    "ancestral-split": (
        {"steps": 6, "cfg": 4.0, "sampler_name": "Euler a", "scheduler": "simple", "split": 2, "boundary": 0.0},
        {"steps": 6, "cfg": 4.0, "sampler_name": "euler_ancestral", "scheduler": "simple", "split": 2},
    ),
}
CONDITIONING_NODE = '''
"""Test-only nodes: WAN-shaped conditioning without a text encoder; a latent shown as an image without a VAE."""
import torch


class ProvenanceTestWanConditioning:
    CATEGORY = "testing"
    FUNCTION = "make"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                             "tokens": ("INT", {"default": 8, "min": 1, "max": 512})}}

    def make(self, seed, tokens):
        generator = torch.Generator().manual_seed(seed)
        return ([[torch.randn(1, tokens, 4096, generator=generator), {}]],)


class ProvenanceTestLatentImage:
    CATEGORY = "testing"
    FUNCTION = "show"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",)}}

    def show(self, samples):
        first = samples["samples"][:, :3, 0].float()  # [batch, 3, h, w] of the first latent frame
        return (torch.sigmoid(first).movedim(1, -1).contiguous(),)


NODE_CLASS_MAPPINGS = {
    "ProvenanceTestWanConditioning": ProvenanceTestWanConditioning,
    "ProvenanceTestLatentImage": ProvenanceTestLatentImage,
}
'''


def graph(ours: dict[str, Any], core: dict[str, Any], prefix: str) -> dict[str, Any]:
    """One prompt: both experts behind ModelSamplingSD3, the core two-KSamplerAdvanced chain and our sampler on
    the same conditioning and empty video latent, each latent saved by core SaveLatent."""
    split, steps = core["split"], core["steps"]
    common = {"noise_seed": SEED, "positive": ["6", 0], "negative": ["7", 0]}
    common |= {k: core[k] for k in ("steps", "cfg", "sampler_name", "scheduler")}
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": HIGH, "weight_dtype": "default"}},
        "2": {"class_type": "UNETLoader", "inputs": {"unet_name": LOW, "weight_dtype": "default"}},
        "11": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": SHIFT}},
        "12": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["2", 0], "shift": SHIFT}},
        "6": {"class_type": "ProvenanceTestWanConditioning", "inputs": {"seed": 1, "tokens": 8}},
        "7": {"class_type": "ProvenanceTestWanConditioning", "inputs": {"seed": 2, "tokens": 8}},
        "5": {
            "class_type": "EmptyHunyuanLatentVideo",
            "inputs": {"width": 32, "height": 32, "length": 5, "batch_size": 1},
        },
        "20": {
            "class_type": "KSamplerAdvanced",
            "inputs": {
                **common,
                "model": ["11", 0],
                "latent_image": ["5", 0],
                "add_noise": "enable",
                "start_at_step": 0,
                "end_at_step": split,
                "return_with_leftover_noise": "enable",
            },
        },
        "21": {
            "class_type": "KSamplerAdvanced",
            "inputs": {
                **common,
                "model": ["12", 0],
                "latent_image": ["20", 0],
                "add_noise": "disable",
                "start_at_step": split,
                "end_at_step": steps,
                "return_with_leftover_noise": "disable",
            },
        },
        "13": {
            "class_type": "ProvenanceVideoSampler",
            "inputs": {
                **ours,
                "seed": SEED,
                "mode": "normal",
                "preset": "",
                "model": ["11", 0],
                "model_low": ["12", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "22": {"class_type": "SaveLatent", "inputs": {"samples": ["21", 0], "filename_prefix": f"{prefix}_core"}},
        "23": {"class_type": "SaveLatent", "inputs": {"samples": ["13", 0], "filename_prefix": f"{prefix}_ours"}},
        "24": {"class_type": "ProvenanceTestLatentImage", "inputs": {"samples": ["13", 0]}},
        "25": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["24", 0], "filename_prefix": prefix}},
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    checkout = harness.require_checkout("real-ComfyUI video engine tests")
    models = tmp_path_factory.mktemp("wan_models")
    make_wan_checkpoint.write(models / "diffusion_models" / HIGH, seed=1)
    make_wan_checkpoint.write(models / "diffusion_models" / LOW, seed=2)
    config = models / "extra_model_paths.yaml"
    config.write_text(f"tiny_wan:\n    base_path: {json.dumps(str(models))}\n    diffusion_models: diffusion_models\n")
    base = tmp_path_factory.mktemp("comfyui_video_engines")
    nodes = base / "custom_nodes" / "provenance_test_wan_nodes"
    nodes.mkdir(parents=True)
    (nodes / "__init__.py").write_text(CONDITIONING_NODE, "utf-8")
    # hooks off: no PROVENANCE_HOOKS
    started = harness.Server(checkout, base, "--extra-model-paths-config", str(config))
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def run(server: harness.Server, prompt: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    prompt_id, entry = server.run(prompt, timeout=TIMEOUT_S)
    assert entry["status"]["status_str"] == "success", f"{entry['status']}\n{server.log_tail()}"
    return prompt_id, entry


def latent(server: harness.Server, entry: dict[str, Any], node_id: str) -> np.ndarray:
    (saved,) = entry["outputs"][node_id]["latents"]
    path = server.output / saved.get("subfolder", "") / saved["filename"]
    return load_file(str(path))["latent_tensor"]


@pytest.mark.parametrize("case", list(CASES))
def test_two_experts_give_the_templates_chains_latent_bit_for_bit(server: harness.Server, case: str) -> None:
    ours, core = CASES[case]
    prompt_id, entry = run(server, graph(ours, core, prefix=case))
    mine, theirs = latent(server, entry, "23"), latent(server, entry, "22")
    assert mine.shape == (1, 16, 2, 4, 4) and np.isfinite(mine).all() and np.abs(mine).sum() > 0
    assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes(), f"{case}: latents differ"

    (image,) = entry["outputs"]["25"]["images"]
    record = read(server.output / image.get("subfolder", "") / image["filename"])
    assert record.provenance.capture_mode == "parser"  # hooks off
    (engine,) = record.extra["engines"]
    assert engine["node_id"] == "13" and engine["class_type"] == "ProvenanceVideoSampler"
    assert engine["engine"] == "wan22_14b" and engine["prompt_id"] == prompt_id and engine["cached"] is False
    params = engine["plan"]["params"]
    assert {k: params[k] for k in core} == core
    assert (params["frames"], params["width"], params["height"]) == (5, 32, 32)
    experts = engine["experts"]
    assert experts["split"] == core["split"] and experts["low_model"]["engine"] == "wan22_14b"
    assert experts["split_from"] == {"preset": "preset", "boundary": "boundary"}.get(case, "input")
    if case == "boundary":
        assert experts["boundary"] == 0.9 and experts["timesteps"][3] < 900 <= experts["timesteps"][2]
    assert engine["timings_ms"]["high"] > 0 and 0 < engine["timings_ms"]["low"] <= engine["timings_ms"]["total"]
    assert 0 < engine["timings_ms"]["noise"] < engine["timings_ms"]["total"]  # the high expert's prepare_noise
    assert engine["peak_memory"]["high"]["rss_peak_bytes"] > 0 and engine["peak_memory"]["low"]["rss_peak_bytes"] > 0


def test_one_model_gives_ksamplers_latent_bit_for_bit(server: harness.Server) -> None:
    # The preset's 20 steps: with fewer steps set, wan22_14b's preset split 10 is refused even for one model.
    prompt = graph(*CASES["preset"], prefix="single")
    prompt["13"]["inputs"].pop("model_low")
    core = {k: v for k, v in CASES["preset"][1].items() if k != "split"}
    prompt["21"] = {
        "class_type": "KSampler",
        "inputs": {
            **core,
            "seed": SEED,
            "denoise": 1.0,
            "model": ["11", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    }
    del prompt["20"]
    _, entry = run(server, prompt)
    assert latent(server, entry, "23").tobytes() == latent(server, entry, "22").tobytes()
    (image,) = entry["outputs"]["25"]["images"]
    (engine,) = read(server.output / image.get("subfolder", "") / image["filename"]).extra["engines"]
    assert engine["experts"] == {"count": 1} and set(engine["timings_ms"]) == {"noise", "denoise", "total"}


def test_a_rerun_served_from_the_cache_still_carries_the_report(server: harness.Server) -> None:
    ours, core = CASES["boundary"]
    first_id, _ = run(server, graph(ours, core, prefix="first"))
    _, rerun = run(server, graph(ours, core, prefix="rerun"))  # only the saves' prefixes change
    cached = next((m[1]["nodes"] for m in rerun["status"].get("messages", []) if m[0] == "execution_cached"), [])
    assert "13" in cached, f"ComfyUI ran our sampler again ({cached}); the test needs it cached"
    (image,) = rerun["outputs"]["25"]["images"]
    (engine,) = read(server.output / image.get("subfolder", "") / image["filename"]).extra["engines"]
    assert engine["cached"] is True and engine["prompt_id"] == first_id
    assert engine["experts"]["split"] == 3


def test_bad_video_parameters_are_refused_naming_the_allowed_values(server: harness.Server) -> None:
    ours, core = CASES["boundary"]
    prompt = graph({**ours, "boundary": 0.0, "split": 8}, core, prefix="refused")
    _, entry = server.run(prompt, timeout=TIMEOUT_S)
    assert entry["status"]["status_str"] == "error"
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == "13"
    assert "wan22_14b txt2vid: split must be a step in 1..7 for 8 steps, got 8" in error["exception_message"]

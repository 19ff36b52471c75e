"""Sampler (Provenance) in a real ComfyUI (COMFYUI_PATH) on small random-weight SDXL and Flux models: ComfyUI
detects the family, the engine fills the family's preset, the latent is core KSampler's bit for bit, the record
names the engine, and a value the family refuses fails the run with the allowed values.

The models come from tests/make_family_checkpoints.py; the conditioning, of each family's shape, comes from a
test-only node (no CLIP-G or T5-XXL), and the latent is shown to the save node by a test-only node (no VAE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import comfyui_harness as harness  # tests/ is on pytest's pythonpath (pyproject)
import make_family_checkpoints
import numpy as np
import pytest
from safetensors.numpy import load_file

from comfyui_provenance.metadata.read import read

pytestmark = pytest.mark.comfyui

TIMEOUT_S = 300.0
SEED = 777
CORE, OURS = "3", "13"
# family → (conditioning: tokens, width, pooled width, guidance (0: none); empty latent node; the preset's
# effective values at 2 steps)
FAMILIES: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    "sdxl": (
        {"tokens": 77, "width": 2048, "pooled": 1280, "guidance": 0.0},
        "EmptyLatentImage",
        {"steps": 2, "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal"},
    ),
    "flux": (
        {"tokens": 16, "width": 4096, "pooled": 768, "guidance": 3.5},
        "EmptySD3LatentImage",
        {"steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "guidance": 3.5},
    ),
    "flux_schnell": (
        {"tokens": 16, "width": 4096, "pooled": 768, "guidance": 0.0},
        "EmptySD3LatentImage",
        {"steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple"},
    ),
}
TEST_NODES = '''
"""Test-only nodes: conditioning of a family's shape without a text encoder; a latent shown without a VAE."""
import torch


class ProvenanceTestConditioning:
    CATEGORY = "testing"
    FUNCTION = "make"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        number = ("INT", {"default": 1, "min": 1, "max": 8192})
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31}), "tokens": number,
                             "width": number, "pooled": number,
                             "guidance": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0})}}

    def make(self, seed, tokens, width, pooled, guidance):
        generator = torch.Generator().manual_seed(seed)
        extra = {"pooled_output": torch.randn(1, pooled, generator=generator)}
        if guidance:
            extra["guidance"] = guidance
        return ([[torch.randn(1, tokens, width, generator=generator), extra]],)


class ProvenanceTestLatentImage:
    CATEGORY = "testing"
    FUNCTION = "show"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",)}}

    def show(self, samples):
        return (torch.sigmoid(samples["samples"][:, :3].float()).movedim(1, -1).contiguous(),)


NODE_CLASS_MAPPINGS = {
    "ProvenanceTestConditioning": ProvenanceTestConditioning,
    "ProvenanceTestLatentImage": ProvenanceTestLatentImage,
}
'''


def model_file(family: str) -> str:
    return f"{family}_tiny_test.safetensors"


def graph(family: str, ours: dict[str, Any], core: dict[str, Any], prefix: str) -> dict[str, Any]:
    """One prompt: core KSampler and our sampler on the same model, conditioning and empty latent; both latents
    saved by core SaveLatent, ours also shown to ProvenanceSaveImage."""
    conditioning, empty, _ = FAMILIES[family]
    shared = {"seed": SEED, "denoise": 1.0, "model": ["1", 0], "positive": ["6", 0], "negative": ["7", 0]}
    shared["latent_image"] = ["5", 0]
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": model_file(family), "weight_dtype": "default"}},
        "6": {"class_type": "ProvenanceTestConditioning", "inputs": {**conditioning, "seed": 1}},
        "7": {"class_type": "ProvenanceTestConditioning", "inputs": {**conditioning, "seed": 2}},
        "5": {"class_type": empty, "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        CORE: {"class_type": "KSampler", "inputs": {**shared, **core}},
        OURS: {"class_type": "ProvenanceSampler", "inputs": {**shared, **ours, "mode": "normal", "preset": ""}},
        "22": {"class_type": "SaveLatent", "inputs": {"samples": [CORE, 0], "filename_prefix": f"{prefix}_core"}},
        "23": {"class_type": "SaveLatent", "inputs": {"samples": [OURS, 0], "filename_prefix": f"{prefix}_ours"}},
        "24": {"class_type": "ProvenanceTestLatentImage", "inputs": {"samples": [OURS, 0]}},
        "25": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["24", 0], "filename_prefix": prefix}},
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    checkout = harness.require_checkout("real-ComfyUI engine family tests")
    models = tmp_path_factory.mktemp("family_models")
    for family in FAMILIES:
        make_family_checkpoints.write(models / "diffusion_models" / model_file(family), family, seed=1)
    config = models / "extra_model_paths.yaml"
    config.write_text(f"tiny:\n    base_path: {json.dumps(str(models))}\n    diffusion_models: diffusion_models\n")
    base = tmp_path_factory.mktemp("comfyui_engine_families")
    nodes = base / "custom_nodes" / "provenance_test_family_nodes"
    nodes.mkdir(parents=True)
    (nodes / "__init__.py").write_text(TEST_NODES, "utf-8")
    # hooks off: no PROVENANCE_HOOKS
    started = harness.Server(checkout, base, "--extra-model-paths-config", str(config))
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def latent(server: harness.Server, entry: dict[str, Any], node_id: str) -> np.ndarray:
    (saved,) = entry["outputs"][node_id]["latents"]
    path = server.output / saved.get("subfolder", "") / saved["filename"]
    return load_file(str(path))["latent_tensor"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_family_is_detected_its_preset_filled_and_the_latent_is_ksamplers(
    server: harness.Server, family: str
) -> None:
    effective = FAMILIES[family][2]
    ours = {"steps": 2, "cfg": 0.0, "sampler_name": "auto", "scheduler": "auto"}
    core = {k: v for k, v in effective.items() if k != "guidance"}
    prompt_id, entry = server.run(graph(family, ours, core, prefix=family), timeout=TIMEOUT_S)
    assert entry["status"]["status_str"] == "success", f"{entry['status']}\n{server.log_tail()}"
    mine, theirs = latent(server, entry, "23"), latent(server, entry, "22")
    channels = 4 if family == "sdxl" else 16
    assert mine.shape == (1, channels, 8, 8) and np.isfinite(mine).all() and np.abs(mine).sum() > 0
    assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes(), f"{family}: latents differ"

    (image,) = entry["outputs"]["25"]["images"]
    record = read(server.output / image.get("subfolder", "") / image["filename"])
    assert record.provenance.capture_mode == "parser"  # hooks off
    (engine,) = record.extra["engines"]
    assert engine["node_id"] == OURS and engine["class_type"] == "ProvenanceSampler"
    assert engine["engine"] == family and engine["prompt_id"] == prompt_id
    params, advice = engine["plan"]["params"], engine["plan"]["advice"]
    assert {k: params.get(k) for k in core} == core
    assert "guidance" not in params  # the conditioning's guidance is what sampled: the preset's is advice
    assert advice.get("guidance") == effective.get("guidance")  # 3.5 for Flux dev, none for schnell or SDXL


def test_flux_dev_refuses_cfg_7_naming_the_allowed_values(server: harness.Server) -> None:
    ours = {"steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "simple"}
    _, entry = server.run(graph("flux", ours, {**ours, "cfg": 1.0}, prefix="refused"), timeout=TIMEOUT_S)
    assert entry["status"]["status_str"] == "error"
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == OURS
    message = error["exception_message"]
    assert "cfg must be 1 (got 7.0): Flux dev is guidance-distilled, use guidance" in message, message

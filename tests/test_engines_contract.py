"""Contract: the engine fakes read what a real ComfyUI MODEL has, and detect() on the real SD1.5 says sd15."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import comfyui_harness as harness
import pytest
from test_engines_fakes import ATTRIBUTE_PATHS, COMFY_SAMPLERS, COMFY_SCHEDULERS, MODELS, ModelType

pytestmark = pytest.mark.comfyui

CHECKPOINT = "random_sd15.safetensors"

# Loads the pack's engines/ alone (no node import) next to a real MODEL and reports what the fakes assume.
PROBE = r"""
import importlib.util, json, os, sys
sys.path.insert(0, os.getcwd())
args, sys.argv = sys.argv[1:], ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import comfy.sd, comfy.samplers, comfy.supported_models, comfy.latent_formats, comfy.model_base
paths, names, name = json.loads(args[0]), json.loads(args[1]), args[2]
spec = importlib.util.spec_from_file_location(
    "provenance_engines", os.path.join(os.environ["PROVENANCE_REPO"], "engines", "__init__.py"),
    submodule_search_locations=[os.path.join(os.environ["PROVENANCE_REPO"], "engines")])
engines = importlib.util.module_from_spec(spec)
sys.modules["provenance_engines"] = engines
spec.loader.exec_module(engines)
checkpoint = os.path.join(os.getcwd(), "models", "checkpoints", name)
model = comfy.sd.load_checkpoint_guess_config(checkpoint, output_vae=False, output_clip=False)[0]
found = {}
for path in paths:
    obj, ok = model, True
    for part in path.split("."):
        ok = ok and hasattr(obj, part)
        obj = getattr(obj, part, None)
    found[path] = ok
family = engines.detect(model, name)
print(json.dumps({
    "engine": family.name, "paths": found, "describe": family.describe(),
    "config_classes": {n: hasattr(comfy.supported_models, n) for n in names["config"]},
    "latent_formats": {n: hasattr(comfy.latent_formats, n) for n in names["latent"]},
    "model_types": [m.name for m in comfy.model_base.ModelType],
    "samplers": list(comfy.samplers.KSampler.SAMPLERS), "schedulers": list(comfy.samplers.KSampler.SCHEDULERS),
    "unet_config_is_dict": isinstance(model.model.model_config.unet_config, dict),
}))
"""


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    checkout = harness.require_checkout("engine contract test (real MODEL vs the fakes)")
    if not (checkout / "models" / "checkpoints" / CHECKPOINT).is_file():
        pytest.skip(f"no {CHECKPOINT} in {checkout}/models/checkpoints (make it with make_sd15_checkpoint.py)")
    names = {"config": sorted({m[0] for m in MODELS.values()}), "latent": sorted({m[2] for m in MODELS.values()})}
    return harness.run_probe(checkout, PROBE, json.dumps(ATTRIBUTE_PATHS), json.dumps(names), CHECKPOINT)  # type: ignore[no-any-return]


def test_detect_real_sd15(facts: dict[str, Any]) -> None:
    assert facts["engine"] == "sd15"
    assert facts["describe"]["config_class"] == "SD15"
    assert facts["describe"]["model_type"] == "EPS"
    assert facts["describe"]["latent_format"] == "SD15"


def test_fake_attribute_paths_exist_on_the_real_model(facts: dict[str, Any]) -> None:
    assert facts["paths"] == dict.fromkeys(ATTRIBUTE_PATHS, True)
    assert facts["unet_config_is_dict"]


def test_fake_names_are_comfyui_names(facts: dict[str, Any]) -> None:
    assert all(facts["config_classes"].values()), facts["config_classes"]
    assert all(facts["latent_formats"].values()), facts["latent_formats"]
    assert facts["model_types"] == [member.name for member in ModelType]
    assert facts["samplers"] == COMFY_SAMPLERS
    assert facts["schedulers"] == COMFY_SCHEDULERS


def test_engines_import_no_comfyui() -> None:
    root = Path(__file__).resolve().parent.parent / "engines"
    for path in root.rglob("*.py"):
        text = path.read_text("utf-8")
        for name in ("import comfy", "from comfy", "import folder_paths", "import torch", "comfy_api"):
            assert name not in text, f"{path.name}: {name}"

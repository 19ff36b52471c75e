"""What tests/fake_comfyui.py knows about nodes: /object_info entries, /prompt validation, an executor.

`Renderer(fake, output_dir)` is an `execute` callback for FakeComfyUI that runs simple graphs the
way ComfyUI would as far as a save node can tell: it walks the graph upstream of each save node,
draws a fresh random INT for every `ProvenanceTestRandomSeed` node (a seed drawn at run time),
passes Primitive* values through, and gives every other node an opaque output that depends on all
its resolved inputs. A save node's pixels are deterministic in that upstream graph (same graph and
seed → same pixels; `noise` > 0 adds a per-run difference), sized by its EmptyLatentImage, else by
the first LoadImage's uploaded file (`fake.files[("input", subfolder, name)]`, an img2img or
inpaint graph), else 64x64. ProvenanceSaveImage writes through the pack's own save path
(metadata.save.save_images) with a runtime snapshot shaped like the hooks' (so the file carries a
real record with a `runtime` block) and model hashes from `fake.hashes`; SaveImage writes core's
prompt/workflow chunks only. `validate(prompt, object_info, input_exists)` answers as ComfyUI
0.33's validate_prompt does for missing classes, no outputs and COMBO values not offered;
LoadImage's `image` is checked as its VALIDATE_INPUTS does (the file must exist in the input
folder, subfolders included), not against its combo.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.hashing import ROLE_FOLDERS
from comfyui_provenance.metadata.record import Model
from comfyui_provenance.metadata.save import SaveOptions, save_images

CORPUS_OBJECT_INFO = Path(__file__).parent / "corpus" / "object_info" / "core_sample.json"
# Loader class → (its combo input, the models folder it lists).
LOADERS = {"CheckpointLoaderSimple": ("ckpt_name", "checkpoints"), "LoraLoader": ("lora_name", "loras")}
RANDOM_SEED = "ProvenanceTestRandomSeed"
SAVES = frozenset({"ProvenanceSaveImage", "SaveImage"})
PRIMITIVES = frozenset({"PrimitiveInt", "PrimitiveFloat", "PrimitiveString", "PrimitiveBoolean"})
# Inputs a node checks itself (VALIDATE_INPUTS taking them): ComfyUI skips their combo check.
SELF_VALIDATED = {("LoadImage", "image")}
CHECKPOINT = "random_sd15.safetensors"
LORA = "random_sd15_lora.safetensors"
MODELS = {"checkpoints": [CHECKPOINT], "loras": [LORA]}
HASHES = {("checkpoints", CHECKPOINT): {"sha256": "c" * 64}, ("loras", LORA): {"sha256": "1" * 64, "autov3": "2" * 12}}


def node_info(
    name: str,
    required: Mapping[str, list[Any]],
    outputs: list[str],
    *,
    optional: Mapping[str, list[Any]] | None = None,
    output_node: bool = False,
    category: str = "",
) -> dict[str, Any]:
    """One /object_info entry in the V1 shape ComfyUI serves."""
    inputs: dict[str, Any] = {"required": dict(required)}
    order: dict[str, Any] = {"required": list(required)}
    if optional:
        inputs["optional"], order["optional"] = dict(optional), list(optional)
    return {
        **{"input": inputs, "input_order": order, "is_input_list": False, "output": outputs},
        **{"output_is_list": [False] * len(outputs), "output_name": outputs, "name": name, "display_name": name},
        **{"description": "", "python_module": "nodes", "category": category, "output_node": output_node},
    }


def default_object_info(models: Mapping[str, list[str]] | None = None, *, random_seed: bool = False) -> dict[str, Any]:
    """The real sample's entries plus the SD1.5 graph's other classes, loader combos listing `models`."""
    info: dict[str, Any] = json.loads(CORPUS_OBJECT_INFO.read_text("utf-8")) if CORPUS_OBJECT_INFO.exists() else {}
    integer = ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}]
    save_inputs = {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}
    formats = ["COMBO", {"default": "png", "multiselect": False, "options": ["png", "jpeg", "webp"]}]
    info.update(
        {
            "CheckpointLoaderSimple": node_info(
                "CheckpointLoaderSimple", {"ckpt_name": [[]]}, ["MODEL", "CLIP", "VAE"]
            ),
            "EmptyLatentImage": node_info(
                "EmptyLatentImage",
                {"width": integer, "height": integer, "batch_size": ["INT", {"default": 1, "min": 1}]},
                ["LATENT"],
            ),
            "VAEDecode": node_info("VAEDecode", {"samples": ["LATENT"], "vae": ["VAE"]}, ["IMAGE"]),
            "VAEEncode": node_info("VAEEncode", {"pixels": ["IMAGE"], "vae": ["VAE"]}, ["LATENT"]),
            "VAEEncodeForInpaint": node_info(
                "VAEEncodeForInpaint",
                {
                    "pixels": ["IMAGE"],
                    "vae": ["VAE"],
                    "mask": ["MASK"],
                    "grow_mask_by": ["INT", {"default": 6, "min": 0, "max": 64, "step": 1}],
                },
                ["LATENT"],
            ),
            # The combo lists the input folder's files (FakeComfyUI fills it per request).
            "LoadImage": node_info("LoadImage", {"image": [[], {"image_upload": True}]}, ["IMAGE", "MASK"]),
            "SaveImage": node_info("SaveImage", save_inputs, [], output_node=True),
            "PreviewImage": node_info("PreviewImage", {"images": ["IMAGE"]}, [], output_node=True),
            "ProvenanceSaveImage": node_info(
                "ProvenanceSaveImage", save_inputs, ["IMAGE"], optional={"format": formats}, output_node=True
            ),
        }
    )
    if random_seed:
        info[RANDOM_SEED] = node_info(RANDOM_SEED, {}, ["INT"], category="testing")
    for class_type, (input_name, folder) in LOADERS.items():
        if class_type in info:
            info[class_type]["input"]["required"][input_name][0] = list((models or {}).get(folder, []))
    return info


def sd_graph(seed: int | list[Any], *, save: str = "ProvenanceSaveImage", prefix: str = "ComfyUI") -> dict[str, Any]:
    """tests/test_comfyui.py's SD1.5 graph (same node ids): checkpoint + LoRA, 2 steps at 64x64, saved by node 9."""
    sampler = {"seed": seed, "steps": 2, "cfg": 6.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}
    sampler.update({"model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]})
    lora = {"model": ["4", 0], "clip": ["4", 1], "lora_name": LORA, "strength_model": 0.8, "strength_clip": 0.6}
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "10": {"class_type": "LoraLoader", "inputs": lora},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff, storm", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, text", "clip": ["10", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": sampler},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": save, "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }
    if isinstance(seed, list):
        graph[str(seed[0])] = {"class_type": RANDOM_SEED, "inputs": {}}
    return graph


def _link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


class Opaque(str):
    """A MODEL, CONDITIONING, LATENT... output: only its identity matters, and the hooks only summarize it."""


class Renderer:
    """An `execute(prompt, extra_data)` for FakeComfyUI; see the module docstring."""

    def __init__(self, fake: Any, output_dir: Path, *, noise: int = 0) -> None:
        self.fake, self.output_dir, self.noise = fake, output_dir, noise
        self.random = random.Random()

    def __call__(self, prompt: dict[str, Any], extra_data: dict[str, Any]) -> dict[str, list[tuple[str, str, bytes]]]:
        self.values: dict[str, list[Any]] = {}
        self.order: list[str] = []
        self.nodes: dict[str, dict[str, Any]] = {}
        saves = [k for k, v in prompt.items() if v.get("class_type") in SAVES]
        for node_id in saves:
            self._evaluate(prompt, node_id)
        return {node_id: self._save(prompt, extra_data, node_id) for node_id in saves}

    def _evaluate(self, prompt: dict[str, Any], node_id: str) -> list[Any]:
        if node_id in self.values:
            return self.values[node_id]
        node = prompt[node_id]
        inputs = {}
        for name, value in node.get("inputs", {}).items():
            inputs[name] = self._evaluate(prompt, value[0])[value[1]] if _link(value) else value
        class_type = node["class_type"]
        if class_type == RANDOM_SEED:
            outputs: list[Any] = [self.random.randrange(2**48)]
        elif class_type in PRIMITIVES:
            outputs = [inputs.get("value")]
        else:
            token = hashlib.sha256(json.dumps([class_type, inputs], sort_keys=True).encode()).hexdigest()
            outputs = [Opaque(f"{token}:{slot}") for slot in range(4)]
        self.values[node_id] = outputs
        self.order.append(node_id)
        shown = {k: {"type": "object"} if isinstance(v, Opaque) or not _scalar(v) else v for k, v in inputs.items()}
        scalars = outputs if class_type == RANDOM_SEED or class_type in PRIMITIVES else None
        self.nodes[node_id] = {"class_type": class_type, "cached": False, "start_ms": 0.0, "duration_ms": 1.0}
        self.nodes[node_id].update({"inputs": shown, "outputs": scalars, "error": None})
        return outputs

    def _pixels(self, prompt: dict[str, Any], node_id: str) -> list[np.ndarray]:
        token = str(self._evaluate(prompt, node_id)[0]) + str(self.noise)
        latents = [self.nodes[n]["inputs"] for n in self.order if prompt[n]["class_type"] == "EmptyLatentImage"]
        loads = [self.nodes[n]["inputs"].get("image") for n in self.order if prompt[n]["class_type"] == "LoadImage"]
        size = latents[0] if latents else self._input_size(loads[0]) if loads else {}
        width, height, count = int(size.get("width", 64)), int(size.get("height", 64)), int(size.get("batch_size", 1))
        arrays = []
        for index in range(count):
            seed = int.from_bytes(hashlib.sha256(f"{token}/{index}".encode()).digest()[:8], "big")
            arrays.append(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))
        return arrays

    def _input_size(self, name: Any) -> dict[str, int]:
        """The size of an uploaded input image (LoadImage's `subfolder/name`); {} when there is none."""
        subfolder, _, filename = str(name).rpartition("/")
        data = getattr(self.fake, "files", {}).get(("input", subfolder, filename))
        if data is None:
            return {}
        with Image.open(io.BytesIO(data)) as image:
            return {"width": image.width, "height": image.height}

    def _hasher(self, models: list[Model]) -> None:
        for model in models:
            folder = ROLE_FOLDERS.get(model.role, ("",))[0]
            entry = self.fake.hashes.get((folder, model.name))
            if entry and entry.get("sha256"):
                model.hashes.update({"sha256": entry["sha256"], "autov2": entry["sha256"][:10]})
                if entry.get("autov3"):
                    model.hashes["autov3"] = entry["autov3"]

    def _save(self, prompt: dict[str, Any], extra_data: dict[str, Any], node_id: str) -> list[tuple[str, str, bytes]]:
        node = prompt[node_id]
        images = node["inputs"]["images"]
        arrays = self._pixels(prompt, images[0])
        prompt_id = getattr(self.fake, "current_prompt_id", None)
        context = SaveContext(prompt, extra_data.get("extra_pnginfo"), node_id, prompt_id, self.fake.comfyui_version)
        ours = node["class_type"] == "ProvenanceSaveImage"
        options = SaveOptions(format=str(node["inputs"].get("format", "png")))
        if not ours:
            options = SaveOptions(targets=frozenset({"comfyui"}))
        runtime = {"prompt_id": prompt_id, "started": None, "ended": None, "complete": True, "errors": []}
        runtime.update({"order": list(self.order), "nodes": dict(self.nodes)})
        saved = save_images(
            arrays,
            context,
            self.output_dir,
            str(node["inputs"].get("filename_prefix", "ComfyUI")),
            options,
            version=self.fake.pack_version,
            hasher=self._hasher if ours else None,
            runtime=runtime if ours else None,
        )
        return [(s.path.name, s.subfolder, s.path.read_bytes()) for s in saved]


# -- /prompt validation, as ComfyUI 0.33 answers it ---------------------------------------------
def combo_options(spec: Any) -> list[Any] | None:
    """The options of a COMBO input spec, V1 `[[...], {...}]` or V3 `["COMBO", {"options": [...]}]`."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict) and not spec[1].get("multiselect"):
        options = spec[1].get("options")
        return options if isinstance(options, list) else None
    return None


def error_body(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def validate(
    prompt: dict[str, Any], object_info: Mapping[str, Any], input_exists: Callable[[str], bool] | None = None
) -> tuple[dict[str, Any] | None, list[str], dict[str, Any]]:
    """What ComfyUI's validate_prompt finds: (the 400 error or None, output node ids, node_errors).

    `input_exists(name)` says whether the input folder has `name` (LoadImage's own check); None: every
    name passes."""
    outputs = []
    for node_id, node in prompt.items():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        title = (node.get("_meta") or {}).get("title", class_type) if isinstance(node, dict) else None
        if class_type not in object_info:
            message = f"Node '{title or f'ID #{node_id}'}' not found. The custom node may not be installed."
            extra = {"node_id": node_id, "class_type": class_type, "node_title": title}
            return error_body("missing_node_type", message, f"Node ID '#{node_id}'", **extra), [], {}
        if object_info[class_type].get("output_node"):
            outputs.append(node_id)
    if not outputs:
        return error_body("prompt_no_outputs", "Prompt has no outputs"), [], {}
    node_errors = {}
    for node_id, node in prompt.items():
        errors = _combo_errors(node, object_info, input_exists)
        if errors:
            node_errors[node_id] = {
                "errors": errors,
                "dependent_outputs": outputs,
                "class_type": node["class_type"],
            }
    if node_errors:
        details = "\n".join(f"{e['message']}: {e['details']}" for n in node_errors.values() for e in n["errors"])
        return (
            error_body("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
            [],
            node_errors,
        )
    return None, outputs, {}


def _combo_errors(
    node: dict[str, Any], object_info: Mapping[str, Any], input_exists: Callable[[str], bool] | None
) -> list[dict[str, Any]]:
    spec = object_info[node["class_type"]].get("input", {})
    specs = {**spec.get("required", {}), **spec.get("optional", {})}
    errors = []
    for name, value in (node.get("inputs") or {}).items():
        if (node["class_type"], name) in SELF_VALIDATED:
            if input_exists is not None and not isinstance(value, list) and not input_exists(str(value)):
                details = f"{name} - Invalid image file: {value}"
                extra = {"input_name": name, "input_config": specs.get(name), "received_value": value}
                errors.append(
                    error_body("custom_validation_failed", "Custom validation failed for node", details, **extra)
                )
            continue
        options = combo_options(specs.get(name))
        if options is not None and not isinstance(value, list) and value not in options:
            details = f"{name}: '{value}' not in {options}"
            extra = {"input_name": name, "input_config": specs[name], "received_value": value}
            errors.append(error_body("value_not_in_list", "Value not in list", details, **extra))
    return errors

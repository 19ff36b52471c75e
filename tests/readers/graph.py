"""A minimal walker over ComfyUI's API prompt: the base sampler's settings, prompts, model, size.

Independent of the library's WorkflowParser. The base sampler is the one whose latent input
does not come (through upscales) from another sampler: the first pass of a hires-fix or a
base/refiner pair.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 32
TEXT_INPUTS = ("text", "text_g", "string", "value")


def _is_sampler(node: dict[str, Any]) -> bool:
    return {"sampler_name", "steps", "cfg"} <= set(node.get("inputs", {}))


def _linked(prompt: dict[str, Any], value: Any) -> dict[str, Any] | None:
    if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
        node = prompt[str(value[0])]
        return node if isinstance(node, dict) else None
    return None


def _is_base(prompt: dict[str, Any], sampler: dict[str, Any]) -> bool:
    node = _linked(prompt, sampler["inputs"].get("latent_image"))
    for _ in range(MAX_DEPTH):
        if node is None:
            return True
        if _is_sampler(node):
            return False
        node = _linked(prompt, node.get("inputs", {}).get("samples"))
    return True


def _scalar(prompt: dict[str, Any], value: Any, keys: tuple[str, ...]) -> Any:
    for _ in range(MAX_DEPTH):
        node = _linked(prompt, value)
        if node is None:
            return value
        inputs = node.get("inputs", {})
        value = next((inputs[k] for k in keys if k in inputs), None)
    return None


def _text(prompt: dict[str, Any], link: Any) -> str | None:
    node = _linked(prompt, link)
    for _ in range(MAX_DEPTH):
        if node is None:
            return None
        inputs = node.get("inputs", {})
        for key in TEXT_INPUTS:
            value = _scalar(prompt, inputs.get(key), TEXT_INPUTS)
            if isinstance(value, str):
                return value
        node = _linked(prompt, inputs.get("conditioning"))
    return None


def _model(prompt: dict[str, Any], link: Any) -> str | None:
    node = _linked(prompt, link)
    for _ in range(MAX_DEPTH):
        if node is None:
            return None
        inputs = node.get("inputs", {})
        name = inputs.get("ckpt_name") or inputs.get("unet_name")
        if isinstance(name, str):
            return name
        node = _linked(prompt, inputs.get("model"))
    return None


def fields(prompt: dict[str, Any]) -> dict[str, Any] | None:
    """Normalizable fields of the base sampler; None when the graph has no sampler."""
    samplers = [n for n in prompt.values() if isinstance(n, dict) and _is_sampler(n)]
    base = next((s for s in samplers if _is_base(prompt, s)), None)
    if base is None:
        return None
    inputs = base["inputs"]
    latent = _linked(prompt, inputs.get("latent_image")) or {}
    size = latent.get("inputs", {})
    seed_key = "seed" if "seed" in inputs else "noise_seed"
    return {
        "prompt": _text(prompt, inputs.get("positive")),
        "negative_prompt": _text(prompt, inputs.get("negative")),
        "seed": _scalar(prompt, inputs.get(seed_key), ("seed", "noise_seed", "value", "int")),
        "steps": _scalar(prompt, inputs.get("steps"), ("steps", "value", "int")),
        "cfg": _scalar(prompt, inputs.get("cfg"), ("cfg", "value", "float")),
        "sampler": _scalar(prompt, inputs.get("sampler_name"), ("sampler_name", "value")),
        "scheduler": _scalar(prompt, inputs.get("scheduler"), ("scheduler", "value")),
        "model": _model(prompt, inputs.get("model")),
        "width": _scalar(prompt, size.get("width"), ("width", "value", "int")),
        "height": _scalar(prompt, size.get("height"), ("height", "value", "int")),
    }

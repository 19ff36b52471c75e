"""SwarmUI's `sui_image_params` JSON: the A1111 parameters as sd-prompt-reader reads them on a WEBP with alpha.

sd-prompt-reader 1.3.5 json-decodes IFD0 Model (0x0110) of every image before anything else and
parses SwarmUI's format when that JSON holds `sui_image_params`; without it, a JPEG or WEBP with
alpha is taken for NovelAI stealth data and its UserComment is never looked at (research/readers.md
§7.7). So a WEBP with alpha carries the parameters twice: the A1111 text in UserComment for every
other reader, and this JSON in Model. Keys are SwarmUI's own (its docs/Image Metadata Format.md:
ComfyUI sampler and scheduler names), plus the older `autowebuisampler`, the one sampler key
sd-prompt-reader knows, holding the A1111 label so that it reports what it reads from UserComment
elsewhere. ASCII-escaped JSON, since Pillow decodes EXIF ASCII as Latin-1.
"""

from __future__ import annotations

import json
from typing import Any

from ..infotext import format_number, safe_name, sampler_label
from ..infotext.write import base_model
from ..record import Model, Record

KEY = "sui_image_params"


def params(record: Record) -> dict[str, Any]:
    """SwarmUI's parameters for a record; absent values are left out, except the two prompts."""
    gen = record.generation
    base = base_model(record)
    loras = record.loras()
    out: dict[str, Any] = {
        # sd-prompt-reader calls .strip() on both: a missing one must be "", never null. The literal
        # prompt: LoRAs go in SwarmUI's own `loras`/`loraweights`, not as A1111 `<lora:…>` tags.
        "prompt": gen.positive or "",
        "negativeprompt": gen.negative or "",
        "model": safe_name(base.name) if base is not None else None,
        "seed": gen.seed,
        "steps": gen.steps,
        "cfgscale": gen.cfg,
        "width": gen.width,  # the generation size only, as the A1111 `Size` (never the saved pixels')
        "height": gen.height,
        "sampler": gen.sampler,
        "scheduler": gen.scheduler,
        "autowebuisampler": sampler_label(gen.sampler) if gen.sampler else None,
        "loras": [safe_name(m.name) for m in loras] or None,
        "loraweights": _weights(loras),
    }
    return {k: v for k, v in out.items() if v is not None}


def model_json(record: Record) -> str:
    """The IFD0 Model text: `{"sui_image_params": {...}}`, pure ASCII."""
    return json.dumps({KEY: params(record)}, ensure_ascii=True, allow_nan=False)


def _weights(loras: list[Model]) -> list[str] | None:
    """SwarmUI's `loraweights` (strings, one per LoRA), only when every strength is known."""
    weights = [m.strength_model for m in loras]
    if not weights or any(w is None for w in weights):
        return None
    return [format_number(w) for w in weights if w is not None]

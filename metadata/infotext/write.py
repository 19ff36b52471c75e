"""Writing infotext from a record: A1111's parameter order, Civitai's hashes, exact prompts when needed."""

from __future__ import annotations

import json
from typing import Any

from ..record import Generation, Model, Record
from .labels import (
    COMFY_SAMPLER,
    EXACT_NEGATIVE,
    EXACT_PROMPT,
    LORA_TAGS,
    NEGATIVE_PREFIX,
    format_number,
    quote,
    safe_name,
    sampler_from_label,
    sampler_label,
    scheduler_label,
    tag_separator,
)
from .read import parse


def _visible(text: str) -> str:
    """What a PNG tEXt/iTXt or EXIF comment can carry of a prompt: no NUL."""
    return text.replace("\x00", "")


def _json_exact(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(text)  # lone surrogates survive only as \\u escapes
    return json.dumps(text, ensure_ascii=False)


def _extra(gen: Generation, key: str) -> Any:
    """A generation field that newer records hold as an attribute and older ones under `other`."""
    return getattr(gen, key, None) if hasattr(gen, key) else gen.other.get(key)


def base_model(record: Record) -> Model | None:
    """The base pass's model (the checkpoint or diffusion model that drew the first pass)."""
    name = record.passes[0].model if record.passes else None
    roles = ("checkpoint", "unet", "diffusion_model")
    named = next((m for m in record.models if m.name == name and m.role in roles), None) if name else None
    return named or record.first_model(*roles)


def _short(model: Model, length: int) -> str | None:
    """A hash prefix as A1111 writes it: the data hash (AutoV3) for LoRAs when known, else the file's."""
    full = model.hashes.get("autov3") if model.role == "lora" else None
    full = full or model.hashes.get("sha256") or model.hashes.get("autov2")
    return full[:length] if full else None


def _name_hashes(models: list[Model], length: int) -> str | None:
    items = [f"{safe_name(m.name)}: {h}" for m in models if (h := _short(m, length))]
    return ", ".join(items) or None


def _civitai_hashes(record: Record, base: Model | None) -> str | None:
    """Civitai's flat `Hashes` JSON: AutoV2 (10 hex) of each resource, keyed model, vae, lora:, embed:."""
    found: dict[str, str] = {}
    if base is not None and (h := base.hashes.get("autov2")):
        found["model"] = h
    prefixes = {"vae": "vae", "lora": "lora:", "embedding": "embed:"}
    for model in record.models:
        prefix, h = prefixes.get(model.role), model.hashes.get("autov2")
        if prefix and h:
            found.setdefault(prefix if prefix == "vae" else prefix + safe_name(model.name), h)
    return json.dumps(found, separators=(", ", ": ")) if found else None


def _later_passes(record: Record, add: Any) -> None:
    """A1111's names for what a second pass did: hires fix (upscale + denoise) or a refiner switch."""
    if len(record.passes) < 2:
        return
    base, second = record.passes[0], record.passes[1]
    if second.start_step:  # KSamplerAdvanced continuing the same schedule: a refiner (or WAN 2.2 low noise)
        if second.model and second.model != base.model:
            add("Refiner", safe_name(second.model))
            if second.steps:
                add("Refiner switch at", round(second.start_step / second.steps, 4))
        return
    upscale = second.other.get("upscale") or {}
    if base.width and second.width and (second.width, second.height) != (base.width, base.height):
        scale = upscale.get("scale") or round(second.width / base.width, 4)
        add("Hires upscale", scale)
        add("Hires resize", f"{second.width}x{second.height}" if not upscale.get("scale") else None)
    if second.model and second.model != base.model:
        add("Hires checkpoint", safe_name(second.model))
    add("Hires steps", second.steps)
    add("Hires upscaler", upscale.get("model") or upscale.get("method"))
    if second.sampler and second.sampler != base.sampler:
        add("Hires sampler", sampler_label(second.sampler))
    add("Denoising strength", second.denoise)


def parameters(record: Record) -> list[tuple[str, str]]:
    """The `Key: value` pairs of the last line, in A1111's order, `Steps` first."""
    gen = record.generation
    pairs: list[tuple[str, str]] = []

    def add(key: str, value: Any) -> None:
        if value is not None and value != "":
            text = format_number(value) if isinstance(value, (int, float)) else str(value)
            pairs.append((key, quote(text)))

    add("Steps", gen.steps)
    if gen.sampler:
        add("Sampler", sampler_label(gen.sampler))
    if gen.scheduler:
        add("Schedule type", scheduler_label(gen.scheduler))
    add("CFG scale", gen.cfg)
    add("Seed", gen.seed)
    # Only the generation size: a saved file's pixels may have been upscaled or cropped since (the
    # save path fills the generation size from the pixels only where the graph shows they are the same).
    if gen.width and gen.height:
        add("Size", f"{gen.width}x{gen.height}")
    base = base_model(record)
    if base is not None:
        add("Model hash", base.hashes.get("autov2"))
        add("Model", safe_name(base.name))
    vae = record.first_model("vae")
    if vae is not None:
        add("VAE hash", vae.hashes.get("autov2"))
        add("VAE", safe_name(vae.name))
    hires = len(record.passes) > 1 and not record.passes[1].start_step
    if gen.denoise is not None and gen.denoise < 1 and not hires:
        add("Denoising strength", gen.denoise)
    clip_skip = _extra(gen, "clip_skip")
    add("Clip skip", clip_skip if isinstance(clip_skip, int) and clip_skip > 1 else None)
    _later_passes(record, add)
    add("Distilled CFG Scale", gen.guidance)
    add("Shift", _extra(gen, "shift"))
    add("Frames", _extra(gen, "frames"))
    add("FPS", _extra(gen, "fps"))
    if gen.sampler and sampler_from_label(sampler_label(gen.sampler))[0] != gen.sampler:
        add(COMFY_SAMPLER, gen.sampler)  # the label is shared (dpmpp_sde and dpmpp_sde_gpu): keep the name
    if gen.batch_size and gen.batch_size > 1:
        add("Batch size", gen.batch_size)
        add("Batch pos", record.image.batch_index)
    add("Lora hashes", _name_hashes(record.loras(), 12))
    add("TI hashes", _name_hashes([m for m in record.models if m.role == "embedding"], 12))
    if (hashes := _civitai_hashes(record, base)) is not None:
        pairs.append(("Hashes", hashes))  # unquoted JSON, as Civitai's extension writes it
    version = record.provenance.comfyui_version
    add("Version", f"ComfyUI {version}" if version else "ComfyUI")
    return pairs


def lora_tags(record: Record) -> list[str]:
    """The record's LoRAs as A1111 writes them in a prompt: `<lora:name:w>`, or A1111's two-weight form
    `<lora:name:te:unet>` (CLIP strength first, model strength second) when the two differ. A LoRA on
    the model only (no CLIP strength) is `<lora:name:0:w>`. A strength the graph did not fix is never
    guessed: such a LoRA gets no tag (`Lora hashes` still names it)."""
    tags = []
    for model in record.loras():
        unet, te = model.strength_model, model.strength_clip
        if unet is None:
            continue
        te = 0.0 if te is None else te
        name = safe_name(model.name)
        weights = format_number(unet) if te == unet else f"{format_number(te)}:{format_number(unet)}"
        tags.append(f"<lora:{name}:{weights}>")
    return tags


def build(record: Record, *, with_lora_tags: bool = True) -> str:
    """The complete infotext for a record; with_lora_tags appends the LoRAs to the prompt as A1111 does."""
    gen = record.generation
    positive = gen.positive or ""
    negative = gen.negative
    tags = lora_tags(record) if with_lora_tags else []
    shown = positive + tag_separator(positive) + ", ".join(tags) if tags else positive
    lines = [_visible(shown)]
    if negative:
        lines.append(f"{NEGATIVE_PREFIX} {_visible(negative)}")
    pairs = parameters(record)
    if tags:
        pairs.append((LORA_TAGS, str(len(tags))))
    head = "\n".join(lines)
    plain = parse(head + "\n" + _join(pairs))
    if plain.positive != positive:
        pairs.append((EXACT_PROMPT, _json_exact(positive)))
    if plain.negative != negative:
        pairs.append((EXACT_NEGATIVE, "null" if negative is None else _json_exact(negative)))
    return head + "\n" + _join(pairs)


def _join(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in pairs)

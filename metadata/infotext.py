"""A1111/Forge infotext ("parameters"): written from a record, parsed back into generation fields.

The format is the one every A1111-style reader understands (research/readers.md §2): prompt
lines, an optional `Negative prompt:` line, and a last line of `Key: value` pairs that starts
with `Steps:`. It is lossy by design (A1111 strips every line, and a prompt line that starts
with `Negative prompt:` ends the prompt), so when the plain text would not parse back to the
exact prompts, the exact ones ride along as quoted `Exact prompt`/`Exact negative prompt`
parameters that other readers ignore and ours prefers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from .record import Generation, Model, Pass, Record

NEGATIVE_PREFIX = "Negative prompt:"
EXACT_PROMPT = "Exact prompt"
EXACT_NEGATIVE = "Exact negative prompt"
COMFY_SAMPLER = "ComfyUI sampler"

# A1111 infotext_utils.re_param: a key, then a quoted JSON string or anything up to a comma.
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_SIZE = re.compile(r"^(\d+)x(\d+)$")


@cache
def _names() -> dict[str, dict[str, str]]:
    text = resources.files(__package__).joinpath("rules/a1111_names.json").read_text("utf-8")
    data: dict[str, dict[str, str]] = json.loads(text)
    return data


def sampler_label(name: str) -> str:
    return _names()["samplers"].get(name, name)


def scheduler_label(name: str) -> str:
    return _names()["schedulers"].get(name, name)


def sampler_from_label(label: str) -> tuple[str, str | None]:
    """A1111 sampler label → (ComfyUI sampler, scheduler implied by a legacy combined label)."""
    samplers = _names()["samplers"]
    reverse = {v: k for k, v in reversed(samplers.items())}
    if label in reverse:
        return reverse[label], None
    for sched, sched_label in _names()["schedulers"].items():
        suffix = " " + sched_label
        if label.endswith(suffix) and label[: -len(suffix)] in reverse:
            return reverse[label[: -len(suffix)]], sched
    return label, None


def scheduler_from_label(label: str) -> str:
    reverse = {v: k for k, v in _names()["schedulers"].items()}
    return reverse.get(label, label)


def quote(value: str) -> str:
    """A1111's quote(): JSON-quote values holding `,` `:` or a newline (and ones that look quoted)."""
    if any(c in value for c in ",:\n") or (value.startswith('"') and value.endswith('"')):
        return json.dumps(value, ensure_ascii=False)
    return value


def format_number(value: float | int) -> str:
    """Shortest text that reads back as the same number: 7.0 → "7", 6.5 → "6.5"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _safe_name(name: str) -> str:
    """Model names lose `,` and `:` in infotext: naive readers split on them (readers.md §7.3)."""
    stem = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    for ext in (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    return stem.replace(",", "").replace(":", "")


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


def _base_model(record: Record) -> Model | None:
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
    items = [f"{_safe_name(m.name)}: {h}" for m in models if (h := _short(m, length))]
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
            found.setdefault(prefix if prefix == "vae" else prefix + _safe_name(model.name), h)
    return json.dumps(found, separators=(", ", ": ")) if found else None


def _later_passes(record: Record, add: Any) -> None:
    """A1111's names for what a second pass did: hires fix (upscale + denoise) or a refiner switch."""
    if len(record.passes) < 2:
        return
    base, second = record.passes[0], record.passes[1]
    if second.start_step:  # KSamplerAdvanced continuing the same schedule: a refiner (or WAN 2.2 low noise)
        if second.model and second.model != base.model:
            add("Refiner", _safe_name(second.model))
            if second.steps:
                add("Refiner switch at", round(second.start_step / second.steps, 4))
        return
    upscale = second.other.get("upscale") or {}
    if base.width and second.width and (second.width, second.height) != (base.width, base.height):
        scale = upscale.get("scale") or round(second.width / base.width, 4)
        add("Hires upscale", scale)
        add("Hires resize", f"{second.width}x{second.height}" if not upscale.get("scale") else None)
    if second.model and second.model != base.model:
        add("Hires checkpoint", _safe_name(second.model))
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
    width = gen.width or record.image.width
    height = gen.height or record.image.height
    if width and height:
        add("Size", f"{width}x{height}")
    base = _base_model(record)
    if base is not None:
        add("Model hash", base.hashes.get("autov2"))
        add("Model", _safe_name(base.name))
    vae = record.first_model("vae")
    if vae is not None:
        add("VAE hash", vae.hashes.get("autov2"))
        add("VAE", _safe_name(vae.name))
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


def build(record: Record) -> str:
    """The complete infotext for a record."""
    gen = record.generation
    positive = gen.positive or ""
    negative = gen.negative
    lines = [_visible(positive)]
    if negative:
        lines.append(f"{NEGATIVE_PREFIX} {_visible(negative)}")
    pairs = parameters(record)
    head = "\n".join(lines)
    plain = parse(head + "\n" + _join(pairs))
    if plain.positive != positive:
        pairs.append((EXACT_PROMPT, _json_exact(positive)))
    if plain.negative != negative:
        pairs.append((EXACT_NEGATIVE, "null" if negative is None else _json_exact(negative)))
    return head + "\n" + _join(pairs)


def _join(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in pairs)


@dataclass
class Infotext:
    """A parsed infotext: prompts plus the raw parameters (quoted values already decoded)."""

    positive: str
    negative: str | None
    params: dict[str, str] = field(default_factory=dict)


def parse(text: str) -> Infotext:
    """Parse by A1111's rules (infotext_utils.parse_generation_parameters), exact keys first."""
    *lines, last = text.strip().split("\n")
    if len(RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    positive, negative, in_negative = "", "", False
    for text_line in lines:
        line = text_line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX) :].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            positive += ("" if positive == "" else "\n") + line
    last, hashes = _take_hashes(last)
    raw = {k: v.strip() for k, v in RE_PARAM.findall(last)}
    if hashes is not None:
        raw["Hashes"] = hashes
    exact_negative = raw.pop(EXACT_NEGATIVE, None)
    params = {k: _unquote(v) for k, v in raw.items()}
    exact_positive = params.pop(EXACT_PROMPT, None)
    result = Infotext(positive, negative if in_negative else None, params)
    if exact_positive is not None:
        result.positive = exact_positive
    if exact_negative is not None:
        result.negative = None if exact_negative == "null" else _unquote(exact_negative)
    return result


def _take_hashes(line: str) -> tuple[str, str | None]:
    """Cut Civitai's unquoted `Hashes: {...}` JSON out of the line (balanced braces, strings aware)."""
    start = line.find("Hashes: {")
    if start == -1 or (start > 0 and line[start - 2 : start] != ", "):
        return line, None
    depth, in_string, escaped = 0, False, False
    for end in range(start + len("Hashes: "), len(line)):
        char = line[end]
        if in_string:
            escaped, in_string = (not escaped and char == "\\"), in_string and (escaped or char != '"')
        elif char == '"':
            in_string = True
        elif char in "{}":
            depth += 1 if char == "{" else -1
            if depth == 0:
                text = line[start + len("Hashes: ") : end + 1]
                rest = (line[: max(start - 2, 0)] + line[end + 1 :]).strip(", ")
                return rest, text
    return line, None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            loaded = json.loads(value)
        except ValueError:
            return value
        return loaded if isinstance(loaded, str) else value
    return value


def _number(text: str | None, kind: type[int] | type[float]) -> Any:
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        pass
    try:
        return kind(float(text))
    except (ValueError, OverflowError):
        return None


def to_record(info: Infotext) -> Record:
    """A record from an A1111-style file: the generation fields and the models it names."""
    p = info.params
    sampler, implied = sampler_from_label(p["Sampler"]) if "Sampler" in p else (None, None)
    sampler = p.get(COMFY_SAMPLER, sampler)
    scheduler = scheduler_from_label(p["Schedule type"]) if "Schedule type" in p else implied
    size = RE_SIZE.match(p.get("Size", ""))
    gen = Generation(
        positive=info.positive,
        negative=info.negative,
        seed=_number(p.get("Seed"), int),
        steps=_number(p.get("Steps"), int),
        cfg=_number(p.get("CFG scale"), float),
        sampler=sampler,
        scheduler=scheduler,
        # With a hires pass, A1111's Denoising strength is that pass's, not the first one's.
        denoise=None if _hires(p) else _number(p.get("Denoising strength"), float),
        width=int(size.group(1)) if size else None,
        height=int(size.group(2)) if size else None,
        guidance=_number(p.get("Distilled CFG Scale"), float),
    )
    record = Record(generation=gen)
    record.passes = _passes(gen, p)
    civitai = _json_object(p.get("Hashes"))
    if "Model" in p or "Model hash" in p:
        short = p.get("Model hash") or civitai.get("model")
        record.models.append(Model(role="checkpoint", name=p.get("Model", ""), hashes=_hex(autov2=short)))
    if "VAE" in p:
        record.models.append(Model(role="vae", name=p["VAE"], hashes=_hex(autov2=p.get("VAE hash"))))
    for role, key, prefix in (("lora", "Lora hashes", "lora:"), ("embedding", "TI hashes", "embed:")):
        for name, short in _lora_hashes(p.get(key, "")):
            hashes = _hex(autov3=short) if role == "lora" else _hex(sha256=short)
            hashes.update(_hex(autov2=civitai.get(prefix + name)))
            record.models.append(Model(role=role, name=name, hashes=hashes))
    record.provenance.capture_mode = "imported"
    record.provenance.other["imported_from"] = "a1111"
    record.provenance.other["parameters"] = p
    return record


def _hires(p: dict[str, str]) -> bool:
    return any(k in p for k in ("Hires upscale", "Hires resize", "Hires steps", "Hires upscaler"))


def _passes(gen: Generation, p: dict[str, str]) -> list[Pass]:
    """The passes an infotext describes: the first, then a hires pass or a refiner switch."""
    base = Pass(
        node_id="",
        seed=gen.seed,
        steps=gen.steps,
        cfg=gen.cfg,
        sampler=gen.sampler,
        scheduler=gen.scheduler,
        denoise=gen.denoise,
        width=gen.width,
        height=gen.height,
        positive=gen.positive,
        negative=gen.negative,
        model=p.get("Model"),
    )
    passes = [base]
    if _hires(p):
        scale = _number(p.get("Hires upscale"), float)
        resize = RE_SIZE.match(p.get("Hires resize", ""))
        width = int(resize.group(1)) if resize else (round(gen.width * scale) if gen.width and scale else None)
        height = int(resize.group(2)) if resize else (round(gen.height * scale) if gen.height and scale else None)
        hires_sampler = sampler_from_label(p["Hires sampler"])[0] if "Hires sampler" in p else gen.sampler
        second = Pass(
            node_id="",
            steps=_number(p.get("Hires steps"), int) or gen.steps,
            cfg=gen.cfg,
            sampler=hires_sampler,
            scheduler=gen.scheduler,
            denoise=_number(p.get("Denoising strength"), float),
            width=width,
            height=height,
            positive=gen.positive,
            negative=gen.negative,
            model=p.get("Hires checkpoint", p.get("Model")),
        )
        upscale = {k: v for k, v in (("scale", scale), ("model", p.get("Hires upscaler"))) if v is not None}
        if upscale:
            second.other["upscale"] = upscale
        passes.append(second)
    elif "Refiner" in p and gen.steps:
        switch = _number(p.get("Refiner switch at"), float)
        start = round(switch * gen.steps) if switch is not None else None
        passes.append(
            Pass(
                node_id="",
                steps=gen.steps,
                cfg=gen.cfg,
                sampler=gen.sampler,
                scheduler=gen.scheduler,
                start_step=start,
                end_step=gen.steps,
                model=p["Refiner"],
            )
        )
    return passes


def _json_object(text: str | None) -> dict[str, str]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _hex(**prefixes: str | None) -> dict[str, str]:
    """Hash prefixes as the record keeps them (lowercase hex); infotext carries only prefixes."""
    return {k: v.lower() for k, v in prefixes.items() if v and all(c in "0123456789abcdefABCDEF" for c in v)}


def _lora_hashes(value: str) -> list[tuple[str, str]]:
    out = []
    for item in value.split(","):
        name, sep, short = item.partition(":")
        if sep and name.strip():
            out.append((name.strip(), short.strip()))
    return out

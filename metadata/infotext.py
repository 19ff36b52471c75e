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

from .record import Generation, Model, Record

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
    checkpoint = record.first_model("checkpoint", "unet", "diffusion_model")
    if checkpoint is not None:
        add("Model hash", checkpoint.hashes.get("autov2"))
        add("Model", _safe_name(checkpoint.name))
    vae = record.first_model("vae")
    if vae is not None:
        add("VAE hash", vae.hashes.get("autov2"))
        add("VAE", _safe_name(vae.name))
    if gen.denoise is not None and gen.denoise < 1:
        add("Denoising strength", gen.denoise)
    add("Distilled CFG Scale", gen.guidance)
    if gen.sampler and sampler_from_label(sampler_label(gen.sampler))[0] != gen.sampler:
        add(COMFY_SAMPLER, gen.sampler)  # the label is shared (dpmpp_sde and dpmpp_sde_gpu): keep the name
    if gen.batch_size and gen.batch_size > 1:
        add("Batch size", gen.batch_size)
        add("Batch pos", record.image.batch_index)
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
    raw = {k: v.strip() for k, v in RE_PARAM.findall(last)}
    exact_negative = raw.pop(EXACT_NEGATIVE, None)
    params = {k: _unquote(v) for k, v in raw.items()}
    exact_positive = params.pop(EXACT_PROMPT, None)
    result = Infotext(positive, negative if in_negative else None, params)
    if exact_positive is not None:
        result.positive = exact_positive
    if exact_negative is not None:
        result.negative = None if exact_negative == "null" else _unquote(exact_negative)
    return result


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
        denoise=_number(p.get("Denoising strength"), float),
        width=int(size.group(1)) if size else None,
        height=int(size.group(2)) if size else None,
        guidance=_number(p.get("Distilled CFG Scale"), float),
    )
    record = Record(generation=gen)
    if "Model" in p or "Model hash" in p:
        hashes = {"autov2": p["Model hash"].lower()} if "Model hash" in p else {}
        record.models.append(Model(role="checkpoint", name=p.get("Model", ""), hashes=hashes))
    for name, short in _lora_hashes(p.get("Lora hashes", "")):
        record.models.append(Model(role="lora", name=name, hashes={"autov3": short.lower()}))
    record.provenance.capture_mode = "imported"
    record.provenance.other["imported_from"] = "a1111"
    record.provenance.other["parameters"] = p
    return record


def _lora_hashes(value: str) -> list[tuple[str, str]]:
    out = []
    for item in value.split(","):
        name, sep, short = item.partition(":")
        if sep and name.strip():
            out.append((name.strip(), short.strip()))
    return out

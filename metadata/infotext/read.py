"""Reading infotext by A1111's rules into prompts, parameters and a record (models, passes)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..record import Generation, Model, Pass, Record
from .labels import (
    COMFY_SAMPLER,
    EXACT_NEGATIVE,
    EXACT_PROMPT,
    LORA_TAGS,
    NEGATIVE_PREFIX,
    RE_LORA_TAG,
    RE_PARAM,
    RE_SIZE,
    sampler_from_label,
    scheduler_from_label,
    tag_separator,
)


@dataclass
class Infotext:
    """A parsed infotext: prompts plus the raw parameters (quoted values already decoded)."""

    positive: str
    negative: str | None
    params: dict[str, str] = field(default_factory=dict)
    # Every `<lora:…>` tag of the prompt as written, appended ones included: (name, te, unet) strengths.
    loras: list[tuple[str, float | None, float | None]] = field(default_factory=list)


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
    loras = [_lora_tag(m) for m in RE_LORA_TAG.finditer(positive)]
    appended = params.pop(LORA_TAGS, "")
    if appended.isdigit():  # tags our writer appended for A1111 readers: the prompt itself had none of them
        positive = _without_last_tags(positive, int(appended))
        if exact_positive is not None:  # a prompt A1111's rules split: the tags follow it in the text
            loras = _appended_after(exact_positive, "\n".join(lines), int(appended)) or loras
    result = Infotext(positive, negative if in_negative else None, params, loras)
    if exact_positive is not None:
        result.positive = exact_positive
    if exact_negative is not None:
        result.negative = None if exact_negative == "null" else _unquote(exact_negative)
    return result


def _without_last_tags(prompt: str, count: int) -> str:
    """`prompt` as it was before the writer appended `count` tags (and a separator: labels.tag_separator);
    unchanged if it does not end so."""
    text = prompt
    for index in range(count):
        start = text.rfind("<lora:")
        if start < 0 or not text.endswith(">") or RE_LORA_TAG.fullmatch(text[start:]) is None:
            return prompt
        text = text[:start]
        if index < count - 1:
            if not text.endswith(", "):
                return prompt
            text = text[:-2]
    if not text:
        return text
    separator = tag_separator(text[:-1])
    return text[: -len(separator)] if separator and text.endswith(separator) else prompt


def _appended_after(prompt: str, head: str, count: int) -> list[tuple[str, float | None, float | None]]:
    """The tags of `prompt` and the `count` appended right after it, where the text starts with it."""
    visible = prompt.replace("\x00", "")
    prefix = (visible + tag_separator(visible)).lstrip()  # parse() stripped the whole text first
    if not head.startswith(prefix):
        return []
    appended = list(RE_LORA_TAG.finditer(head, len(prefix)))[:count]
    return [_lora_tag(m) for m in RE_LORA_TAG.finditer(visible)] + [_lora_tag(m) for m in appended]


def _lora_tag(match: re.Match[str]) -> tuple[str, float | None, float | None]:
    """(name, te, unet) of one tag by A1111's rules: positional te then unet (unet defaults to te), or named."""
    positional: list[str] = []
    named: dict[str, str] = {}
    for part in match.group(2).split(":")[1:]:
        key, sep, value = part.partition("=")
        if sep:
            named[key.strip().lower()] = value
        else:
            positional.append(part)
    te = _number(named.get("te", positional[0] if positional else None), float)
    unet = _number(named.get("unet", positional[1] if len(positional) > 1 else None), float)
    if not positional and "te" not in named:
        te = 1.0
    return match.group(1).strip(), te, unet if unet is not None else te


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
    for name, te, unet in info.loras:  # the strengths A1111's tags carry, on the LoRA they name
        lora = next((m for m in record.loras() if m.name == name), None)
        if lora is None:
            lora = Model(role="lora", name=name, hashes=_hex(autov2=civitai.get("lora:" + name)))
            record.models.append(lora)
        lora.strength_model, lora.strength_clip = unet, te
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

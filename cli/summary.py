"""The readable summary of a record that `read` and `parse` print: known fields only, clean numbers."""

from __future__ import annotations

from typing import Any

from ..metadata.record import Model, Pass, Record

DECIMALS = 4


def number(value: Any) -> str:
    """1.0000000000000002 -> 1, 0.75 -> 0.75, 7 -> 7: float noise from the graph's math is not news."""
    if isinstance(value, float):
        text = f"{value:.{DECIMALS}f}".rstrip("0").rstrip(".")
        if text in ("0", "-0") and value != 0:
            return f"{value:.{DECIMALS}g}"  # tiny but not zero: keep its digits
        return "0" if text == "-0" else text
    return str(value)


def fields(*pairs: tuple[str, Any], sep: str = "  ") -> str:
    """`label value` pairs, the unknown (None) ones left out."""
    return sep.join(f"{label} {number(value)}" for label, value in pairs if value is not None)


def joined(*parts: Any, sep: str = "/") -> str | None:
    known = [str(p) for p in parts if p is not None]
    return sep.join(known) if known else None


def size(width: Any, height: Any) -> str | None:
    return f"{width}x{height}" if width is not None and height is not None else None


def strengths(model: Model) -> str:
    """`model 0.75, clip 1`: labelled, since a bare pair reads as a range."""
    return fields(("model", model.strength_model), ("clip", model.strength_clip), sep=", ")


def model_line(model: Model) -> str:
    extras = [strengths(model) if model.role == "lora" else "", model.hashes.get("autov2", "") if model.hashes else ""]
    return "  ".join([f"  {model.role:<10}: {model.name}", *(e for e in extras if e)])


def pass_line(index: int, p: Pass) -> str:
    detail = fields(("steps", p.steps), ("sampler", joined(p.sampler, p.scheduler)), ("denoise", p.denoise))
    return f"  pass {index} (node {p.node_id}): {detail or '-'}"


def media_line(record: Record) -> str | None:
    """What a video or audio file holds, as its record says: codec, size, frames, rate, length, sound."""
    video, audio = record.image.other.get("video"), record.image.other.get("audio")
    if not isinstance(video, dict):
        return _sound(record.image.format, audio) if isinstance(audio, dict) else None
    parts = [
        joined(record.image.format, video.get("codec"), video.get("pix_fmt"), sep=" "),
        size(record.image.width, record.image.height),
        f"{video['frames']} frames" if video.get("frames") is not None else None,
        f"{number(video['fps'])} fps" if video.get("fps") is not None else None,
        f"{number(video['duration_s'])} s" if video.get("duration_s") is not None else None,
        _sound(None, video["audio"]) if isinstance(video.get("audio"), dict) else None,
    ]
    return ", ".join(p for p in parts if p)


def _sound(container: str | None, sound: dict[str, Any]) -> str:
    codec = sound.get("codec")
    parts = [
        joined(container, codec if codec != container else None, sep=" "),
        f"{sound['sample_rate']} Hz" if sound.get("sample_rate") else None,
        f"{sound['channels']} ch" if sound.get("channels") else None,
        f"{number(sound['duration_s'])} s" if sound.get("duration_s") is not None else None,
    ]
    return " ".join(p for p in parts if p)


def summary(record: Record) -> str:
    gen, prov = record.generation, record.provenance
    settings = fields(
        ("seed", gen.seed),
        ("steps", gen.steps),
        ("cfg", gen.cfg),
        ("guidance", gen.guidance),
        ("sampler", joined(gen.sampler, gen.scheduler)),
        ("denoise", gen.denoise),
        ("size", size(gen.width, gen.height)),
        ("frames", gen.frames),
        ("fps", gen.fps),
    )
    lines = [
        f"  prompt    : {gen.positive!r}" if gen.positive is not None else "  prompt    : -",
        f"  negative  : {gen.negative!r}" if gen.negative is not None else "  negative  : -",
        f"  settings  : {settings or '-'}",
    ]
    lines.extend(model_line(model) for model in record.models)
    held = media_line(record)
    if held:
        lines.append(f"  file      : {held}")
    if len(record.passes) > 1:
        lines.extend(pass_line(i, p) for i, p in enumerate(record.passes))
    made_by = " ".join(x for x in (prov.generator.name, prov.generator.version) if x)
    when = f" at {prov.created}" if prov.created else ""
    comfy = f" (ComfyUI {prov.comfyui_version})" if prov.comfyui_version else ""
    lines.append(f"  captured  : {prov.capture_mode} by {made_by}{when}{comfy}")
    graphs = [name for name in ("prompt", "workflow") if getattr(record, name)]
    lines.append(f"  graphs    : {', '.join(graphs) or 'none'}")
    for placement in prov.embedding:
        reason = f" ({placement.reason})" if placement.reason else ""
        lines.append(f"  embedded  : {placement.target} -> {placement.location} [{placement.status}]{reason}")
    lines.extend(f"  warning   : {w}" for w in prov.warnings)
    return "\n".join(lines)

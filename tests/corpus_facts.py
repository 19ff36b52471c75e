"""The facts of a record checked against the corpus' hand-read expectations, one (fact, got, want) at a time.

test_parser_corpus asserts every fact; corpus_score classifies them (right, missing, wrong) for the
leave-rules-out evaluation. A fact is *missing* when the record has nothing there (None, an empty
list, no pass), *wrong* when it has a different value: a miss is allowed to be missing, never wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from conftest import CORPUS

from comfyui_provenance.metadata.record import Record

WORKFLOWS: dict[str, Any] = json.loads((CORPUS / "expected.json").read_text("utf-8"))["workflows"]
SAVE_CLASSES = ("SaveImage", "SaveImageAdvanced", "SaveVideo", "SaveAnimatedWEBP", "SaveAudioAdvanced")

# generation.<key>
GENERATION = (
    "positive",
    "negative",
    "seed",
    "steps",
    "cfg",
    "sampler",
    "scheduler",
    "denoise",
    "width",
    "height",
    "batch_size",
    "guidance",
    "shift",
    "frames",
    "fps",
    "clip_skip",
    "input_images",
)
# generation.other[<key>]: fields of SVD conditioning, LTXVConditioning, DualCFGGuider, audio latents...
GENERATION_OTHER = (
    "image_cfg",
    "min_cfg",
    "conditioning_fps",
    "conditioning_frame_rate",
    "motion_bucket_id",
    "augmentation_level",
    "duration_seconds",
    "lyrics",
)
# generation.api_node.options[<input>]: the API node's own widgets, under their input names.
API_OPTIONS = {
    "aspect_ratio": "aspect_ratio",
    "prompt_upsampling": "prompt_upsampling",
    "raw": "raw",
    "image_prompt_strength": "image_prompt_strength",
    "resolution": "resolution",
    "magic_prompt_option": "magic_prompt_option",
    "num_images": "num_images",
    "rendering_speed": "rendering_speed",
    "mode": "mode",
    "duration": "duration",
    "system_prompt": "system_prompt",
    "response_modalities": "response_modalities",
    "n": "n",
    "size": "model.size",
    "background": "model.background",
    "quality": "model.quality",
    "size_preset": "model.size_preset",
}
STAGE_FIELDS = {
    "seed": "seed",
    "steps": "steps",
    "cfg": "cfg",
    "sampler": "sampler",
    "scheduler": "scheduler",
    "denoise": "denoise",
    "start_at_step": "start_step",
    "end_at_step": "end_step",
    "add_noise": "add_noise",
    "positive": "positive",
    "negative": "negative",
    "checkpoint": "model",
    "model": "model",
}
NOT_CAPTURED = {
    "gligen_boxes": "GLIGEN box geometry is conditioning detail of one node, not a generation setting; "
    "the GLIGEN model itself is checked (gligen_model)",
}
CONTROLNET_NOT_CAPTURED = {
    "strength": "per-application ControlNet strength/range are not in record 1; the ControlNet model is",
    "start_percent": "as strength",
    "end_percent": "as strength",
    "image": "the control image is listed in generation.input_images, not tied to its ControlNet",
}
MODEL_KEYS = (
    "checkpoint",
    "unet",
    "clip",
    "vae",
    "refiner_checkpoint",
    "upscale_model",
    "clip_vision",
    "gligen_model",
    "embeddings",
)


@dataclass(frozen=True)
class Fact:
    """One expected value and what the record has there; `got` is None when the record has nothing."""

    name: str
    got: Any
    want: Any


class Unchecked(KeyError):
    """An expected key that is neither compared nor listed as not captured."""


def save_node(api: dict[str, Any]) -> str:
    return next(k for k, v in api.items() if v.get("class_type") in SAVE_CLASSES)


def _names(rec: Record, role: str) -> list[str]:
    return [m.name for m in rec.models if m.role == role]


def _first(rec: Record, role: str) -> str | None:
    found = _names(rec, role)
    return found[0] if found else None


def _model(rec: Record, key: str, want: Any) -> Any:
    if key == "checkpoint":
        return _first(rec, "checkpoint")
    if key == "unet":
        return _names(rec, "unet") if isinstance(want, list) else _first(rec, "unet")
    if key == "clip":
        return _names(rec, "clip")
    if key == "vae":
        return _first(rec, "vae")
    if key == "refiner_checkpoint":
        return rec.passes[-1].model if rec.passes else None
    if key == "upscale_model":
        return _first(rec, "upscaler")
    if key == "clip_vision":
        return _first(rec, "clip_vision")
    if key == "gligen_model":
        return _first(rec, "gligen")
    if key == "embeddings":
        return _names(rec, "embedding")
    raise KeyError(key)


def facts(name: str, rec: Record, want: dict[str, Any]) -> Iterator[Fact]:
    """Every expected value of workflow `name` with the record's; Unchecked for a key nobody handles."""
    gen = rec.generation
    api = gen.api_node or {}
    base = rec.passes[0] if rec.passes else None
    for key, value in want.items():
        if key in GENERATION:
            yield Fact(f"generation.{key}", getattr(gen, key), value)
        elif key in GENERATION_OTHER:
            yield Fact(f"generation.{key}", gen.other.get(key), value)
        elif key in API_OPTIONS:
            yield Fact(f"api_node.options[{API_OPTIONS[key]}]", api.get("options", {}).get(API_OPTIONS[key]), value)
        elif key == "api_node":
            yield Fact("api_node.class_type", api.get("class_type"), value)
        elif key == "model":
            yield Fact("passes[0].model", base.model if base else None, value)
        elif key in ("final_width", "final_height"):
            yield Fact(f"passes[-1].{key[6:]}", getattr(rec.passes[-1], key[6:]) if rec.passes else None, value)
        elif key in MODEL_KEYS:
            yield Fact(key, _model(rec, key, value), value)
            if key in ("checkpoint", "unet") and isinstance(value, str):
                yield Fact(f"passes[0].model ({key})", base.model if base else None, value)
        elif key == "loras":
            got = sorted((m.name, m.strength_model, m.strength_clip) for m in rec.loras())
            wanted = sorted((w["name"], w["strength_model"], w.get("strength_clip")) for w in value)
            yield Fact("loras", [list(g) for g in got], [list(w) for w in wanted])
        elif key == "controlnets":
            yield Fact("controlnets", _names(rec, "controlnet"), [c["name"] for c in value])
            for net in value:
                assert set(net) - {"name"} <= set(CONTROLNET_NOT_CAPTURED), net
        elif key == "aux_models":
            present = {m.name for m in rec.models}
            yield Fact("aux_models", sorted(v for v in value.values() if v in present), sorted(value.values()))
        elif key == "stages":
            yield from _stages(rec, value)
        elif key not in NOT_CAPTURED:
            raise Unchecked(f"{name}: expected key {key!r} is neither compared nor listed in NOT_CAPTURED")


def _stages(rec: Record, stages: list[dict[str, Any]]) -> Iterator[Fact]:
    got_ids = [p.node_id for p in rec.passes]
    yield Fact("passes", got_ids or None, [s["node"] for s in stages])
    by_id = {p.node_id: p for p in rec.passes}
    for stage in stages:
        got = by_id.get(stage["node"])
        for key, value in stage.items():
            where = f"pass {stage['node']}.{key}"
            if key in STAGE_FIELDS:
                yield Fact(where, getattr(got, STAGE_FIELDS[key]) if got else None, value)
            elif key == "lora":
                names = [lora["name"] for lora in got.loras] if got else []
                yield Fact(where, value if value in names else (names or None), value)
            elif key == "upscale":
                yield Fact(where, _upscale(got.other.get("upscale") if got else None), _upscale_text(value))
            elif key != "node":
                raise Unchecked(f"{where}: stage key {key!r} is not compared")


def _upscale(got: dict[str, Any] | None) -> Any:
    if not got:
        return None
    return (got.get("class_type"), got.get("method"), got.get("width"), got.get("height"))


def _upscale_text(text: str) -> tuple[str, str, int, int]:
    """Expected upscale notes read like 'LatentUpscale nearest-exact to 768x768'."""
    size = next(w for w in text.split() if "x" in w and w.replace("x", "").isdigit())
    width, height = (int(v) for v in size.split("x"))
    words = text.split()
    return (words[0], words[1], width, height)


def same(got: Any, want: Any) -> bool:
    """Equal, numbers within a tolerance (templates store 5.000000000000001 for 5)."""
    if isinstance(want, bool) or isinstance(got, bool) or want is None:
        return bool(got == want)
    if isinstance(want, (int, float)):
        return isinstance(got, (int, float)) and abs(got - want) <= max(1e-9, 1e-6 * abs(want))
    if isinstance(want, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(got) == len(want) and all(map(same, got, want))
    return bool(got == want)


def missing(got: Any, want: Any = None) -> bool:
    """The record has nothing there (a value it could not know is missing, never wrong), or, for a list
    fact, the expected items with holes where a part was not known (a LoRA without its strength)."""
    if got is None or got == [] or got == {}:
        return True
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)) and len(got) == len(want):
        return all(same(g, w) or missing(g, w) for g, w in zip(got, want, strict=True))
    return False

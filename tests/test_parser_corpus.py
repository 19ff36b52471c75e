"""The static parser against every hand-read expectation of the 50-workflow corpus.

Each key of each workflow's `expected` block is either compared with the record (numbers with a
tolerance: templates store 5.000000000000001 for 5) or listed in NOT_CAPTURED with the reason;
a key that is neither fails, so a new expectation cannot be silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CORPUS, corpus_names, deadline, load_workflow

from comfyui_provenance.metadata.parser.parse import parse
from comfyui_provenance.metadata.record import COMPOSITE, Record

SAVE_CLASSES = ("SaveImage", "SaveImageAdvanced", "SaveVideo", "SaveAnimatedWEBP", "SaveAudioAdvanced")
WORKFLOWS: dict[str, Any] = json.loads((CORPUS / "expected.json").read_text("utf-8"))["workflows"]

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


def save_node(api: dict[str, Any]) -> str:
    return next(k for k, v in api.items() if v.get("class_type") in SAVE_CLASSES)


def parsed(name: str) -> Record:
    api, ui = load_workflow(name)
    with deadline(5):
        return parse(api, save_node(api), ui)


def same(got: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool) or want is None:
        return got == want
    if isinstance(want, (int, float)):
        return isinstance(got, (int, float)) and got == pytest.approx(want, rel=1e-6, abs=1e-9)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same, got, want))
    return bool(got == want)


def names(rec: Record, role: str) -> list[str]:
    return [m.name for m in rec.models if m.role == role]


def first(rec: Record, role: str) -> str | None:
    found = names(rec, role)
    return found[0] if found else None


def check_models(rec: Record, key: str, want: Any) -> Any:
    """The record's value for a model-related expectation."""
    if key == "checkpoint":
        return first(rec, "checkpoint")
    if key == "unet":
        return names(rec, "unet") if isinstance(want, list) else first(rec, "unet")
    if key == "clip":
        return names(rec, "clip")
    if key == "vae":
        return first(rec, "vae")
    if key == "refiner_checkpoint":
        return rec.passes[-1].model
    if key == "upscale_model":
        return first(rec, "upscaler")
    if key == "clip_vision":
        return first(rec, "clip_vision")
    if key == "gligen_model":
        return first(rec, "gligen")
    if key == "embeddings":
        return names(rec, "embedding")
    raise KeyError(key)


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


def compare(name: str, rec: Record, want: dict[str, Any], problems: list[str]) -> int:
    """Compare every expected key; returns how many values were checked."""
    checked = 0
    gen = rec.generation
    api = gen.api_node or {}

    def expect(what: str, got: Any, value: Any) -> None:
        nonlocal checked
        checked += 1
        if not same(got, value):
            problems.append(f"{name}: {what}: got {got!r}, want {value!r}")

    for key, value in want.items():
        if key in GENERATION:
            expect(f"generation.{key}", getattr(gen, key), value)
        elif key in GENERATION_OTHER:
            expect(f"generation.{key}", gen.other.get(key), value)
        elif key in API_OPTIONS:
            expect(f"api_node.options[{API_OPTIONS[key]}]", api.get("options", {}).get(API_OPTIONS[key]), value)
        elif key == "api_node":
            expect("api_node.class_type", api.get("class_type"), value)
        elif key == "model":
            expect("passes[0].model", rec.passes[0].model if rec.passes else None, value)
        elif key in ("final_width", "final_height"):
            expect(f"passes[-1].{key[6:]}", getattr(rec.passes[-1], key[6:]), value)
        elif key in MODEL_KEYS:
            expect(key, check_models(rec, key, value), value)
            if key in ("checkpoint", "unet") and isinstance(value, str):
                expect(f"passes[0].model ({key})", rec.passes[0].model, value)
        elif key == "loras":
            got = sorted((m.name, m.strength_model, m.strength_clip) for m in rec.loras())
            wanted = sorted((w["name"], w["strength_model"], w.get("strength_clip")) for w in value)
            expect("loras", [list(g) for g in got], [list(w) for w in wanted])
        elif key == "controlnets":
            expect("controlnets", names(rec, "controlnet"), [c["name"] for c in value])
            for net in value:
                assert set(net) - {"name"} <= set(CONTROLNET_NOT_CAPTURED), net
        elif key == "aux_models":
            present = {m.name for m in rec.models}
            expect("aux_models", sorted(v for v in value.values() if v in present), sorted(value.values()))
        elif key == "stages":
            checked += compare_stages(name, rec, value, problems)
        elif key not in NOT_CAPTURED:
            problems.append(f"{name}: expected key {key!r} is neither compared nor listed in NOT_CAPTURED")
    return checked


def compare_stages(name: str, rec: Record, stages: list[dict[str, Any]], problems: list[str]) -> int:
    checked = 1
    got_ids = [p.node_id for p in rec.passes]
    if got_ids != [s["node"] for s in stages]:
        problems.append(f"{name}: passes {got_ids} != stages {[s['node'] for s in stages]}")
        return checked
    for stage, got in zip(stages, rec.passes, strict=True):
        for key, value in stage.items():
            checked += 1
            where = f"{name}: pass {got.node_id}.{key}"
            if key in STAGE_FIELDS:
                if not same(getattr(got, STAGE_FIELDS[key]), value):
                    problems.append(f"{where}: got {getattr(got, STAGE_FIELDS[key])!r}, want {value!r}")
            elif key == "lora":
                if value not in [lora["name"] for lora in got.loras]:
                    problems.append(f"{where}: {value!r} not in {got.loras}")
            elif key == "upscale":
                check_upscale(where, got.other.get("upscale"), value, problems)
            elif key != "node":
                problems.append(f"{where}: stage key {key!r} is not compared")
    return checked


def check_upscale(where: str, got: dict[str, Any] | None, text: str, problems: list[str]) -> None:
    """Expected upscale notes read like 'LatentUpscale nearest-exact to 768x768'."""
    if not got:
        problems.append(f"{where}: no upscale recorded")
        return
    size = next(w for w in text.split() if "x" in w and w.replace("x", "").isdigit())
    width, height = (int(v) for v in size.split("x"))
    words = text.split()
    wanted = (words[0], words[1], width, height)
    if (got.get("class_type"), got.get("method"), got.get("width"), got.get("height")) != wanted:
        problems.append(f"{where}: upscale {got} does not match {text!r}")


@pytest.mark.parametrize("name", corpus_names())
def test_every_expected_field(name: str) -> None:
    problems: list[str] = []
    checked = compare(name, parsed(name), WORKFLOWS[name]["expected"], problems)
    assert checked >= 8
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", corpus_names())
def test_no_warnings_and_every_pass_named(name: str) -> None:
    rec = parsed(name)
    assert not rec.provenance.warnings
    assert all(p.node_id in load_workflow(name)[0] for p in rec.passes)
    assert rec.passes, "every corpus workflow has a sampler or an API node"


UNRESOLVED_BY_DESIGN = {
    # Width and height come from GetImageSize of the (scaled) input image: known only at run time.
    "image_flux2": {("68:47", "width"), ("68:47", "height")},
}


@pytest.mark.parametrize("name", corpus_names())
def test_unresolved_only_where_the_graph_needs_runtime(name: str) -> None:
    rec = parsed(name)
    got = {(u["node_id"], u["input"]) for u in rec.provenance.other.get("unresolved", [])}
    assert got == UNRESOLVED_BY_DESIGN.get(name, set())


def test_lotus_depth_sampler_is_auxiliary_not_a_pass() -> None:
    rec = parsed("flux_depth_lora_example")
    assert [p.node_id for p in rec.passes] == ["150:3"]
    assert rec.provenance.other["auxiliary_samplers"] == ["150:41:92"]


@pytest.mark.parametrize(
    ("name", "composite"),
    [("image2image", True), ("inpaint_example", True), ("image_to_video_wan", True), ("default", False)],
)
def test_input_pixels_make_a_composite(name: str, composite: bool) -> None:
    assert (parsed(name).provenance.digital_source_type == COMPOSITE) is composite


def test_hires_pass_records_its_upscale() -> None:
    rec = parsed("hiresfix_latent_workflow")
    assert "upscale" not in rec.passes[0].other
    up = rec.passes[1].other["upscale"]
    assert up is not None
    assert (up["class_type"], up["method"], up["width"], up["height"]) == ("LatentUpscale", "nearest-exact", 768, 768)


def test_switched_off_lora_is_not_recorded_anywhere() -> None:
    rec = parsed("image_qwen_image")
    assert rec.loras() == []
    assert all(not p.loras for p in rec.passes)


def summary() -> dict[str, tuple[int, int]]:
    """Per family: (workflows, values checked) - for the report, `python -m test_parser_corpus`."""
    out: dict[str, tuple[int, int]] = {}
    for name in corpus_names():
        family = WORKFLOWS[name]["family"]
        problems: list[str] = []
        checked = compare(name, parsed(name), WORKFLOWS[name]["expected"], problems)
        count, total = out.get(family, (0, 0))
        out[family] = (count + 1, total + checked - len(problems))
    return out


if __name__ == "__main__":
    show: Callable[[str], None] = print
    for family, (count, values) in sorted(summary().items()):
        show(f"{family}: {count} workflow(s), {values} values match")


@pytest.mark.parametrize("name", corpus_names())
def test_record_matches_the_published_schema(name: str) -> None:
    from importlib import resources

    from jsonschema import Draft202012Validator

    text = resources.files("comfyui_provenance.metadata").joinpath("schema/record-1.schema.json").read_text("utf-8")
    errors = list(Draft202012Validator(json.loads(text)).iter_errors(json.loads(parsed(name).to_json())))
    assert not errors, [e.message for e in errors]

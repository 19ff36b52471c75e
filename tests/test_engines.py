"""Engines: family detection on fakes of ComfyUI's MODEL, the A1111 sampler table, plan() and its messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_engines_fakes import COMFY_SAMPLERS, COMFY_SCHEDULERS, fake_model

from comfyui_provenance import engines
from comfyui_provenance.engines import EngineError, Family, Plan

HIGH = "wan2.2_t2v_high_noise_14B_fp16.safetensors"
LOW = "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"


def make_plan(family: Family, task: str, given: dict[str, Any] | None = None, **kwargs: Any) -> Plan:
    kwargs.setdefault("presets", engines.load_presets())
    return engines.plan(family, task, given or {}, samplers=COMFY_SAMPLERS, schedulers=COMFY_SCHEDULERS, **kwargs)


def refused(family: Family, task: str, given: dict[str, Any] | None = None, **kwargs: Any) -> str:
    with pytest.raises(EngineError) as caught:
        make_plan(family, task, given, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"{family.name} {task}") or message.startswith(family.name), message
    assert "\n" not in message
    return message


# --- detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "name", "engine"),
    [
        ("sd15", None, "sd15"),
        ("sdxl", None, "sdxl"),
        ("sdxl_refiner", None, "sdxl_refiner"),
        ("flux", None, "flux"),
        ("flux_schnell", None, "flux_schnell"),
        ("wan22_5b", "wan2.2_ti2v_5B_fp16.safetensors", "wan22_5b"),
        ("wan21_t2v", "wan2.1_t2v_14B_fp16.safetensors", "wan21_14b"),
        ("wan21_i2v", "wan2.1_i2v_480p_14B_fp16.safetensors", "wan21_14b"),
        ("wan21_t2v", None, "wan21_14b"),
        ("wan21_t2v", HIGH, "wan22_14b"),
        ("wan21_i2v", LOW, "wan22_14b"),
        ("wan21_t2v", "models/Wan2_2-T2V-A14B-HighNoise-Q8.gguf", "wan22_14b"),
        ("wan21_1_3b", "wan2.1_t2v_1.3B_fp16.safetensors", "wan21_1_3b"),
    ],
)
def test_detect_by_model_config_class_and_file_name(key: str, name: str | None, engine: str) -> None:
    family = engines.detect(fake_model(key), name)
    assert family.name == engine
    assert family.facts.config_class == fake_model(key).model.model_config.__class__.__name__


def test_wan22_14b_by_header_outranks_file_name() -> None:
    header = {"__metadata__": {"modelspec.title": "Wan2.2 T2V A14B high noise"}, "blocks.0.weight": {"shape": [1]}}
    family = engines.detect(fake_model("wan21_t2v"), "my_video_model.safetensors", header)
    assert family.name == "wan22_14b"
    assert "header" in family.describe()["evidence"]
    # a header that says 2.1 wins over a file renamed to look like 2.2
    renamed = engines.detect(fake_model("wan21_t2v"), HIGH, {"__metadata__": {"name": "wan2.1 t2v 14B"}})
    assert renamed.name == "wan21_14b"
    # the bare metadata mapping works too
    assert engines.detect(fake_model("wan21_i2v"), None, {"title": "wan2_2 i2v"}).name == "wan22_14b"


def test_wan22_expert_from_file_name() -> None:
    assert engines.detect(fake_model("wan21_t2v"), HIGH).describe()["expert"] == "high_noise"
    assert engines.detect(fake_model("wan21_i2v"), LOW).describe()["expert"] == "low_noise"


def test_unknown_model_is_generic_and_allows_everything() -> None:
    family = engines.detect(fake_model("sd3"))
    assert family.name == "generic (SD3)"
    assert set(family.allowed_tasks()) == set(engines.TASKS)
    plan = make_plan(family, "txt2img", {"cfg": 4.5, "guidance": 3.0, "shift": 3.0})
    assert plan.preset is None
    assert plan.params["cfg"] == 4.5 and plan.params["guidance"] == 3.0
    assert {e["preset"] for e in plan.applied_preset_patch} == {"defaults:generic"}
    assert engines.detect(object()).name == "generic (unknown)"


def test_families_are_specific_first() -> None:
    order = [family.engine for family in engines.FAMILIES]
    assert order[-1] == "generic"
    assert order.index("sdxl_refiner") < order.index("sdxl")
    assert order.index("flux_schnell") < order.index("flux")
    assert order.index("wan21_1_3b") < order.index("wan22_14b") < order.index("wan21_14b")
    assert tuple(engines.MODE_TABLE) == engines.MODES


def test_wan14b_task_follows_the_checkpoint() -> None:
    t2v = engines.detect(fake_model("wan21_t2v"), HIGH)
    message = refused(t2v, "img2vid")
    assert "allowed: txt2vid" in message
    message = refused(engines.detect(fake_model("sd15")), "txt2vid")
    assert "allowed: txt2img, img2img" in message
    assert "allowed: txt2img, img2img, txt2vid, img2vid" in refused(engines.detect(fake_model("sd15")), "painting")


# --- A1111 sampler names -----------------------------------------------------------------------


def test_a1111_table_maps_into_comfyui() -> None:
    table = engines.a1111_table()
    for label in table.labels:
        found = table.sampler(label)
        assert found is not None and found[0] in COMFY_SAMPLERS, label
        for suffix in ("Karras", "Exponential"):
            combined = table.sampler(f"{label} {suffix}")
            assert combined == (found[0], suffix.lower()), label
    assert set(table.schedulers.values()) <= set(COMFY_SCHEDULERS)


@pytest.mark.parametrize(
    ("given", "sampler", "scheduler"),
    [
        ("DPM++ 2M Karras", "dpmpp_2m", "karras"),
        ("Euler a", "euler_ancestral", "normal"),
        ("euler  A", "euler_ancestral", "normal"),
        ("k_dpmpp_2m", "dpmpp_2m", "normal"),
        ("DPM++ 2M SDE Exponential", "dpmpp_2m_sde", "exponential"),
        ("DPM++ 2M SDE Heun", "dpmpp_2m_sde_heun", "normal"),
        ("UniPC", "uni_pc", "normal"),
        ("dpmpp_2m_karras", "dpmpp_2m", "karras"),
        ("dpmpp_2m_sde_gpu_exponential", "dpmpp_2m_sde_gpu", "exponential"),
        ("dpmpp_2m", "dpmpp_2m", "normal"),
    ],
)
def test_sampler_names_map(given: str, sampler: str, scheduler: str) -> None:
    plan = make_plan(engines.detect(fake_model("sd15")), "txt2img", {"sampler_name": given}, preset="none")
    assert (plan.sampler_in, plan.sampler_effective, plan.scheduler_effective) == (given, sampler, scheduler)
    assert plan.scheduler_in is None


def test_a1111_schedule_label_and_explicit_scheduler() -> None:
    sd15 = engines.detect(fake_model("sd15"))
    plan = make_plan(sd15, "txt2img", {"sampler_name": "Euler a", "scheduler": "Karras"})
    assert (plan.sampler_effective, plan.scheduler_effective, plan.scheduler_in) == (
        "euler_ancestral",
        "karras",
        "Karras",
    )
    plan = make_plan(sd15, "txt2img", {"sampler_name": "DPM++ 2M Karras", "scheduler": "karras"})
    assert plan.scheduler_effective == "karras"
    message = refused(sd15, "txt2img", {"sampler_name": "DPM++ 2M Karras", "scheduler": "exponential"})
    assert "names scheduler karras" in message


def test_unknown_sampler_and_scheduler_list_the_allowed_ones() -> None:
    sd15 = engines.detect(fake_model("sd15"))
    message = refused(sd15, "txt2img", {"sampler_name": "PLMS"})
    assert "unknown sampler 'PLMS'" in message
    assert all(name in message for name in COMFY_SAMPLERS)
    assert "DPM++ 2M" in message
    message = refused(sd15, "txt2img", {"scheduler": "AYS"})
    assert all(name in message for name in COMFY_SCHEDULERS)


def test_live_lists_rule() -> None:
    """Packs extend ComfyUI's lists; a name missing from this ComfyUI is refused, even a mapped one."""
    sd15 = engines.detect(fake_model("sd15"))
    extended = [*COMFY_SAMPLERS, "my_pack_sampler"]
    plan = engines.plan(
        sd15, "txt2img", {"sampler_name": "my_pack_sampler"}, samplers=extended, schedulers=COMFY_SCHEDULERS
    )
    assert plan.sampler_effective == "my_pack_sampler"
    with pytest.raises(EngineError, match="this ComfyUI lacks; allowed: euler"):
        engines.plan(sd15, "txt2img", {"sampler_name": "Euler a"}, samplers=["euler"], schedulers=COMFY_SCHEDULERS)


# --- plan: fill-only, record ------------------------------------------------------------------------


def test_presets_fill_only_empty_keys() -> None:
    flux = engines.detect(fake_model("flux"))
    plan = make_plan(flux, "txt2img", {"seed": 7, "steps": 28, "cfg": None, "sampler_name": None, "guidance": 2.5})
    assert plan.params["steps"] == 28 and plan.params["guidance"] == 2.5 and plan.params["seed"] == 7
    assert plan.params["cfg"] == 1.0 and plan.sampler_effective == "euler" and plan.scheduler_effective == "simple"
    filled = {entry["key"]: entry for entry in plan.applied_preset_patch}
    assert set(filled) == {"cfg", "sampler_name", "scheduler", "denoise"}
    assert filled["cfg"] == {"key": "cfg", "value": 1.0, "preset": "flux-txt2img-normal"}
    assert filled["denoise"]["preset"] == "defaults:flux"
    assert plan.preset == "flux-txt2img-normal"


def test_nothing_filled_when_everything_given() -> None:
    sd15 = engines.detect(fake_model("sd15"))
    given = {"seed": 1, "steps": 12, "cfg": 5.5, "sampler_name": "heun", "scheduler": "beta", "denoise": 1.0}
    plan = make_plan(sd15, "txt2img", given)
    assert plan.applied_preset_patch == []
    assert plan.params == given


def test_named_preset_and_its_mode() -> None:
    sdxl = engines.detect(fake_model("sdxl"))
    plan = make_plan(sdxl, "txt2img", {}, preset="sdxl-txt2img-lightning")
    assert (plan.mode, plan.params["steps"], plan.params["cfg"]) == ("lightning", 4, 1.0)
    assert "mode lightning from preset sdxl-txt2img-lightning" in plan.notes
    plan = make_plan(sdxl, "txt2img", {}, mode="turbo")
    assert (plan.preset, plan.params["steps"], plan.sampler_effective) == ("sdxl-txt2img-turbo", 1, "euler_ancestral")
    message = refused(sdxl, "txt2img", {}, preset="sdxl-txt2img-lightning", mode="lcm")
    assert "is for lightning mode, not lcm" in message
    message = refused(sdxl, "txt2img", {}, preset="flux-txt2img-normal")
    assert "is for flux txt2img" in message and "sdxl-txt2img-normal" in message
    message = refused(sdxl, "txt2img", {}, preset="nope")
    assert "unknown preset 'nope'; allowed: none, sdxl-txt2img-lcm" in message


def test_mode_ignored_with_reason() -> None:
    flux = engines.detect(fake_model("flux"))
    plan = make_plan(flux, "txt2img", {}, mode="lightning")
    assert plan.mode == "normal"
    assert plan.mode_ignored_reason == "flux has no lightning mode (its modes: normal); sampling as normal"
    assert "allowed: normal, lcm, turbo, lightning" in refused(flux, "txt2img", {}, mode="hyper")


def test_wan22_14b_split_and_boundary() -> None:
    high = engines.detect(fake_model("wan21_t2v"), HIGH)
    plan = make_plan(high, "txt2vid", {"frames": 81, "width": 832, "height": 480})
    assert plan.params["seed"] == 0
    assert (plan.params["steps"], plan.params["split"], plan.params["boundary"], plan.params["cfg"]) == (
        20,
        10,
        None,
        3.5,
    )
    assert (plan.params["shift"], plan.sampler_effective, plan.scheduler_effective) == (5.0, "euler", "simple")
    assert (plan.params["frames"], plan.params["width"], plan.params["height"]) == (81, 832, 480)
    by_boundary = make_plan(high, "txt2vid", {"boundary": 0.875})
    assert (by_boundary.params["split"], by_boundary.params["boundary"]) == (None, 0.875)
    assert "split" not in {entry["key"] for entry in by_boundary.applied_preset_patch}
    lightning = make_plan(high, "txt2vid", {}, mode="lightning")
    assert (lightning.params["steps"], lightning.params["split"], lightning.params["cfg"]) == (4, 2, 1.0)
    i2v = engines.detect(fake_model("wan21_i2v"), LOW)
    assert make_plan(i2v, "img2vid", {}).preset == "wan22_14b-img2vid-normal"
    no_presets = make_plan(high, "txt2vid", {"steps": 30}, presets=None)
    assert no_presets.params["split"] == 15


def test_plan_to_dict_is_json() -> None:
    plan = make_plan(engines.detect(fake_model("wan21_t2v"), HIGH), "txt2vid", {"sampler_name": "Euler"})
    data = plan.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == [
        "engine", "task", "mode", "preset", "params", "advice", "sampler_in", "scheduler_in", "sampler_effective",
        "scheduler_effective", "applied_preset_patch", "mode_ignored_reason", "notes", "model",
    ]  # fmt: skip
    assert data["model"]["config_class"] == "WAN21_T2V"
    assert data["params"]["shift"] == 5.0 and data["advice"] == {}
    plan.set_aside(("shift", "guidance"), "the model's own shift applies")
    moved = plan.to_dict()
    assert "shift" not in moved["params"] and moved["advice"] == {"shift": 5.0}
    assert moved["notes"][-1] == "shift 5.0: advice only, the model's own shift applies"

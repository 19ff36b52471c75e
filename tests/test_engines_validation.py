"""Engines: every refusal names engine and task and shows what is allowed; warnings go to notes."""

from __future__ import annotations

from typing import Any

import pytest
from test_engines_fakes import COMFY_SAMPLERS, COMFY_SCHEDULERS, fake_model

from comfyui_provenance import engines
from comfyui_provenance.engines import EngineError

HIGH = "wan2.2_t2v_high_noise_14B_fp16.safetensors"


def refusal(key: str, task: str, given: dict[str, Any], name: str | None = None, **kwargs: Any) -> str:
    family = engines.detect(fake_model(key), name)
    with pytest.raises(EngineError) as caught:
        engines.plan(
            family,
            task,
            given,
            samplers=COMFY_SAMPLERS,
            schedulers=COMFY_SCHEDULERS,
            presets=engines.load_presets(),
            **kwargs,
        )
    message = str(caught.value)
    assert message.startswith(f"{family.name} {task}: "), message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("key", "task", "given", "kwargs", "expected"),
    [
        ("wan21_t2v", "txt2vid", {"frames": 80}, {}, "4k+1 (1, 5, 9, … 77, 81, 85 …), got 80: nearest 77 or 81"),
        ("wan21_t2v", "txt2vid", {"frames": 0}, {}, "frames must be int [1, 16384]"),
        ("wan21_t2v", "txt2vid", {"width": 830}, {}, "width must be int [16, 16384], a multiple of 16, got 830"),
        ("wan21_t2v", "txt2vid", {"height": 8}, {}, "height must be int [16, 16384], a multiple of 16, got 8"),
        ("wan22_5b", "txt2vid", {"height": 720}, {}, "height must be int [32, 16384], a multiple of 32, got 720"),
        ("flux", "txt2img", {"cfg": 3.5}, {}, "cfg must be 1 (got 3.5): Flux dev is guidance-distilled, use guidance"),
        ("flux", "txt2img", {"guidance": 120}, {}, "guidance must be float [0, 100], got 120"),
        ("flux_schnell", "txt2img", {"cfg": 2}, {}, "cfg must be 1 (got 2.0): Flux schnell is distilled"),
        ("flux_schnell", "txt2img", {"guidance": 2}, {}, "no parameter 'guidance'; allowed: seed, steps, cfg"),
        ("sd15", "txt2img", {"guidance": 3}, {}, "no parameter 'guidance'; allowed: seed, steps, cfg, sampler_name"),
        ("sdxl", "txt2img", {"steps": 30}, {"mode": "lightning"}, "lightning mode: steps must be int [2, 8], got 30"),
        ("sdxl", "txt2img", {"cfg": 7}, {"mode": "lightning"}, "lightning mode: cfg must be float [0, 2], got 7"),
        ("sdxl", "txt2img", {"steps": 8}, {"mode": "turbo"}, "turbo mode: steps must be int [1, 4], got 8"),
        ("sdxl", "txt2img", {"cfg": 2}, {"mode": "turbo"}, "turbo mode: cfg must be float [0, 1.5], got 2"),
        ("sd15", "txt2img", {"sampler_name": "euler"}, {"mode": "lcm"}, "lcm mode: sampler must be lcm, got euler"),
        ("sd15", "txt2img", {"cfg": 3}, {"mode": "lcm"}, "lcm mode: cfg must be float [1, 2], got 3"),
        ("sd15", "txt2img", {"steps": 12}, {"mode": "lcm"}, "lcm mode: steps must be int [2, 8], got 12"),
        ("sd15", "txt2img", {"denoise": 0.5}, {}, "1.0 for txt2img, got 0.5 (a partial denoise needs img2img)"),
        ("wan21_t2v", "txt2vid", {"denoise": 0.5}, {}, "1.0 for txt2vid, got 0.5 (a partial denoise needs img2vid)"),
        ("sd15", "img2img", {"denoise": 0}, {}, "denoise must be float (0, 1], got 0"),
        ("sd15", "img2img", {"denoise": 1.5}, {}, "denoise must be float (0, 1], got 1.5"),
        ("sd15", "txt2img", {"steps": 0}, {}, "steps must be int [1, 10000], got 0"),
        ("sd15", "txt2img", {"steps": 2.5}, {}, "steps must be int [1, 10000], got 2.5"),
        ("sd15", "txt2img", {"seed": -1}, {}, "seed must be int [0, 18446744073709551615], got -1"),
        ("sd15", "txt2img", {"cfg": "high"}, {}, "cfg must be float [0, 100], got 'high'"),
    ],
)  # fmt: skip
def test_refusals_list_allowed_values(key: str, task: str, given: dict[str, Any], kwargs: Any, expected: str) -> None:
    assert expected in refusal(key, task, given, HIGH if key == "wan21_t2v" else None, **kwargs)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"split": 20}, "split must be a step in 1..19 for 20 steps, got 20"),
        ({"split": 0}, "split must be int [1, 10000], got 0"),
        ({"boundary": 1.0}, "boundary must be float (0, 1), got 1"),
        ({"boundary": 0.0}, "boundary must be float (0, 1), got 0"),
        ({"boundary": 0.5, "split": 3}, "set one of split, boundary, not split and boundary"),
        ({"steps": 1}, "steps must be 2 or more to split between two experts, got 1"),
    ],
)
def test_wan22_14b_split_rules(given: dict[str, Any], expected: str) -> None:
    assert expected in refusal("wan21_t2v", "txt2vid", given, HIGH)


def test_preset_filled_value_is_named_in_the_refusal() -> None:
    """A user preset that splits at 10 without saying its own steps, against the user's 8 steps (a bundled
    preset's split moves with the steps instead): the message says where the 10 came from."""
    preset = engines.parse_preset(
        {"engine": "wan22_14b", "task": "txt2vid", "mode": "normal", "name": "my-split", "values": {"split": 10}},
        "my-split.json",
    )
    family = engines.detect(fake_model("wan21_t2v"), HIGH)
    with pytest.raises(EngineError) as caught:
        engines.plan(
            family,
            "txt2vid",
            {"steps": 8},
            preset="my-split",
            samplers=COMFY_SAMPLERS,
            schedulers=COMFY_SCHEDULERS,
            presets=engines.PresetStore({preset.name: preset}),
        )
    assert "split must be a step in 1..7 for 8 steps, got 10 (from my-split)" in str(caught.value)


def test_warnings_go_to_notes() -> None:
    def notes(key: str, given: dict[str, Any], **kwargs: Any) -> list[str]:
        family = engines.detect(fake_model(key))
        plan = engines.plan(family, "txt2img", given, samplers=COMFY_SAMPLERS, schedulers=COMFY_SCHEDULERS, **kwargs)
        return plan.notes

    assert "sampler lcm outside lcm mode: it expects an LCM model or LoRA" in notes("sd15", {"sampler_name": "lcm"})
    assert notes("sd15", {"sampler_name": "lcm", "cfg": 1.5, "steps": 6}, mode="lcm") == []
    karras = notes("flux", {"scheduler": "karras"})
    assert "scheduler karras on a flow model: simple, beta or normal are usual" in karras


def test_param_spec_descriptions() -> None:
    spec = engines.ParamSpec("x", "float", 0.0, 1.0, exclusive_minimum=True, exclusive_maximum=True)
    assert spec.describe() == "float (0, 1)"
    assert spec.check(float("nan")) is not None and spec.check(True) is not None
    assert engines.ParamSpec("n", "int", 1).describe() == "int ≥ 1"
    assert engines.ParamSpec("n", "int", 1).coerce(20.0) == 20

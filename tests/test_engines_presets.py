"""Engine presets: bundled files all valid, user files override by name, damaged user files skipped."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from test_engines_fakes import COMFY_SAMPLERS, COMFY_SCHEDULERS, fake_model

from comfyui_provenance import engines
from comfyui_provenance.engines import EngineError, presets


def preset(name: str = "sd15-txt2img-normal", **values: Any) -> dict[str, Any]:
    return {"engine": "sd15", "task": "txt2img", "mode": "normal", "name": name, "values": values or {"steps": 33}}


def test_bundled_presets_are_all_valid_and_named_by_engine_task_mode() -> None:
    store = engines.load_presets()
    files = presets.bundled_files()
    assert len(store) == len(files) >= 20
    for item in store:
        assert item.name == f"{item.engine}-{item.task}-{item.mode}" == item.source.removesuffix(".json")
        assert item.values["sampler_name"] in COMFY_SAMPLERS and item.values["scheduler"] in COMFY_SCHEDULERS
        assert item.description
    for family in engines.FAMILIES:
        if family is engines.Generic:
            continue
        normal = [store.default_for(family.engine, task, "normal") for task in family.tasks]
        assert any(normal), family.engine
        for mode in family.modes:
            assert any(store.default_for(family.engine, task, mode) for task in family.tasks), (family.engine, mode)


def test_brief_values() -> None:
    store = engines.load_presets()

    def values(name: str) -> dict[str, Any]:
        found = store.get(name)
        assert found is not None, name
        return dict(found.values)

    assert values("flux-txt2img-normal") == {
        "steps": 20, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "guidance": 3.5,
    }  # fmt: skip
    assert values("flux_schnell-txt2img-normal")["steps"] == 4
    t2v = values("wan22_14b-txt2vid-normal")
    assert (t2v["steps"], t2v["split"], t2v["cfg"], t2v["shift"], t2v["boundary"]) == (20, 10, 3.5, 5.0, 0.875)
    assert values("wan22_14b-img2vid-normal")["boundary"] == 0.9
    lightning = values("wan22_14b-img2vid-lightning")
    assert (lightning["steps"], lightning["split"], lightning["cfg"]) == (4, 2, 1.0)
    five = values("wan22_5b-txt2vid-normal")
    assert (five["sampler_name"], five["scheduler"], five["steps"], five["cfg"], five["shift"]) == (
        "uni_pc", "simple", 20, 5.0, 8.0,
    )  # fmt: skip


def test_user_preset_overrides_bundled(tmp_path: Path) -> None:
    (tmp_path / "mine.json").write_text(json.dumps(preset(steps=33, cfg=6.0)), "utf-8")
    (tmp_path / "extra.json").write_text(json.dumps(preset("sd15-fast", steps=10)), "utf-8")
    store = engines.load_presets(tmp_path)
    assert store.get("sd15-txt2img-normal").values == {"steps": 33, "cfg": 6.0}  # type: ignore[union-attr]
    assert "sd15-fast" in store.names_for("sd15", "txt2img")
    family = engines.detect(fake_model("sd15"))
    plan = engines.plan(family, "txt2img", {}, samplers=COMFY_SAMPLERS, schedulers=COMFY_SCHEDULERS, presets=store)
    assert (plan.params["steps"], plan.params["cfg"], plan.sampler_effective) == (33, 6.0, "euler")
    assert {"key": "steps", "value": 33, "preset": "sd15-txt2img-normal"} in plan.applied_preset_patch
    assert {"key": "sampler_name", "value": "euler", "preset": "defaults:sd15"} in plan.applied_preset_patch


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "Expecting property name"),
        (b"\xff\xfe garbage", "codec can't decode"),
        (b"[" * 100_000 + b"]" * 100_000, "recursion"),
        (b" " * (presets.MAX_PRESET_BYTES + 1), "larger than"),
        (json.dumps(preset(steps=-3)).encode(), "values key 'steps': steps must be int [1, 10000], got -3"),
        (json.dumps(preset(guidance=3.5)).encode(), "values key 'guidance' is not a sd15 parameter"),
        (json.dumps({**preset(), "engine": "sd99"}).encode(), "allowed: sd15, sdxl_refiner, sdxl"),
        (json.dumps({**preset(), "mode": "turbo"}).encode(), "key 'mode' is 'turbo'; allowed: normal, lcm"),
        (json.dumps({**preset(), "run": "rm -rf /"}).encode(), "unknown key 'run'"),
        (json.dumps({**preset(), "mode": "lcm", "values": {"steps": 30}}).encode(), "lcm mode: steps must be"),
    ],
)
def test_damaged_user_preset_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, reason: str
) -> None:
    (tmp_path / "bad.json").write_bytes(content)
    (tmp_path / "good.json").write_text(json.dumps(preset("sd15-good")), "utf-8")
    with caplog.at_level(logging.WARNING, logger="comfyui_provenance.engines.presets"):
        store = engines.load_presets(tmp_path)
    assert store.get("sd15-good") is not None
    assert store.get("sd15-txt2img-normal").values["steps"] == 20  # type: ignore[union-attr]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bad.json" in warnings[0]
    assert reason.lower() in warnings[0].lower(), warnings[0]


def test_user_symlink_and_non_json_are_ignored(tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_text(json.dumps(preset(steps=2)), "utf-8")
    (tmp_path / "link.json").symlink_to(target)
    (tmp_path / "notes.txt").write_text("hello", "utf-8")
    store = engines.load_presets(tmp_path)
    assert store.get("sd15-txt2img-normal").values["steps"] == 20  # type: ignore[union-attr]
    assert engines.load_presets(tmp_path / "missing").get("sd15-txt2img-normal") is not None


def test_bad_bundled_preset_names_file_and_key() -> None:
    with pytest.raises(EngineError, match=r"preset sdxl-x\.json: values key 'frames' is not a sdxl parameter"):
        presets.parse_preset({**preset(), "engine": "sdxl", "values": {"frames": 81}}, "sdxl-x.json")
    with pytest.raises(EngineError, match=r"preset y\.json: missing key 'values'"):
        presets.parse_preset({k: v for k, v in preset().items() if k != "values"}, "y.json")
    with pytest.raises(EngineError, match=r"values key 'split': split must be a step in 1..3 for 4 steps, got 5"):
        presets.parse_preset(
            {
                "engine": "wan22_14b",
                "task": "txt2vid",
                "mode": "normal",
                "name": "w",
                "values": {"steps": 4, "split": 5},
            },
            "w.json",
        )


def test_a_preset_split_moves_with_the_users_step_count() -> None:
    """wan22_14b's preset splits its 20 steps at 10; 8 steps of the user's split at 4, 3 steps at 2 (1..steps-1)."""
    from test_engines_fakes import fake_model

    from comfyui_provenance.engines import detect, load_presets, plan

    family = detect(fake_model("wan21_t2v"), checkpoint_name="wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors")
    lists = {"samplers": ["euler", "uni_pc"], "schedulers": ["simple", "normal"], "presets": load_presets()}
    for steps, split in ((None, 10), (8, 4), (3, 2), (40, 20)):
        found = plan(family, "txt2vid", {"steps": steps}, **lists)
        assert (found.params["steps"], found.params["split"]) == (steps or 20, split)
    assert plan(family, "txt2vid", {"steps": 8, "split": 6}, **lists).params["split"] == 6  # the user's own

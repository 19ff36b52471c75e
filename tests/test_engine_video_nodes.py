"""Video Sampler (Provenance) with ComfyUI faked at compat's boundary: the calls to common_ksampler for one model
and for WAN 2.2 A14B's two experts (as KSamplerAdvanced makes them), split and boundary, refusals, the report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import pixels
from test_engines_fakes import COMFY_SAMPLERS, COMFY_SCHEDULERS, fake_model

from comfyui_provenance import compat
from comfyui_provenance.engines import EngineError, report
from comfyui_provenance.metadata import settings
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Record
from comfyui_provenance.nodes import save_image, video_sampler

HIGH = "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"
LOW = "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"
# The simple schedule's timesteps for 8 steps at shift 8 (ComfyUI's calculate_sigmas + model_sampling.timestep).
TIMESTEPS_8 = [1000.0, 982.456, 960.0, 930.233, 888.889, 827.586, 727.273, 533.333, 0.0]
INPUTS: dict[str, Any] = {
    "seed": 42,
    "steps": 0,
    "cfg": 0.0,
    "sampler_name": "auto",
    "scheduler": "auto",
    "split": 0,
    "boundary": 0.0,
    "mode": "normal",
    "preset": "",
    "model": ["1", 0],
    "model_low": ["2", 0],
    "positive": ["6", 0],
    "negative": ["7", 0],
    "latent_image": ["5", 0],
}


class Samples:
    """A latent tensor's stand-in: only its shape is read."""

    def __init__(self, *shape: int) -> None:
        self.shape = shape


def graph(high: str = HIGH, low: str | None = LOW, **changes: Any) -> dict[str, Any]:
    """WAN 2.2 A14B text to video: two UNETLoaders, our video sampler (node 3), a save (node 9)."""
    inputs = {**INPUTS, **changes}
    prompt: dict[str, Any] = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": high, "weight_dtype": "default"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in snow", "clip": ["4", 0]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 0]}},
        "5": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 832, "height": 480, "length": 81}},
        "3": {"class_type": video_sampler.NODE_ID, "inputs": inputs},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["10", 0]}},
        "9": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "v"}},
    }
    if low is None:
        del inputs["model_low"]
    else:
        prompt["2"] = {"class_type": "UNETLoader", "inputs": {"unet_name": low, "weight_dtype": "default"}}
    return prompt


@pytest.fixture(autouse=True)
def empty_store() -> Iterator[None]:
    report.STORE.clear()
    yield
    report.STORE.clear()


@pytest.fixture
def comfy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """compat faked: both common_ksampler paths record (kind, model, latent in, arguments)."""
    state: dict[str, Any] = {"calls": [], "prompt_id": "p1", "timesteps": TIMESTEPS_8, "schedules": []}

    def common_ksampler(model: Any, positive: Any, negative: Any, latent: Any, **params: Any) -> tuple[Any]:
        state["calls"].append(("ksampler", model, latent, params))
        return ({"samples": ("sampled", len(state["calls"]))},)

    def common_ksampler_advanced(model: Any, positive: Any, negative: Any, latent: Any, **params: Any) -> tuple[Any]:
        state["calls"].append(("advanced", model, latent, params))
        return ({"samples": ("sampled", len(state["calls"]))},)

    def schedule_timesteps(model: Any, scheduler: str, steps: int) -> list[float]:
        state["schedules"].append((model, scheduler, steps))
        return list(state["timesteps"])

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(compat, "common_ksampler", common_ksampler)
    monkeypatch.setattr(compat, "common_ksampler_advanced", common_ksampler_advanced)
    monkeypatch.setattr(compat, "schedule_timesteps", schedule_timesteps)
    monkeypatch.setattr(compat, "sampler_names", lambda: list(COMFY_SAMPLERS))
    monkeypatch.setattr(compat, "scheduler_names", lambda: list(COMFY_SCHEDULERS))
    monkeypatch.setattr(compat, "user_directory", lambda: tmp_path / "user")
    monkeypatch.setattr(compat, "current_prompt_id", lambda: state["prompt_id"])
    monkeypatch.setattr(compat, "metadata_disabled", lambda: False)
    monkeypatch.setattr(compat, "comfyui_version", lambda: "0.33.0")
    monkeypatch.setattr(compat, "output_directory", lambda: out)
    monkeypatch.setattr(compat, "save_namer", lambda: None)
    monkeypatch.setattr(save_image, "comfyui_hasher", lambda models: None)
    monkeypatch.setattr(save_image, "runtime_snapshot", lambda prompt_id: None)  # hooks off
    settings.set_file(None)
    state["out"] = out
    state["high"], state["low"] = fake_model("wan21_t2v"), fake_model("wan21_t2v")
    return state


def sample(
    comfy: dict[str, Any], prompt: dict[str, Any], latent: Any = None, model: Any = None, two: bool = True
) -> tuple[Any]:
    inputs = {k: v for k, v in prompt["3"]["inputs"].items() if not isinstance(v, list)}
    return video_sampler.run(
        model=model if model is not None else comfy["high"],
        model_low=comfy["low"] if two else None,
        positive="pos",
        negative="neg",
        latent_image=latent if latent is not None else {"samples": Samples(1, 16, 21, 60, 104)},
        prompt=prompt,
        unique_id="3",
        **inputs,
    )


def shared(seed: int = 42, steps: int = 20, cfg: float = 3.5) -> dict[str, Any]:
    return {"seed": seed, "steps": steps, "cfg": cfg, "sampler_name": "euler", "scheduler": "simple"}


# -- the latent's video ---------------------------------------------------------------------------------------------
def test_frames_and_size_come_from_the_latents_shape() -> None:
    latent = {"samples": Samples(1, 16, 21, 60, 104)}
    assert video_sampler.video_facts(latent, fake_model("wan21_t2v")) == {"frames": 81, "width": 832, "height": 480}
    latent["downscale_ratio_spacial"] = 16
    assert video_sampler.video_facts(latent, None)["width"] == 1664
    assert video_sampler.video_facts({"samples": Samples(1, 4, 8, 8)}, None) == {}  # an image latent
    assert video_sampler.video_facts({}, None) == {}


def test_the_task_is_image_to_video_only_for_an_i2v_model() -> None:
    from comfyui_provenance.engines import detect

    assert video_sampler.task_for(detect(fake_model("wan21_i2v"), HIGH)) == "img2vid"
    assert video_sampler.task_for(detect(fake_model("wan21_t2v"), HIGH)) == "txt2vid"
    assert video_sampler.task_for(detect(fake_model("wan22_5b"))) == "txt2vid"


# -- split and boundary ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("boundary", "split"),
    [(0.875, 5), (0.9, 4), (0.97, 2), (0.5, 7), (0.99, 1), (0.1, 7)],
)
def test_the_boundary_is_the_first_step_below_it(boundary: float, split: int) -> None:
    assert video_sampler.split_at_boundary(TIMESTEPS_8, boundary, 8)[0] == split


def test_a_boundary_outside_the_schedule_is_moved_so_each_expert_runs() -> None:
    assert video_sampler.split_at_boundary(TIMESTEPS_8, 0.9999, 8) == (1, None)  # step 1 is already below it
    split, why = video_sampler.split_at_boundary([1000.0, 400.0, 0.0], 0.5, 2)
    assert split == 1 and why is None
    split, why = video_sampler.split_at_boundary([1000.0, 990.0, 980.0, 0.0], 0.1, 3)
    assert split == 2 and why is not None and "moved to 2" in why  # below only at the last sigma
    split, why = video_sampler.split_at_boundary([400.0, 300.0, 0.0], 0.5, 2)
    assert split == 1 and why is not None and "step 0" in why


def test_two_experts_run_as_the_templates_ksampleradvanced_chain(comfy: dict[str, Any]) -> None:
    (latent,) = sample(comfy, graph())
    (kind, high_model, high_in, high), (kind_low, low_model, low_in, low) = comfy["calls"]
    assert (kind, kind_low) == ("advanced", "advanced")
    assert high_model is comfy["high"] and low_model is comfy["low"]
    # KSamplerAdvanced(add_noise enable, 0 → 10, return_with_leftover_noise enable) then (disable, 10 → 20, disable)
    assert high == {**shared(), "disable_noise": False, "start_step": 0, "last_step": 10, "force_full_denoise": False}
    assert low == {**shared(), "disable_noise": True, "start_step": 10, "last_step": 20, "force_full_denoise": True}
    assert high_in["samples"].shape == (1, 16, 21, 60, 104)
    assert low_in == {"samples": ("sampled", 1)}  # the high expert's latent, leftover noise and all
    assert latent == {"samples": ("sampled", 2)}
    assert comfy["schedules"] == []  # no boundary: no schedule needed


def test_an_explicit_split_and_values_are_kept(comfy: dict[str, Any]) -> None:
    sample(comfy, graph(steps=8, split=3, cfg=5.0, sampler_name="uni_pc", scheduler="beta"))
    high, low = (call[3] for call in comfy["calls"])
    assert (high["last_step"], low["start_step"], low["last_step"]) == (3, 3, 8)
    assert (high["sampler_name"], high["scheduler"], high["cfg"]) == ("uni_pc", "beta", 5.0)
    (found,) = report.find_reports(graph(steps=8, split=3, cfg=5.0, sampler_name="uni_pc", scheduler="beta"), "9")
    assert found["experts"]["split"] == 3 and found["experts"]["split_from"] == "input"
    assert "split" not in {e["key"] for e in found["plan"]["applied_preset_patch"]}


def test_a_boundary_turns_into_the_split_step_on_the_high_experts_schedule(comfy: dict[str, Any]) -> None:
    prompt = graph(steps=8, boundary=0.875)
    sample(comfy, prompt)
    assert comfy["schedules"] == [(comfy["high"], "simple", 8)]
    high, low = (call[3] for call in comfy["calls"])
    assert (high["last_step"], low["start_step"], low["last_step"]) == (5, 5, 8)
    (found,) = report.find_reports(prompt, "9")
    experts = found["experts"]
    assert (experts["split"], experts["boundary"], experts["split_from"]) == (5, 0.875, "boundary")
    assert experts["timesteps"][5] == 827.586
    params = found["plan"]["params"]
    assert (params["split"], params["boundary"]) == (5, 0.875)
    assert any("boundary 0.875 → split 5" in note for note in found["plan"]["notes"])


def test_one_model_samples_like_ksampler(comfy: dict[str, Any]) -> None:
    prompt = graph(high="wan2.1_t2v_1.3B_fp16.safetensors", low=None, split=4)
    sample(comfy, prompt, model=fake_model("wan21_1_3b"), two=False)
    ((kind, _, _, params),) = comfy["calls"]
    assert kind == "ksampler"
    assert params == {**shared(steps=30, cfg=6.0), "sampler_name": "uni_pc", "denoise": 1.0}
    (found,) = report.find_reports(prompt, "9")
    assert found["engine"] == "wan21_1_3b" and found["experts"] == {"count": 1}
    assert set(found["timings_ms"]) == {"noise", "denoise", "total"}
    assert any("split and boundary unused" in note for note in found["plan"]["notes"])


def test_two_models_make_wan_22_a14b_whatever_their_files_are_called(comfy: dict[str, Any]) -> None:
    prompt = graph(high="my_video_model_a.safetensors", low="my_video_model_b.safetensors")
    sample(comfy, prompt)
    (found,) = report.find_reports(prompt, "9")
    assert found["engine"] == "wan22_14b" and found["plan"]["model"]["evidence"].endswith("low-noise expert given")
    assert len(comfy["calls"]) == 2


# -- refusals ---------------------------------------------------------------------------------------------------------
def refused(comfy: dict[str, Any], prompt: dict[str, Any], match: str, **kwargs: Any) -> None:
    with pytest.raises(EngineError, match=match):
        sample(comfy, prompt, **kwargs)
    assert comfy["calls"] == []  # refused before sampling
    assert len(report.STORE) == 0


def test_a_size_off_the_16_grid_is_refused_with_the_allowed_values(comfy: dict[str, Any]) -> None:
    latent = {"samples": Samples(1, 16, 21, 60, 105)}  # 840 wide
    message = r"wan22_14b txt2vid: width must be int \[16, 16384\], a multiple of 16, got 840"
    refused(comfy, graph(), message, latent=latent)


def test_frames_that_are_not_4k_plus_1_are_refused(comfy: dict[str, Any]) -> None:
    latent = {"samples": Samples(1, 16, 21, 60, 104), "downscale_ratio_temporal": 2}  # 41: 4k+1; 3 → 43 is not
    sample(comfy, graph(), latent=latent)
    comfy["calls"].clear()
    report.STORE.clear()
    latent = {"samples": Samples(1, 16, 22, 60, 104), "downscale_ratio_temporal": 2}
    message = r"frames must be 4k\+1 \(1, 5, 9, … 77, 81, 85 …\), got 43: nearest 41 or 45"
    refused(comfy, graph(), message, latent=latent)


def test_a_split_outside_the_steps_is_refused(comfy: dict[str, Any]) -> None:
    refused(comfy, graph(steps=8, split=8), r"wan22_14b txt2vid: split must be a step in 1\.\.7 for 8 steps, got 8")


def test_split_and_boundary_together_are_refused(comfy: dict[str, Any]) -> None:
    refused(comfy, graph(split=4, boundary=0.9), "set one of split, boundary, not split and boundary")


def test_a_boundary_with_one_step_is_refused(comfy: dict[str, Any]) -> None:
    refused(comfy, graph(steps=1, boundary=0.9), "steps must be 2 or more")


def test_two_experts_of_another_family_are_refused(comfy: dict[str, Any]) -> None:
    refused(comfy, graph(high="sd15.safetensors"), "model_low empty", model=fake_model("sd15"))


def test_an_image_model_alone_is_refused_naming_its_tasks(comfy: dict[str, Any]) -> None:
    message = "sd15 txt2vid: this model does not do txt2vid; allowed: txt2img, img2img"
    refused(comfy, graph(low=None), message, model=fake_model("sd15"), two=False)


# -- the report and the record ---------------------------------------------------------------------------------------
def test_the_report_has_the_plan_the_split_and_each_experts_timing_and_memory(comfy: dict[str, Any]) -> None:
    sample(comfy, graph())
    (found,) = report.find_reports(graph(), "9", "p1")
    assert found["class_type"] == video_sampler.NODE_ID and found["engine"] == "wan22_14b"
    assert found["plan"]["task"] == "txt2vid" and found["plan"]["preset"] == "wan22_14b-txt2vid-normal"
    params = found["plan"]["params"]
    assert {k: params[k] for k in ("frames", "width", "height", "split", "boundary")} == {
        "frames": 81,
        "width": 832,
        "height": 480,
        "split": 10,
        "boundary": None,
    }
    patched = {e["key"]: e["preset"] for e in found["plan"]["applied_preset_patch"]}
    assert patched["split"] == patched["steps"] == "wan22_14b-txt2vid-normal" and "boundary" not in patched
    assert found["experts"]["split_from"] == "preset"
    assert found["experts"]["low_model"]["engine"] == "wan22_14b"
    assert set(found["timings_ms"]) == {"noise", "high", "low", "total"}
    assert found["timings_ms"]["total"] >= found["timings_ms"]["high"] + found["timings_ms"]["low"] - 0.01
    assert set(found["peak_memory"]) == {"high", "low"}
    assert found["peak_memory"]["low"]["device"] == "cpu"
    assert found["cached"] is False


def save(comfy: dict[str, Any], prompt: dict[str, Any]) -> Record:
    before = set(comfy["out"].iterdir())
    save_image.run(
        images=[pixels(64, 64)],
        filename_prefix="v",
        format="png",
        quality=95,
        lossless=False,
        targets=None,
        prompt=prompt,
        extra_pnginfo=None,
        unique_id="9",
    )
    (path,) = set(comfy["out"].iterdir()) - before
    return read(path)


def test_the_record_carries_the_report_also_when_the_sampler_is_cached(comfy: dict[str, Any]) -> None:
    prompt = graph(boundary=0.875, steps=8)
    sample(comfy, prompt)
    record = save(comfy, prompt)
    (engine,) = record.extra["engines"]
    assert engine["node_id"] == "3" and engine["class_type"] == video_sampler.NODE_ID
    assert engine["experts"]["split"] == 5 and engine["cached"] is False
    comfy["prompt_id"] = "p2"  # ComfyUI serves the sampler from its cache: only the save runs
    again = save(comfy, prompt)
    assert again.extra["engines"][0]["cached"] is True
    assert again.extra["engines"][0]["plan"] == engine["plan"]


def test_the_parser_reads_the_video_sampler_like_a_ksampler() -> None:
    from comfyui_provenance.metadata.parser.parse import WorkflowParser

    high, low = "wan2.2_t2v_high_noise_14B.safetensors", "wan2.2_t2v_low_noise_14B.safetensors"
    umt5, size = "umt5_xxl_fp8_e4m3fn_scaled.safetensors", {"width": 640, "height": 640, "length": 81}
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": high, "weight_dtype": "default"}},
        "2": {"class_type": "UNETLoader", "inputs": {"unet_name": low, "weight_dtype": "default"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["9", 0]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["9", 0]}},
        "9": {"class_type": "CLIPLoader", "inputs": {"clip_name": umt5, "type": "wan"}},
        "5": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {**size, "batch_size": 1}},
        "3": {
            "class_type": "ProvenanceVideoSampler",
            "inputs": {
                "model": ["1", 0], "model_low": ["2", 0], "positive": ["6", 0], "negative": ["7", 0],
                "latent_image": ["5", 0], "seed": 7, "steps": 20, "cfg": 3.5, "sampler_name": "euler",
                "scheduler": "simple", "split": 10, "boundary": 0.0, "mode": "normal", "preset": "",
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["10", 0]}},
        "10": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "11": {"class_type": "ProvenanceSaveVideo", "inputs": {"images": ["8", 0], "filename_prefix": "v"}},
    }  # fmt: skip
    record = WorkflowParser().parse(prompt, "11")
    (only,) = record.passes
    assert (only.class_type, only.seed, only.steps, only.cfg, only.sampler, only.scheduler) == (
        "ProvenanceVideoSampler", 7, 20, 3.5, "euler", "simple",
    )  # fmt: skip
    assert only.positive == "a lighthouse at dusk" and record.generation.seed == 7

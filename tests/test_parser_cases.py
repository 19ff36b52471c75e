"""Hand-made hard cases for the parser: third-party packs, odd graphs, static evaluation, rules files."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import deadline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.infotext.write import build
from comfyui_provenance.metadata.parser import rules as rules_module
from comfyui_provenance.metadata.parser.evaluate import UnsafeExpression, safe_eval
from comfyui_provenance.metadata.parser.parse import WorkflowParser
from comfyui_provenance.metadata.parser.ruledata import parse_rules
from comfyui_provenance.metadata.parser.rules import RuleError, bundled, default_rules
from comfyui_provenance.metadata.record import Record

Prompt = dict[str, Any]


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def run(api: Prompt, save_id: str | None = "9", parser: WorkflowParser | None = None) -> Record:
    before = copy.deepcopy(api)
    with deadline(5):
        rec = (parser or WorkflowParser(bundled())).parse(api, save_id)
    assert api == before, "the parser mutated its input"
    return rec


def base(**sampler: Any) -> Prompt:
    """checkpoint 4 -> KSampler 3 <- text 6/7, latent 5; decode 8 -> save 9."""
    inputs = {
        "seed": 7,
        "steps": 20,
        "cfg": 6.5,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
        "model": ["4", 0],
        "positive": ["6", 0],
        "negative": ["7", 0],
        "latent_image": ["5", 0],
    }
    inputs.update(sampler)
    return {
        "3": node("KSampler", **inputs),
        "4": node("CheckpointLoaderSimple", ckpt_name="base.safetensors"),
        "5": node("EmptyLatentImage", width=832, height=1216, batch_size=1),
        "6": node("CLIPTextEncode", text="a castle", clip=["4", 1]),
        "7": node("CLIPTextEncode", text="blurry", clip=["4", 1]),
        "8": node("VAEDecode", samples=["3", 0], vae=["4", 2]),
        "9": node("SaveImage", images=["8", 0], filename_prefix="x"),
    }


def loras(rec: Record) -> list[tuple[str, float | None, float | None]]:
    return sorted((m.name, m.strength_model, m.strength_clip) for m in rec.loras())


def unresolved(rec: Record) -> list[dict[str, str]]:
    found: list[dict[str, str]] = rec.provenance.other.get("unresolved", [])
    return found


# -- third-party packs ---------------------------------------------------------------------------------------


def test_rgthree_power_lora_loader_seed_and_any_switch() -> None:
    api = base(model=["10", 0], seed=["11", 0])
    api["6"]["inputs"]["clip"] = ["10", 1]
    api["10"] = node(
        "Power Lora Loader (rgthree)",
        model=["4", 0],
        clip=["4", 1],
        lora_1={"on": True, "lora": "style.safetensors", "strength": 0.8},
        lora_2={"on": False, "lora": "off.safetensors", "strength": 1.0},
        lora_3={"on": True, "lora": "split.safetensors", "strength": 0.5, "strengthTwo": 0.25},
        lora_4={"on": True, "lora": "zero.safetensors", "strength": 0},
        **{"➕ Add Lora": ""},
    )
    api["11"] = node("Seed (rgthree)", seed=424242)
    rec = run(api)
    assert loras(rec) == [("split.safetensors", 0.5, 0.25), ("style.safetensors", 0.8, 0.8)]
    assert rec.generation.seed == 424242
    assert rec.passes[0].model == "base.safetensors"
    assert sorted(lora["name"] for lora in rec.passes[0].loras) == ["split.safetensors", "style.safetensors"]
    excluded = {(e["name"], e["reason"]) for e in rec.provenance.other["excluded_loras"]}
    assert excluded == {("off.safetensors", "off"), ("zero.safetensors", "strength 0")}

    api["11"]["inputs"]["seed"] = -1  # the server draws a random seed: known only at run time
    rec = run(api)
    assert rec.generation.seed is None
    assert {"node_id": "3", "input": "seed", "depends_on": "11"} in unresolved(rec)

    api["12"] = node("CheckpointLoaderSimple", ckpt_name="other.safetensors")
    api["13"] = node("Any Switch (rgthree)", any_01=["99", 0], any_02=["12", 0], any_03=["4", 0])
    api["10"]["inputs"]["model"] = ["13", 0]
    rec = run(api)
    assert rec.passes[0].model == "other.safetensors"  # 99 is absent (bypassed): the first present wins


def test_efficiency_loader_stacker_and_sampler_image_output() -> None:
    api: Prompt = {
        "1": node(
            "LoRA Stacker",
            input_mode="simple",
            lora_count=2,
            lora_name_1="a.safetensors",
            lora_wt_1=0.6,
            model_str_1=1.0,
            clip_str_1=1.0,
            lora_name_2="None",
            lora_wt_2=1.0,
            lora_name_3="ignored.safetensors",
            lora_wt_3=1.0,
        ),
        "2": node(
            "Efficient Loader",
            ckpt_name="eff.safetensors",
            vae_name="Baked VAE",
            clip_skip=-2,
            lora_name="direct.safetensors",
            lora_model_strength=0.7,
            lora_clip_strength=0.3,
            positive="a lighthouse",
            negative="fog",
            token_normalization="none",
            weight_interpretation="comfy",
            empty_latent_width=640,
            empty_latent_height=896,
            batch_size=2,
            lora_stack=["1", 0],
        ),
        "3": node(
            "KSampler (Efficient)",
            model=["2", 0],
            seed=5,
            steps=25,
            cfg=7.0,
            sampler_name="dpmpp_2m",
            scheduler="karras",
            positive=["2", 1],
            negative=["2", 2],
            latent_image=["2", 3],
            denoise=1.0,
            preview_method="auto",
            vae_decode="true",
        ),
        "9": node("SaveImage", images=["3", 5], filename_prefix="x"),
    }
    rec = run(api)
    gen = rec.generation
    assert (gen.positive, gen.negative, gen.seed, gen.steps, gen.sampler) == ("a lighthouse", "fog", 5, 25, "dpmpp_2m")
    assert (gen.width, gen.height, gen.batch_size, gen.clip_skip) == (640, 896, 2, -2)
    assert loras(rec) == [("a.safetensors", 0.6, 0.6), ("direct.safetensors", 0.7, 0.3)]
    assert [m.name for m in rec.models if m.role == "vae"] == []  # "Baked VAE" is no file
    assert rec.passes[0].model == "eff.safetensors"
    assert len(rec.passes[0].loras) == 2

    api["1"]["inputs"].update(input_mode="advanced", model_str_1=0.9, clip_str_1=0.1)
    assert ("a.safetensors", 0.9, 0.1) in loras(run(api))


def test_easy_use_pipe_loader_presampling_ksampler() -> None:
    api: Prompt = {
        "1": node(
            "easy loraStack",
            toggle=True,
            mode="advanced",
            num_loras=1,
            lora_1_name="pipe.safetensors",
            lora_1_strength=1.0,
            lora_1_model_strength=0.4,
            lora_1_clip_strength=0.2,
            lora_2_name="beyond_count.safetensors",
        ),
        "2": node(
            "easy fullLoader",
            ckpt_name="easy.safetensors",
            config_name="Default",
            vae_name="Baked VAE",
            clip_skip=-1,
            lora_name="None",
            lora_model_strength=1.0,
            lora_clip_strength=1.0,
            resolution="width x height (custom)",
            empty_latent_width=768,
            empty_latent_height=512,
            positive=["5", 0],
            negative="lowres",
            batch_size=1,
            optional_lora_stack=["1", 0],
        ),
        "3": node(
            "easy preSampling",
            pipe=["2", 0],
            steps=18,
            cfg=5.5,
            sampler_name="euler_ancestral",
            scheduler="normal",
            denoise=1.0,
            seed=99,
        ),
        "4": node("easy kSampler", pipe=["3", 0], image_output="Preview", link_id=0, save_prefix="ComfyUI"),
        "5": node("easy positive", positive="a fox in snow"),
        "9": node("SaveImage", images=["4", 1], filename_prefix="x"),
    }
    rec = run(api)
    gen = rec.generation
    assert (gen.positive, gen.negative, gen.seed, gen.steps, gen.cfg) == ("a fox in snow", "lowres", 99, 18, 5.5)
    assert (gen.sampler, gen.width, gen.height) == ("euler_ancestral", 768, 512)
    assert rec.passes[0].model == "easy.safetensors"
    assert loras(rec) == [("pipe.safetensors", 0.4, 0.2)]

    api["2"]["inputs"]["resolution"] = "1024 x 1024"
    assert (run(api).generation.width, run(api).generation.height) == (1024, 1024)
    api["1"]["inputs"]["toggle"] = False
    assert loras(run(api)) == []


def test_lora_manager_widget_list_and_stack() -> None:
    api = base(model=["10", 0])
    api["6"]["inputs"]["clip"] = ["10", 1]
    entries = [
        {"name": "detail", "strength": 0.5, "active": True},
        {"name": "sleepy", "strength": 1.0, "active": False},
        {"name": "both", "strength": 0.9, "clipStrength": 0.3, "active": True},
    ]
    api["10"] = node(
        "Lora Loader (LoraManager)",
        model=["4", 0],
        clip=["4", 1],
        text="<lora:detail:0.5> <lora:not_applied:1>",
        loras={"__value__": entries},
        lora_stack=["11", 0],
    )
    api["11"] = node(
        "Lora Stacker (LoraManager)", text="", loras=[{"name": "stacked", "strength": 0.2, "active": True}]
    )
    rec = run(api)
    assert loras(rec) == [("both", 0.9, 0.3), ("detail", 0.5, 0.5), ("stacked", 0.2, 0.2)]
    assert sorted(lora["name"] for lora in rec.passes[0].loras) == ["both", "detail", "stacked"]


def test_comfyroll_stack_switches_and_seed() -> None:
    api = base(model=["10", 0], seed=["12", 0])
    api["10"] = node("CR Apply LoRA Stack", model=["4", 0], clip=["4", 1], lora_stack=["11", 0])
    api["11"] = node(
        "CR LoRA Stack",
        switch_1="On",
        lora_name_1="on.safetensors",
        model_weight_1=0.75,
        clip_weight_1=0.5,
        switch_2="Off",
        lora_name_2="off.safetensors",
        model_weight_2=1.0,
        clip_weight_2=1.0,
        switch_3="On",
        lora_name_3="None",
        model_weight_3=1.0,
        clip_weight_3=1.0,
    )
    api["12"] = node("CR Seed", seed=31337)
    api["13"] = node("CR Prompt Text", prompt="first prompt")
    api["14"] = node("CR Prompt Text", prompt="second prompt")
    api["15"] = node("CR Text Input Switch", Input=2, text1=["13", 0], text2=["14", 0])
    api["6"]["inputs"]["text"] = ["15", 0]
    rec = run(api)
    assert loras(rec) == [("on.safetensors", 0.75, 0.5)]
    assert rec.generation.seed == 31337
    assert rec.generation.positive == "second prompt"


def test_impact_wildcard_encode_inline_loras_and_face_detailer_pass() -> None:
    api = base(model=["10", 0], positive=["10", 2])
    api["10"] = node(
        "ImpactWildcardEncode",
        model=["4", 0],
        clip=["4", 1],
        wildcard_text="__style__ portrait",
        populated_text="oil portrait <lora:brush:0.8:0.4> <lora:plain>",
        mode=True,
        **{"Select to add LoRA": "Select the LoRA to add to the text"},
        **{"Select to add Wildcard": "Select the Wildcard to add to the text"},
        seed=1,
    )
    api["20"] = node(
        "FaceDetailer",
        image=["8", 0],
        model=["4", 0],
        clip=["4", 1],
        vae=["4", 2],
        guide_size=512,
        seed=77,
        steps=12,
        cfg=4.0,
        sampler_name="euler",
        scheduler="simple",
        positive=["6", 0],
        negative=["7", 0],
        denoise=0.4,
        bbox_detector=["21", 0],
    )
    api["9"]["inputs"]["images"] = ["20", 0]
    rec = run(api)
    assert [p.node_id for p in rec.passes] == ["3", "20"]
    assert rec.generation.positive == "oil portrait <lora:brush:0.8:0.4> <lora:plain>"
    assert (rec.passes[1].seed, rec.passes[1].denoise, rec.passes[1].positive) == (77, 0.4, "a castle")
    assert loras(rec) == [("brush", 0.8, 0.4), ("plain", 1.0, 1.0)]
    assert {lora["name"] for lora in rec.passes[0].loras} == {"brush", "plain"}


def test_area_prompt_is_regional_and_concat_joins_prompts() -> None:
    api = base(positive=["20", 0])
    api["10"] = node("CLIPTextEncode", text="a red sky", clip=["4", 1])
    api["11"] = node("ConditioningSetArea", conditioning=["10", 0], width=512, height=256, x=0, y=64, strength=0.8)
    api["20"] = node("ConditioningCombine", conditioning_1=["6", 0], conditioning_2=["11", 0])
    rec = run(api)
    # The unrestricted prompt is the positive; the area prompt is listed apart with its area.
    assert (rec.generation.positive, rec.provenance.field_sources["positive"]) == ("a castle", "6")
    regional = [{"polarity": "positive", "text": "a red sky", "node_id": "10", "restricted_by": ["11"],
                 "width": 512, "height": 256, "x": 0, "y": 64, "strength": 0.8}]  # fmt: skip
    assert rec.generation.other["regional_prompts"] == regional
    assert rec.passes[0].other["regional_prompts"] == regional
    assert "a red sky" not in build(rec)
    # Restricted in time and in area (two nodes on one branch): both recorded.
    api["12"] = node("ConditioningSetTimestepRange", conditioning=["11", 0], start=0.0, end=0.5)
    api["20"]["inputs"]["conditioning_2"] = ["12", 0]
    (entry,) = run(api).generation.other["regional_prompts"]
    assert (entry["restricted_by"], entry["start"], entry["end"], entry["width"]) == (["11", "12"], 0.0, 0.5, 512)
    # Every branch restricted (one prompt split over timestep ranges): the prompt is theirs, none apart.
    api["13"] = node("ConditioningSetTimestepRange", conditioning=["6", 0], start=0.5, end=1.0)
    api["20"]["inputs"]["conditioning_1"] = ["13", 0]
    rec = run(api)
    assert rec.generation.positive == "a castle AND a red sky"
    assert "regional_prompts" not in rec.generation.other
    api["20"] = node("ConditioningConcat", conditioning_to=["6", 0], conditioning_from=["10", 0])
    rec = run(api)
    assert (rec.generation.positive, rec.provenance.field_sources["positive"]) == ("a castle BREAK a red sky", "6")


def test_rgthree_power_prompt_loads_inline_loras_only_with_model_and_clip() -> None:
    api = base(model=["10", 1], positive=["10", 0])
    api["10"] = node(
        "Power Prompt (rgthree)",
        prompt="a knight <lora:armor:0.6>",
        opt_model=["4", 0],
        opt_clip=["4", 1],
        insert_lora="CHOOSE",
    )
    rec = run(api)
    assert rec.generation.positive == "a knight <lora:armor:0.6>"
    assert loras(rec) == [("armor", 0.6, 0.6)]
    assert rec.passes[0].model == "base.safetensors"
    api["10"]["inputs"]["insert_lora"] = "DISABLE LORAS"
    assert run(api).loras() == []
    api["10"]["inputs"]["insert_lora"] = "CHOOSE"
    del api["10"]["inputs"]["opt_clip"]
    assert run(api).loras() == []


def test_inline_lora_tags_count_only_where_a_node_applies_them() -> None:
    api = base()
    api["6"]["inputs"]["text"] = "a castle <lora:ignored:1.0>"  # core CLIPTextEncode does not load LoRAs
    assert run(api).loras() == []


def test_was_seed_text_multiline_and_kjnodes_constants() -> None:
    api = base(seed=["10", 0], steps=["11", 0])
    api["3"]["class_type"] = "KSampler (WAS)"
    api["10"] = node("Seed", seed=123456789)
    api["11"] = node("INTConstant", value=33)
    api["12"] = node("StringConstantMultiline", string="line one\nline two\n", strip_newlines=True)
    api["13"] = node("Text Multiline", text="negative\nkept")
    api["6"]["inputs"]["text"] = ["12", 0]
    api["7"]["inputs"]["text"] = ["13", 0]
    rec = run(api)
    gen = rec.generation
    assert (gen.seed, gen.steps, gen.positive, gen.negative) == (123456789, 33, "line oneline two", "negative\nkept")
    api["12"]["inputs"]["strip_newlines"] = False
    assert run(api).generation.positive == "line one\nline two\n"


def test_wanvideowrapper_sampler_text_and_lora_chain() -> None:
    api: Prompt = {
        "1": node("WanVideoLoraSelect", lora="causvid.safetensors", strength=0.7, prev_lora=["2", 0]),
        "2": node("WanVideoLoraSelect", lora="motion.safetensors", strength=1.0),
        "3": node(
            "WanVideoModelLoader",
            model="wan2.1_t2v_14B_fp8.safetensors",
            base_precision="bf16",
            quantization="disabled",
            load_device="main_device",
            lora=["1", 0],
        ),
        "4": node("LoadWanVideoT5TextEncoder", model_name="umt5-xxl-enc-bf16.safetensors", precision="bf16"),
        "5": node("WanVideoTextEncode", t5=["4", 0], positive_prompt="a red kite", negative_prompt="static"),
        "6": node("WanVideoEmptyEmbeds", width=832, height=480, num_frames=81),
        "7": node(
            "WanVideoSampler",
            model=["3", 0],
            text_embeds=["5", 0],
            image_embeds=["6", 0],
            steps=30,
            cfg=6.0,
            shift=5.0,
            seed=11,
            force_offload=True,
            scheduler="unipc",
            riflex_freq_index=0,
        ),
        "8": node("WanVideoVAELoader", model_name="wan_2.1_vae.safetensors"),
        "10": node("WanVideoDecode", vae=["8", 0], samples=["7", 0], enable_vae_tiling=True),
        "11": node("CreateVideo", images=["10", 0], fps=16),
        "9": node("SaveVideo", video=["11", 0], filename_prefix="v"),
    }
    rec = run(api)
    gen = rec.generation
    assert (gen.positive, gen.negative, gen.steps, gen.shift, gen.scheduler) == (
        "a red kite",
        "static",
        30,
        5.0,
        "unipc",
    )
    assert (gen.width, gen.height, gen.frames, gen.fps) == (832, 480, 81, 16.0)
    assert rec.passes[0].model == "wan2.1_t2v_14B_fp8.safetensors"
    assert loras(rec) == [("causvid.safetensors", 0.7, None), ("motion.safetensors", 1.0, None)]
    assert [lora["name"] for lora in rec.passes[0].loras] == ["causvid.safetensors", "motion.safetensors"]
    assert [m.name for m in rec.models if m.role in ("clip", "vae")] == [
        "umt5-xxl-enc-bf16.safetensors",
        "wan_2.1_vae.safetensors",
    ]


def test_gguf_loaders() -> None:
    api = base(model=["10", 0])
    api["10"] = node("UnetLoaderGGUF", unet_name="flux1-dev-Q8_0.gguf")
    api["11"] = node(
        "DualCLIPLoaderGGUF", clip_name1="clip_l.safetensors", clip_name2="t5-v1_1-xxl-Q8_0.gguf", type="flux"
    )
    api["6"]["inputs"]["clip"] = ["11", 0]
    rec = run(api)
    assert rec.passes[0].model == "flux1-dev-Q8_0.gguf"
    assert [m.name for m in rec.models if m.role == "clip"] == ["clip_l.safetensors", "t5-v1_1-xxl-Q8_0.gguf"]


def test_hires_fix_by_model_upscale_in_pixel_space() -> None:
    api = base()
    api["20"] = node("UpscaleModelLoader", model_name="4x-UltraSharp.pth")
    api["21"] = node("ImageUpscaleWithModel", upscale_model=["20", 0], image=["8", 0])
    api["22"] = node("ImageScaleBy", upscale_method="lanczos", scale_by=0.5, image=["21", 0])
    api["23"] = node("VAEEncode", pixels=["22", 0], vae=["4", 2])
    api["24"] = node("KSampler", **{**api["3"]["inputs"], "latent_image": ["23", 0], "denoise": 0.45, "steps": 12})
    api["25"] = node("VAEDecode", samples=["24", 0], vae=["4", 2])
    api["9"]["inputs"]["images"] = ["25", 0]
    rec = run(api)
    assert [p.node_id for p in rec.passes] == ["3", "24"]
    up = rec.passes[1].other["upscale"]
    assert (up["class_type"], up["method"], up["scale"], up["model"]) == (
        "ImageScaleBy",
        "lanczos",
        0.5,
        "4x-UltraSharp.pth",
    )
    assert (rec.passes[1].width, rec.passes[1].height) == (None, None)  # pixel size after a model upscale: run time
    assert rec.provenance.digital_source_type.endswith("/trainedAlgorithmicMedia")  # no outside pixels
    assert ("upscaler", "4x-UltraSharp.pth") in {(m.role, m.name) for m in rec.models}


def test_text_to_image_to_video_reports_the_text_stage_and_the_video() -> None:
    """SDXL makes the still, SVD animates it: the prompt is the SDXL pass's, length and fps the video's."""
    api = base()
    api["30"] = node("ImageOnlyCheckpointLoader", ckpt_name="svd_xt.safetensors")
    api["31"] = node(
        "SVD_img2vid_Conditioning",
        clip_vision=["30", 1],
        init_image=["8", 0],
        vae=["30", 2],
        width=1024,
        height=576,
        video_frames=25,
        motion_bucket_id=127,
        fps=6,
        augmentation_level=0.0,
    )
    api["32"] = node("VideoLinearCFGGuidance", model=["30", 0], min_cfg=1.0)
    api["33"] = node(
        "KSampler", **{**api["3"]["inputs"], "model": ["32", 0], "positive": ["31", 0], "negative": ["31", 1]}
    )
    api["33"]["inputs"]["latent_image"] = ["31", 2]
    api["34"] = node("VAEDecode", samples=["33", 0], vae=["30", 2])
    api["35"] = node("VHS_VideoCombine", images=["34", 0], frame_rate=8, loop_count=0, filename_prefix="v")
    del api["9"]
    rec = run(api, save_id="35")
    assert [p.node_id for p in rec.passes] == ["3", "33"]
    gen = rec.generation
    assert (gen.positive, gen.width, gen.frames, gen.fps) == ("a castle", 832, 25, 8.0)
    assert rec.passes[1].positive is None and rec.passes[1].model == "svd_xt.safetensors"


def test_integer_node_ids_are_read_as_strings() -> None:
    api = {int(k): v for k, v in base().items()}
    for entry in api.values():
        for name, value in entry["inputs"].items():
            if isinstance(value, list):
                entry["inputs"][name] = [int(value[0]), value[1]]
    rec = run(api, save_id="9")
    assert (rec.passes[0].node_id, rec.generation.seed, rec.generation.positive) == ("3", 7, "a castle")


# -- odd graphs ------------------------------------------------------------------------------------------------


def test_save_node_fed_by_two_samplers() -> None:
    api = base()
    api["30"] = copy.deepcopy(api["3"])
    api["30"]["inputs"]["seed"] = 8
    api["31"] = node("VAEDecode", samples=["30", 0], vae=["4", 2])
    api["32"] = node("ImageBatch", image1=["8", 0], image2=["31", 0])
    api["9"]["inputs"]["images"] = ["32", 0]
    rec = run(api)
    assert [p.node_id for p in rec.passes] == ["3", "30"]
    assert rec.generation.seed == 7
    assert any("independent sampler chains (3, 30)" in w for w in rec.provenance.warnings)


def test_lineage_cycle_between_two_samplers_terminates() -> None:
    api = base()
    api["30"] = copy.deepcopy(api["3"])
    api["30"]["inputs"]["latent_image"] = ["3", 0]
    api["3"]["inputs"]["latent_image"] = ["30", 0]
    rec = run(api)
    assert {p.node_id for p in rec.passes} == {"3", "30"}


def test_sampler_missing_from_the_prompt() -> None:
    api = base()
    del api["3"]
    rec = run(api)
    assert rec.passes == []
    assert any("no sampler" in w for w in rec.provenance.warnings)
    assert [m.name for m in rec.models] == ["base.safetensors"]  # the VAE's checkpoint is still upstream


def test_dangling_links_everywhere_are_data() -> None:
    api = base(model=["404", 0], positive=["405", 1], latent_image=["406", 0], steps=["407", 0])
    api["8"]["inputs"]["vae"] = ["408", 0]
    rec = run(api)
    assert rec.passes[0].model is None and rec.generation.positive is None
    assert rec.generation.steps is None
    assert {"node_id": "3", "input": "steps", "depends_on": "407"} in unresolved(rec)


def test_switch_with_a_linked_selector_is_unresolved_and_follows_both_ways() -> None:
    api = base(model=["20", 0], steps=["21", 0])
    api["10"] = node("LoraLoaderModelOnly", model=["4", 0], lora_name="turbo.safetensors", strength_model=1.0)
    api["20"] = node("ComfySwitchNode", switch=["22", 0], on_false=["4", 0], on_true=["10", 0])
    api["21"] = node("ComfySwitchNode", switch=["22", 0], on_false=20, on_true=8)
    api["22"] = node("MyToggleFromTheInternet", url="https://example.invalid")
    rec = run(api)
    assert rec.generation.steps is None
    assert rec.passes[0].model is None  # which model samples is known only at run time
    assert {"node_id": "3", "input": "steps", "depends_on": "21"} in unresolved(rec)
    assert {"node_id": "20", "input": "switch", "depends_on": "22"} in unresolved(rec)
    # Behind the unresolved switch: a candidate, listed apart, never recorded as applied.
    assert rec.loras() == []
    assert [m["name"] for m in rec.provenance.other["candidate_models"]] == ["turbo.safetensors"]

    api["22"] = node("PrimitiveBoolean", value=False)
    rec = run(api)
    assert (rec.generation.steps, rec.passes[0].model, rec.loras()) == (20, "base.safetensors", [])
    assert "unresolved" not in rec.provenance.other


def test_constant_chain_deeper_than_the_limit_is_unresolved() -> None:
    api = base(seed=["100", 0])
    for i in range(100, 160):
        api[str(i)] = node("PrimitiveInt", value=[str(i + 1), 0])
    api["160"] = node("PrimitiveInt", value=5)
    rec = run(api)
    assert rec.generation.seed is None
    assert {"node_id": "3", "input": "seed", "depends_on": "100"} in unresolved(rec)


# -- math -------------------------------------------------------------------------------------------------------


def math_graph(expression: str, output: int = 1, **values: Any) -> Prompt:
    api = base(steps=["40", output])
    api["40"] = node("ComfyMathExpression", expression=expression, **{f"values.{k}": v for k, v in values.items()})
    api["41"] = node("PrimitiveFloat", value=2.5)
    return api


@pytest.mark.parametrize(
    ("expression", "output", "values", "steps"),
    [
        ("floor(a * b) + 1", 1, {"a": 5, "b": ["41", 0]}, 13),
        ("floor (a * b + 1)", 1, {"a": 5.0, "b": 16.0}, 81),
        ("max(a, 10) // 3 + 2 ** 2 - -1 % 2", 1, {"a": 4}, 6),
        ("round(a / 3)", 1, {"a": 10}, 3),
        ("ceil(a) * abs(-2)", 1, {"a": 2.2}, 6),
    ],
)
def test_math_expression_is_evaluated(expression: str, output: int, values: dict[str, Any], steps: int) -> None:
    rec = run(math_graph(expression, output, **values))
    assert rec.generation.steps == steps
    assert "unresolved" not in rec.provenance.other


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo pwned')",
        "a.__class__.__mro__",
        "(lambda: 1)()",
        "[x for x in (1, 2)][0]",
        "open('/etc/passwd')",
        "9 ** 9 ** 9",
        "a if a else 1",
        "a < 3",
        "'text'",
        "b",
        "1 / 0",
        "",
        "a" * 2000,
    ],
)
def test_unsafe_or_unknowable_math_is_refused_and_unresolved(expression: str) -> None:
    rec = run(math_graph(expression, a=3))
    assert rec.generation.steps is None
    assert {"node_id": "3", "input": "steps", "depends_on": "40"} in unresolved(rec)


def test_safe_eval_directly() -> None:
    assert safe_eval("min(a, b) + 0.5", {"a": 1, "b": 2}) == 1.5
    assert safe_eval("int(7 / 2)", {}) == 3
    with pytest.raises(UnsafeExpression):
        safe_eval("exec('1')", {})
    with pytest.raises(UnsafeExpression):
        safe_eval("2 ** 5000", {})
    with pytest.raises(UnsafeExpression):
        safe_eval("1e308 * 10", {})


def test_third_party_math_nodes() -> None:
    api = base(steps=["50", 0], cfg=["51", 1])
    api["50"] = node("SimpleMath+", value="a * 2 + c", a=["52", 0])  # c defaults to 0
    api["51"] = node("MathExpression|pysssss", expression="a / 4", a=["52", 0])
    api["52"] = node("PrimitiveInt", value=13)
    rec = run(api)
    assert (rec.generation.steps, rec.generation.cfg) == (26, 3.25)


# -- rules files ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "a rules file is an object with a 'nodes' object"),
        ({"nodes": {"X": {"role": "sampler", "feilds": {}}}}, "'X': unknown key 'feilds'"),
        ({"nodes": {"X": {"role": "samplr"}}}, "'X': role 'samplr' is not one of"),
        ({"nodes": {"X": {"role": "text", "fields": {"Text": "text"}}}}, "field name 'Text' must be lower_snake_case"),
        ({"nodes": {"X": {"role": "text", "fields": {"text": {"input": "a", "const": 1}}}}}, "exactly one of 'input'"),
        ({"nodes": {"X": {"role": "text", "fields": {"text": {"input": "t", "regex": "("}}}}}, "not a valid regular"),
        ({"nodes": {"X": {"role": "passthrough", "inputs": {"modle": "model"}}}}, "unknown link role 'modle'"),
        ({"nodes": {"X": {"role": "switch"}}}, "role 'switch' and a 'switch' object go together"),
        ({"nodes": {"X": {"role": "math", "math": {"expression": "e", "outputs": ["complex"]}}}}, "math.outputs"),
        ({"nodes": {"X": {"role": "constant"}}}, "a constant needs fields.value"),
        ({"nodes": {"X": {"role": "lora", "loras": [{"slots": [1, 3], "name": "n_{j}"}]}}}, "not a template of {i}"),
        ({"nodes": {"X": {"role": "loader", "models": [{"role": "unet"}]}}}, "models[0] needs 'role' and 'name'"),
        ({"nodes": {"X": {"role": "sampler", "parts": ["noise"]}}}, "part 'noise' is not a link role"),
        ({"version": 2, "nodes": {}}, "version 2 is not supported"),
    ],
)
def test_rules_validation_names_file_class_and_problem(document: Any, message: str) -> None:
    with pytest.raises(RuleError, match=r"my_rules\.json") as err:
        parse_rules(document, "my_rules.json")
    assert message in str(err.value)


def test_all_problems_of_a_file_are_reported_at_once() -> None:
    doc = {"nodes": {"A": {"role": "nope"}, "B": {"role": "text", "fields": {"text": 3}}}}
    with pytest.raises(RuleError) as err:
        parse_rules(doc, "f.json")
    assert "'A'" in str(err.value) and "'B'" in str(err.value)


def test_bundled_packs_load_and_include_ten_third_party_files() -> None:
    packs = [p.name for p in rules_module.bundled_files()][1:]
    assert len(packs) >= 10
    rules = bundled()
    for class_type in ("Power Lora Loader (rgthree)", "LoRA Stacker", "easy loraStack", "Lora Loader (LoraManager)"):
        assert class_type in rules


@pytest.fixture
def user_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    monkeypatch.setenv(rules_module.ENV_RULES_DIR, str(folder))
    return folder


def test_user_rules_folder_overrides_a_bundled_rule(user_rules: Path) -> None:
    api = base()
    api["6"]["class_type"] = "MyFancyTextEncode"
    api["6"]["inputs"]["prompt_text"] = api["6"]["inputs"].pop("text")
    assert run(api, parser=WorkflowParser()).generation.positive is None
    rules = {
        "nodes": {
            "MyFancyTextEncode": {"role": "text", "fields": {"text": "prompt_text"}, "inputs": {"clip": "clip"}},
            "KSampler": {
                "role": "sampler",
                "fields": {"seed": {"const": 1234}, "steps": "steps"},
                "inputs": {"model": "model", "positive": "positive", "negative": "negative", "latent": "latent_image"},
            },
        }
    }
    (user_rules / "mine.json").write_text(json.dumps(rules), "utf-8")
    rec = run(api, parser=WorkflowParser())
    assert rec.generation.positive == "a castle"
    assert rec.generation.seed == 1234  # the user's KSampler rule replaced the bundled one
    assert rec.generation.cfg is None
    rule = default_rules().get("KSampler")
    assert rule is not None and rule.origin.endswith("mine.json")


def test_a_broken_user_file_is_skipped_with_a_warning(user_rules: Path, caplog: pytest.LogCaptureFixture) -> None:
    (user_rules / "broken.json").write_text('{"nodes": {"KSampler": {"role": "nope"}}}', "utf-8")
    with caplog.at_level(logging.WARNING):
        rec = run(base(), parser=WorkflowParser())
    assert rec.generation.seed == 7
    assert any("broken.json" in r.getMessage() for r in caplog.records)


def test_cli_rules_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"nodes": {"LoraLoader": {"role": "lora", "inputs": {"model": "model"}}}}), "utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nodes": {"Thing": {"role": "lora", "inputs": "model"}}}), "utf-8")
    assert main(["rules", "check", str(good)]) == 0
    assert "OK, 1 rule(s); replaces the bundled rule for LoraLoader" in capsys.readouterr().out
    assert main(["rules", "check", str(good), str(bad)]) == 1
    assert "bad.json: 'Thing': 'inputs' must map link roles" in capsys.readouterr().err
    assert main(["rules", "list", "--class", "KSampler"]) == 0
    assert "KSampler" in capsys.readouterr().out


# -- any graph at all ---------------------------------------------------------------------------------------------

CLASSES = [*bundled().classes(), "SomethingUnknown", "AnotherCustomNode"]
INPUT_NAMES = ["model", "clip", "positive", "negative", "latent_image", "samples", "images", "image", "seed", "steps"]
INPUT_NAMES += ["text", "value", "switch", "on_true", "on_false", "expression", "values.a", "lora_1", "loras", "pipe"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["a + b", "floor(a)", "None", "On", "<lora:x:0.5>", "embedding:e"]),
    st.dictionaries(st.sampled_from(["on", "lora", "strength", "__value__"]), st.integers(0, 2), max_size=3),
)


@st.composite
def graphs(draw: st.DrawFn) -> Prompt:
    size = draw(st.integers(1, 25))
    ids = [str(i) for i in range(1, size + 1)]
    link = st.builds(lambda n, o: [n, o], st.sampled_from([*ids, "404"]), st.integers(0, 4))
    prompt: Prompt = {}
    for node_id in ids:
        names = draw(st.lists(st.sampled_from(INPUT_NAMES), max_size=6, unique=True))
        inputs = {name: draw(st.one_of(link, SCALARS)) for name in names}
        prompt[node_id] = {"class_type": draw(st.sampled_from(CLASSES)), "inputs": inputs}
    return prompt


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.one_of(st.none(), st.sampled_from(["1", "2", "5", "404"])))
def test_random_graphs_never_crash_or_hang(api: Prompt, save_id: str | None) -> None:
    parsed = run(api, save_id).to_dict()
    # What the parser adds is strict JSON whatever the graph held (the graphs themselves are ComfyUI's).
    json.dumps({k: v for k, v in parsed.items() if k not in ("prompt", "workflow")}, allow_nan=False)

"""WorkflowParser on a synthetic 2,000-node prompt, against json.loads of the same prompt text.

The graph mixes what large real workflows have: a LoRA-heavy model chain with ModelSampling and
switches, long conditioning chains (ControlNet, area, FluxGuidance, combine), primitives and math
feeding the samplers, a base pass followed by hires passes (latent upscale), preview branches
that do not reach the save node, and custom nodes the rules do not know. Parse and json.loads
alternate within each round (the side that goes first changes every round); the script prints
the medians and the ratio parse / json.loads (target: at most 3).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

from comfyui_provenance.metadata.parser.parse import WorkflowParser
from comfyui_provenance.metadata.parser.rules import bundled

TARGET = 3.0


class Builder:
    def __init__(self) -> None:
        self.prompt: dict[str, dict[str, Any]] = {}

    def add(self, class_type: str, **inputs: Any) -> list[Any]:
        node_id = str(len(self.prompt) + 1)
        self.prompt[node_id] = {"class_type": class_type, "inputs": inputs, "_meta": {"title": class_type}}
        return [node_id, 0]


def model_chain(b: Builder, loras: int) -> tuple[list[Any], list[Any], list[Any]]:
    ckpt = b.add("CheckpointLoaderSimple", ckpt_name="sd_xl_base_1.0.safetensors")
    model, clip = [ckpt[0], 0], [ckpt[0], 1]
    for i in range(loras):
        lora = b.add(
            "LoraLoader",
            lora_name=f"lora_{i}.safetensors",
            strength_model=0.5,
            strength_clip=0.5,
            model=model,
            clip=clip,
        )
        model, clip = [lora[0], 0], [lora[0], 1]
    toggle = b.add("PrimitiveBoolean", value=True)
    patched = b.add("ModelSamplingSD3", shift=3.0, model=model)
    model = b.add("ComfySwitchNode", switch=toggle, on_true=patched, on_false=model)
    clip = b.add("CLIPSetLastLayer", stop_at_clip_layer=-2, clip=clip)
    return model, clip, [ckpt[0], 2]


def conditioning(b: Builder, clip: list[Any], text: str, length: int) -> list[Any]:
    cond = b.add("CLIPTextEncode", text=text, clip=clip)
    net = b.add("ControlNetLoader", control_net_name="control_canny.safetensors")
    image = b.add("LoadImage", image="pose.png")
    for i in range(length):
        kind = i % 4
        if kind == 0:
            cond = b.add("ControlNetApply", conditioning=cond, control_net=net, image=image, strength=0.8)
        elif kind == 1:
            cond = b.add("ConditioningSetArea", conditioning=cond, width=512, height=512, x=0, y=0, strength=1.0)
        elif kind == 2:
            cond = b.add("FluxGuidance", conditioning=cond, guidance=3.5)
        else:
            extra = b.add("CLIPTextEncode", text=f"detail {i}", clip=clip)
            cond = b.add("ConditioningCombine", conditioning_1=cond, conditioning_2=extra)
    return b.add("MyCustomConditioningTweak", conditioning=cond, amount=0.1)


def values(b: Builder, depth: int) -> dict[str, list[Any]]:
    seed = b.add("PrimitiveInt", value=123456789)
    steps: list[Any] = b.add("PrimitiveInt", value=10)
    for _ in range(depth):
        steps = b.add("ComfyMathExpression", expression="a + 1", **{"values.a": steps})
        steps = [steps[0], 1]
    cfg = b.add("PrimitiveFloat", value=6.5)
    return {"seed": seed, "steps": steps, "cfg": cfg}


def build(total: int = 2000, passes: int = 6) -> dict[str, dict[str, Any]]:
    b = Builder()
    model, clip, vae = model_chain(b, loras=40)
    shared = values(b, depth=20)
    latent = b.add("EmptyLatentImage", width=1024, height=1024, batch_size=1)
    per_pass = (total - 400) // (passes * 2 + 2)
    for i in range(passes):
        positive = conditioning(b, clip, f"pass {i}: a castle on a hill, golden hour", per_pass)
        negative = conditioning(b, clip, "blurry, lowres", per_pass)
        if i:
            latent = b.add(
                "LatentUpscale",
                upscale_method="nearest-exact",
                width=1024 + 64 * i,
                height=1024,
                crop="disabled",
                samples=latent,
            )
        sampler = b.add(
            "KSampler",
            seed=shared["seed"],
            steps=shared["steps"],
            cfg=shared["cfg"],
            sampler_name="dpmpp_2m",
            scheduler="karras",
            denoise=1.0 if i == 0 else 0.5,
            model=model,
            positive=positive,
            negative=negative,
            latent_image=latent,
        )
        decoded = b.add("VAEDecode", samples=sampler, vae=vae)
        b.add("PreviewImage", images=decoded)
        latent = sampler
    image = b.add("VAEDecode", samples=latent, vae=vae)
    save = b.add("SaveImage", images=image, filename_prefix="bench")
    while len(b.prompt) < total:  # side branches the save node does not depend on
        side = b.add("MyUnrelatedNode", value=len(b.prompt), image=image)
        b.add("PreviewImage", images=side)
    b.prompt.pop(save[0])
    b.prompt[save[0]] = {"class_type": "SaveImage", "inputs": {"images": image, "filename_prefix": "bench"}}
    while len(b.prompt) > total:
        b.prompt.pop(next(k for k, v in b.prompt.items() if v["class_type"] == "MyUnrelatedNode"))
    return b.prompt


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn: Callable[[], Any], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=41)
    ap.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="cpu: process CPU time, steadier on a busy machine"
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the parse instead of timing it")
    args = ap.parse_args()
    prompt = build(args.nodes)
    text = json.dumps(prompt)
    save_id = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage")
    parser = WorkflowParser(bundled())
    loaded = json.loads(text)
    record = parser.parse(loaded, save_id)
    print(
        f"{len(prompt)} nodes, {len(text) / 1024:.0f} KiB of JSON; the record has {len(record.passes)} passes, "
        f"{len(record.models)} models, seed {record.generation.seed}, steps {record.generation.steps}"
    )
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [parser.parse(loaded, save_id) for _ in range(20)])
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        return 0
    parse_times, load_times, ratios = [], [], []
    for i in range(args.rounds):
        sides = [lambda: json.loads(text), lambda: parser.parse(loaded, save_id)]
        order = sides if i % 2 else sides[::-1]
        first, second = (timed(fn, CLOCKS[args.clock]) for fn in order)
        load, parse = (first, second) if i % 2 else (second, first)
        load_times.append(load)
        parse_times.append(parse)
        ratios.append(parse / load)
    load_ms, parse_ms = statistics.median(load_times) * 1e3, statistics.median(parse_times) * 1e3
    ratio = parse_ms / load_ms
    verdict = "PASS" if ratio <= TARGET else "MISS"
    rounds = f"{args.clock} clock, medians of {args.rounds} interleaved rounds"
    print(f"json.loads {load_ms:.2f} ms, parse {parse_ms:.2f} ms ({rounds})")
    per_round = statistics.median(ratios)
    print(f"ratio parse / json.loads = {ratio:.2f} (median per-round {per_round:.2f}); {verdict}, target <= {TARGET:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What "Video Sampler (Provenance)" does, shared by the V3 node and its V1 fallback.

WAN 2.1 and 2.2 video: the engine of the model's family fills what the user left to it and checks the video's
frames (4k+1) and size (read from the latent) before sampling. One model samples through `common_ksampler`
as core KSampler does. WAN 2.2 A14B's two experts run as the templates' two KSamplerAdvanced nodes do: the
high-noise expert adds the noise and stops at the split step with its leftover noise, the low-noise expert
finishes from there. A timestep boundary (0.875 t2v, 0.900 i2v) becomes that split step on the high expert's
own schedule. The latent is bit for bit that chain's with the same numbers; the report says what was used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .. import compat
from ..engines import EngineError, report
from . import sampler

logger = logging.getLogger(__name__)

NODE_ID = "ProvenanceVideoSampler"
DISPLAY_NAME = "Video Sampler (Provenance)"
CATEGORY = sampler.CATEGORY
DESCRIPTION = (
    "Samples WAN 2.1 / 2.2 video like KSampler, and WAN 2.2 A14B's high-noise and low-noise experts like the "
    "templates' two KSamplerAdvanced nodes (same latent, bit for bit, for the same parameters), switching at the "
    "split step or at a timestep boundary. steps 0, cfg 0, split 0 and 'auto' are filled from the engine's "
    "preset, frames (4k+1) and size are checked before sampling, and what was really used (with per-expert "
    "timings and peak memory) goes into the record of the save nodes downstream."
)
DISABLED = 0
TOOLTIPS = {
    **sampler.TOOLTIPS,
    "model": "The video model: WAN 2.2 A14B's high-noise expert, or the only model of WAN 2.1 / WAN 2.2 5B.",
    "model_low": "WAN 2.2 A14B's low-noise expert (optional): it takes over from the split step.",
    "latent_image": "The video latent (EmptyHunyuanLatentVideo, WanImageToVideo…): its shape gives frames and size.",
    "split": "The step where the low-noise expert takes over; 0 lets the boundary or the preset decide.",
    "boundary": "Switch experts at the first step whose timestep is below boundary × 1000 (0.875 text to video, "
    "0.900 image to video, WAN's own values); 0: none, the split (or the preset's) is used.",
}


def video_facts(latent: Any, model: Any) -> dict[str, int]:
    """frames, width and height of the video a [batch, channels, frames, height, width] latent decodes to
    (temporal ratio 4: f latent frames are 4(f-1)+1 frames); {} for any other latent."""
    shape = getattr(latent.get("samples") if isinstance(latent, Mapping) else None, "shape", None)
    if shape is None or len(shape) != 5:
        return {}
    base = getattr(model, "model", model)
    form = getattr(base, "latent_format", None)
    spatial = latent.get("downscale_ratio_spacial") or getattr(form, "spacial_downscale_ratio", 8)
    temporal = latent.get("downscale_ratio_temporal") or getattr(form, "temporal_downscale_ratio", 4)
    frames, height, width = (int(n) for n in shape[2:])
    return {
        "frames": temporal * (frames - 1) + 1,
        "width": width * int(spatial),
        "height": height * int(spatial),
    }


def task_for(family: Any) -> str:
    """txt2vid, unless the model only does image to video (a WAN I2V class)."""
    allowed = family.allowed_tasks()
    return "img2vid" if "img2vid" in allowed and "txt2vid" not in allowed else "txt2vid"


def split_at_boundary(timesteps: Sequence[float], boundary: float, steps: int) -> tuple[int, str | None]:
    """The first step whose timestep is below boundary * 1000 (WAN: "high-noise expert while t ≥ boundary"),
    kept in 1..steps-1 so each expert runs at least one step; the second value says when it was moved."""
    limit = boundary * 1000.0
    found = next((i for i, t in enumerate(timesteps[:steps]) if t < limit), steps)
    split = min(max(found, 1), steps - 1)
    if split == found:
        return split, None
    return split, f"boundary {boundary} falls at step {found} of {steps}: moved to {split} so each expert runs"


def family_for(model: Any, model_low: Any, prompt: Mapping[str, Any] | None, unique_id: Any) -> Any:
    """The engine of the high (or only) model; with a second model, WAN 2.2 A14B however the files are named."""
    from ..engines import detect
    from ..engines.families import Wan22_14B

    family = detect(model, checkpoint_name=sampler.checkpoint_name(prompt, unique_id))
    if model_low is None or family.engine == Wan22_14B.engine:
        return family
    if family.facts.config_class in Wan22_14B.config_classes:
        return Wan22_14B(family.facts, f"model_config {family.facts.config_class} + a low-noise expert given")
    raise EngineError(
        f"{family.name}: two experts (model and model_low) are for WAN 2.2 A14B (WAN21_T2V / WAN21_I2V classes); "
        f"this model is {family.facts.config_class or 'unknown'}: leave model_low empty"
    )


def low_checkpoint_name(prompt: Mapping[str, Any] | None, unique_id: Any) -> str | None:
    node = prompt.get(str(unique_id)) if isinstance(prompt, Mapping) else None
    link = node.get("inputs", {}).get("model_low") if isinstance(node, Mapping) else None
    if isinstance(link, list) and link and isinstance(link[0], str):
        return sampler.checkpoint_name(prompt, link[0])
    return None


def run(
    *,
    model: Any,
    positive: Any,
    negative: Any,
    latent_image: Any,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    split: int,
    boundary: float,
    mode: str,
    preset: str,
    prompt: Mapping[str, Any] | None,
    unique_id: Any,
    model_low: Any = None,
) -> tuple[Any]:
    """Plan, sample with one model or the two experts, file the report; returns (latent,).

    An EngineError (a ValueError naming engine, task and the allowed values) reaches ComfyUI unchanged."""

    started = time.perf_counter()
    family = family_for(model, model_low, prompt, unique_id)
    given = sampler.given_values(
        seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler, denoise=1.0
    )
    if model_low is not None:
        given.update(split=split or None, boundary=boundary or None)
    given.update(video_facts(latent_image, model))
    chosen = sampler.planned(family, task_for(family), given, mode=mode, preset=preset)
    params = chosen.params
    if model_low is None and (split or boundary):
        chosen.notes.append("split and boundary unused: one model samples every step (no model_low)")
    stages = report.Stages(getattr(model, "load_device", None))
    experts: dict[str, Any] = {"count": 1}
    if model_low is None:
        with compat.noise_timer() as noise, stages.stage("denoise"):
            out = compat.common_ksampler(
                model,
                positive,
                negative,
                latent_image,
                seed=params["seed"],
                steps=params["steps"],
                cfg=params["cfg"],
                sampler_name=params["sampler_name"],
                scheduler=params["scheduler"],
                denoise=params["denoise"],
            )
        compat.split_noise(stages.timings_ms, "denoise", noise["ms"])
    else:
        experts = two_experts_split(model, chosen)
        out = two_experts(
            model, model_low, positive, negative, latent_image, params=params, split=experts["split"], stages=stages
        )
        experts["low_model"] = _low_model(model_low, prompt, unique_id)
    stages.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 3)
    file_report(prompt, unique_id, family=family, chosen=chosen, stages=stages, experts=experts)
    return out


def two_experts_split(model: Any, chosen: Any) -> dict[str, Any]:
    """Where the low-noise expert takes over: the split given or filled, or the boundary's step (then written
    into the plan's params, with a note, so the record holds the step that was used)."""
    params = chosen.params
    boundary = params.get("boundary")
    if params.get("split") is not None or boundary is None:
        source = "preset" if any(e["key"] == "split" for e in chosen.applied_preset_patch) else "input"
        return {"count": 2, "split": params["split"], "boundary": None, "split_from": source}
    if params["steps"] < 2:
        raise EngineError(
            f"{chosen.engine} {chosen.task}: steps must be 2 or more to split between two experts, "
            f"got {params['steps']}"
        )
    timesteps = compat.schedule_timesteps(model, params["scheduler"], params["steps"])
    split, moved = split_at_boundary(timesteps, boundary, params["steps"])
    params["split"] = split
    schedule = params["scheduler"]
    chosen.notes.append(f"boundary {boundary} → split {split} on the high-noise expert's {schedule} schedule")
    if moved:
        chosen.notes.append(moved)
    return {
        "count": 2,
        "split": split,
        "boundary": boundary,
        "split_from": "boundary",
        "timesteps": [round(t, 3) for t in timesteps],
    }


def two_experts(
    model: Any,
    model_low: Any,
    positive: Any,
    negative: Any,
    latent: Any,
    *,
    params: Mapping[str, Any],
    split: int,
    stages: Any,
) -> tuple[Any]:
    """The templates' chain: KSamplerAdvanced(high, add_noise enable, 0 → split, return_with_leftover_noise
    enable) then KSamplerAdvanced(low, add_noise disable, split → steps, leftover noise disable). The low
    expert gets the same seed: it adds no noise, but ancestral and SDE samplers draw their step noise from it."""
    shared = {
        "seed": params["seed"],
        "steps": params["steps"],
        "cfg": params["cfg"],
        "sampler_name": params["sampler_name"],
        "scheduler": params["scheduler"],
    }
    with compat.noise_timer() as noise, stages.stage("high"):
        (high,) = compat.common_ksampler_advanced(
            model,
            positive,
            negative,
            latent,
            **shared,
            disable_noise=False,
            start_step=0,
            last_step=split,
            force_full_denoise=False,
        )
    compat.split_noise(stages.timings_ms, "high", noise["ms"])
    with stages.stage("low"):
        return compat.common_ksampler_advanced(
            model_low,
            positive,
            negative,
            high,
            **shared,
            disable_noise=True,
            start_step=split,
            last_step=params["steps"],
            force_full_denoise=True,
        )


def _low_model(model_low: Any, prompt: Mapping[str, Any] | None, unique_id: Any) -> dict[str, Any]:
    """What detection says of the low-noise expert (its file name when the prompt shows it)."""
    from ..engines import detect

    try:
        return dict(detect(model_low, checkpoint_name=low_checkpoint_name(prompt, unique_id)).describe())
    except Exception as err:  # a description is extra
        return {"error": f"{type(err).__name__}: {err}"}


def file_report(
    prompt: Mapping[str, Any] | None, unique_id: Any, *, family: Any, chosen: Any, stages: Any, experts: dict[str, Any]
) -> None:
    """The call's report, as the image sampler files it, with the experts' split."""
    sampler.file_report(
        prompt,
        unique_id,
        family,
        chosen,
        stages,
        class_type=NODE_ID,
        notes=(
            "timings_ms.noise is ComfyUI's prepare_noise timed where common_ksampler calls it; the first "
            "stage's time is the rest of its call, the model load included",
            "shift is the model's own (ModelSamplingSD3 upstream); the plan's shift is the engine's advice",
        ),
        extra={"experts": experts},
    )

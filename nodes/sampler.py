"""What "Sampler (Provenance)" does, shared by the V3 node and its V1 fallback.

The engine for the model's family fills what the user left to it (steps 0, cfg 0, "auto") from its
preset, checks the result, and the node samples through ComfyUI's own `common_ksampler` with those
effective parameters: the latent is bit for bit core KSampler's with the same numbers. Each call files
a report (engine, plan, timings, peak memory) that the save nodes put into their record.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import compat
from ..engines import report

logger = logging.getLogger(__name__)
_presets_lock = threading.Lock()
_presets_cache: dict[str, Any] = {}

NODE_ID = "ProvenanceSampler"
DISPLAY_NAME = "Sampler (Provenance)"
CATEGORY = "sampling/provenance"
DESCRIPTION = (
    "Samples like KSampler (same latent, bit for bit, for the same parameters), with an engine per model "
    "family: steps 0, cfg 0 and 'auto' are filled from the family's preset for the mode, every value is "
    "checked before sampling, A1111 sampler names such as 'DPM++ 2M Karras' are accepted, and what was "
    "really used (with timings and peak memory) goes into the record of the save nodes downstream."
)
AUTO = "auto"
# What a preset may recommend that this node does not apply: the guidance sampled with is the
# conditioning's (FluxGuidance upstream), the shift the model's (ModelSamplingSD3 upstream).
UNAPPLIED = ("guidance", "shift")
UNAPPLIED_WHY = "the conditioning's guidance and the model's own shift (FluxGuidance, ModelSamplingSD3) apply"
# User presets: <ComfyUI user directory>/provenance/presets/*.json (override bundled ones by name).
PRESETS_FOLDER = "presets"
DEFAULT_MODE = "normal"
# Schedule labels A1111 (before 1.6) and Civitai write as part of the sampler's name.
FOLDED_SCHEDULES = ("Karras", "Exponential")
A1111_TABLE = Path(__file__).resolve().parent.parent / "engines" / "data" / "a1111_samplers.json"
TOOLTIPS = {
    "model": "The model used for denoising; its family (SD1.5, SDXL, Flux, WAN) picks the engine.",
    "positive": "The conditioning describing what to include.",
    "negative": "The conditioning describing what to exclude.",
    "latent_image": "The latent to denoise (an empty latent for text to image).",
    "seed": "The random seed used for creating the noise.",
    "steps": "Sampling steps; 0 lets the engine's preset decide.",
    "cfg": "Classifier-free guidance scale; 0 lets the engine's preset decide.",
    "sampler_name": "ComfyUI's sampler, or an A1111 label such as 'DPM++ 2M Karras' (which also names the "
    "scheduler); 'auto' lets the preset decide.",
    "scheduler": "ComfyUI's scheduler; 'auto' lets the preset (or the A1111 label) decide.",
    "denoise": "How much of the latent is replaced: 1.0 for text to image, lower for image to image.",
    "mode": "normal, or a distilled model's mode (lcm, turbo, lightning): picks the preset and the allowed "
    "step and cfg ranges; the record says why a mode the family does not have was ignored.",
    "preset": "A preset's name (bundled, or a JSON file in <user>/provenance/presets); empty: the engine's "
    "default preset for the mode. A preset only fills what the inputs above leave to it.",
}


def a1111_labels(path: Path = A1111_TABLE) -> list[str]:
    """The A1111 sampler labels the engines' table maps ("DPM++ 2M"), then each with the schedule labels that
    A1111 before 1.6 and Civitai fold into the name ("DPM++ 2M Karras"); [] without the table."""
    try:
        data = json.loads(path.read_text("utf-8"))
        labels = [str(label) for label in data["samplers"]]
        folded = [str(s) for s in data.get("schedulers", {}) if str(s) in FOLDED_SCHEDULES]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    return labels + [f"{label} {schedule}" for schedule in folded for label in labels]


def sampler_options(samplers: Sequence[str], labels: Sequence[str] | None = None) -> list[str]:
    """The sampler_name combo: "auto", ComfyUI's samplers, then the A1111 labels not already among them."""
    labels = a1111_labels() if labels is None else labels
    return list(dict.fromkeys([AUTO, *samplers, *labels]))


def scheduler_options(schedulers: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([AUTO, *schedulers]))


def given_values(
    *, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, denoise: float
) -> dict[str, Any]:
    """The node's inputs as the engine's `given`: what the user left to the engine (0 steps, 0 cfg, "auto")
    is None. A seed of 0 is a seed."""
    return {
        "seed": seed,
        "steps": steps or None,
        "cfg": cfg or None,
        "sampler_name": None if sampler_name in (AUTO, "") else sampler_name,
        "scheduler": None if scheduler in (AUTO, "") else scheduler,
        "denoise": denoise,
    }


def task_of(denoise: float | None) -> str:
    return "img2img" if denoise is not None and denoise < 1.0 else "txt2img"


def presets(folder: Path, load: Callable[[Path], Any]) -> Any:
    """The bundled and user presets, loaded again only when the user folder's files change (a stat per call)."""
    try:
        key = (str(folder), tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.json"))))
    except OSError:
        key = (str(folder), ())
    with _presets_lock:
        if _presets_cache.get("key") != key:
            _presets_cache.update(key=key, store=load(folder))
        return _presets_cache["store"]


def checkpoint_name(prompt: Mapping[str, Any] | None, node_id: Any) -> str | None:
    """The file name the sampler's model was loaded from: the first ckpt_name/unet_name up its `model` links."""
    seen: set[str] = set()
    current = prompt.get(str(node_id)) if isinstance(prompt, Mapping) else None
    while isinstance(current, Mapping) and len(seen) < 256:
        inputs = current.get("inputs")
        if not isinstance(inputs, Mapping):
            return None
        for key in ("ckpt_name", "unet_name", "model_name"):
            if isinstance(inputs.get(key), str):
                return str(inputs[key])
        link = inputs.get("model")
        if not (isinstance(link, list) and link and isinstance(link[0], str)) or link[0] in seen:
            return None
        seen.add(link[0])
        current = prompt.get(link[0]) if isinstance(prompt, Mapping) else None
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
    denoise: float,
    mode: str,
    preset: str,
    prompt: Mapping[str, Any] | None,
    unique_id: Any,
) -> tuple[Any]:
    """Plan with the model's engine, sample through common_ksampler, file the report; returns (latent,).

    An EngineError (a ValueError naming engine, task and the allowed values) reaches ComfyUI unchanged."""
    from ..engines import detect

    started = time.perf_counter()
    family = detect(model, checkpoint_name=checkpoint_name(prompt, unique_id))
    given = given_values(
        seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler, denoise=denoise
    )
    chosen = planned(family, task_of(denoise), given, mode=mode, preset=preset)
    params = chosen.params
    stages = report.Stages(getattr(model, "load_device", None))
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
    stages.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 3)
    file_report(prompt, unique_id, family, chosen, stages)
    return out


def planned(family: Any, task: str, given: Mapping[str, Any], *, mode: str, preset: str) -> Any:
    """The engine's plan with ComfyUI's live sampler lists and the user's presets, what neither sampler
    applies set aside as advice; shared by both sampler nodes."""
    from ..engines import load_presets, plan

    chosen = plan(
        family,
        task,
        given,
        mode=mode,
        preset=preset.strip() or None,
        samplers=compat.sampler_names(),
        schedulers=compat.scheduler_names(),
        presets=presets(compat.user_directory() / "provenance" / PRESETS_FOLDER, load_presets),
    )
    chosen.set_aside(UNAPPLIED, UNAPPLIED_WHY)
    return chosen


def file_report(
    prompt: Mapping[str, Any] | None,
    unique_id: Any,
    family: Any,
    chosen: Any,
    stages: Any,
    *,
    class_type: str = NODE_ID,
    notes: Sequence[str] = (
        "timings_ms.noise is ComfyUI's prepare_noise timed where common_ksampler calls it; "
        "denoise is the rest of that call, the model load included",
    ),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """The call's report into the process-wide store (engines/report.py); never raises."""
    try:
        entry = {
            "node_id": str(unique_id) if unique_id is not None else None,
            "class_type": class_type,
            "engine": getattr(family, "name", str(family)),
            "plan": chosen.to_dict(),
            **(extra or {}),
            "timings_ms": {"noise": None, **stages.timings_ms},
            "peak_memory": stages.peak_memory,
            "prompt_id": compat.current_prompt_id(),
            "notes": list(notes),
        }
        report.file_report(prompt, unique_id, entry)
    except Exception as err:  # a report is extra: the latent is what matters
        logger.warning("provenance: %s report not filed: %s", class_type, err)

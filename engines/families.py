"""The model families, most specific first, and `detect()`, which picks one for a ComfyUI MODEL."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from .family import KSAMPLER_DEFAULTS, MODES, TASKS, Family, ModelFacts
from .specs import BOUNDARY, FRAMES, GUIDANCE, SHIFT, SPLIT, ParamSpec, size_specs

# WAN 2.2 A14B experts load as ComfyUI's WAN21_T2V / WAN21_I2V: only the file or its header tells.
WAN22_MARK = re.compile(r"wan[ ._-]?2[._]?2|high[ _-]?noise|low[ _-]?noise", re.IGNORECASE)
WAN21_MARK = re.compile(r"wan[ ._-]?2[._]?1", re.IGNORECASE)
HIGH_NOISE = re.compile(r"high[ _-]?noise", re.IGNORECASE)
LOW_NOISE = re.compile(r"low[ _-]?noise", re.IGNORECASE)


class Generic(Family):
    """Anything not recognised: every parameter allowed, no presets, KSampler's defaults."""

    tasks = TASKS
    modes = MODES
    extras: ClassVar[Mapping[str, ParamSpec]] = {
        "guidance": GUIDANCE,
        "shift": SHIFT,
        "frames": FRAMES,
        **size_specs(8),
        "split": SPLIT,
        "boundary": BOUNDARY,
    }

    @classmethod
    def matches(cls, facts: ModelFacts) -> bool:
        return True

    @property
    def name(self) -> str:
        return f"generic ({self.facts.config_class or 'unknown'})"


class SD15(Family):
    engine = "sd15"
    label = "Stable Diffusion 1.5"
    config_classes = ("SD15",)
    modes = ("normal", "lcm")


class SDXL(Family):
    engine = "sdxl"
    label = "Stable Diffusion XL"
    config_classes: ClassVar[tuple[str, ...]] = ("SDXL",)
    modes: ClassVar[tuple[str, ...]] = MODES


class SDXLRefiner(SDXL):
    engine = "sdxl_refiner"
    label = "Stable Diffusion XL refiner"
    config_classes = ("SDXLRefiner",)
    modes = ("normal",)


class Flux(Family):
    """Flux dev: guidance-distilled, so cfg stays 1 and `guidance` does the work."""

    engine = "flux"
    label = "Flux.1 dev"
    config_classes: ClassVar[tuple[str, ...]] = ("Flux", "FluxInpaint")
    extras: ClassVar[Mapping[str, ParamSpec]] = {"guidance": GUIDANCE}
    defaults: ClassVar[Mapping[str, Any]] = {
        **KSAMPLER_DEFAULTS,
        "cfg": 1.0,
        "guidance": 3.5,
        "sampler_name": "euler",
        "scheduler": "simple",
    }
    flow = True

    def problems(self, task: str, params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        if params.get("cfg") not in (None, 1.0):
            yield (
                "cfg",
                f"cfg must be 1 (got {params.get('cfg')}): Flux dev is guidance-distilled, use guidance "
                f"({self.extras['guidance'].describe()}, usually 3.5) instead",
            )


class FluxSchnell(Flux):
    engine = "flux_schnell"
    label = "Flux.1 schnell"
    config_classes = ("FluxSchnell",)
    extras: ClassVar[Mapping[str, ParamSpec]] = {}
    defaults: ClassVar[Mapping[str, Any]] = {
        **KSAMPLER_DEFAULTS,
        "steps": 4,
        "cfg": 1.0,
        "sampler_name": "euler",
        "scheduler": "simple",
    }

    def problems(self, task: str, params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        if params.get("cfg") not in (None, 1.0):
            yield "cfg", f"cfg must be 1 (got {params.get('cfg')}): Flux schnell is distilled and has no guidance input"


class Wan(Family):
    """WAN video models: frames 4k+1, sizes on the VAE's grid, a ModelSamplingSD3 shift."""

    tasks = ("txt2vid", "img2vid")
    extras: ClassVar[Mapping[str, ParamSpec]] = {"frames": FRAMES, **size_specs(16), "shift": SHIFT}
    defaults: ClassVar[Mapping[str, Any]] = {
        **KSAMPLER_DEFAULTS,
        "cfg": 6.0,
        "sampler_name": "uni_pc",
        "scheduler": "simple",
        "shift": 8.0,
    }
    flow = True

    def allowed_tasks(self) -> tuple[str, ...]:
        """A 14B checkpoint is either text-to-video or image-to-video; the class name says which."""
        kind = self.facts.unet_config.get("model_type")
        if self.facts.config_class == "WAN21_I2V" or kind == "i2v":
            return ("img2vid",)
        if self.facts.config_class == "WAN21_T2V" or kind == "t2v":
            return ("txt2vid",)
        return self.tasks

    def problems(self, task: str, params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        frames = params.get("frames")
        if isinstance(frames, int) and frames % 4 != 1:
            below = frames - (frames - 1) % 4
            yield (
                "frames",
                f"frames must be 4k+1 (1, 5, 9, … 77, 81, 85 …), got {frames}: nearest {below} or {below + 4}",
            )


class Wan22_5B(Wan):
    engine = "wan22_5b"
    label = "WAN 2.2 TI2V 5B"
    config_classes = ("WAN22_T2V",)
    # Wan22ImageToVideoLatent steps width/height by 32 (16x VAE, 2x2 patches).
    extras: ClassVar[Mapping[str, ParamSpec]] = {"frames": FRAMES, **size_specs(32), "shift": SHIFT}
    defaults: ClassVar[Mapping[str, Any]] = {**Wan.defaults, "cfg": 5.0, "shift": 8.0}

    def allowed_tasks(self) -> tuple[str, ...]:
        return self.tasks


class Wan21_1_3B(Wan):
    engine = "wan21_1_3b"
    label = "WAN 2.1 1.3B"
    config_classes = ("WAN21_T2V",)

    @classmethod
    def matches(cls, facts: ModelFacts) -> bool:
        return super().matches(facts) and facts.unet_config.get("dim") == 1536


class Wan22_14B(Wan):
    """One expert of WAN 2.2 A14B; the video sampler runs the high-noise then the low-noise expert."""

    engine = "wan22_14b"
    label = "WAN 2.2 A14B"
    config_classes = ("WAN21_T2V", "WAN21_I2V")
    modes = ("normal", "lightning")
    extras: ClassVar[Mapping[str, ParamSpec]] = {**Wan.extras, "split": SPLIT, "boundary": BOUNDARY}
    defaults: ClassVar[Mapping[str, Any]] = {
        **Wan.defaults,
        "cfg": 3.5,
        "sampler_name": "euler",
        "scheduler": "simple",
        "shift": 5.0,
    }
    exclusive = (("split", "boundary"),)

    @classmethod
    def matches(cls, facts: ModelFacts) -> bool:
        if not super().matches(facts):
            return False
        if any(WAN21_MARK.search(text) for text in facts.header_text):
            return False
        return facts.mentions(WAN22_MARK) is not None

    def __init__(self, facts: ModelFacts | None = None, evidence: str = "model_config class") -> None:
        facts = facts or ModelFacts()
        where = facts.mentions(WAN22_MARK)
        super().__init__(facts, f"model_config {facts.config_class} + WAN 2.2 in the {where}" if where else evidence)
        name = facts.checkpoint_name or ""
        self.expert = "high_noise" if HIGH_NOISE.search(name) else "low_noise" if LOW_NOISE.search(name) else None

    def derived(self, task: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Without a preset, switch experts halfway, as the templates do (20 steps, split 10)."""
        steps = params.get("steps")
        return {"split": max(1, steps // 2)} if isinstance(steps, int) and steps > 1 else {}

    def problems(self, task: str, params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        yield from super().problems(task, params)
        split, steps = params.get("split"), params.get("steps")
        if isinstance(split, int) and isinstance(steps, int) and not 1 <= split <= steps - 1:
            if steps < 2:
                yield "steps", f"steps must be 2 or more to split between two experts, got {steps}"
            else:
                yield "split", f"split must be a step in 1..{steps - 1} for {steps} steps, got {split}"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "expert": self.expert}


class Wan21_14B(Wan):
    engine = "wan21_14b"
    label = "WAN 2.1 14B"
    config_classes = ("WAN21_T2V", "WAN21_I2V")
    modes = ("normal", "lightning")


# Most specific first: the first family whose matches() holds wins; Generic always holds.
FAMILIES: list[type[Family]] = [
    SD15,
    SDXLRefiner,
    SDXL,
    FluxSchnell,
    Flux,
    Wan22_5B,
    Wan21_1_3B,
    Wan22_14B,
    Wan21_14B,
    Generic,
]


def detect(model: Any, checkpoint_name: str | None = None, header: Mapping[str, Any] | None = None) -> Family:
    """The family of a ComfyUI MODEL (ModelPatcher), read by duck typing; `checkpoint_name` and the
    safetensors `header` (its `__metadata__`) tell WAN 2.2 A14B experts from WAN 2.1 14B."""
    facts = ModelFacts.read(model, checkpoint_name, header)
    for family in FAMILIES:
        if family.matches(facts):
            evidence = "no known model_config class" if family is Generic else "model_config class"
            return family(facts, evidence)
    raise AssertionError("Generic matches every model")  # pragma: no cover


def family_by_engine(engine: str) -> type[Family] | None:
    """The family class for a preset's engine name."""
    return next((family for family in FAMILIES if family.engine == engine and family is not Generic), None)

"""Modes (Normal/LCM/Turbo/Lightning): the step, cfg and sampler limits each implies, and its defaults."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .specs import ParamSpec


@dataclass(frozen=True)
class Mode:
    """Limits a distilled model or LoRA imposes; the same for every family that has the mode."""

    name: str
    limits: Mapping[str, ParamSpec] = field(default_factory=dict)
    samplers: tuple[str, ...] = ()
    # Used when neither the user nor a preset set a key (then the family's defaults).
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def problems(self, params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        """(key, message) for each limit `params` breaks."""
        for key, spec in self.limits.items():
            value = params.get(key)
            if value is not None and (why := spec.check(value)) is not None:
                yield key, f"{self.name} mode: {why}"
        sampler = params.get("sampler_name")
        if self.samplers and sampler is not None and sampler not in self.samplers:
            yield "sampler_name", f"{self.name} mode: sampler must be {', '.join(self.samplers)}, got {sampler}"


MODE_TABLE: Mapping[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("normal"),
        Mode(
            "lcm",
            {"steps": ParamSpec("steps", "int", 2, 8), "cfg": ParamSpec("cfg", "float", 1.0, 2.0)},
            samplers=("lcm",),
            defaults={"steps": 6, "cfg": 1.5, "sampler_name": "lcm", "scheduler": "sgm_uniform"},
        ),
        Mode(
            "turbo",
            {"steps": ParamSpec("steps", "int", 1, 4), "cfg": ParamSpec("cfg", "float", 0.0, 1.5)},
            defaults={"steps": 1, "cfg": 1.0, "sampler_name": "euler_ancestral", "scheduler": "sgm_uniform"},
        ),
        Mode(
            "lightning",
            {"steps": ParamSpec("steps", "int", 2, 8), "cfg": ParamSpec("cfg", "float", 0.0, 2.0)},
            defaults={"steps": 4, "cfg": 1.0, "sampler_name": "euler", "scheduler": "sgm_uniform"},
        ),
    )
}

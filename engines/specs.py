"""Typed parameter specs: what each engine accepts, as data the validator and the preset loader share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["int", "float", "str"]

# ComfyUI's own widget limits (nodes.py KSampler, MAX_RESOLUTION): the outer bounds of every engine.
MAX_SEED = 0xFFFFFFFFFFFFFFFF
MAX_STEPS = 10000
MAX_CFG = 100.0
MAX_RESOLUTION = 16384


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its kind, an inclusive range (or an exclusive low end) and, for sizes, a multiple."""

    name: str
    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    multiple_of: int | None = None
    help: str = ""

    def describe(self) -> str:
        """The allowed values in words, for error messages."""
        low = "" if self.minimum is None else f"{_num(self.minimum)}"
        high = "" if self.maximum is None else f"{_num(self.maximum)}"
        if self.kind == "str":
            text = "a name"
        elif low and high:
            text = f"{'(' if self.exclusive_minimum else '['}{low}, {high}{')' if self.exclusive_maximum else ']'}"
        elif low:
            text = f"{'>' if self.exclusive_minimum else '≥'} {low}"
        else:
            text = f"{'<' if self.exclusive_maximum else '≤'} {high}" if high else "any number"
        if self.multiple_of:
            text += f", a multiple of {self.multiple_of}"
        return f"{self.kind} {text}"

    def check(self, value: Any) -> str | None:
        """None when `value` fits, else why not (without the engine/task prefix)."""
        if self.kind == "str":
            return None if isinstance(value, str) and value else f"{self.name} must be a non-empty name"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.name} must be {self.describe()}, got {value!r}"
        if self.kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
            return f"{self.name} must be {self.describe()}, got {value!r}"
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return f"{self.name} must be {self.describe()}, got {value!r}"
        too_low = self.minimum is not None and (
            number <= self.minimum if self.exclusive_minimum else number < self.minimum
        )
        too_high = self.maximum is not None and (
            number >= self.maximum if self.exclusive_maximum else number > self.maximum
        )
        off_grid = self.multiple_of is not None and int(number) % self.multiple_of != 0
        if too_low or too_high or off_grid:
            return f"{self.name} must be {self.describe()}, got {_num(number)}"
        return None

    def coerce(self, value: Any) -> Any:
        """The value in its kind (an int given as 20.0 becomes 20); call after check()."""
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        return value


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# The parameters every engine has (ComfyUI KSampler's inputs).
COMMON: Mapping[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        ParamSpec("seed", "int", 0, MAX_SEED),
        ParamSpec("steps", "int", 1, MAX_STEPS),
        ParamSpec("cfg", "float", 0.0, MAX_CFG),
        ParamSpec("sampler_name", "str"),
        ParamSpec("scheduler", "str"),
        ParamSpec("denoise", "float", 0.0, 1.0, exclusive_minimum=True),
    )
}
GUIDANCE = ParamSpec("guidance", "float", 0.0, 100.0, help="Flux guidance (FluxGuidance), not classifier-free cfg")
SHIFT = ParamSpec("shift", "float", 0.0, 100.0, help="ModelSamplingSD3 shift")
FRAMES = ParamSpec("frames", "int", 1, MAX_RESOLUTION, help="video length in frames, 4k+1")
SPLIT = ParamSpec("split", "int", 1, MAX_STEPS, help="the step where the low-noise expert takes over")
BOUNDARY = ParamSpec(
    "boundary",
    "float",
    0.0,
    1.0,
    exclusive_minimum=True,
    exclusive_maximum=True,
    help="timestep fraction of the switch",
)


def size_specs(multiple: int) -> dict[str, ParamSpec]:
    return {
        "width": ParamSpec("width", "int", multiple, MAX_RESOLUTION, multiple_of=multiple),
        "height": ParamSpec("height", "int", multiple, MAX_RESOLUTION, multiple_of=multiple),
    }

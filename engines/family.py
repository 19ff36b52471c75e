"""The family base class and the model facts it matches on, read from ComfyUI's MODEL by duck typing."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .specs import COMMON, ParamSpec

TASKS = ("txt2img", "img2img", "txt2vid", "img2vid")
MODES = ("normal", "lcm", "turbo", "lightning")
# ComfyUI KSampler's widget defaults: what an engine uses when neither the user nor a preset says.
KSAMPLER_DEFAULTS: Mapping[str, Any] = {
    "seed": 0,
    "steps": 20,
    "cfg": 8.0,
    "sampler_name": "euler",
    "scheduler": "normal",
    "denoise": 1.0,
}


@dataclass(frozen=True)
class ModelFacts:
    """What detection looks at: names and numbers only, so a family never holds ComfyUI objects."""

    config_class: str | None = None
    unet_config: Mapping[str, Any] = field(default_factory=dict)
    latent_format: str | None = None
    latent_channels: int | None = None
    model_type: str | None = None
    checkpoint_name: str | None = None
    header_text: tuple[str, ...] = ()

    @classmethod
    def read(
        cls, model: Any, checkpoint_name: str | None = None, header: Mapping[str, Any] | None = None
    ) -> ModelFacts:
        """Facts from a ModelPatcher (`model.model` is the model_base) or a bare model_base."""
        base = getattr(model, "model", model)
        config = getattr(base, "model_config", None)
        unet_config = getattr(config, "unet_config", None)
        latent = getattr(base, "latent_format", None)
        model_type = getattr(base, "model_type", None)
        channels = getattr(latent, "latent_channels", None)
        return cls(
            config_class=type(config).__name__ if config is not None else None,
            unet_config=dict(unet_config) if isinstance(unet_config, Mapping) else {},
            latent_format=_class_name(latent),
            latent_channels=channels if isinstance(channels, int) else None,
            model_type=getattr(model_type, "name", None) if model_type is not None else None,
            checkpoint_name=checkpoint_name,
            header_text=tuple(_header_strings(header)),
        )

    def mentions(self, pattern: re.Pattern[str]) -> str | None:
        """Where `pattern` shows up: "header" or "file name", header first (it outranks a renamed file)."""
        if any(pattern.search(text) for text in self.header_text):
            return "header"
        if self.checkpoint_name and pattern.search(self.checkpoint_name):
            return "file name"
        return None


def _class_name(obj: Any) -> str | None:
    if obj is None:
        return None
    return obj.__name__ if isinstance(obj, type) else type(obj).__name__


def _header_strings(header: Mapping[str, Any] | None) -> Iterator[str]:
    """String values of a safetensors header's `__metadata__` (or of the metadata mapping itself)."""
    if not isinstance(header, Mapping):
        return
    metadata = header.get("__metadata__", header)
    if not isinstance(metadata, Mapping):
        return
    for key, value in metadata.items():
        if isinstance(key, str) and isinstance(value, str) and len(value) <= 4096:
            yield f"{key}={value}"


class Family:
    """A model family: how to recognise it, what it accepts per task, its modes and defaults.

    Subclasses are declarative: they set the class attributes and override only what differs, the way
    ComfyUI's `supported_models` classes do. `detect()` builds an instance holding the facts it matched.
    """

    engine: ClassVar[str] = "generic"
    label: ClassVar[str] = "model"
    config_classes: ClassVar[tuple[str, ...]] = ()
    tasks: ClassVar[tuple[str, ...]] = ("txt2img", "img2img")
    modes: ClassVar[tuple[str, ...]] = ("normal",)
    extras: ClassVar[Mapping[str, ParamSpec]] = {}
    defaults: ClassVar[Mapping[str, Any]] = KSAMPLER_DEFAULTS
    # Keys of which the user sets at most one; a preset fills the first it has only when none was given.
    exclusive: ClassVar[tuple[tuple[str, ...], ...]] = ()
    flow: ClassVar[bool] = False

    def __init__(self, facts: ModelFacts | None = None, evidence: str = "model_config class") -> None:
        self.facts = facts or ModelFacts()
        self.evidence = evidence

    @classmethod
    def matches(cls, facts: ModelFacts) -> bool:
        return facts.config_class in cls.config_classes

    @property
    def name(self) -> str:
        return self.engine

    def allowed_tasks(self) -> tuple[str, ...]:
        return self.tasks

    def specs(self) -> dict[str, ParamSpec]:
        return {**COMMON, **self.extras}

    def derived(self, task: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults that depend on other parameters, filled after the static ones."""
        return {}

    def problems(self, task: str, params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        """Family rules beyond the per-parameter ranges: (key, message without the engine/task prefix)."""
        return iter(())

    def notes(self, task: str, mode: str, params: Mapping[str, Any]) -> list[str]:
        """Warnings that do not stop sampling."""
        found = []
        if params.get("sampler_name") == "lcm" and mode != "lcm":
            found.append("sampler lcm outside lcm mode: it expects an LCM model or LoRA")
        if self.flow and params.get("scheduler") in ("karras", "exponential"):
            found.append(f"scheduler {params['scheduler']} on a flow model: simple, beta or normal are usual")
        return found

    def describe(self) -> dict[str, Any]:
        """What the record keeps about detection."""
        return {
            "engine": self.name,
            "label": self.label,
            "config_class": self.facts.config_class,
            "model_type": self.facts.model_type,
            "latent_format": self.facts.latent_format,
            "evidence": self.evidence,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.evidence})>"

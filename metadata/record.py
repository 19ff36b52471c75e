"""The canonical, versioned provenance record: the one truth every writer serializes.

Its JSON paths are a public contract (users' scripts read them): keys are never renamed, and a
field that is unknown is present as null rather than missing. Keys a newer version adds are kept
on read and written back untouched, so an older reader never drops what it does not know.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

SCHEMA_ID = "comfyui-provenance/1"
GENERATOR_NAME = "ComfyUI Provenance"

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"

T = TypeVar("T", bound="_Node")


class _Node:
    """Dict conversion shared by every record part; unknown keys survive in `other`."""

    other: dict[str, Any]
    _hints: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name != "other":
                out[f.name] = _dump(getattr(self, f.name))
        out.update(self.other)
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
        data = dict(data or {})
        kwargs: dict[str, Any] = {}
        for name, load in _load_plan(cls):
            if name in data:
                value = data.pop(name)
                kwargs[name] = value if load is None else load(value)
        return cls(**kwargs, other=data)  # type: ignore[call-arg]


def _hints_of(cls: type) -> dict[str, Any]:
    cached = cls.__dict__.get("_hints_cache")
    if cached is None:
        cached = get_type_hints(cls)
        setattr(cls, "_hints_cache", cached)  # noqa: B010 - class-level cache, not a field
    return cached


def _dump(value: Any) -> Any:
    """Record parts become dicts; plain JSON values (the graphs are large) are shared, not copied."""
    if isinstance(value, _Node):
        return value.to_dict()
    if isinstance(value, list) and value and isinstance(value[0], _Node):
        return [_dump(v) for v in value]
    return value


Loader = Callable[[Any], Any]


def _load_plan(cls: type) -> tuple[tuple[str, Loader | None], ...]:
    """Each field's name and loader, worked out once per class: reading a file then costs no typing calls."""
    cached = cls.__dict__.get("_load_plan_cache")
    if cached is None:
        hints = _hints_of(cls)
        cached = tuple((f.name, _loader(hints[f.name])) for f in dataclasses.fields(cls) if f.name != "other")
        setattr(cls, "_load_plan_cache", cached)  # noqa: B010 - class-level cache, not a field
    return cached


def _loader(hint: Any) -> Loader | None:
    """How a JSON value becomes this field: a record part from its dict, a list of them, or as is (None)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        node = next((a for a in get_args(hint) if isinstance(a, type) and issubclass(a, _Node)), None)
        if node is None:
            return None
        return lambda value: node.from_dict(value) if isinstance(value, dict) else value
    if isinstance(hint, type) and issubclass(hint, _Node):
        return lambda value: hint.from_dict(value if isinstance(value, dict) else {})
    if origin is list:
        (item,) = get_args(hint)
        if isinstance(item, type) and issubclass(item, _Node):
            return lambda value: (
                [item.from_dict(v) if isinstance(v, dict) else v for v in value] if isinstance(value, list) else value
            )
    return None


@dataclass
class Generation(_Node):
    """The base generation stage, as A1111 reports it."""

    positive: str | None = None
    negative: str | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    denoise: float | None = None
    width: int | None = None
    height: int | None = None
    guidance: float | None = None
    batch_size: int | None = None
    # Added in 1.x (readers of older records get null): see record-1.schema.json.
    shift: float | None = None
    frames: int | None = None
    fps: float | None = None
    clip_skip: int | None = None
    input_images: list[str] | None = None
    api_node: dict[str, Any] | None = None
    other: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pass(_Node):
    """One sampler stage; `node_id` is the API-prompt id of the sampler node."""

    node_id: str = ""
    class_type: str | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    denoise: float | None = None
    start_step: int | None = None
    end_step: int | None = None
    positive: str | None = None
    negative: str | None = None
    model: str | None = None
    width: int | None = None
    height: int | None = None
    # Added in 1.x (readers of older records get null): see record-1.schema.json.
    add_noise: bool | str | None = None
    guidance: float | None = None
    shift: float | None = None
    frames: int | None = None
    loras: list[dict[str, Any]] = field(default_factory=list)
    other: dict[str, Any] = field(default_factory=dict)


@dataclass
class Model(_Node):
    """A model file the output depends on: checkpoint, unet, clip, vae, lora, embedding, ..."""

    role: str = "unknown"
    name: str = ""
    node_id: str | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    strength_model: float | None = None
    strength_clip: float | None = None
    other: dict[str, Any] = field(default_factory=dict)


@dataclass
class Image(_Node):
    """The saved pixels: what the file itself holds."""

    format: str | None = None
    width: int | None = None
    height: int | None = None
    batch_index: int | None = None
    batch_size: int | None = None
    filename: str | None = None
    other: dict[str, Any] = field(default_factory=dict)


@dataclass
class Placement(_Node):
    """Where one target went: written in place, moved to a sidecar, omitted, or failed."""

    target: str = ""
    location: str = ""
    status: str = "written"
    reason: str | None = None
    other: dict[str, Any] = field(default_factory=dict)


@dataclass
class Generator(_Node):
    name: str = GENERATOR_NAME
    version: str | None = None
    other: dict[str, Any] = field(default_factory=dict)


@dataclass
class Provenance(_Node):
    """How the record was captured and how it was embedded."""

    capture_mode: str = "parser"
    created: str | None = None
    generator: Generator = field(default_factory=Generator)
    comfyui_version: str | None = None
    prompt_id: str | None = None
    save_node_id: str | None = None
    digital_source_type: str = TRAINED
    field_sources: dict[str, str] = field(default_factory=dict)
    embedding: list[Placement] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Added in 1.x, set only when runtime capture was merged (null: nothing was compared).
    disagreements: list[dict[str, Any]] | None = None
    filled_at_runtime: list[str] | None = None
    other: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record(_Node):
    """The whole record; `prompt` is ComfyUI's API graph, `workflow` its UI graph, `runtime` the run as seen."""

    schema: str = SCHEMA_ID
    generation: Generation = field(default_factory=Generation)
    passes: list[Pass] = field(default_factory=list)
    models: list[Model] = field(default_factory=list)
    image: Image = field(default_factory=Image)
    provenance: Provenance = field(default_factory=Provenance)
    prompt: dict[str, Any] | None = None
    workflow: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Added in 1.x: what the executor saw (metadata/runtime.py), or a pointer to its sidecar; null without hooks.
    runtime: dict[str, Any] | None = None
    other: dict[str, Any] = field(default_factory=dict)

    def to_json(self, *, indent: int | None = None) -> str:
        """Compact ASCII JSON (safe for PNG tEXt, EXIF ASCII and XML alike)."""
        separators = (",", ":") if indent is None else None
        return json.dumps(self.to_dict(), indent=indent, separators=separators, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Record:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a provenance record is a JSON object")
        return cls.from_dict(data)

    def loras(self) -> list[Model]:
        return [m for m in self.models if m.role == "lora"]

    def first_model(self, *roles: str) -> Model | None:
        return next((m for r in roles for m in self.models if m.role == r), None)

    def warn(self, message: str) -> None:
        if message not in self.provenance.warnings:
            self.provenance.warnings.append(message)


def utc_now() -> str:
    """ISO-8601 UTC timestamp with a Z suffix, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")

"""What differs between two records: generation, passes, models, environment and their API graphs."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..metadata.record import Model, Record

# One difference, JSON-ready: which field, and its value on each side (None where a side lacks it).
Change = dict[str, Any]

ENVIRONMENT = ("comfyui_version", "pack_version", "capture_mode", "format", "size")
MODEL_FIELDS = ("strength_model", "strength_clip")
_NUMERIC = re.compile(r"\d+")


def same(a: Any, b: Any) -> bool:
    """Equal as values: 7 == 7.0, and float noise from the graph's math (1.0000000000000002) is not news."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def union(a: Iterable[str], b: Iterable[str]) -> list[str]:
    """The keys of both, in a's order, then those only b has: stable output for the same two inputs."""
    keys = list(dict.fromkeys(a))
    keys.extend(k for k in dict.fromkeys(b) if k not in set(keys))
    return keys


def field_changes(a: Mapping[str, Any], b: Mapping[str, Any], skip: Iterable[str] = ()) -> list[Change]:
    """{"field", "a", "b"} for every key whose values differ; a key one side lacks counts as None there."""
    left_out = set(skip)
    return [
        {"field": key, "a": a.get(key), "b": b.get(key)}
        for key in union(a, b)
        if key not in left_out and not same(a.get(key), b.get(key))
    ]


def environment(record: Record) -> dict[str, Any]:
    """What a record says about where and how it was made and saved, by the names the diff uses."""
    image = record.image
    return {
        "comfyui_version": record.provenance.comfyui_version,
        "pack_version": record.provenance.generator.version,
        "capture_mode": record.provenance.capture_mode,
        "format": image.format,
        "size": f"{image.width}x{image.height}" if image.width is not None and image.height is not None else None,
    }


@dataclass
class GraphDiff:
    """Nodes only one graph has ({"node", "class_type"}), and each class or input that changed."""

    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


@dataclass
class RecordDiff:
    generation: list[Change] = field(default_factory=list)
    passes: list[Change] = field(default_factory=list)
    models: list[Change] = field(default_factory=list)
    environment: list[Change] = field(default_factory=list)
    graph: GraphDiff = field(default_factory=GraphDiff)

    @property
    def identical(self) -> bool:
        return not (self.generation or self.passes or self.models or self.environment) and self.graph.identical

    def to_dict(self, a: str, b: str) -> dict[str, Any]:
        return {
            "a": a,
            "b": b,
            "identical": self.identical,
            "generation": self.generation,
            "passes": self.passes,
            "models": self.models,
            "environment": self.environment,
            "graph": self.graph.to_dict(),
        }


def diff_records(a: Record, b: Record, unknown: Iterable[str] = ()) -> RecordDiff:
    """Every difference between two records; environment fields in `unknown` (a side cannot tell) are skipped."""
    return RecordDiff(
        generation=field_changes(a.generation.to_dict(), b.generation.to_dict()),
        passes=diff_passes(a, b),
        models=diff_models(a.models, b.models),
        environment=field_changes(environment(a), environment(b), skip=unknown),
        graph=diff_graphs(a.prompt, b.prompt),
    )


def diff_passes(a: Record, b: Record) -> list[Change]:
    """Per index: each field that differs, or the whole pass where only one record has it."""
    out: list[Change] = []
    for index in range(max(len(a.passes), len(b.passes))):
        left = a.passes[index].to_dict() if index < len(a.passes) else None
        right = b.passes[index].to_dict() if index < len(b.passes) else None
        if left is None or right is None:
            node = (left or right or {}).get("node_id")
            change = "added" if left is None else "removed"
            out.append({"pass": index, "node_id": node, "change": change, "field": None, "a": left, "b": right})
            continue
        for item in expanded(field_changes(left, right)):
            out.append({"pass": index, "node_id": right.get("node_id"), "change": "changed", **item})
    return out


def expanded(changes: list[Change]) -> list[Change]:
    """A list of objects of the same length on both sides (a pass's LoRAs) as `loras[0].strength_model`."""
    out: list[Change] = []
    for change in changes:
        a, b = change["a"], change["b"]
        if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)):
            out.append(change)
        elif all(isinstance(x, dict) and isinstance(y, dict) for x, y in zip(a, b, strict=True)):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                out.extend({**c, "field": f"{change['field']}[{i}].{c['field']}"} for c in field_changes(x, y))
        else:
            out.append(change)
    return out


def keyed(models: list[Model]) -> dict[tuple[str, str, int], Model]:
    """Models by (role, name, occurrence): the same LoRA loaded twice is two entries, matched in order."""
    seen: dict[tuple[str, str], int] = {}
    out = {}
    for model in models:
        nth = seen.get((model.role, model.name), 0)
        seen[(model.role, model.name)] = nth + 1
        out[(model.role, model.name, nth)] = model
    return out


def model_summary(model: Model) -> dict[str, Any]:
    return {"hashes": model.hashes, **{name: getattr(model, name) for name in MODEL_FIELDS}}


def diff_models(a: list[Model], b: list[Model]) -> list[Change]:
    """By role and name: added, removed, each hash of a kind both recorded that changed, LoRA strengths."""
    left, right = keyed(a), keyed(b)
    out: list[Change] = []
    for key in [*left, *(k for k in right if k not in left)]:  # a's order, then b's own: reads like the records
        role, name, _ = key
        base = {"role": role, "name": name}
        x, y = left.get(key), right.get(key)
        if x is None or y is None:
            change = "added" if x is None else "removed"
            summaries = [model_summary(m) if m is not None else None for m in (x, y)]
            out.append({**base, "change": change, "field": None, "a": summaries[0], "b": summaries[1]})
            continue
        # Only kinds both sides recorded: a hash one side never computed (pending, or not listed in a
        # manifest) says nothing about whether the file changed.
        common = [kind for kind in x.hashes if kind in y.hashes]
        hashes = field_changes({k: x.hashes[k] for k in common}, {k: y.hashes[k] for k in common})
        for item in hashes:
            out.append({**base, "change": "changed", **item, "field": f"hashes.{item['field']}"})
        for item in field_changes(model_summary(x), model_summary(y), skip=["hashes"]):
            out.append({**base, "change": "changed", **item})
    return out


def node_order(node_id: str) -> tuple[tuple[int, int | str], ...]:
    """Ids in the order a user reads them: 3 before 10, subgraph ids (`12:4`) part by part."""
    return tuple((0, int(part)) if _NUMERIC.fullmatch(part) else (1, part) for part in node_id.split(":"))


def node_parts(node: Any) -> tuple[str | None, dict[str, Any]]:
    """(class_type, inputs) of a graph node, whatever shape a hostile graph gave it."""
    if not isinstance(node, dict):
        return None, {}
    kind = node.get("class_type")
    inputs = node.get("inputs")
    return kind if isinstance(kind, str) else None, inputs if isinstance(inputs, dict) else {}


def diff_graphs(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> GraphDiff:
    """Nodes matched by id; a node's title (`_meta`) is presentation, not a difference."""
    left, right = a or {}, b or {}
    out = GraphDiff()
    for node in sorted(set(left) | set(right), key=node_order):
        if node not in right:
            out.removed.append({"node": node, "class_type": node_parts(left[node])[0]})
            continue
        if node not in left:
            out.added.append({"node": node, "class_type": node_parts(right[node])[0]})
            continue
        (kind_a, inputs_a), (kind_b, inputs_b) = node_parts(left[node]), node_parts(right[node])
        if kind_a != kind_b:
            kind = {"node": node, "class_type": kind_b, "input": None, "change": "class_type", "a": kind_a, "b": kind_b}
            out.changed.append(kind)
        for name in union(inputs_a, inputs_b):
            x, y = inputs_a.get(name), inputs_b.get(name)
            if name in inputs_a and name in inputs_b and same(x, y):
                continue
            change = "added" if name not in inputs_a else "removed" if name not in inputs_b else "changed"
            out.changed.append({"node": node, "class_type": kind_b, "input": name, "change": change, "a": x, "b": y})
    return out


def is_link(value: Any) -> bool:
    """An input wired to another node's output: [node id, output index], as ComfyUI's API graph writes it."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )

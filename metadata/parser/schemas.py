"""What each node class takes and gives: input names and types, output names and types.

The parser needs rules only to be exact; to be right on a class nobody wrote a rule for, it infers
one from the class's schema (infer.py). Schemas come, best first, from: the live node classes when
running inside ComfyUI (its /object_info, V1 and V3 alike), an /object_info file or server the
user names (`--object-info`, `--server`), the UI workflow saved with the graph (each node's typed
inputs and outputs), and a compact snapshot of core nodes shipped in metadata/rules/schemas-core.json
(`provenance rules snapshot` refreshes it). Later sources only fill what earlier ones lack.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, ClassVar

SNAPSHOT = "schemas-core.json"
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class Input:
    type: str  # ComfyUI's type name: INT, FLOAT, STRING, BOOLEAN, COMBO, MODEL, CONDITIONING, ... or "*"
    multiline: bool = False
    optional: bool = False


@dataclass(frozen=True)
class NodeSchema:
    class_type: str
    inputs: Mapping[str, Input] = field(default_factory=dict)
    outputs: tuple[tuple[str, str], ...] = ()  # (name, type) per output slot
    api_node: bool = False
    source: str = ""

    def output_type(self, index: int) -> str | None:
        return self.outputs[index][1] if 0 <= index < len(self.outputs) else None

    def output_name(self, index: int) -> str | None:
        return self.outputs[index][0] if 0 <= index < len(self.outputs) else None

    def inputs_of(self, *types: str) -> list[str]:
        return [name for name, spec in self.inputs.items() if spec.type in types]


class SchemaSet:
    """Schemas by class; `merged` keeps the first source's schema of a class and fills gaps from later ones."""

    def __init__(self, schemas: Mapping[str, NodeSchema] | None = None) -> None:
        self._schemas = dict(schemas or {})

    def get(self, class_type: str | None) -> NodeSchema | None:
        return self._schemas.get(class_type) if class_type else None

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._schemas

    def __len__(self) -> int:
        return len(self._schemas)

    def classes(self) -> list[str]:
        return sorted(self._schemas)

    def merged(self, *others: SchemaSet | None) -> SchemaSet:
        out = dict(self._schemas)
        for other in others:
            if other is None:
                continue
            for name, schema in other._schemas.items():
                out[name] = _fill(out[name], schema) if name in out else schema
        return SchemaSet(out)


def _fill(first: NodeSchema, later: NodeSchema) -> NodeSchema:
    """`first`, with inputs (and outputs) it does not know taken from `later`."""
    inputs = {**later.inputs, **first.inputs}
    outputs = first.outputs if first.outputs else later.outputs
    return NodeSchema(first.class_type, inputs, outputs, first.api_node or later.api_node, first.source)


# -- /object_info ------------------------------------------------------------------------------------


def from_object_info(info: Mapping[str, Any], source: str = "object_info") -> SchemaSet:
    """Schemas from ComfyUI's /object_info answer (or a file holding it); malformed entries are skipped."""
    found = {}
    for class_type, entry in info.items():
        schema = _from_entry(str(class_type), entry, source) if isinstance(entry, Mapping) else None
        if schema is not None:
            found[schema.class_type] = schema
    return SchemaSet(found)


def _from_entry(class_type: str, entry: Mapping[str, Any], source: str) -> NodeSchema | None:
    sections = entry.get("input")
    if not isinstance(sections, Mapping):
        return None
    inputs: dict[str, Input] = {}
    for section in ("required", "optional"):
        for name, spec in (sections.get(section) or {}).items():
            if isinstance(spec, (list, tuple)) and spec:
                inputs[str(name)] = _input(spec, optional=section == "optional")
    types = entry.get("output") or []
    names = entry.get("output_name") or []
    outputs = tuple(
        (str(names[i]) if i < len(names) and names[i] else t, t) for i, t in enumerate(types) if isinstance(t, str)
    )
    return NodeSchema(class_type, inputs, outputs, bool(entry.get("api_node")), source)


def _input(spec: Any, *, optional: bool) -> Input:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    type_name = "COMBO" if isinstance(kind, (list, tuple)) else str(kind)
    return Input(type_name, multiline=bool(options.get("multiline")), optional=optional)


# -- the UI workflow -----------------------------------------------------------------------------------


def from_workflow(workflow: Mapping[str, Any] | None) -> SchemaSet:
    """What a UI workflow says of its node classes: typed linked inputs and typed, named outputs
    (subgraph definitions included); widget inputs are typed only where the frontend recorded them."""
    found: dict[str, NodeSchema] = {}
    for node in _workflow_nodes(workflow):
        class_type = node.get("type")
        if not isinstance(class_type, str):
            continue
        inputs = {
            str(i["name"]): Input(str(i.get("type") or "*"))
            for i in node.get("inputs") or []
            if isinstance(i, Mapping) and isinstance(i.get("name"), str)
        }
        outputs = tuple(
            (str(o.get("name") or o.get("type")), str(o.get("type") or "*"))
            for o in node.get("outputs") or []
            if isinstance(o, Mapping)
        )
        schema = NodeSchema(class_type, inputs, outputs, source="workflow")
        found[class_type] = _fill(found[class_type], schema) if class_type in found else schema
    return SchemaSet(found)


def _workflow_nodes(workflow: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    if not isinstance(workflow, Mapping):
        return
    yield from (n for n in workflow.get("nodes") or [] if isinstance(n, Mapping))
    definitions = workflow.get("definitions")
    subgraphs = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
    for subgraph in subgraphs if isinstance(subgraphs, list) else []:
        if isinstance(subgraph, Mapping):
            yield from (n for n in subgraph.get("nodes") or [] if isinstance(n, Mapping))


# -- the compact snapshot shipped with the pack ------------------------------------------------------------


def to_compact(schemas: SchemaSet, about: str) -> dict[str, Any]:
    """The snapshot file's JSON: per class `i` {name: "TYPE" or "TYPE|multiline|optional"}, `o` [[name, type]]."""
    nodes: dict[str, Any] = {}
    for name in schemas.classes():
        schema = schemas.get(name)
        assert schema is not None
        entry: dict[str, Any] = {
            "i": {k: "|".join([v.type, *(["multiline"] if v.multiline else []), *(["optional"] if v.optional else [])])
                  for k, v in schema.inputs.items()},
            "o": [list(o) for o in schema.outputs],
        }  # fmt: skip
        if schema.api_node:
            entry["api"] = True
        nodes[name] = entry
    return {"version": SNAPSHOT_VERSION, "about": about, "nodes": nodes}


def from_compact(data: Mapping[str, Any], source: str) -> SchemaSet:
    found = {}
    for name, entry in (data.get("nodes") or {}).items():
        inputs = {}
        for key, text in (entry.get("i") or {}).items():
            kind, *flags = str(text).split("|")
            inputs[key] = Input(kind, multiline="multiline" in flags, optional="optional" in flags)
        outputs = tuple((str(o[0]), str(o[1])) for o in entry.get("o") or [] if isinstance(o, list) and len(o) == 2)
        found[name] = NodeSchema(name, inputs, outputs, bool(entry.get("api")), source)
    return SchemaSet(found)


@cache
def bundled() -> SchemaSet:
    """The core nodes' schemas shipped with the pack (metadata/rules/schemas-core.json)."""
    package = __package__.rsplit(".", 1)[0]
    text = resources.files(package).joinpath(f"rules/{SNAPSHOT}").read_text("utf-8")
    return from_compact(json.loads(text), "snapshot")


# -- live (inside ComfyUI) ----------------------------------------------------------------------------


class _Live:
    """The host's provider of live schemas (compat registers ComfyUI's /object_info builder)."""

    provider: ClassVar[Any] = None
    cached: ClassVar[dict[str, NodeSchema | None]] = {}


def set_live_provider(provider: Any) -> None:
    """`provider(class_type) -> /object_info entry or None`, called at most once per class per process."""
    _Live.provider = provider
    _Live.cached = {}


def live(classes: Iterable[str]) -> SchemaSet:
    """The live schemas of these classes, where a provider is registered."""
    provider = _Live.provider
    if provider is None:
        return SchemaSet()
    found = {}
    for name in classes:
        if name not in _Live.cached:
            try:
                entry = provider(name)
            except Exception:  # a broken node class must not cost the record its other schemas
                entry = None
            _Live.cached[name] = _from_entry(name, entry, "live") if isinstance(entry, Mapping) else None
        schema = _Live.cached[name]
        if schema is not None:
            found[name] = schema
    return SchemaSet(found)

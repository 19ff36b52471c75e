"""What each node class takes and gives: input names and types, output names and types.

The parser needs rules only to be exact; to be right on a class nobody wrote a rule for, it infers
one from the class's schema (infer.py). Schemas come, best first, from: the live node classes when
running inside ComfyUI (its /object_info, V1 and V3 alike: compat.node_info, registered with
`set_live_provider`), an /object_info file or server the user names (`--object-info`, `--server`:
`set_user_schemas`), a compact snapshot of core nodes shipped in metadata/rules/schemas-core.json
(`provenance rules snapshot` refreshes it), and the UI workflow saved with the graph (each node's
typed inputs and outputs). Later sources only fill what earlier ones lack (`gather`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

SNAPSHOT = "schemas-core.json"
SNAPSHOT_VERSION = 1
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
MAX_INPUTS = 512  # per class: a hostile /object_info gets no more
MAX_NESTING = 4


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
    # A dynamic combo's options bring inputs of their own, sent as `model.seed`: listed under that name
    # (every option's, the first spec of a name kept), nested combos to a few levels, never unbounded.
    pending: list[tuple[str, Mapping[str, Any], int]] = [("", sections, 0)]
    while pending and len(inputs) < MAX_INPUTS:
        prefix, current, depth = pending.pop(0)
        for section in ("required", "optional"):
            specs = current.get(section)
            for name, spec in specs.items() if isinstance(specs, Mapping) else ():
                if not isinstance(spec, (list, tuple)) or not spec or len(inputs) >= MAX_INPUTS:
                    continue
                full = prefix + str(name)
                inputs.setdefault(full, _input(spec, optional=section == "optional"))
                options = spec[1].get("options") if len(spec) > 1 and isinstance(spec[1], Mapping) else None
                if spec[0] == DYNAMIC_COMBO and isinstance(options, list) and depth < MAX_NESTING:
                    for option in options[:MAX_INPUTS]:
                        nested = option.get("inputs") if isinstance(option, Mapping) else None
                        if isinstance(nested, Mapping):
                            pending.append((full + ".", nested, depth + 1))
    types = _listed(entry.get("output"))
    names = _listed(entry.get("output_name"))
    outputs = tuple(
        (str(names[i]) if i < len(names) and isinstance(names[i], str) and names[i] else t, t)
        for i, t in enumerate(types)
        if isinstance(t, str)
    )
    return NodeSchema(class_type, inputs, outputs, entry.get("api_node") is True, source)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _input(spec: Any, *, optional: bool) -> Input:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    type_name = "COMBO" if isinstance(kind, (list, tuple)) else str(kind)
    return Input(type_name, multiline=options.get("multiline") is True, optional=optional)


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
    """Schemas from a snapshot's JSON; malformed entries are skipped (the file may be a user's)."""
    found = {}
    nodes = data.get("nodes")
    for name, entry in nodes.items() if isinstance(nodes, Mapping) else ():
        if not isinstance(entry, Mapping):
            continue
        specs = entry.get("i")
        inputs = {}
        for key, text in specs.items() if isinstance(specs, Mapping) else ():
            kind, *flags = str(text).split("|")
            inputs[str(key)] = Input(kind, multiline="multiline" in flags, optional="optional" in flags)
        outputs = tuple((str(o[0]), str(o[1])) for o in _listed(entry.get("o")) if isinstance(o, list) and len(o) == 2)
        found[str(name)] = NodeSchema(str(name), inputs, outputs, entry.get("api") is True, source)
    return SchemaSet(found)


def is_compact(data: Mapping[str, Any]) -> bool:
    """A snapshot (`{"version", "nodes": {class: {"i", "o"}}}`), not an /object_info answer."""
    nodes = data.get("nodes")
    return isinstance(data.get("version"), int) and isinstance(nodes, Mapping) and "input" not in nodes


def from_json(data: Mapping[str, Any], source: str) -> SchemaSet:
    """Schemas from either an /object_info answer or a snapshot written by `provenance rules snapshot`."""
    return from_compact(data, source) if is_compact(data) else from_object_info(data, source)


def dump_compact(data: Mapping[str, Any]) -> str:
    """The snapshot's JSON text with one node class per line, so a refresh diffs class by class."""
    head = json.dumps({k: v for k, v in data.items() if k != "nodes"}, ensure_ascii=False)
    lines = [
        f"{json.dumps(name, ensure_ascii=False)}: {json.dumps(entry, ensure_ascii=False, separators=(',', ':'))}"
        for name, entry in data["nodes"].items()
    ]
    nodes = "{\n" + ",\n".join(lines) + "\n}" if lines else "{}"
    return (head[:-1] + ", " if head != "{}" else "{") + f'"nodes": {nodes}}}\n'


def snapshot_path() -> Path:
    """Where the bundled snapshot lives (what `provenance rules snapshot` writes by default)."""
    return Path(__file__).resolve().parent.parent / "rules" / SNAPSHOT


@cache
def bundled() -> SchemaSet:
    """The core nodes' schemas shipped with the pack (metadata/rules/schemas-core.json)."""
    package = __package__.rsplit(".", 1)[0]
    text = resources.files(package).joinpath(f"rules/{SNAPSHOT}").read_text("utf-8")
    return from_compact(json.loads(text), "snapshot")


# -- live (inside ComfyUI) and given by the user ------------------------------------------------------


class _Live:
    """The host's provider of live schemas (compat registers ComfyUI's /object_info builder)."""

    provider: ClassVar[Any] = None
    cached: ClassVar[dict[str, NodeSchema | None]] = {}


class _User:
    """Schemas the user named for this process (the CLI's --object-info or --server)."""

    schemas: ClassVar[SchemaSet | None] = None


def set_live_provider(provider: Any) -> None:
    """`provider(class_type) -> /object_info entry or None`, called at most once per class per process."""
    _Live.provider = provider
    _Live.cached = {}


def set_user_schemas(schemas: SchemaSet | None) -> None:
    """Schemas every parse in this process uses after the live ones (None: forget them)."""
    _User.schemas = schemas


def user_schemas() -> SchemaSet | None:
    return _User.schemas


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


def gather(
    classes: Iterable[str],
    workflow: Mapping[str, Any] | None,
    given: SchemaSet | None = None,
    prompt: Mapping[str, Any] | None = None,
) -> SchemaSet:
    """Every schema known for a parse, best first: live, `given` (a parser's own), the process's user
    schemas, the bundled snapshot (a real /object_info: every input typed), the UI workflow's (old
    frontends leave widget inputs untyped), and last the prompt's (widget values typed by their value)."""
    wanted = sorted(set(classes))
    sources = (live(wanted), given, user_schemas(), bundled(), from_workflow(workflow), from_prompt(prompt, wanted))
    found: dict[str, NodeSchema] = {}
    for class_type in wanted:  # only the classes asked about: the snapshot alone holds hundreds
        for source in sources:
            schema = source.get(class_type) if source is not None else None
            if schema is not None:
                found[class_type] = _fill(found[class_type], schema) if class_type in found else schema
    return SchemaSet(found)


FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx", ".pkl")


def from_prompt(prompt: Mapping[str, Any] | None, classes: Iterable[str] | None = None) -> SchemaSet:
    """What an API prompt says of its nodes' widget inputs: their names, typed by the value each holds
    (int INT, float FLOAT, bool BOOLEAN, a model file name COMBO, other text STRING, multiline if it
    spans lines). Links are left to the workflow: their type is not in the prompt. Never complete."""
    wanted = set(classes) if classes is not None else None
    typed: dict[str, dict[str, Input]] = {}
    for node in prompt.values() if isinstance(prompt, Mapping) else ():
        class_type = node.get("class_type") if type(node) is dict or isinstance(node, Mapping) else None
        if not isinstance(class_type, str) or (wanted is not None and class_type not in wanted):
            continue
        inputs = node.get("inputs")
        known = typed.setdefault(class_type, {})
        for name, value in islice(inputs.items(), MAX_INPUTS) if isinstance(inputs, Mapping) else ():
            if name not in known and (kind := _typed(value)) is not None:
                known[str(name)] = kind  # the first node of the class that holds a value names its type
    return SchemaSet({c: NodeSchema(c, inputs, source="prompt") for c, inputs in typed.items()})


def _typed(value: Any) -> Input | None:
    if isinstance(value, bool):
        return Input("BOOLEAN")
    if isinstance(value, int):
        return Input("INT")
    if isinstance(value, float):
        return Input("FLOAT")
    if isinstance(value, str):
        if value[-16:].lower().endswith(FILE_SUFFIXES) and "\n" not in value:
            return Input("COMBO")
        return Input("STRING", multiline="\n" in value)
    return None  # a link, or a value of no widget type

"""A batch's API graph: the workflow in API form, the template's overrides, and the inputs each job sets.

Which inputs hold the prompt, the negative and the seed comes from the pack's own parser: the
record of the graph names the text encoders of the base pass and the node its seed came from,
and the capture rules name each one's input (`text`, `text_g`/`text_l`, `t5xxl`/`clip_l`,
`seed`, `noise_seed`); a value that arrives by a link is followed to the primitive that holds it.
`prompt_node`, `negative_node` and `seed_node` in the template name them instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..metadata.parser.parse import WorkflowParser
from ..metadata.parser.rules import default_rules
from . import ui_workflow
from .template import Job, NodeRef, Template, TemplateError, read_text

# A text encoder's prompt inputs, by the rules' field names: one prompt goes to each it has.
TEXT_FIELDS = ("text", "text_l", "clip_l_text", "clip_g_text", "t5xxl_text")
SEED_FIELDS = ("seed",)
LINK_HOPS_MAX = 16
Graph = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Slot:
    node: str
    input: str


@dataclass(frozen=True)
class Targets:
    """The inputs a job sets: every prompt input, every negative input, every seed input."""

    prompt: tuple[Slot, ...]
    negative: tuple[Slot, ...]
    seed: tuple[Slot, ...]


def load_workflow(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path, "workflow"))
    except ValueError as err:
        raise TemplateError(f"workflow: {path} is not a JSON workflow") from err
    if not isinstance(data, dict) or not (ui_workflow.is_ui(data) or ui_workflow.is_api(data)):
        raise TemplateError(f"workflow: {path} is neither an API workflow nor a UI workflow")
    return data


def api_graph(workflow: dict[str, Any], object_info: Callable[[], Mapping[str, Any]]) -> Graph:
    """The workflow in API form; a UI workflow asks `object_info` (the server's) how to convert it."""
    if ui_workflow.is_ui(workflow):
        return ui_workflow.to_api(workflow, object_info())
    return copy.deepcopy(workflow)


def apply_overrides(graph: Graph, overrides: Mapping[str, Mapping[str, Any]]) -> Graph:
    out = copy.deepcopy(graph)
    for ref, inputs in overrides.items():
        node = find_node(out, ref, f"overrides.{ref}")
        have = out[node].setdefault("inputs", {})
        # Only inputs the node has: a misspelt name would otherwise be queued, and ignored by ComfyUI.
        unknown = next((name for name in inputs if name not in have), None)
        if unknown is not None:
            known = ", ".join(have) or "none"
            raise TemplateError(f"overrides.{ref}: node {node} has no input {unknown!r} (it has: {known})")
        have.update(copy.deepcopy(dict(inputs)))
    return out


# Save nodes that take an `options` input (per-run settings, metadata/settings.py).
OPTION_NODES = frozenset({"ProvenanceSaveImage", "ProvenanceSaveVideo", "ProvenanceSaveAudio"})


def apply_options(graph: Graph, options: Mapping[str, Any]) -> Graph:
    """The template's settings overrides as the `options` input of every Provenance save node,
    where the node applies them as a per-run override (never a change to the server's settings)."""
    if not options:
        return graph
    out = copy.deepcopy(graph)
    text = json.dumps(dict(options), sort_keys=True)
    for node in out.values():
        if isinstance(node, dict) and node.get("class_type") in OPTION_NODES:
            node.setdefault("inputs", {})["options"] = text
    return out


def find_node(graph: Graph, ref: str, where: str) -> str:
    """A node id, or the id of the one node whose `_meta.title` is `ref`."""
    if ref in graph:
        return ref
    titled = [k for k, v in graph.items() if (v.get("_meta") or {}).get("title") == ref]
    if len(titled) == 1:
        return titled[0]
    if titled:
        raise TemplateError(f"{where}: the title {ref!r} names nodes {', '.join(titled)}; use the node id")
    raise TemplateError(f"{where}: no node with the id or title {ref!r} in the workflow")


def locate(graph: Graph, template: Template) -> Targets:
    """Where the job's prompt, negative and seed go; TemplateError naming the key when they cannot be found."""
    record = WorkflowParser().parse(graph, None, None)
    sources = dict(record.passes[0].other.get("sources", {})) if record.passes else {}
    found = {
        "prompt_node": sources.get("positive"),
        "negative_node": sources.get("negative"),
        "seed_node": record.provenance.field_sources.get("seed"),
    }
    fields = {"prompt_node": TEXT_FIELDS, "negative_node": TEXT_FIELDS, "seed_node": SEED_FIELDS}
    slots: dict[str, tuple[Slot, ...]] = {}
    for key, names in fields.items():
        if key == "negative_node" and template.negative is None:
            slots[key] = ()
            continue
        ref = template.nodes.get(key)
        if ref is not None:
            slots[key] = _named(graph, ref, names, key)
        elif found[key] is not None:
            slots[key] = _from_rules(graph, str(found[key]), names, key)
        else:
            what = {"prompt_node": "prompt", "negative_node": "negative prompt", "seed_node": "seed"}[key]
            raise TemplateError(f"{key}: the parser finds no {what} in the workflow; name the node with {key}")
    return Targets(prompt=slots["prompt_node"], negative=slots["negative_node"], seed=slots["seed_node"])


def _named(graph: Graph, ref: NodeRef, names: tuple[str, ...], key: str) -> tuple[Slot, ...]:
    node = find_node(graph, ref.node, key)
    if ref.input is not None:
        if ref.input not in graph[node].get("inputs", {}):
            raise TemplateError(f"{key}: node {node} has no input {ref.input!r}")
        return _followed(graph, Slot(node, ref.input), key)
    return _from_rules(graph, node, names, key)


def _from_rules(graph: Graph, node: str, names: tuple[str, ...], key: str) -> tuple[Slot, ...]:
    """The inputs the capture rules name for `names` on `node`, each followed to the node holding its value."""
    class_type = graph[node].get("class_type")
    rule = default_rules().get(class_type)
    inputs = graph[node].get("inputs", {})
    chosen: list[str] = []
    for name in names:
        spec = rule.fields.get(name) if rule is not None else None
        if spec is not None and spec.plain and spec.input is not None and spec.input in inputs:
            chosen.append(spec.input)
    if not chosen:  # a class no rule covers: the usual input names
        usual = ("seed", "noise_seed") if names == SEED_FIELDS else ("text", "prompt")
        chosen = [n for n in usual if n in inputs][:1]
    if not chosen:
        raise TemplateError(f"{key}: node {node} ({class_type}) has no input the pack knows to set; name it with input")
    return tuple(slot for name in chosen for slot in _followed(graph, Slot(node, name), key))


def _followed(graph: Graph, slot: Slot, key: str) -> tuple[Slot, ...]:
    """`slot`, or, where its value arrives by a link, the primitive input upstream that holds it."""
    for _ in range(LINK_HOPS_MAX):
        value = graph[slot.node]["inputs"][slot.input]
        if not _is_link(value):
            return (slot,)
        source = str(value[0])
        node = graph.get(source)
        rule = default_rules().get(node.get("class_type")) if node else None
        plain = [s.input for s in rule.fields.values() if s.plain and s.input] if rule is not None else []
        if node is None or len(plain) != 1 or plain[0] not in node.get("inputs", {}):
            raise TemplateError(
                f"{key}: node {slot.node}'s {slot.input} comes from node {source}, whose value the pack cannot "
                f"set; name the node that holds it with {key}"
            )
        slot = Slot(source, plain[0])
    raise TemplateError(f"{key}: node {slot.node}'s {slot.input} is linked through too many nodes")


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def workflow_seed(graph: Graph, targets: Targets) -> int | None:
    """The seed the workflow itself holds (what `fixed` keeps when the template gives no base_seed)."""
    for slot in targets.seed:
        value = graph[slot.node]["inputs"].get(slot.input)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def job_graph(graph: Graph, targets: Targets, job: Job) -> Graph:
    """The exact API graph queued for `job`: the batch's graph with its prompt, negative and seed set."""
    out = copy.deepcopy(graph)
    sets: list[tuple[tuple[Slot, ...], Any]] = [(targets.prompt, job.prompt), (targets.seed, job.seed)]
    if job.negative is not None:
        sets.append((targets.negative, job.negative))
    for slots, value in sets:
        for slot in slots:
            out[slot.node]["inputs"][slot.input] = value
    return out

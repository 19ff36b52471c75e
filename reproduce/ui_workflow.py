"""A UI workflow (the frontend's graph) to API form, with the server's /object_info naming each widget.

What the frontend does when it queues, for the graphs it can do without running frontend code:
widget values are matched to inputs in the order /object_info lists them (a seed's
"control after generate" value skipped), links become `[node id, output]`, Reroutes are followed,
a PrimitiveNode's value is copied into the inputs it feeds, notes and muted nodes are left out,
and a bypassed node passes its input of the output's type straight through. Subgraphs and nodes
the server does not know need the frontend itself: those are refused with one line asking for
the API export (Workflow > Export (API)).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .template import TemplateError

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
SEED_NAMES = frozenset({"seed", "noise_seed"})
NOTES = frozenset({"Note", "MarkdownNote"})
REROUTE, PRIMITIVE = "Reroute", "PrimitiveNode"
MUTED, BYPASSED = 2, 4
EXPORT_API = "export it from ComfyUI with Workflow > Export (API) instead"


def is_ui(workflow: Mapping[str, Any]) -> bool:
    return isinstance(workflow.get("nodes"), list)


def is_api(workflow: Mapping[str, Any]) -> bool:
    return bool(workflow) and all(isinstance(v, dict) and "class_type" in v for v in workflow.values())


def to_api(ui: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The API prompt the frontend would queue for `ui`; TemplateError naming the node it cannot convert."""
    nodes = {str(n.get("id")): n for n in ui["nodes"] if isinstance(n, dict)}
    links = _links(ui.get("links"))
    subgraphs = {s.get("id") for s in (ui.get("definitions") or {}).get("subgraphs") or [] if isinstance(s, dict)}
    api: dict[str, dict[str, Any]] = {}
    for node_id, node in nodes.items():
        kind = node.get("type")
        if kind in NOTES or kind in (REROUTE, PRIMITIVE) or node.get("mode") in (MUTED, BYPASSED):
            continue
        where = f"workflow node {node_id} ({kind})"
        if kind in subgraphs:
            raise TemplateError(f"{where} is a subgraph, which only the frontend expands; {EXPORT_API}")
        info = object_info.get(kind) if isinstance(kind, str) else None
        if not isinstance(info, dict):
            raise TemplateError(f"{where}: the server has no such node class (a frontend-only node?); {EXPORT_API}")
        inputs = _inputs(node, info, nodes, links)
        title = node.get("title") or info.get("display_name") or kind
        api[node_id] = {"class_type": kind, "inputs": inputs, "_meta": {"title": title}}
    return api


def _links(raw: Any) -> dict[int, tuple[str, int]]:
    """link id -> (origin node id, origin slot), from either the list or the object form."""
    out: dict[int, tuple[str, int]] = {}
    for link in raw or []:
        if isinstance(link, list) and len(link) >= 5:
            out[link[0]] = (str(link[1]), int(link[2]))
        elif isinstance(link, dict) and "id" in link:
            out[link["id"]] = (str(link.get("origin_id")), int(link.get("origin_slot", 0)))
    return out


def _ordered_inputs(info: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(name, spec) in the order the frontend lays out widgets: required, then optional."""
    spec = info.get("input") or {}
    order = info.get("input_order") or {}
    out = []
    for part in ("required", "optional"):
        entries = spec.get(part) or {}
        names = order.get(part) or list(entries)
        out += [(name, entries[name]) for name in names if name in entries]
    return out


def _is_widget(spec: Any) -> tuple[bool, dict[str, Any]]:
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    options = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}
    widget = isinstance(kind, list) or (kind in WIDGET_TYPES and not options.get("forceInput"))
    return widget, options


def widget_positions(node: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, int | str]:
    """Where each widget input's value sits in the node's widgets_values: an index, or a key when it is a dict."""
    values = node.get("widgets_values")
    if isinstance(values, dict):
        return {name: name for name, spec in _ordered_inputs(info) if _is_widget(spec)[0] and name in values}
    count = len(values) if isinstance(values, list) else 0
    positions: dict[str, int | str] = {}
    index = 0
    for name, spec in _ordered_inputs(info):
        widget, options = _is_widget(spec)
        if not widget or index >= count:
            continue
        positions[name] = index
        index += 1
        seedlike = options.get("control_after_generate") or (spec[0] == "INT" and name in SEED_NAMES)
        if seedlike and index < count and values[index] in CONTROL_VALUES:  # type: ignore[index]
            index += 1  # the "control after generate" widget the frontend adds after a seed
    return positions


def _inputs(
    node: Mapping[str, Any],
    info: Mapping[str, Any],
    nodes: Mapping[str, Mapping[str, Any]],
    links: Mapping[int, tuple[str, int]],
) -> dict[str, Any]:
    values = node.get("widgets_values")
    positions = widget_positions(node, info)
    linked = {i.get("name"): i.get("link") for i in node.get("inputs") or [] if isinstance(i, dict)}
    inputs: dict[str, Any] = {}
    for name, _ in _ordered_inputs(info):
        link = linked.get(name)
        source = _source(link, nodes, links) if link is not None else None
        if source is not None:
            inputs[name] = source[1]  # a link, or the value a PrimitiveNode holds
        elif name in positions:
            inputs[name] = values[positions[name]]  # type: ignore[index]
    return inputs


def with_values(
    ui: Mapping[str, Any], object_info: Mapping[str, Any], values: Mapping[tuple[str, str], Any]
) -> dict[str, Any]:
    """A copy of `ui` whose widgets show `values` ((node id, input) -> value), so it matches the prompt queued."""
    out = copy.deepcopy(dict(ui))
    for node in out.get("nodes") or []:
        kind = node.get("type") if isinstance(node, dict) else None
        if not isinstance(kind, str) or not isinstance(object_info.get(kind), dict):
            continue
        positions = widget_positions(node, object_info[kind])
        for (node_id, name), value in values.items():
            if node_id == str(node.get("id")) and name in positions:
                node["widgets_values"][positions[name]] = value
    return out


def _source(
    link: int, nodes: Mapping[str, Mapping[str, Any]], links: Mapping[int, tuple[str, int]]
) -> tuple[str, Any] | None:
    """("link", [id, slot]) or ("value", v) for what feeds a link, through Reroutes; None when nothing does."""
    seen: set[int] = set()
    while link in links and link not in seen:
        seen.add(link)
        origin, slot = links[link]
        node = nodes.get(origin)
        if node is None or node.get("mode") == MUTED:
            return None
        if node.get("type") == REROUTE or node.get("mode") == BYPASSED:
            upstream = _passed_through(node, slot)
            if upstream is None:
                return None
            link = upstream
            continue
        if node.get("type") == PRIMITIVE:
            values = node.get("widgets_values") or [None]
            return ("value", values[0])
        return ("link", [origin, slot])
    return None


def _passed_through(node: Mapping[str, Any], slot: int) -> int | None:
    """The link a Reroute or a bypassed node hands on for output `slot`: its input of that output's type
    (the one at the same index first, as the frontend picks it)."""
    inputs = [i for i in node.get("inputs") or [] if isinstance(i, dict)]
    if node.get("type") == REROUTE:
        return inputs[0].get("link") if inputs else None
    outputs = node.get("outputs") or []
    wanted = outputs[slot].get("type") if slot < len(outputs) and isinstance(outputs[slot], dict) else None
    ordered = ([inputs[slot]] if slot < len(inputs) else []) + inputs
    match = next((i for i in ordered if i.get("type") == wanted and i.get("link") is not None), None)
    return match.get("link") if match is not None else None

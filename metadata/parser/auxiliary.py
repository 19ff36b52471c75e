"""What an auxiliary sampler is for: how its result reaches the output without being on its lineage.

A sampler upstream of the save node but off the output's latent/pixel lineage (a depth map made by
a diffusion depth estimator, a reference image generated first) is never the base pass. Following
its result downstream to the first node that takes it for something other than pixels to pass on
says its purpose: `guide` (an image a conditioning or control node takes: depth, pose, reference),
`conditioning` (it became part of a prompt's conditioning), `model` or `other`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from .graph import Graph, Node
from .values import Values
from .walks import GENERATORS

# Nodes that pass pixels or a latent on unchanged in kind: the auxiliary result is followed through them.
CARRIERS = frozenset({"decode", "encode", "upscale", "image", "latent"})
CONDITIONING_ROLES = frozenset({"positive", "negative", "conditioning"})


def purposes(graph: Graph, values: Values, upstream: Mapping[str, Node], auxiliary: list[str]) -> list[dict[str, Any]]:
    """One entry per auxiliary sampler: {node_id, class_type, purpose, enters: "<node id>.<input>"}."""
    consumers: dict[str, list[tuple[Node, str]]] = {}
    for node in upstream.values():
        for name, src, _ in node.links():
            consumers.setdefault(src, []).append((node, name))
    return [_purpose(graph, values, consumers, sampler) for sampler in auxiliary]


def _purpose(
    graph: Graph, values: Values, consumers: Mapping[str, list[tuple[Node, str]]], sampler: str
) -> dict[str, Any]:
    node = graph.get(sampler)
    entry: dict[str, Any] = {"node_id": sampler, "class_type": node.class_type if node else None, "purpose": "other"}
    queue, seen = deque([sampler]), {sampler}
    while queue:
        for consumer, name in consumers.get(queue.popleft(), ()):
            rule = values.rule(consumer)
            role = rule.role if rule is not None else None
            link_roles = {r for r, names in (rule.inputs.items() if rule else ()) if name in names}
            carries = role in CARRIERS or (role == "passthrough" and link_roles & {"image", "latent"})
            if carries and consumer.id not in seen:
                seen.add(consumer.id)
                queue.append(consumer.id)
                continue
            if link_roles & CONDITIONING_ROLES:
                purpose = "conditioning"
            elif "model" in link_roles:
                purpose = "model"
            elif role in GENERATORS and link_roles & {"latent", "image"}:
                continue  # on another sampler's lineage: that one is a pass, this is its source
            else:
                purpose = "guide"  # an image a conditioning or control node takes (depth, pose, reference)
            entry.update(purpose=purpose, enters=f"{consumer.id}.{name}")
            return entry
    return entry

"""Read-only views of a ComfyUI API prompt: nodes, links, and upstream walks."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard


def is_link(value: Any) -> TypeGuard[list[Any]]:
    """ComfyUI encodes a link as [source_node_id, output_index]."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


@dataclass(frozen=True)
class Node:
    id: str
    class_type: str | None
    inputs: Mapping[str, Any]

    def link(self, name: str | None) -> str | None:
        """Source node id of the link in input `name`, if that input is a link."""
        value = self.inputs.get(name) if name else None
        return str(value[0]) if is_link(value) else None

    def links(self) -> Iterator[tuple[str, str]]:
        for name, value in self.inputs.items():
            if is_link(value):
                yield name, str(value[0])


class Graph:
    """An API prompt ({id: {"class_type", "inputs"}}) that is never mutated."""

    def __init__(self, prompt: Mapping[str, Any]) -> None:
        self.nodes: dict[str, Node] = {}
        for key, raw in prompt.items():
            if isinstance(raw, Mapping):
                inputs = raw.get("inputs")
                class_type = raw.get("class_type")
                self.nodes[str(key)] = Node(
                    id=str(key),
                    class_type=class_type if isinstance(class_type, str) else None,
                    inputs=inputs if isinstance(inputs, Mapping) else {},
                )

    def get(self, node_id: str | None) -> Node | None:
        return self.nodes.get(node_id) if node_id is not None else None

    def sinks(self) -> list[str]:
        """Nodes no other node links from: where outputs are saved."""
        used = {src for node in self.nodes.values() for _, src in node.links()}
        return sorted((n for n in self.nodes if n not in used), key=sort_key)

    def upstream(self, start: str, follow: Callable[[Node], list[str]] | None = None) -> Iterator[Node]:
        """Breadth-first walk from `start` (excluded) against the links, each node once.

        `follow(node)` names the input names to continue through; by default every link.
        """
        seen = {start}
        queue = deque([start])
        while queue:
            node = self.nodes.get(queue.popleft())
            if node is None:
                continue
            names = follow(node) if follow else None
            for name, src in node.links():
                if (names is None or name in names) and src not in seen:
                    seen.add(src)
                    if src in self.nodes:
                        queue.append(src)
                        yield self.nodes[src]


def sort_key(node_id: str) -> tuple[int, ...] | tuple[int, str]:
    """Numeric ids (and subgraph ids such as "128:81") in numeric order, others after."""
    parts = node_id.split(":")
    if all(p.isdigit() for p in parts):
        return (0, *(int(p) for p in parts))
    return (1, node_id)

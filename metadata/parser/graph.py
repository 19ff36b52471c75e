"""Read-only views of a ComfyUI API prompt: nodes, links, and upstream walks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeGuard

Link = tuple[str, int]
_UNSEEN: Any = object()
_ID_TYPES = (str, int)


def is_link(value: Any) -> TypeGuard[list[Any]]:
    """ComfyUI encodes a link as [source_node_id, output_index]."""
    return (
        type(value) is list
        and len(value) == 2
        and type(value[1]) is int
        and (type(value[0]) is str or type(value[0]) is int)
    )


class Node:
    """One prompt entry; its links are worked out once, on first use."""

    __slots__ = ("_links", "class_type", "id", "inputs", "rule")

    def __init__(self, node_id: str, class_type: str | None, inputs: Mapping[str, Any]) -> None:
        self.id = node_id
        self.class_type = class_type
        self.inputs = inputs
        self._links: tuple[tuple[str, str, int], ...] | None = None
        # The capture rule of this node's class, cached by the parse that owns the graph (False: not looked up).
        self.rule: Any = False

    def __repr__(self) -> str:
        return f"Node({self.id!r}, {self.class_type!r})"

    def links(self) -> tuple[tuple[str, str, int], ...]:
        """(input name, source node id, output index) of every linked input, in input order."""
        if self._links is None:  # is_link, inlined: this runs once for every node of every prompt
            self._links = tuple(
                [
                    (name, v[0] if type(v[0]) is str else str(v[0]), v[1])
                    for name, v in self.inputs.items()
                    if type(v) is list and len(v) == 2 and type(v[1]) is int and type(v[0]) in _ID_TYPES
                ]
            )
        return self._links

    def link(self, name: str | None) -> Link | None:
        """(source node id, output index) of input `name`, if that input is a link."""
        value = self.inputs.get(name) if name else None
        return (str(value[0]), value[1]) if is_link(value) else None


class Graph:
    """An API prompt ({id: {"class_type", "inputs"}}) that is never mutated; nodes are built lazily."""

    def __init__(self, prompt: Mapping[Any, Any]) -> None:
        self._raw = prompt
        # API prompts key nodes by string ids; other keys (ints from hand-made graphs) are looked up as strings.
        self._keys: dict[str, Any] | None = None
        if not all(type(k) is str for k in prompt):
            self._keys = {str(k): k for k in prompt}
        self._nodes: dict[str, Node | None] = {}

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, str) and self.get(node_id) is not None

    def __len__(self) -> int:
        return len(self._raw)

    def ids(self) -> Iterator[str]:
        return iter(self._keys) if self._keys is not None else iter(self._raw)

    def get(self, node_id: str | None) -> Node | None:
        node = self._nodes.get(node_id, _UNSEEN) if node_id is not None else None
        return node if node is not _UNSEEN else self._build(node_id)  # type: ignore[arg-type]

    def _build(self, node_id: str) -> Node | None:
        key = node_id if self._keys is None else self._keys.get(node_id)
        raw = self._raw.get(key) if key is not None else None
        node = None
        if type(raw) is dict or isinstance(raw, Mapping):  # the exact-type test first: isinstance of an ABC is slow
            inputs, class_type = raw.get("inputs"), raw.get("class_type")
            node = Node(
                node_id,
                class_type if type(class_type) is str else None,
                inputs if type(inputs) is dict or isinstance(inputs, Mapping) else {},
            )
        self._nodes[node_id] = node
        return node

    def sinks(self) -> list[str]:
        """Nodes no other node links from: where outputs are saved."""
        used: set[str] = set()
        ids = list(self.ids())
        for node_id in ids:
            node = self.get(node_id)
            if node is not None:
                used.update(src for _, src, _ in node.links())
        return sorted((n for n in ids if n not in used and self.get(n) is not None), key=sort_key)


def sort_key(node_id: str) -> tuple[int, ...] | tuple[int, str]:
    """Numeric ids (and subgraph ids such as "128:81") in numeric order, others after."""
    parts = node_id.split(":")
    if all(p.isdigit() for p in parts):
        return (0, *(int(p) for p in parts))
    return (1, node_id)

"""Carry-over for cached nodes: what a node captured, keyed by "the same computation", kept for later prompts.

ComfyUI serves a node from its cache when the node's signature matches a computation it already
holds (class, IS_CHANGED value, constant inputs, and recursively its ancestors'), from an earlier
prompt or from another node of the same prompt with the same signature (two PrimitiveInt nodes
holding 512), and then never calls it, so no hook sees it. `computation_keys` mirrors that
signature on the prompt graph: a digest of class_type, the `is_changed` value ComfyUI wrote into
the node, each constant input, and for each link the upstream node's key and socket. Like
ComfyUI's, the key leaves the node id out, so a node answered from another node's computation
finds that node's capture. The inputs are then the same by construction; only the outputs of a
non-deterministic class ComfyUI marks NOT_IDEMPOTENT (which it keys by node id too) could
differ, and the last run of that computation wins.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 4096
MAX_COST = 8 << 20  # characters of captured strings, roughly bytes


def is_link(value: Any) -> bool:
    """ComfyUI's own test (comfy_execution.graph_utils.is_link): [node_id: str, socket: int | float]."""
    return type(value) is list and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], (int, float))


def computation_keys(graph: Mapping[str, Any], wanted: list[str], memo: dict[str, str | None]) -> None:
    """Fill memo[node_id] for each wanted node (and its ancestors); None where no key exists.

    Iterative depth-first: a 5,000-node chain must not hit the recursion limit. A cycle or a link
    to a missing node gives None for every node that depends on it.
    """
    visiting: set[str] = set()
    for root in wanted:
        stack = [root]
        while stack:
            node_id = stack[-1]
            if node_id in memo:
                stack.pop()
                continue
            node = graph.get(node_id)
            if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
                memo[node_id] = None
                stack.pop()
                continue
            inputs = node["inputs"]
            if node_id not in visiting:
                visiting.add(node_id)
                todo = [v[0] for v in inputs.values() if is_link(v) and v[0] not in memo and v[0] not in visiting]
                if todo:
                    stack.extend(todo)
                    continue
            stack.pop()
            memo[node_id] = _digest(node, inputs, memo)


def _digest(node: dict[str, Any], inputs: dict[str, Any], memo: dict[str, str | None]) -> str | None:
    # repr of JSON-like values is exact enough: different values never share a repr, at worst an
    # odd type gives a key that never matches (a missed carry-over, never a wrong one).
    parts = [repr(node.get("class_type")), repr(node.get("is_changed"))]
    for name in sorted(inputs):
        value = inputs[name]
        if is_link(value):
            upstream = memo.get(value[0])
            if upstream is None:
                return None
            parts.append(f"{name!r}=>{upstream}:{value[1]}")
        else:
            parts.append(f"{name!r}={value!r}")
    text = "\x1f".join(parts)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Carried:
    class_type: str | None
    inputs: dict[str, Any]
    outputs: list[Any] | None
    cost: int


class CarryStore:
    """LRU of Carried by computation key, bounded in entries and in captured characters. Not locked:
    the session registry's lock guards it."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_cost: int = MAX_COST) -> None:
        self.max_entries = max_entries
        self.max_cost = max_cost
        self.cost = 0
        self._entries: OrderedDict[str, Carried] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: str, entry: Carried) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.cost -= old.cost
        self._entries[key] = entry
        self.cost += entry.cost
        while self._entries and (len(self._entries) > self.max_entries or self.cost > self.max_cost):
            _, dropped = self._entries.popitem(last=False)
            self.cost -= dropped.cost

    def get(self, key: str) -> Carried | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self.cost = 0

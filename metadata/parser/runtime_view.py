"""What the executor saw, as the parser may consult it: each node's resolved inputs and outputs.

A hook session's snapshot (hooks/session.py) lists the nodes that ran, with the inputs they were
given and the outputs they returned, tensors reduced to summaries. The parser asks the view for
an input's value: the consuming node's own resolved input first, then, for a link, the output of
the node the link comes from. Only single JSON scalars are values the rules can use; summaries,
lists of several values (a batch), None and non-finite numbers are not, and the parser falls back
to its static evaluation for them. Cached nodes count: their values are those of the run whose
result was reused. The view reads the snapshot and never changes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ABSENT: Any = object()


class RuntimeView:
    """Scalar runtime values by (node id, input name) and (node id, output index)."""

    def __init__(self, snapshot: Mapping[str, Any] | None) -> None:
        nodes = snapshot.get("nodes") if isinstance(snapshot, Mapping) else None
        self._nodes: Mapping[str, Any] = nodes if isinstance(nodes, Mapping) else {}

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, str) and isinstance(self._nodes.get(node_id), Mapping)

    def __len__(self) -> int:
        return len(self._nodes)

    def input(self, node_id: str, name: str) -> Any:
        """The value input `name` of node `node_id` had when it ran; ABSENT if unknown or not a scalar."""
        inputs = self._part(node_id, "inputs")
        return _scalar(inputs.get(name, ABSENT)) if isinstance(inputs, Mapping) else ABSENT

    def output(self, node_id: str, index: int) -> Any:
        """The value node `node_id` returned at output `index`; ABSENT if unknown or not a scalar."""
        outputs = self._part(node_id, "outputs")
        if not isinstance(outputs, list) or not 0 <= index < len(outputs):
            return ABSENT
        return _scalar(outputs[index])

    def value(self, node_id: str, name: str, raw: Any) -> Any:
        """Input `name` of `node_id` (whose prompt value is `raw`): its runtime value, else, when `raw`
        is a link [source, index], what the source returned there; ABSENT when the run did not say."""
        found = self.input(node_id, name)
        if found is ABSENT and type(raw) is list and len(raw) == 2 and type(raw[1]) is int:
            found = self.output(str(raw[0]), raw[1])
        return found

    def _part(self, node_id: str, key: str) -> Any:
        entry = self._nodes.get(node_id)
        return entry.get(key) if isinstance(entry, Mapping) else None


def _scalar(value: Any) -> Any:
    """A value the static rules can use: a string, bool, int or finite float (one-item lists unwrapped)."""
    if type(value) is list and len(value) == 1:
        value = value[0]
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return ABSENT

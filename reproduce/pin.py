"""The exact prompt to queue again: run-time values pinned, --seed applied, cut to the save node, renamed.

Pinning reads the record's `runtime` block (metadata/runtime.py): for every node that ran, an input
the prompt linked to another node whose resolved value was a plain scalar (a seed drawn at run
time, a switch's choice, a prompt built by a node) becomes that literal, so the run cannot draw
or decide anew. Nodes no longer upstream of the save node are dropped (the node that drew the
seed, say, which the target server then need not have), and so are the nodes ComfyUI expanded at
run time, which the runtime block lists but the prompt never had. The executor's `is_changed`
notes in the recorded prompt are left out.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ..metadata.record import Record
from .client import ReproduceError, mapping

PREFIX = "reproduce"
SEED_INPUTS = ("seed", "noise_seed")
# What ComfyUI's executor writes into the prompt it hands the save node (IS_CHANGED's last answer);
# queued again, ComfyUI would take it as given instead of asking the node.
EXECUTOR_STATE = "is_changed"


@dataclass(frozen=True)
class Pin:
    """One link replaced by the value that flowed through it."""

    node_id: str
    input: str
    source: str  # the upstream node id
    value: Any

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node_id, "input": self.input, "from": self.source, "value": self.value}


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) and isinstance(value[1], int)
    )


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def pin(prompt: Mapping[str, Any], runtime: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[Pin], list[str]]:
    """(a pinned copy of `prompt`, the pins, warnings about values that could not be pinned)."""
    pinned = copy.deepcopy(dict(prompt))
    for node in pinned.values():
        if isinstance(node, dict):
            node.pop(EXECUTOR_STATE, None)
    nodes = runtime.get("nodes") if isinstance(runtime, Mapping) else None
    if not isinstance(nodes, Mapping):
        if isinstance(runtime, Mapping) and "sidecar_ref" in runtime:
            return pinned, [], [f"the runtime block's sidecar {runtime['sidecar_ref']} is missing: nothing is pinned"]
        return pinned, [], ["the record has no runtime capture: values computed at run time are not pinned"]
    pins: list[Pin] = []
    warnings: list[str] = []
    for node_id, node in pinned.items():
        ran = nodes.get(node_id)
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(ran, Mapping) or not isinstance(inputs, dict):
            continue
        resolved = mapping(ran.get("inputs"))
        for name, value in list(inputs.items()):
            if not is_link(value) or name not in resolved:
                continue
            source, slot = str(value[0]), value[1]
            flowed = resolved[name]
            if not _scalar(flowed):
                if isinstance(flowed, Mapping) and flowed.get("type") == "str":
                    warnings.append(f"node {node_id} {name}: the text was too long to capture; it is computed again")
                continue
            if source not in nodes or not _agrees(nodes[source], slot, flowed):
                continue
            inputs[name] = flowed
            pins.append(Pin(node_id, name, source, flowed))
    return pinned, pins, warnings


def _agrees(upstream: Any, slot: int, value: Any) -> bool:
    """The upstream node's captured output in that slot, where it was captured, is the value that flowed."""
    outputs = upstream.get("outputs") if isinstance(upstream, Mapping) else None
    if not isinstance(outputs, list) or slot >= len(outputs) or outputs[slot] is None:
        return True  # only scalar-producing nodes keep outputs; the consumer's input is what flowed
    return bool(outputs[slot] == value)


def set_seed(prompt: dict[str, Any], record: Record, seed: int) -> str:
    """Set the main sampler's seed (the record's passes[0]); returns `node.input` that now holds it."""
    sampler = record.passes[0].node_id if record.passes else None
    if not sampler or sampler not in prompt:
        raise ReproduceError("--seed: the record names no sampler whose seed could be set")
    for node_id in (sampler, *_noise_sources(prompt, sampler)):
        inputs = prompt[node_id].get("inputs") or {}
        for name in SEED_INPUTS:
            if name in inputs:
                inputs[name] = seed
                return f"{node_id}.{name}"
    raise ReproduceError(f"--seed: sampler node {sampler} has no seed input")


def _noise_sources(prompt: Mapping[str, Any], sampler: str) -> list[str]:
    """The nodes a custom sampler takes its noise (RandomNoise's noise_seed) from."""
    noise = mapping(prompt[sampler].get("inputs")).get("noise")
    return [str(noise[0])] if isinstance(noise, list) and is_link(noise) and str(noise[0]) in prompt else []


def upstream(prompt: Mapping[str, Any], roots: Iterable[str]) -> set[str]:
    """Every node the roots depend on, the roots included."""
    seen: set[str] = set()
    stack = [r for r in roots if r in prompt]
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        inputs = prompt[node_id].get("inputs") if isinstance(prompt[node_id], dict) else None
        for value in (inputs or {}).values():
            if is_link(value) and str(value[0]) in prompt:
                stack.append(str(value[0]))
    return seen


def trim(prompt: dict[str, Any], roots: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """Only what the roots need, in the prompt's order; the ids dropped."""
    keep = upstream(prompt, roots)
    return {k: v for k, v in prompt.items() if k in keep}, [k for k in prompt if k not in keep]


def rename(prompt: dict[str, Any], save_node_id: str, original: str | None) -> str:
    """Give the save node a prefix of its own, so the result never lands on the original's name."""
    stem = PurePosixPath(original).stem if original else "image"
    stem = stem[: -len("_")] if stem.endswith("_") else stem
    prefix = f"{PREFIX}/{stem}"
    inputs = prompt[save_node_id].setdefault("inputs", {})
    inputs["filename_prefix"] = prefix
    return prefix

"""The LoRAs one node applies: loader inputs, stacks of popular packs, and inline <lora:...> tags.

Policy, the same for every source:
- an empty slot (no name, "None") is not a LoRA and is skipped silently;
- an entry switched off ("on": false, "Off", "active": false, a stack whose toggle is off) is
  excluded, and so is one whose strengths are all 0: ComfyUI's LoraLoader returns the model
  untouched when strength_model and strength_clip are both 0, so such a file does not shape the
  output. Excluded entries are listed with the reason in provenance.other["excluded_loras"];
- strengths that are links the parser cannot evaluate stay null and the LoRA is kept;
- inline `<lora:name:weight[:clip_weight]>` tags count only where a rule's `loras` entry names
  the input with `inline` (nodes that really apply them, such as Impact's wildcard encoder).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from .graph import Node, is_link
from .rules import LoraStack, NodeRule
from .values import UNRESOLVED, Values

EMPTY_NAMES = frozenset({"", "None", "none", "NONE"})
RE_INLINE = re.compile(r"<lora:([^>]+)>", re.IGNORECASE)
RE_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


@dataclass
class LoraUse:
    name: str
    node_id: str
    strength_model: float | None = None
    strength_clip: float | None = None
    source: str = "loader"
    excluded: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "strength_model": self.strength_model,
            "strength_clip": self.strength_clip,
            "node_id": self.node_id,
        }
        if self.source != "loader":
            out["source"] = self.source
        if self.excluded:
            out["reason"] = self.excluded
        return out


def loras_of(values: Values, node: Node, rule: NodeRule) -> list[LoraUse]:
    """Every LoRA the node names, excluded ones flagged."""
    found: list[LoraUse] = []
    for spec in rule.models:
        if spec.role == "lora":
            name = values.get(node, spec.name)
            if _named(name):
                sm = _float(values.get(node, spec.strength_model)) if spec.strength_model else None
                sc = _float(values.get(node, spec.strength_clip)) if spec.strength_clip else None
                found.append(_judged(LoraUse(name, node.id, sm, sc)))
    for stack in rule.loras:
        if _applies(values, node, stack):
            found.extend(_stack(values, node, stack))
    return found


def _applies(values: Values, node: Node, stack: LoraStack) -> bool:
    if any(node.link(name) is None for name in stack.requires_links):
        return False
    for input_name, want in stack.when:
        if values.get(node, input_name) != want:
            return False
    return all(values.get(node, input_name) != avoid for input_name, avoid in stack.unless)


def inline(text: str, node_id: str) -> Iterator[LoraUse]:
    """`<lora:name>`, `<lora:name:w>`, `<lora:name:w:clip_w>` (extra non-numeric parts ignored)."""
    for match in RE_INLINE.finditer(text):
        parts = [p.strip() for p in match.group(1).split(":")]
        numbers = [float(p) for p in parts[1:] if RE_NUMBER.match(p)]
        if not _named(parts[0]):
            continue
        model = numbers[0] if numbers else 1.0
        clip = numbers[1] if len(numbers) > 1 else model
        yield _judged(LoraUse(parts[0], node_id, model, clip, source="inline"))


def _stack(values: Values, node: Node, stack: LoraStack) -> Iterator[LoraUse]:
    if stack.inline is not None:
        text = values.get(node, stack.inline)
        if isinstance(text, str):
            yield from inline(text, node.id)
        return
    for entry in _entries(values, node, stack):
        name = entry.get(stack.name)
        if not _named(name):
            continue
        sm = _float(entry.get(stack.strength_model)) if stack.strength_model else None
        sc = _float(entry.get(stack.strength_clip)) if stack.strength_clip else None
        if sc is None and stack.clip_from_model and (stack.strength_clip is None or stack.strength_clip not in entry):
            sc = sm
        use = LoraUse(name, node.id, sm, sc, source="stack")
        if stack.enabled is not None and entry.get(stack.enabled) not in stack.enabled_values:
            use.excluded = "off"
            yield use
        else:
            yield _judged(use)


def _entries(values: Values, node: Node, stack: LoraStack) -> Iterator[Mapping[str, Any]]:
    """One mapping per LoRA entry, keyed as the stack spec names them."""
    if stack.items is not None:
        for name, value in node.inputs.items():
            if stack.items.match(name) and isinstance(value, Mapping):
                yield value
    elif stack.list_input is not None:
        value = values.get(node, stack.list_input)
        if isinstance(value, Mapping):
            value = value.get("__value__")
        for item in value if isinstance(value, list) else []:
            if isinstance(item, Mapping):
                yield item
    elif stack.slots is not None:
        first, last = stack.slots
        count = values.get(node, stack.count) if stack.count else None
        if isinstance(count, int) and not isinstance(count, bool):
            last = min(last, first + count - 1)
        keys = [k for k in (stack.name, stack.strength_model, stack.strength_clip, stack.enabled) if k]
        for i in range(first, last + 1):
            yield {k: _slot_value(values, node, k.format(i=i)) for k in keys}


def _slot_value(values: Values, node: Node, name: str) -> Any:
    if name not in node.inputs:
        return None
    value = values.get(node, name)
    return None if value is UNRESOLVED else value


def _judged(use: LoraUse) -> LoraUse:
    strengths = [s for s in (use.strength_model, use.strength_clip) if s is not None]
    if strengths and all(s == 0 for s in strengths):
        use.excluded = "strength 0"
    return use


def _named(name: Any) -> TypeGuard[str]:
    return isinstance(name, str) and name.strip() not in EMPTY_NAMES


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str) and RE_NUMBER.match(value.strip()):
            return float(value)
        return None
    return float(value)


def stack_links(node: Node, rule: NodeRule) -> list[str]:
    """Source ids of the inputs carrying a LoRA stack into this node (rule inputs.loras)."""
    names = rule.inputs.get("loras", ())
    return [str(v[0]) for n in names if is_link(v := node.inputs.get(n))]

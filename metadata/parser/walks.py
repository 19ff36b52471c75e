"""Walks against the links of a prompt, as the rules direct them.

- `upstream`: every node the output depends on, following only the input a switch selects.
- `chain`: one link role (model, clip, vae, sigmas, pipe, ...) upstream, one input per node.
- `lineage`: the latent/pixel ancestry of an output: which samplers made it, from what.
- `text`: the prompt behind a conditioning link, through pass-through and combine nodes.
Unknown nodes are searched through every link (nearest first); switches whose selector cannot be
evaluated are followed both ways in `upstream` and `lineage`, and end `chain`/`text` walks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .graph import Graph, Link, Node
from .rules import NodeRule
from .values import UNRESOLVED, Values

# Conventional input names followed through nodes that have no rule.
FALLBACK_INPUTS: dict[str, tuple[str, ...]] = {
    "latent": ("samples", "latent_image", "latent"),
    "image": ("image", "images", "pixels"),
}
GENERATORS = frozenset({"sampler", "api"})
# A walk's way back to where it started: (node, output it was reached by, the rest), innermost first.
Path = tuple[Node, int, "Path"] | None
# What a prompt walk found: the text, its encoder node, and the way there.
Found = tuple[str | None, Node | None, Path]
MAX_STEPS = 100_000


@dataclass
class TextFound:
    text: str | None = None
    source: str | None = None
    node: Node | None = None
    via: Path = None

    def path(self) -> list[tuple[Node, int]]:
        """The pass-through nodes from the sampler to the text node, nearest to the sampler first."""
        out = []
        via = self.via
        while via is not None:
            node, output, via = via
            out.append((node, output))
        out.reverse()
        return out


class Walker:
    def __init__(self, graph: Graph, values: Values) -> None:
        self.graph = graph
        self.values = values

    def rule(self, node: Node | None) -> NodeRule | None:
        return self.values.rule(node)

    def _switch_choice(self, node: Node, rule: NodeRule | None) -> tuple[bool, str | None]:
        """(is a resolved switch, the input it selects)."""
        if rule is None or rule.role != "switch":
            return False, None
        chosen = self.values.selected(node, rule)
        return (False, None) if chosen is UNRESOLVED else (True, chosen)

    # -- everything the output depends on ----------------------------------------------------
    def upstream(self, roots: list[str], *, sure: bool = False) -> dict[str, Node]:
        """Every node the output depends on; with `sure`, an unresolved switch's branches are left out
        (only what decides it is followed): what remains certainly shaped the output."""
        found: dict[str, Node] = {}
        get, switches = self.graph.get, self.values.rules.switches
        queue = deque(n for r in roots if (n := get(r)) is not None)
        seen = {n.id for n in queue}
        while queue:
            node = queue.popleft()
            inputs = node.inputs
            if node.class_type in switches:
                rule = self.values.rule(node)
                resolved, chosen = self._switch_choice(node, rule)
                selector = rule.switch.selector if rule is not None and rule.switch is not None else None
                if resolved or sure:
                    # The branch it passes on, and what decided it: the output depends on both.
                    keep = {name for name in (chosen, selector) if name is not None}
                    inputs = {name: inputs[name] for name in keep if name in inputs}
            for value in inputs.values():  # links, inlined: this loop sees every input of every node
                if type(value) is list and len(value) == 2 and type(value[1]) is int:
                    src = value[0]
                    if type(src) is not str:
                        if type(src) is not int:
                            continue
                        src = str(src)
                    if src not in seen:
                        seen.add(src)
                        found_node = get(src)
                        if found_node is not None:
                            found[src] = found_node
                            queue.append(found_node)
        return found

    # -- one link role ------------------------------------------------------------------------
    def chain(self, link: Link | None, role: str) -> Iterator[tuple[Node, int]]:
        """(node, output the walk arrived by) along `role`: a switch's pick, a pass-through, or inputs[role]."""
        seen: set[str] = set()
        while link is not None:
            node = self.graph.get(link[0])
            if node is None or node.id in seen:
                return
            seen.add(node.id)
            yield node, link[1]
            rule = self.rule(node)
            if rule is None:
                name = next((n for n in FALLBACK_INPUTS.get(role, (role,)) if node.link(n)), None)
            elif rule.role == "switch":
                resolved, name = self._switch_choice(node, rule)
                if not resolved:
                    return
            else:
                name = rule.passes(link[1]) or rule.input(role)
            link = node.link(name)

    # -- latent and pixel ancestry -------------------------------------------------------------
    def lineage_inputs(self, node: Node, output: int) -> list[Link]:
        """The links a latent/pixel output was made from; every link when the node is unknown."""
        rule = self.rule(node)
        if rule is None:
            return [(src, out) for _, src, out in node.links()]
        if rule.role == "switch":
            resolved, chosen = self._switch_choice(node, rule)
            if not resolved:
                return [(src, out) for _, src, out in node.links()]
            names: tuple[str | None, ...] = (chosen,)
        elif (through := rule.passes(output)) is not None:
            names = (through,)
        else:
            names = (*rule.inputs.get("latent", ()), *rule.inputs.get("image", ()))
        return [link for n in names if (link := node.link(n)) is not None]

    def lineage(self, start: list[Link]) -> Iterator[tuple[Node, int, int]]:
        """Breadth-first (node, output, pixel_hops) over the ancestry of `start`, stopping at generators.

        pixel_hops counts the encode nodes passed: sizes read past one are not the latent's.
        """
        queue: deque[tuple[Link, int]] = deque((link, 0) for link in start)
        seen: set[Link] = set()
        steps = 0
        while queue and steps < MAX_STEPS:
            (src, out), hops = queue.popleft()
            steps += 1
            node = self.graph.get(src)
            if node is None or (src, out) in seen:
                continue
            seen.add((src, out))
            yield node, out, hops
            rule = self.rule(node)
            if rule is not None and rule.role in GENERATORS:
                continue
            hops += 1 if rule is not None and rule.role == "encode" else 0
            queue.extend((link, hops) for link in self.lineage_inputs(node, out))

    # -- prompt text -------------------------------------------------------------------------------
    def text(self, link: Link | None, polarity: str) -> TextFound:
        """The nearest prompt upstream of a conditioning link, and the pass-through path to it."""
        text, node, via = self._find(link, polarity, set(), None)
        return TextFound(text, node.id if node is not None else None, node, via)

    def _find(self, link: Link | None, polarity: str, seen: set[Link], via: Path) -> Found:
        """The prompt behind `link`; a combine node's inputs are searched in turn and their texts joined.

        Iterative: combine nodes nested to any depth (a chain of 10,000 ConditioningCombine) wait
        on an explicit stack, never on Python's.
        """
        stack: list[_Combine] = []
        found: Found | None = None
        search: tuple[Link, Path] | None = (link, via) if link else None
        while True:
            if search is not None:
                outcome = self._search(search[0], polarity, seen, search[1])
                search = None
                if isinstance(outcome, _Combine):
                    stack.append(outcome)
                else:
                    found = outcome
            if not stack:
                return found if found is not None else (None, None, None)
            frame = stack[-1]
            if found is not None:
                frame.take(found)
                found = None
            search = frame.next_link()
            if search is None:
                stack.pop()
                found = frame.result(self.values)

    def _search(self, link: Link, polarity: str, seen: set[Link], via: Path) -> Found | _Combine:
        """Breadth-first: of the branches behind an unknown node, the nearest prompt (or combine) wins."""
        queue: deque[tuple[Link, Path]] = deque([(link, via)])
        get, rule_of = self.graph.get, self.values.rule
        steps = 0
        while queue and steps < MAX_STEPS:
            (src, out), path = queue.popleft()
            steps += 1
            node = get(src)
            if node is None or (src, out) in seen:
                continue
            seen.add((src, out))
            rule = node.rule if node.rule is not False else rule_of(node)
            if rule is None:
                queue.extend(((s, o), path) for _, s, o in node.links())
                continue
            spec = rule.texts.get(out) if rule.texts else None
            if spec is not None or rule.role == "text":
                spec = spec or rule.fields.get(polarity) or rule.fields.get("text")
                value = self.values.field(node, spec) if spec else None
                return (value if isinstance(value, str) else None), node, path
            if rule.combine is not None:
                return _Combine(node, rule, (node, out, path))
            outputs = rule.outputs
            if rule.role == "switch":
                resolved, name = self._switch_choice(node, rule)
                if not resolved:
                    continue
            elif 0 <= out < len(outputs) and outputs[out] is not None:
                name = outputs[out]
            elif rule.role == "passthrough" and (names := rule.inputs.get("conditioning")):
                name = names[0]
            else:
                continue
            value = node.inputs.get(name) if name is not None else None
            if type(value) is list and len(value) == 2 and type(value[1]) is int:
                queue.append(((str(value[0]), value[1]), (node, out, path)))
        return None, None, None


class _Combine:
    """A combine node whose inputs' prompts are being found, one input after another."""

    def __init__(self, node: Node, rule: NodeRule, path: Path) -> None:
        spec = rule.combine
        assert spec is not None
        self.node, self.spec, self.path = node, spec, path
        names = spec.inputs or tuple(n for n in node.inputs if spec.pattern and spec.pattern.match(n))
        self.names = iter(names)
        self.texts: list[str] = []
        self.first: Found = (None, None, path)

    def next_link(self) -> tuple[Link, Path] | None:
        for name in self.names:
            value = self.node.inputs.get(name)
            if type(value) is list and len(value) == 2 and type(value[1]) is int:
                return (str(value[0]), value[1]), self.path
        return None

    def take(self, found: Found) -> None:
        if found[0] is not None:
            self.texts.append(found[0])
            self.first = found if self.first[1] is None else self.first

    def result(self, values: Values) -> Found:
        spec = self.spec
        separator = values.field(self.node, spec.separator_field) if spec.separator_field else spec.separator
        return (str(separator).join(self.texts) if self.texts else None), self.first[1], self.first[2]


def merge_fields(values: Values, into: dict[str, Any], sources: dict[str, str], node: Node, output: int) -> None:
    """Add the node's rule fields (and those of the output it was reached by) not already known."""
    rule = values.rule(node)
    if rule is None or not (rule.fields or rule.output_fields):
        return
    specs = list(rule.fields.items())
    if rule.output_fields:
        specs.extend(rule.output_fields.get(output, {}).items())
    for name, spec in specs:
        if into.get(name) is None:
            value = values.field(node, spec)
            if value is not None or name not in into:
                into[name] = value
                if value is not None:
                    sources[name] = node.id

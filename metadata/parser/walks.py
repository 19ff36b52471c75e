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
from collections.abc import Collection, Iterator
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
# The nodes a prompt search passed that restrict the conditioning (area, mask, timestep range).
Restrictions = tuple[Node, ...]


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
        # Prompts a rule-less node's branches disagree on: {"polarity", "candidates"}, for the record.
        self.ambiguous: list[dict[str, Any]] = []
        # Prompts combined in restricted to an area, mask or timestep range: {"polarity", "prompts"}.
        self.regional_prompts: list[dict[str, Any]] = []
        self._texts: dict[tuple[Link, str], tuple[TextFound, list[dict[str, Any]], list[dict[str, Any]]]] = {}

    def rule(self, node: Node | None) -> NodeRule | None:
        return self.values.rule(node)

    def switch_resolved(self, node: Node) -> bool:
        """Whether a switch node's choice is known statically."""
        return self._switch_choice(node, self.rule(node))[0]

    def _switch_choice(self, node: Node, rule: NodeRule | None) -> tuple[bool, str | None]:
        """(is a resolved switch, the input it selects)."""
        if rule is None or rule.role != "switch":
            return False, None
        chosen = self.values.selected(node, rule)
        return (False, None) if chosen is UNRESOLVED else (True, chosen)

    # -- everything the output depends on ----------------------------------------------------
    def upstream(self, roots: list[str], *, sure: bool = False, stop: Collection[str] = ()) -> dict[str, Node]:
        """Every node the output depends on; with `sure`, an unresolved switch's branches are left out
        (only what decides it is followed): what remains certainly shaped the output. The inputs of
        nodes in `stop` are not followed."""
        found: dict[str, Node] = {}
        get, switches = self.graph.get, self.values.rules.switches
        queue = deque(n for r in roots if (n := get(r)) is not None)
        seen = {n.id for n in queue}
        while queue:
            node = queue.popleft()
            inputs = node.inputs
            if node.id in stop:
                continue
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
        """The nearest prompt upstream of a conditioning link, and the pass-through path to it. Passes
        that share a conditioning (hires, refiner) ask once: the answer and what it noted (ambiguous
        and regional prompts, copied for each asker to annotate) are kept for the parse."""
        key = (link, polarity) if link is not None else None
        kept = self._texts.get(key) if key is not None else None
        if kept is None:
            ambiguous, regional = len(self.ambiguous), len(self.regional_prompts)
            text, node, via = self._find(link, polarity, set(), None)
            found = TextFound(text, node.id if node is not None else None, node, via)
            kept = (found, self.ambiguous[ambiguous:], self.regional_prompts[regional:])
            del self.ambiguous[ambiguous:], self.regional_prompts[regional:]
            if key is not None:
                self._texts[key] = kept
        found, ambiguous_noted, regional_noted = kept
        self.ambiguous.extend(dict(entry) for entry in ambiguous_noted)
        self.regional_prompts.extend(dict(entry) for entry in regional_noted)
        return found

    def _find(self, link: Link | None, polarity: str, seen: set[Link], via: Path) -> Found:
        """The prompt behind `link`; a combine node's inputs are searched in turn and their texts joined.

        Iterative: combine nodes nested to any depth (a chain of 10,000 ConditioningCombine) wait
        on an explicit stack, never on Python's.
        """
        stack: list[_Combine] = []
        found: Found | None = None
        restricted: Restrictions = ()
        search: tuple[Link, Path] | None = (link, via) if link else None
        while True:
            if search is not None:
                outcome, restricted = self._search(search[0], polarity, seen, search[1])
                search = None
                if isinstance(outcome, _Combine):
                    stack.append(outcome)
                else:
                    found = outcome
            if not stack:
                return found if found is not None else (None, None, None)
            frame = stack[-1]
            if found is not None:
                frame.take(found, restricted)
                found = None
            search = frame.next_link()
            if search is None:
                stack.pop()
                found, restricted = frame.result(self.values)
                if frame.regions:
                    self.regional_prompts.append({"polarity": polarity, "prompts": frame.regions})

    def _search(self, link: Link, polarity: str, seen: set[Link], via: Path) -> tuple[Found | _Combine, Restrictions]:
        """Breadth-first: of the branches behind a node with no rule (or a rule that does not route the
        output searched), the nearest prompt wins, but only if every branch at that distance agrees.
        Different prompts there (which input the node passes on is not known) are ambiguous: no text,
        both listed in `self.ambiguous`. With the result: the nodes passed that restrict it to a
        region (area, mask, timestep range)."""
        # (link, way back, behind a fork of unknown routing, restrictions passed, distance)
        queue: deque[tuple[Link, Path, bool, Restrictions, int]] = deque([(link, via, False, (), 0)])
        get, rule_of = self.graph.get, self.values.rule
        results: list[tuple[Found | _Combine, bool, Restrictions]] = []
        nearest = -1
        steps = 0
        while queue and steps < MAX_STEPS:
            (src, out), path, forked, restricted, distance = queue.popleft()
            if results and distance > nearest:
                break  # every branch at the nearest distance is in
            steps += 1
            node = get(src)
            if node is None or (src, out) in seen:
                continue
            seen.add((src, out))
            rule = node.rule if node.rule is not False else rule_of(node)
            name: str | None = None
            if rule is not None and out not in rule.disputed:
                if rule.role == "text" or rule.combine is not None or (rule.texts and out in rule.texts):
                    results.append(
                        (self._arrived(node, rule, out, polarity, path, above=restricted), forked, restricted)
                    )
                    nearest = distance
                    continue
                outputs = rule.outputs
                if rule.role == "switch":
                    resolved, name = self._switch_choice(node, rule)
                    if not resolved:
                        continue
                elif 0 <= out < len(outputs) and outputs[out] is not None:
                    name = outputs[out]
                elif rule.role == "passthrough" and (names := rule.inputs.get("conditioning")):
                    name = names[0]
                elif rule.role != "passthrough":
                    continue  # a dead end: no prompt behind this output
            if name is None:  # which input it passes on is not known: every one, nearest first
                links = node.links()
                wide = forked or len(links) > 1
                queue.extend(((s, o), path, wide, restricted, distance + 1) for _, s, o in links)
                continue
            value = node.inputs.get(name)
            if type(value) is list and len(value) == 2 and type(value[1]) is int:
                assert rule is not None
                onward = (*restricted, node) if rule.regional is not None else restricted
                queue.append(((str(value[0]), value[1]), (node, out, path), forked, onward, distance + 1))
        if len(results) == 1:
            return results[0][0], results[0][2]
        if results:
            return self._agreed(results, polarity)
        return (None, None, None), ()

    def _arrived(
        self, node: Node, rule: NodeRule, out: int, polarity: str, path: Path, *, above: Restrictions
    ) -> Found | _Combine:
        """A prompt node reached: its text, or, for a combine, the search of its inputs to come."""
        if rule.combine is not None and not (rule.texts and out in rule.texts):
            combine = _Combine(node, rule, (node, out, path), self.values, polarity)
            combine.above = above
            return combine
        spec = (rule.texts.get(out) if rule.texts else None) or rule.fields.get(polarity) or rule.fields.get("text")
        value = self.values.field(node, spec) if spec else None
        return (value if isinstance(value, str) else None), node, path

    def _agreed(
        self, results: list[tuple[Found | _Combine, bool, Restrictions]], polarity: str
    ) -> tuple[Found | _Combine, Restrictions]:
        """The one result at this distance, or, when branches of a rule-less node disagree, none."""
        first, _, restricted = results[0]
        if len(results) == 1 or not any(branched for _, branched, _ in results):
            return first, restricted
        texts = [r[0] for r, _, _ in results if not isinstance(r, _Combine)]
        if isinstance(first, _Combine) or (len(set(texts)) <= 1 and len(texts) == len(results)):
            return first, restricted
        candidates = sorted({t for t in texts if t is not None})
        self.ambiguous.append({"polarity": polarity, "candidates": candidates})
        return (None, None, None), ()


class _Combine:
    """A combine node whose inputs' prompts are being found, one input after another."""

    __slots__ = (
        "above",
        "first",
        "names",
        "node",
        "path",
        "polarity",
        "regions",
        "restricted",
        "spec",
        "texts",
        "values",
    )

    def __init__(self, node: Node, rule: NodeRule, path: Path, values: Values, polarity: str) -> None:
        spec = rule.combine
        assert spec is not None
        self.node, self.spec, self.path, self.values, self.polarity = node, spec, path, values, polarity
        names = spec.inputs or tuple(n for n in node.inputs if spec.pattern and spec.pattern.match(n))
        self.names = iter(names)
        self.texts: list[str] = []
        self.first: Found = (None, None, path)
        # Restrictions between the combine that searches this one (if any) and this node.
        self.above: Restrictions = ()
        # Branches restricted to a region: listed apart, never joined into the prompt.
        self.regions: list[dict[str, Any]] = []
        self.restricted: list[tuple[Found, Restrictions]] = []

    def next_link(self) -> tuple[Link, Path] | None:
        for name in self.names:
            value = self.node.inputs.get(name)
            if type(value) is list and len(value) == 2 and type(value[1]) is int:
                return (str(value[0]), value[1]), self.path
        return None

    def take(self, found: Found, restricted: Restrictions) -> None:
        if found[0] is None:
            return
        if restricted:
            self.restricted.append((found, restricted))
            return
        self.texts.append(found[0])
        self.first = found if self.first[1] is None else self.first

    def _region(self, found: Found, restricted: Restrictions) -> dict[str, Any]:
        """A restricted prompt as the record lists it, with the area, mask or range of its restrictions."""
        source = found[1]
        region: dict[str, Any] = {"polarity": self.polarity, "text": found[0]}
        region["node_id"] = source.id if source is not None else None
        region["restricted_by"] = [n.id for n in reversed(restricted)]  # nearest the prompt first
        field, direct = self.values.field, self.values.runtime is None
        for node in reversed(restricted):
            rule = node.rule if node.rule is not False else self.values.rule(node)
            for name, spec in rule.regional.items() if rule is not None and rule.regional else ():
                if name not in region:
                    raw = node.inputs.get(spec.input) if direct and spec.input is not None else None
                    plain = raw is not None and type(raw) is not list and spec.plain
                    region[name] = raw if plain else field(node, spec)
        return region

    def result(self, values: Values) -> tuple[Found, Restrictions]:
        """The unrestricted prompts joined, the restricted ones listed apart (`regions`); when every
        prompt is restricted (timestep ranges of one prompt, areas covering the image), all of them
        joined, and none is listed apart."""
        spec = self.spec
        separator = values.field(self.node, spec.separator_field) if spec.separator_field else spec.separator
        own: Restrictions = ()
        if self.texts:
            self.regions = [self._region(found, restricted) for found, restricted in self.restricted]
        elif self.restricted:
            self.texts = [found[0] for found, _ in self.restricted if found[0] is not None]
            self.first, own = self.restricted[0]
        text = str(separator).join(self.texts) if self.texts else None
        return (text, self.first[1], self.first[2]), (*self.above, *own)


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

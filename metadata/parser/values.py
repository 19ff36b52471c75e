"""Static evaluation of node inputs: constants, primitives, switches and math, never guessed.

A value that is a link is followed only through nodes whose rules say how to compute it
(constants, switches with a constant selector, math over constants, pass-through outputs).
Anything else is UNRESOLVED and is listed, with the node it depends on, for runtime capture.
Given a RuntimeView, every input first asks what the run saw (the node's resolved input, or the
output its link comes from), so switches, math and text follow the values that really flowed.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from .evaluate import UnsafeExpression, safe_eval
from .graph import Graph, Node, is_link
from .rules import MISSING, FieldSpec, NodeRule, RuleSet
from .runtime_view import ABSENT, RuntimeView

UNRESOLVED: Any = object()
MAX_DEPTH = 32


class Values:
    """Evaluates inputs for one parse; remembers what could not be resolved."""

    def __init__(self, graph: Graph, rules: RuleSet, runtime: RuntimeView | None = None) -> None:
        self.graph = graph
        self.rules = rules
        self.runtime = runtime
        self.unresolved: list[dict[str, str]] = []
        self._reported: set[tuple[str, str]] = set()
        self._memo: dict[tuple[str, int], Any] = {}

    def rule(self, node: Node | None) -> NodeRule | None:
        if node is None:
            return None
        rule = node.rule
        if rule is False:
            rule = node.rule = self.rules.get(node.class_type)
        return rule  # type: ignore[no-any-return]

    # -- public -----------------------------------------------------------------------------
    def get(self, node: Node, name: str | None) -> Any:
        """The input's value: constants as they are, links evaluated; None if unknown (and reported)."""
        if name is None:
            return None
        value = self._input(node, name, 0)
        if value is UNRESOLVED:
            self.report(node, name)
            return None
        return value

    def field(self, node: Node, spec: FieldSpec) -> Any:
        """A rule field's value: const, or the input parsed and cleaned as the spec says; None if unknown."""
        if spec.plain and spec.input is not None and self.runtime is None:
            raw = node.inputs.get(spec.input)
            if type(raw) is not list:
                return raw
        value = self._field(node, spec, 0)
        if value is UNRESOLVED:
            for name in (spec.input, spec.only_if):
                if name is not None and is_link(node.inputs.get(name)):
                    self.report(node, name)
            return None
        return value

    def _field(self, node: Node, spec: FieldSpec, depth: int) -> Any:
        if spec.const is not MISSING:
            return spec.const
        value = self._input(node, spec.input, depth) if spec.input is not None and spec.input in node.inputs else None
        if value is UNRESOLVED:
            return UNRESOLVED
        if spec.regex is not None:
            match = spec.regex.match(value) if isinstance(value, str) else None
            value = match.group(spec.group) if match and spec.group <= (spec.regex.groups or 0) else None
        if isinstance(value, str) and (spec.replace or spec.strip):
            flag = self._input(node, spec.only_if, depth) if spec.only_if else True
            if flag is UNRESOLVED:
                return UNRESOLVED
            if flag:
                for old, new in spec.replace:
                    value = value.replace(old, new)
                value = value.strip() if spec.strip else value
        if spec.mapping is not None and value is not None:
            value = spec.mapping.get(_key(value))
        if spec.ignore and _listed(value, spec.ignore):
            value = None
        value = _cast(value, spec.cast)
        if spec.round_to is not None and isinstance(value, float):
            value = round(value, spec.round_to)
        if value is None and spec.fallback is not None:
            return self._field(node, spec.fallback, depth)
        return value

    def selected(self, node: Node, rule: NodeRule) -> Any:
        """The input a switch passes on: its name, None when nothing is connected there, or UNRESOLVED."""
        return self._select(node, rule, 0, report=True)

    def report(self, node: Node, name: str) -> None:
        raw = node.inputs.get(name)
        depends_on = str(raw[0]) if is_link(raw) else node.id
        if (node.id, name) not in self._reported:
            self._reported.add((node.id, name))
            self.unresolved.append({"node_id": node.id, "input": name, "depends_on": depends_on})

    # -- evaluation -------------------------------------------------------------------------
    def _input(self, node: Node, name: str, depth: int) -> Any:
        raw = node.inputs.get(name)
        if self.runtime is not None:
            seen = self.runtime.value(node.id, name, raw)
            if seen is not ABSENT:
                return seen
        if not is_link(raw):
            return raw
        key = (str(raw[0]), raw[1])
        if depth == 0 and key in self._memo:
            return self._memo[key]
        value = self._output(key[0], key[1], depth + 1)
        if depth == 0:
            self._memo[key] = value
        return value

    def _output(self, node_id: str, output: int, depth: int) -> Any:
        """The value output `output` of node `node_id` carries, if the rules can compute it."""
        node = self.graph.get(node_id)
        rule = self.rule(node)
        if node is None or rule is None or depth > MAX_DEPTH:
            return UNRESOLVED
        if rule.role == "constant":
            spec = rule.fields.get("value")
            name = rule.passes(output)
            if name is not None:
                value = self._input(node, name, depth)
            else:
                value = self._field(node, spec, depth) if spec is not None else UNRESOLVED
            return UNRESOLVED if _listed(value, rule.unresolved_values) else value
        if rule.role == "switch" and rule.switch is not None:
            if output != rule.switch.output:
                return UNRESOLVED
            chosen = self._select(node, rule, depth, report=False)
            return UNRESOLVED if chosen is UNRESOLVED or chosen is None else self._input(node, chosen, depth)
        if rule.role == "math":
            return self._math(node, rule, output, depth)
        name = rule.passes(output)
        return self._input(node, name, depth) if name else UNRESOLVED

    def _select(self, node: Node, rule: NodeRule, depth: int, report: bool) -> Any:
        spec = rule.switch
        if spec is None:
            return UNRESOLVED
        if spec.first_present is not None:
            for name, value in node.inputs.items():
                present = value is not None and (not is_link(value) or str(value[0]) in self.graph)
                if present and spec.first_present.match(name):
                    return name
            return None
        known = bool(spec.choices or spec.pattern)  # a bare selector: what it picks is not known statically
        key = self._input(node, spec.selector, depth) if spec.selector and known else UNRESOLVED
        if key is UNRESOLVED:
            if report and spec.selector:
                self.report(node, spec.selector)
            return UNRESOLVED
        text = _key(key)
        chosen = spec.choices.get(text) or (spec.pattern.format(text) if spec.pattern else None)
        return chosen if chosen in node.inputs else None

    def _math(self, node: Node, rule: NodeRule, output: int, depth: int) -> Any:
        spec = rule.math
        if spec is None or output >= len(spec.outputs):
            return UNRESOLVED
        expression = self._input(node, spec.expression, depth)
        if not isinstance(expression, str):
            return UNRESOLVED
        names: dict[str, Any] = dict(spec.defaults)
        inputs = (
            {n[len(spec.prefix) :]: n for n in node.inputs if n.startswith(spec.prefix)}
            if spec.prefix is not None
            else {n: n for n in spec.variables if n in node.inputs}
        )
        for var, name in inputs.items():
            value = self._input(node, name, depth)
            if value is UNRESOLVED or value is None:
                return UNRESOLVED
            names[var] = value
        try:
            result = safe_eval(expression, names)
        except UnsafeExpression:
            return UNRESOLVED
        return _number(result, spec.outputs[output])


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _listed(value: Any, values: tuple[Any, ...]) -> bool:
    """`value` is one of `values` (True is not 1 here)."""
    return any(isinstance(value, bool) == isinstance(v, bool) and value == v for v in values)


def _number(value: float | int, kind: str) -> Any:
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    if kind == "round":
        return round(value)
    return float(value) if math.isfinite(value) else UNRESOLVED


def _cast(value: Any, cast: str | None) -> Any:
    if cast is None or value is None:
        return value
    try:
        if cast == "int":
            return int(value)
        if cast == "float":
            return float(value)
        if cast == "bool":
            return bool(value)
        return str(value)
    except (TypeError, ValueError):
        return None


def constants(node: Node, used: Collection[str]) -> dict[str, Any]:
    """The node's plain (unlinked, scalar) inputs not in `used`: an API node's options."""
    return {
        k: v
        for k, v in node.inputs.items()
        if k not in used
        and (v is None or isinstance(v, (str, int, bool)) or (isinstance(v, float) and math.isfinite(v)))
    }

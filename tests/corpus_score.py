"""Leave-rules-out evaluation: the corpus parsed with whole families of rules removed, scored fact by fact.

A family is the rules of one kind of node (cloud API nodes, conditioning helpers, resolution/seed
helpers, loaders, samplers); removing them makes those classes unknown to the parser, as a node
released after the pack's last rule update is. Each expected fact then comes out right, missing
(nothing recorded: allowed) or wrong (a different value recorded: never allowed).

    python tests/corpus_score.py [FAMILY ...]     # print the scores (benchmarks/rules_left_out.py too)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conftest import corpus_names, load_workflow
from corpus_facts import WORKFLOWS, facts, missing, same, save_node

from comfyui_provenance.metadata.parser.parse import WorkflowParser
from comfyui_provenance.metadata.parser.rules import NodeRule, RuleSet, bundled

CONDITIONING_NAMES = frozenset({"positive", "negative", "conditioning"})


def _conditioning_helper(rule: NodeRule) -> bool:
    outputs = {o for o in rule.outputs if o}
    return rule.role in ("passthrough", "latent") and bool(
        rule.combine is not None or outputs & CONDITIONING_NAMES or set(rule.inputs) & CONDITIONING_NAMES
    )


FAMILIES: dict[str, Callable[[NodeRule], bool]] = {
    "api": lambda rule: rule.role == "api",
    "conditioning": _conditioning_helper,
    "helpers": lambda rule: rule.role in ("constant", "math", "switch"),
    "loaders": lambda rule: rule.role in ("loader", "lora"),
    "samplers": lambda rule: rule.role in ("sampler", "part"),
}
# Issue 8's acceptance: these three removed together.
ACCEPTANCE = ("api", "conditioning", "helpers")


def rules_without(families: Iterable[str], base: RuleSet | None = None) -> RuleSet:
    """The bundled rules minus every rule in the named families."""
    base = base or bundled()
    tests = [FAMILIES[f] for f in families]
    kept = {c: r for c in base.classes() if (r := base.get(c)) is not None and not any(t(r) for t in tests)}
    return RuleSet(kept)


@dataclass
class Score:
    right: int = 0
    missing: int = 0
    wrong: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.right + self.missing + len(self.wrong)

    @property
    def ratio(self) -> float:
        return self.right / self.total if self.total else 1.0

    def line(self) -> str:
        return f"{self.right}/{self.total} right ({self.ratio:.1%}), {self.missing} missing, {len(self.wrong)} wrong"


def score(rules: RuleSet, names: Iterable[str] | None = None) -> Score:
    result = Score()
    parser = WorkflowParser(rules)
    for name in names or corpus_names():
        api, ui = load_workflow(name)
        try:
            record = parser.parse(api, save_node(api), ui)
        except Exception as err:  # a crash is every fact of the workflow missing, and reported
            result.wrong.append(f"{name}: the parser raised {type(err).__name__}: {err}")
            continue
        for fact in facts(name, record, WORKFLOWS[name]["expected"]):
            _classify(result, name, fact.name, fact.got, fact.want)
    return result


def _classify(result: Score, name: str, what: str, got: Any, want: Any) -> None:
    if same(got, want):
        result.right += 1
    elif missing(got, want):
        result.missing += 1
    else:
        result.wrong.append(f"{name}: {what}: got {got!r}, want {want!r}")


def main(argv: list[str]) -> int:
    groups = [argv] if argv else [[], *([f] for f in FAMILIES), list(ACCEPTANCE)]
    for families in groups:
        result = score(rules_without(families))
        label = "+".join(families) or "none"
        print(f"rules removed: {label:<28} {result.line()}")
        for problem in result.wrong[:40]:
            print(f"    WRONG {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Leave-rules-out regression: the corpus scored with families of rules removed (benchmarks/rules_left_out.py
prints the same table). Issue 8's acceptance: with the rules of API nodes, conditioning helpers and
value helpers removed, at least 90% of the hand-read facts right and none wrong; with every rule, all
of them. The floors below are the scores measured when inference landed, a little under: a change
that loses facts the parser used to infer fails here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from corpus_score import ACCEPTANCE, FAMILIES, rules_without, score

from comfyui_provenance.metadata.parser import infer, schemas

# Fraction right, at least; measured 2026-12-06: see the note in benchmarks/README.md.
FLOORS = {
    "none": 1.0,
    "api": 0.99,
    "conditioning": 0.99,
    "helpers": 0.99,
    "loaders": 0.99,
    "samplers": 0.99,
    "+".join(ACCEPTANCE): 0.99,
}
# The same with only the file's own graphs to infer from (no snapshot: classes released after it).
FLOORS_OWN_GRAPHS = {
    "none": 1.0,
    "api": 0.94,
    "conditioning": 0.99,
    "helpers": 0.96,
    "loaders": 0.98,
    "samplers": 0.98,
    "+".join(ACCEPTANCE): 0.91,
}
GROUPS = [[], *([f] for f in FAMILIES), list(ACCEPTANCE)]


@pytest.fixture
def no_snapshot(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(schemas, "bundled", schemas.SchemaSet)
    yield


@pytest.mark.parametrize("families", GROUPS, ids=lambda f: "+".join(f) or "none")
def test_no_wrong_value_and_no_drop(families: list[str]) -> None:
    result = score(rules_without(families))
    assert result.wrong == [], "a recorded value contradicts the hand-read expectation"
    label = "+".join(families) or "none"
    assert result.ratio >= FLOORS[label], result.line()
    if families == list(ACCEPTANCE):
        assert result.ratio >= 0.90


@pytest.mark.parametrize("families", GROUPS, ids=lambda f: "+".join(f) or "none")
def test_from_the_files_own_graphs_no_wrong_value(families: list[str], no_snapshot: None) -> None:
    result = score(rules_without(families))
    assert result.wrong == [], "a recorded value contradicts the hand-read expectation"
    assert result.ratio >= FLOORS_OWN_GRAPHS["+".join(families) or "none"], result.line()


def test_the_score_measures_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each family takes rules the corpus uses away, and with inference off the acceptance set loses
    facts: the score above is inference's doing, not rules left behind."""
    full = rules_without([])
    for family in FAMILIES:
        assert len(rules_without([family])) < len(full), family
    monkeypatch.setattr(infer, "inferred_rule", lambda schema: None)
    blind = score(rules_without(ACCEPTANCE))
    assert blind.ratio < 0.90, blind.line()

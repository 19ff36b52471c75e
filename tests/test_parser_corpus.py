"""The static parser against every hand-read expectation of the 50-workflow corpus.

Each key of each workflow's `expected` block is either compared with the record (numbers with a
tolerance: templates store 5.000000000000001 for 5) or listed in NOT_CAPTURED with the reason;
a key that is neither fails, so a new expectation cannot be silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import corpus_names, deadline, load_workflow
from corpus_facts import WORKFLOWS, Unchecked, facts, same, save_node

from comfyui_provenance.metadata.parser.parse import parse
from comfyui_provenance.metadata.record import COMPOSITE, Record


def parsed(name: str) -> Record:
    api, ui = load_workflow(name)
    with deadline(5):
        return parse(api, save_node(api), ui)


def compare(name: str, rec: Record, want: dict[str, Any], problems: list[str]) -> int:
    """Compare every expected key; returns how many values were checked."""
    checked = 0
    try:
        for fact in facts(name, rec, want):
            checked += 1
            if not same(fact.got, fact.want):
                problems.append(f"{name}: {fact.name}: got {fact.got!r}, want {fact.want!r}")
    except Unchecked as err:
        problems.append(str(err))
    return checked


@pytest.mark.parametrize("name", corpus_names())
def test_every_expected_field(name: str) -> None:
    problems: list[str] = []
    checked = compare(name, parsed(name), WORKFLOWS[name]["expected"], problems)
    assert checked >= 8
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", corpus_names())
def test_no_warnings_and_every_pass_named(name: str) -> None:
    rec = parsed(name)
    assert not rec.provenance.warnings
    assert all(p.node_id in load_workflow(name)[0] for p in rec.passes)
    assert rec.passes, "every corpus workflow has a sampler or an API node"


UNRESOLVED_BY_DESIGN = {
    # Width and height come from GetImageSize of the (scaled) input image: known only at run time.
    "image_flux2": {("68:47", "width"), ("68:47", "height")},
}


@pytest.mark.parametrize("name", corpus_names())
def test_unresolved_only_where_the_graph_needs_runtime(name: str) -> None:
    rec = parsed(name)
    got = {(u["node_id"], u["input"]) for u in rec.provenance.other.get("unresolved", [])}
    assert got == UNRESOLVED_BY_DESIGN.get(name, set())


def test_lotus_depth_sampler_is_auxiliary_not_a_pass() -> None:
    rec = parsed("flux_depth_lora_example")
    assert [p.node_id for p in rec.passes] == ["150:3"]
    assert rec.provenance.other["auxiliary_samplers"] == ["150:41:92"]


@pytest.mark.parametrize(
    ("name", "composite"),
    [("image2image", True), ("inpaint_example", True), ("image_to_video_wan", True), ("default", False)],
)
def test_input_pixels_make_a_composite(name: str, composite: bool) -> None:
    assert (parsed(name).provenance.digital_source_type == COMPOSITE) is composite


def test_hires_pass_records_its_upscale() -> None:
    rec = parsed("hiresfix_latent_workflow")
    assert "upscale" not in rec.passes[0].other
    up = rec.passes[1].other["upscale"]
    assert up is not None
    assert (up["class_type"], up["method"], up["width"], up["height"]) == ("LatentUpscale", "nearest-exact", 768, 768)


def test_switched_off_lora_is_not_recorded_anywhere() -> None:
    rec = parsed("image_qwen_image")
    assert rec.loras() == []
    assert all(not p.loras for p in rec.passes)


def summary() -> dict[str, tuple[int, int]]:
    """Per family: (workflows, values checked) - for the report, `python -m test_parser_corpus`."""
    out: dict[str, tuple[int, int]] = {}
    for name in corpus_names():
        family = WORKFLOWS[name]["family"]
        problems: list[str] = []
        checked = compare(name, parsed(name), WORKFLOWS[name]["expected"], problems)
        count, total = out.get(family, (0, 0))
        out[family] = (count + 1, total + checked - len(problems))
    return out


if __name__ == "__main__":
    show: Callable[[str], None] = print
    for family, (count, values) in sorted(summary().items()):
        show(f"{family}: {count} workflow(s), {values} values match")


@pytest.mark.parametrize("name", corpus_names())
def test_record_matches_the_published_schema(name: str) -> None:
    from importlib import resources

    from jsonschema import Draft202012Validator

    text = resources.files("comfyui_provenance.metadata").joinpath("schema/record-1.schema.json").read_text("utf-8")
    errors = list(Draft202012Validator(json.loads(text)).iter_errors(json.loads(parsed(name).to_json())))
    assert not errors, [e.message for e in errors]

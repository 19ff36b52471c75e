"""Templates for the OpenAI-compatible API: bindings found by the parser on the real workflow corpus.

For every corpus image workflow the parser reads (its expected positive and seed known by hand), the
template's bindings must point at the inputs that hold those values, and a request filled into the
template must read back, through the same parser, as exactly what was asked. Plus the pure parts:
request validation in OpenAI's words, key hashing and rate limits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, expected, load_workflow

from comfyui_provenance.metadata.capture import SaveContext, build_record
from comfyui_provenance.service import auth, requests, templates
from comfyui_provenance.service.errors import ApiError

IMAGE_OUTPUTS = ("SaveImage", "PreviewImage")


def corpus_image_workflows() -> list[str]:
    names = []
    for path in sorted(CORPUS.glob("*.api.json")):
        name = path.name.removesuffix(".api.json")
        graph = json.loads(path.read_text("utf-8"))
        classes = {n.get("class_type") for n in graph.values() if isinstance(n, dict)}
        want = expected(name) if _has_expected(name) else {}
        if classes & set(IMAGE_OUTPUTS) and want.get("positive") and want.get("seed") is not None:
            names.append(name)
    return names


def _has_expected(name: str) -> bool:
    data = json.loads((CORPUS / "expected.json").read_text("utf-8"))
    return name in data["workflows"]


WORKFLOWS = corpus_image_workflows()


def test_the_corpus_gives_enough_workflows() -> None:
    assert len(WORKFLOWS) >= 15, WORKFLOWS


def _value(graph: dict[str, Any], binding: templates.Binding) -> Any:
    return graph[binding.node]["inputs"][binding.input]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_bindings_point_at_the_values_the_corpus_expects(name: str) -> None:
    api, _ = load_workflow(name)
    want = expected(name)
    try:
        bindings, save_node, _family = templates.bind(api)
    except templates.TemplateError as err:
        pytest.fail(f"{name}: {err}")
    assert api[save_node]["class_type"] in (*IMAGE_OUTPUTS, "ProvenanceSaveImage")
    assert _value(api, bindings["positive"][0]).strip() == want["positive"].strip()
    assert _value(api, bindings["seed"][0]) == want["seed"]
    for field in ("steps", "cfg", "width", "height"):
        if want.get(field) is not None and field in bindings:
            assert _value(api, bindings[field][0]) == want[field], field


@pytest.mark.parametrize("name", WORKFLOWS)
def test_a_filled_request_reads_back_as_asked(name: str) -> None:
    api, _ = load_workflow(name)
    template = templates.from_data(name.replace("_", "-")[:60], api, source="corpus")
    ask = requests.generation(
        {
            "prompt": "a lighthouse on a cliff, storm",
            "negative_prompt": "blurry",
            "seed": 123456,
            "steps": 7,
            "cfg": 4.5,
        }
    )
    size = (640, 448) if {"width", "height"} <= set(template.bindings) else None
    filled = templates.fill(
        template, ask, seed=123456, batch=1, size=size, uploads={}, checkpoint=None, prefix="openai/test"
    )
    save = filled.prompt[template.save_node]
    assert save["class_type"] == "ProvenanceSaveImage" and save["inputs"]["filename_prefix"] == "openai/test"
    outputs = [k for k, v in filled.prompt.items() if v["class_type"] in (*IMAGE_OUTPUTS, "ProvenanceSaveImage")]
    assert outputs == [template.save_node]
    record = build_record(SaveContext(prompt=filled.prompt, save_node_id=template.save_node), None)
    gen = record.generation
    assert gen.positive is not None and gen.positive.strip() == "a lighthouse on a cliff, storm"
    assert gen.seed == 123456
    if "negative" in template.bindings:
        assert gen.negative == "blurry"
    if "steps" in template.bindings:
        assert gen.steps == 7
    if "cfg" in template.bindings:
        assert gen.cfg == 4.5
    if size is not None:
        assert (gen.width, gen.height) == size


def test_the_bundled_templates_bind_what_their_kind_needs() -> None:
    bundled = templates.bundled()
    assert set(bundled) == {"sd15", "sd15-img2img", "sd15-inpaint", "sdxl", "flux"}
    kinds = {t.id: (t.kind, t.family, t.multiple) for t in bundled.values()}
    assert kinds == {
        "sd15": ("txt2img", "sd15", 8),
        "sd15-img2img": ("img2img", "sd15", 8),
        "sd15-inpaint": ("inpaint", "sd15", 8),
        "sdxl": ("txt2img", "sdxl", 8),
        "flux": ("txt2img", "flux", 16),
    }
    inpaint = bundled["sd15-inpaint"]
    assert [str(b) for b in inpaint.bindings["image"]] == ["10.image"]
    assert [str(b) for b in inpaint.bindings["mask"]] == ["12.image"]
    assert all("checkpoint" in t.bindings for t in bundled.values())


def test_sizes_are_checked_against_the_family() -> None:
    flux, sd15 = templates.bundled()["flux"], templates.bundled()["sd15"]
    assert templates.check_size(sd15, (520, 512), 2048) == (520, 512)
    with pytest.raises(ApiError) as bad:
        templates.check_size(flux, (520, 512), 2048)
    assert (bad.value.status, bad.value.param) == (400, "size") and "multiples of 16" in bad.value.message
    with pytest.raises(ApiError):
        templates.check_size(sd15, (4096, 512), 2048)
    with pytest.raises(ApiError, match="fixed size"):
        templates.check_size(templates.bundled()["sd15-img2img"], (512, 512), 2048)


def test_a_template_file_may_override_a_binding_and_a_broken_one_is_skipped(tmp_path: Path) -> None:
    api, _ = load_workflow("default")
    (tmp_path / "mine.json").write_text(json.dumps({"workflow": api, "bindings": {"negative": ["6.text"]}}))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "nosave.json").write_text(json.dumps({k: v for k, v in api.items() if v["class_type"] != "SaveImage"}))
    found = templates.load_folder(tmp_path, source="test")
    assert list(found) == ["mine"]
    assert [str(b) for b in found["mine"].bindings["negative"]] == ["6.text"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({}, "prompt", "Missing required parameter: 'prompt'"),
        ({"prompt": "x", "n": 11}, "n", "outside 1..10"),
        ({"prompt": "x", "n": "2"}, "n", "expected an integer"),
        ({"prompt": "x", "size": "big"}, "size", "Invalid value for 'size'"),
        ({"prompt": "x", "response_format": "png"}, "response_format", "Supported values are"),
        ({"prompt": "x", "output_format": "gif"}, "output_format", "Supported values are"),
        ({"prompt": "x", "background": "transparent"}, "background", "not supported"),
        ({"prompt": "x", "stream": True}, "stream", "Streaming is not supported"),
        ({"prompt": "x", "colour": "blue"}, "colour", "Unrecognized request argument supplied: colour"),
        ({"prompt": "x", "seed": -1}, "seed", "outside"),
        ({"prompt": "x", "cfg": "nan"}, "cfg", "expected a number"),
    ],
)
def test_requests_are_refused_in_openais_words(body: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(ApiError) as refused:
        requests.generation(body)
    assert (refused.value.status, refused.value.param) == (400, param)
    assert words in refused.value.message
    assert set(refused.value.body()["error"]) == {"message", "type", "param", "code"}


def test_keys_are_hashed_and_compared_whole() -> None:
    ring = auth.KeyRing(auth.digests(["sk-one", auth.hash_key("sk-two")]))
    assert ring.check("Bearer sk-one") == auth.hash_key("sk-one")[7:15]
    assert ring.check("bearer sk-two") == auth.hash_key("sk-two")[7:15]
    for header in (None, "", "Bearer", "Basic sk-one", "Bearer sk-on", "Bearer sk-one2"):
        with pytest.raises(ApiError) as refused:
            ring.check(header)
        assert refused.value.status == 401
    with pytest.raises(ApiError, match="No API key is configured"):
        auth.KeyRing(()).check("Bearer sk-one")


def test_the_rate_limit_refills_per_key() -> None:
    now = [0.0]
    limiter = auth.RateLimiter(2, clock=lambda: now[0])
    limiter.take("a")
    limiter.take("a")
    limiter.take("b")
    with pytest.raises(ApiError) as limited:
        limiter.take("a")
    assert limited.value.status == 429 and limited.value.retry_after == pytest.approx(30.0)
    now[0] = 30.0
    limiter.take("a")


def test_a_ui_workflow_template_is_converted_with_the_servers_object_info(tmp_path: Path) -> None:
    """The frontend's own save format works as a template; its bindings are the API form's."""
    from fake_nodes import default_object_info

    api, ui = load_workflow("default")
    (tmp_path / "from-the-ui.json").write_text(json.dumps(ui))
    info = default_object_info({"checkpoints": [api["4"]["inputs"]["ckpt_name"]]})
    found = templates.load_folder(tmp_path, source="test", object_info=info)
    from_api = templates.from_data("from-the-api", api, source="test")
    template = found["from-the-ui"]
    assert {k: [str(b) for b in v] for k, v in template.bindings.items()} == {
        k: [str(b) for b in v] for k, v in from_api.bindings.items()
    }
    assert templates.load_folder(tmp_path, source="test") == {}  # without /object_info it cannot convert: skipped


def test_the_api_is_mounted_only_when_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp import web

    from comfyui_provenance.hooks import openai_routes

    off = web.RouteTableDef()
    monkeypatch.delenv("PROVENANCE_OPENAI", raising=False)
    assert openai_routes.register(off) is False and len(off) == 0
    monkeypatch.setenv("PROVENANCE_OPENAI", "1")
    on = web.RouteTableDef()
    assert openai_routes.register(on) is True
    assert sorted((r.method, r.path) for r in on) == [  # type: ignore[attr-defined]
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{model}"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/images/edits"),
        ("POST", "/v1/images/generations"),
    ]
    assert openai_routes.register(on) is False  # a second copy of the pack does not mount them twice

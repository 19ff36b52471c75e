"""Batch templates and runs: expansion, the prompt/seed inputs, UI workflows, runs against the fake ComfyUI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_comfyui import FakeComfyUI
from fake_nodes import HASHES, MODELS, Renderer, default_object_info, sd_graph

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.manifest_log import record_digest
from comfyui_provenance.metadata.read import read
from comfyui_provenance.reproduce import jobgraph, manifest, ui_workflow
from comfyui_provenance.reproduce.template import Template, TemplateError, expand, from_data, placeholders, settle

EXAMPLES = Path(__file__).resolve().parent.parent / "metadata" / "examples"


def template(**data: Any) -> Template:
    return from_data(
        {"workflow": "w.json", "prompt": "a {Animal}", "variations": {"Animal": ["cat", "dog"]}, **data}, None
    )


# -- the template ------------------------------------------------------------------------------


def test_placeholders_are_filled_and_double_braces_stay_literal() -> None:
    t = template(prompt="{{sic}} a {Animal} {a|b} in {Place}", variations={"Animal": ["cat"], "Place": ["x"]})
    assert placeholders(t.prompt) == ["Animal", "Place"]
    (job,) = expand(settle(t, 1))
    assert job.prompt == "{sic} a cat {a|b} in x"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"prompt": "a {Dog}"}, "prompt: unknown placeholder {Dog} (variations: Animal)"),
        ({"negative": "{Nope}"}, "negative: unknown placeholder {Nope}"),
        ({"colour": 1}, "unknown key 'colour'; allowed: workflow, prompt"),
        ({"mode": "grid"}, "mode: must be one of combinatorial, random, got 'grid'"),
        ({"seed_mode": "up"}, "seed_mode: must be one of fixed, progressive, random"),
        ({"base_seed": -1}, "base_seed: must be a whole number from 0"),
        ({"num_images": True}, "num_images: must be a whole number from 1"),
        ({"variations": {"Animal": []}}, "variations.Animal: must be a non-empty list"),
        ({"variations": {"A b": ["x"]}}, "variations.A b: a name is letters"),
        ({"variations": {"Animal": "missing.txt"}}, "variations.Animal: no such file"),
        ({"overrides": {"3": 5}}, "overrides.3: must map input names to values, got 5"),
        ({"seed_node": [1]}, "seed_node: a node id or title"),
        ({"prompt": None}, "prompt: missing (required)"),
    ],
)
def test_a_bad_template_is_one_line_naming_the_key(data: dict[str, Any], words: str) -> None:
    with pytest.raises(TemplateError) as caught:
        template(**data)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_combinatorial_makes_every_combination_of_the_used_variations_num_images_times() -> None:
    t = template(
        prompt="{Animal} in {Place}",
        variations={"Animal": ["cat", "dog", "owl"], "Place": ["a", "b"], "Unused": ["z"]},
        num_images=2,
        seed_mode="progressive",
        base_seed=10,
    )
    assert t.total_combinations() == 6 and t.image_count() == 12 and list(t.used()) == ["Animal", "Place"]
    jobs = expand(settle(t, None))
    assert len(jobs) == 12 and [j.index for j in jobs] == list(range(12))
    assert [j.applied for j in jobs[:4]] == [{"Animal": "cat", "Place": "a"}] * 2 + [
        {"Animal": "cat", "Place": "b"}
    ] * 2
    assert [j.seed for j in jobs] == [10, 11] * 6  # every combination gets the same seeds: a grid
    assert len({(j.prompt, j.seed) for j in jobs}) == 12


def test_random_mode_draws_independently_of_the_sampler_seed() -> None:
    variations = {"Animal": [f"a{i}" for i in range(20)], "Place": [f"p{i}" for i in range(20)]}
    prompt = "{Animal} {Place}"

    def draws(**data: Any) -> list[dict[str, str]]:
        t = template(prompt=prompt, variations=variations, mode="random", num_images=12, **data)
        return [j.applied for j in expand(settle(t, None))]

    base = draws(variation_seed=7, base_seed=1, seed_mode="random")
    assert base == draws(variation_seed=7, base_seed=999, seed_mode="random")
    assert base == draws(variation_seed=7, base_seed=5, seed_mode="progressive")
    assert base != draws(variation_seed=8, base_seed=1, seed_mode="random")
    seeds = [j.seed for j in expand(settle(template(mode="random", num_images=5, variation_seed=7, base_seed=1), 0))]
    assert seeds == [1, 1, 1, 1, 1]  # fixed (the default): the one base seed


def test_seed_modes() -> None:
    def seeds(**data: Any) -> list[int]:
        return [j.seed for j in expand(settle(template(variations={"Animal": ["x"]}, num_images=4, **data), 42))]

    assert seeds(base_seed=5) == [5, 5, 5, 5]
    assert seeds(base_seed=5, seed_mode="progressive") == [5, 6, 7, 8]
    assert seeds() == [42] * 4  # fixed without base_seed keeps the workflow's seed
    drawn = seeds(base_seed=5, seed_mode="random")
    assert drawn == seeds(base_seed=5, seed_mode="random") and len(set(drawn)) == 4
    assert drawn != seeds(base_seed=6, seed_mode="random")


def test_settle_draws_what_is_open_once_and_the_resolved_template_repeats_the_jobs() -> None:
    t = settle(template(mode="random", seed_mode="random", num_images=3), None)
    assert t.base_seed is not None and t.variation_seed is not None
    again = from_data(json.loads(json.dumps(t.resolved())), None)
    assert expand(again) == expand(t)


def test_variations_come_from_a_file_of_one_value_per_line(tmp_path: Path) -> None:
    (tmp_path / "animals.txt").write_text("# animals\ncat\n\n  dog  \n", "utf-8")
    t = from_data({"workflow": "w.json", "prompt": "{Animal}", "variations": {"Animal": "animals.txt"}}, tmp_path)
    assert t.variations == {"Animal": ["cat", "dog"]} and t.resolved()["variations"] == {"Animal": ["cat", "dog"]}


# -- the graph: which inputs a job sets ----------------------------------------------------------


def test_the_parser_finds_the_prompt_negative_and_seed_inputs() -> None:
    targets = jobgraph.locate(sd_graph(5), template(negative="bad"))
    assert targets.prompt == (jobgraph.Slot("6", "text"),)
    assert targets.negative == (jobgraph.Slot("7", "text"),)
    assert targets.seed == (jobgraph.Slot("3", "seed"),)
    assert jobgraph.locate(sd_graph(5), template()).negative == ()  # no negative in the template: left as is


def test_a_linked_value_is_followed_to_the_primitive_that_holds_it() -> None:
    graph = sd_graph(5)
    graph["20"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "x"}}
    graph["21"] = {"class_type": "PrimitiveInt", "inputs": {"value": 3}}
    graph["6"]["inputs"]["text"] = ["20", 0]
    graph["3"]["inputs"]["seed"] = ["21", 0]
    targets = jobgraph.locate(graph, template())
    assert targets.prompt == (jobgraph.Slot("20", "value"),) and targets.seed == (jobgraph.Slot("21", "value"),)


def test_nodes_named_by_id_or_title_and_overrides_by_title() -> None:
    graph = sd_graph(5)
    graph["7"]["_meta"] = {"title": "Negative"}
    graph = jobgraph.apply_overrides(graph, {"Negative": {"text": "ugly"}, "5": {"width": 32}})
    assert graph["7"]["inputs"]["text"] == "ugly" and graph["5"]["inputs"]["width"] == 32
    t = template(negative="n", prompt_node="7", negative_node={"node": "Negative", "input": "text"})
    targets = jobgraph.locate(graph, t)
    assert targets.prompt == (jobgraph.Slot("7", "text"),) and targets.negative == (jobgraph.Slot("7", "text"),)
    graph["6"]["_meta"] = {"title": "Negative"}
    with pytest.raises(TemplateError, match="the title 'Negative' names nodes 6, 7; use the node id"):
        jobgraph.apply_overrides(graph, {"Negative": {"text": "x"}})
    with pytest.raises(TemplateError, match=r"overrides\.Nope: no node with the id or title 'Nope'"):
        jobgraph.apply_overrides(graph, {"Nope": {"text": "x"}})
    with pytest.raises(TemplateError, match=r"overrides\.5: node 5 has no input 'wdth' \(it has: width, height"):
        jobgraph.apply_overrides(graph, {"5": {"wdth": 8}})


def test_options_become_every_save_nodes_per_run_settings() -> None:
    t = template(options={"targets": ["a1111", "record"], "lora_tags": False})
    assert t.options == {"targets": ["a1111", "record"], "lora_tags": False}
    assert from_data(json.loads(json.dumps(t.resolved())), None).options == t.options
    graph = jobgraph.apply_options(sd_graph(5), t.options)
    saves = [n for n in graph.values() if n["class_type"].startswith("ProvenanceSave")]
    assert saves and all(json.loads(n["inputs"]["options"]) == t.options for n in saves)
    with pytest.raises(TemplateError, match=r"options.*allowed: "):
        template(options={"colour": "red"})


def test_a_ui_workflow_converts_to_the_api_graph_the_frontend_queues() -> None:
    ui = json.loads((EXAMPLES / "default.ui.json").read_text("utf-8"))
    api = json.loads((EXAMPLES / "default.api.json").read_text("utf-8"))
    converted = ui_workflow.to_api(ui, default_object_info())
    assert {k: (v["class_type"], v["inputs"]) for k, v in converted.items()} == {
        k: (v["class_type"], v["inputs"]) for k, v in api.items()
    }
    patched = ui_workflow.with_values(ui, default_object_info(), {("3", "seed"): 7, ("6", "text"): "new"})
    back = ui_workflow.to_api(patched, default_object_info())
    assert back["3"]["inputs"]["seed"] == 7 and back["6"]["inputs"]["text"] == "new"
    ui["definitions"] = {"subgraphs": [{"id": "CLIPTextEncode"}]}
    with pytest.raises(TemplateError, match=r"is a subgraph.*Export \(API\)"):
        ui_workflow.to_api(ui, default_object_info())


def test_a_bypassed_node_hands_its_input_of_the_output_type_through() -> None:
    ui = json.loads((EXAMPLES / "lora.ui.json").read_text("utf-8"))
    api = json.loads((EXAMPLES / "lora.api.json").read_text("utf-8"))
    info = default_object_info()
    info["LoraLoader"] = json.loads((Path(__file__).parent / "corpus/object_info/core_sample.json").read_text())[
        "LoraLoader"
    ]
    assert any(n.get("mode") == 4 for n in ui["nodes"])
    converted = ui_workflow.to_api(ui, info)
    assert {k: v["inputs"] for k, v in converted.items()} == {k: v["inputs"] for k, v in api.items()}


# -- runs against the fake ComfyUI ---------------------------------------------------------------


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeComfyUI]:
    server = FakeComfyUI(models=MODELS, hashes=HASHES)
    server.execute = Renderer(server, tmp_path / "server-output")
    with server:
        yield server


def write_template(folder: Path, workflow: dict[str, Any] | None = None, **data: Any) -> Path:
    (folder / "workflow.json").write_text(json.dumps(workflow or sd_graph(5)), "utf-8")
    body = {
        "workflow": "workflow.json",
        "prompt": "a {Animal} on a cliff",
        "negative": "blurry, {Animal}s",
        "variations": {"Animal": ["cat", "dog"], "Unused": ["x"]},
        "seed_mode": "progressive",
        "base_seed": 100,
        "num_images": 2,
        "overrides": {"5": {"width": 64}},
        **data,
    }
    path = folder / "template.json"
    path.write_text(json.dumps(body), "utf-8")
    return path


def batch(template_file: Path, fake: FakeComfyUI, out: Path, *more: str) -> int:
    return main(["batch", str(template_file), "--server", fake.url, "--out", str(out), *more])


def test_a_batch_writes_every_image_and_a_manifest_whose_entries_match_the_files(
    tmp_path: Path, fake: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert batch(write_template(tmp_path), fake, out) == 0
    assert "[4/4] saved" in capsys.readouterr().err
    data = manifest.read(out / manifest.FILE_NAME)
    snapshot = data["snapshot"]
    assert snapshot["variations"] == {"Animal": ["cat", "dog"]}
    assert snapshot["generation_params"] == {
        "mode": "combinatorial",
        "seed_mode": "progressive",
        "base_seed": 100,
        "num_images": 2,
        "total_combinations": 2,
    }
    assert snapshot["api_params"]["5"]["inputs"]["width"] == 64 and snapshot["resolved_template"]["num_images"] == 2
    assert snapshot["runtime_info"]["comfyui_version"] == "0.33.0"
    assert {m["name"]: m["hashes"]["sha256"] for m in snapshot["runtime_info"]["models"]} == {
        name: HASHES[(folder, name)]["sha256"] for (folder, name) in HASHES
    }
    images = data["images"]
    assert [(i["applied_variations"]["Animal"], i["seed"]) for i in images] == [
        ("cat", 100),
        ("cat", 101),
        ("dog", 100),
        ("dog", 101),
    ]
    for image, posted in zip(images, fake.posted, strict=True):
        record = read(out / image["filename"])
        assert (image["seed"], image["prompt"], image["negative"]) == (
            record.generation.seed,
            record.generation.positive,
            record.generation.negative,
        )
        assert image["prompt"] == f"a {image['applied_variations']['Animal']} on a cliff"
        assert image["record_digest"] == record_digest(record)
        assert image["api_prompt"] == posted["prompt"] == record.prompt
    assert len({p["prompt_id"] for p in fake.posted}) == 4


def test_a_server_that_goes_away_leaves_the_images_so_far_and_resume_finishes_without_requeuing(
    tmp_path: Path, fake: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    template_file = write_template(tmp_path, num_images=3)
    fake.crash_after = 2
    assert batch(template_file, fake, out) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("provenance: stopped at job 3 of 6 (") and err[-1].endswith(
        f"--resume --out {out} to finish"
    )
    done = manifest.read(out / manifest.FILE_NAME)["images"]
    assert len(done) == 2 and all((out / i["filename"]).exists() for i in done)
    fake.restart()
    fake.posted.clear()
    assert batch(template_file, fake, out, "--resume") == 0
    assert "2 of 6 jobs already done; 4 to go" in capsys.readouterr().err
    images = manifest.read(out / manifest.FILE_NAME)["images"]
    assert images[:2] == done and len(images) == 6
    assert [p["prompt"] for p in fake.posted] == [i["api_prompt"] for i in images[2:]]
    assert len({(i["applied_variations"]["Animal"], i["seed"]) for i in images}) == 6
    assert batch(template_file, fake, out, "--resume") == 0  # nothing left: nothing queued
    assert len(fake.posted) == 4


def test_resume_refuses_a_changed_template_and_a_new_batch_refuses_an_occupied_out(
    tmp_path: Path, fake: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert batch(write_template(tmp_path, num_images=1), fake, out) == 0
    capsys.readouterr()
    assert batch(write_template(tmp_path, num_images=1), fake, out) == 2
    assert "holds a batch already: finish it with --resume" in capsys.readouterr().err
    assert batch(write_template(tmp_path, num_images=1, prompt="a {Animal}"), fake, out, "--resume") == 2
    err = capsys.readouterr().err
    assert err == "provenance: --resume: the template's prompt changed since the batch started; use another --out\n"
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / manifest.FILE_NAME).write_text("[1, 2]")
    assert batch(write_template(tmp_path), fake, tmp_path / "foreign") == 2
    assert "is there and is not a batch manifest" in capsys.readouterr().err
    assert batch(write_template(tmp_path), fake, tmp_path / "foreign", "--resume") == 2
    assert "--resume: " in capsys.readouterr().err


def test_dry_run_prints_the_jobs_and_queues_nothing(
    tmp_path: Path, fake: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    assert batch(write_template(tmp_path), fake, tmp_path / "out", "--dry-run") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["index"], x["seed"], x["prompt"]) for x in lines] == [
        (0, 100, "a cat on a cliff"),
        (1, 101, "a cat on a cliff"),
        (2, 100, "a dog on a cliff"),
        (3, 101, "a dog on a cliff"),
    ]
    assert not fake.posted and not (tmp_path / "out").exists()


def test_a_template_error_names_the_file_and_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_template(tmp_path, prompt="a {Cat}")
    assert main(["batch", str(path), "--server", "http://127.0.0.1:9", "--dry-run"]) == 2
    assert capsys.readouterr().err == f"{path}: prompt: unknown placeholder {{Cat}} (variations: Animal, Unused)\n"


def test_a_job_that_fails_on_the_server_stops_the_batch_in_one_line(
    tmp_path: Path, fake: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    from fake_comfyui import NodeError

    def fail(prompt: dict[str, Any], extra: dict[str, Any]) -> Any:
        raise NodeError("3", "out of memory")

    fake.execute = fail
    assert batch(write_template(tmp_path), fake, tmp_path / "out") == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert "node 3 (KSampler): out of memory" in err and "--resume" in err
    assert manifest.read(tmp_path / "out" / manifest.FILE_NAME)["images"] == []


def test_a_ui_workflow_runs_with_the_widgets_of_each_job_in_its_extra_data(tmp_path: Path, fake: FakeComfyUI) -> None:
    ui = json.loads((EXAMPLES / "default.ui.json").read_text("utf-8"))
    for node in ui["nodes"]:  # the example's checkpoint is not on the fake server
        if node["type"] == "CheckpointLoaderSimple":
            node["widgets_values"] = [MODELS["checkpoints"][0]]
    out = tmp_path / "out"
    assert (
        batch(write_template(tmp_path, ui, num_images=1, overrides={"5": {"width": 64, "height": 64}}), fake, out) == 0
    )
    images = manifest.read(out / manifest.FILE_NAME)["images"]
    assert [i["prompt"] for i in images] == ["a cat on a cliff", "a dog on a cliff"]
    sent = ui_workflow.to_api(fake.posted[1]["extra_data"]["extra_pnginfo"]["workflow"], default_object_info(MODELS))
    assert sent["6"]["inputs"]["text"] == "a dog on a cliff" and sent["3"]["inputs"]["seed"] == 100

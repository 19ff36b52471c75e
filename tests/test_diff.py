"""`provenance diff`: real files saved from corpus workflows, hand-written V2 manifests, and their entries."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import context_for, pixels

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.record import Model
from comfyui_provenance.metadata.save import SaveOptions, save_images
from comfyui_provenance.reproduce.diff import diff_graphs
from comfyui_provenance.reproduce.sides import load

Edit = Callable[[dict[str, Any]], None]
SHA_A, SHA_B = "a" * 64, "b" * 64


def saved(
    folder: Path,
    name: str = "lora",
    edit: Edit | None = None,
    fmt: str = "png",
    sha256: str | None = None,
    version: str = "0.33.0",
) -> Path:
    """One file saved from a corpus workflow, its API prompt edited first; models hashed to `sha256`."""
    context = context_for(name)
    prompt = copy.deepcopy(dict(context.prompt or {}))
    if edit is not None:
        edit(prompt)
    context = replace(context, prompt=prompt, comfyui_version=version)

    def hasher(models: list[Model]) -> None:
        for model in models:
            model.hashes = {"sha256": sha256 or SHA_A, "autov2": (sha256 or SHA_A)[:10]}

    files = save_images([pixels()], context, folder, "img", SaveOptions(format=fmt), version="test", hasher=hasher)
    return files[0].path


def set_input(node: str, name: str, value: Any) -> Edit:
    def edit(prompt: dict[str, Any]) -> None:
        prompt[node]["inputs"][name] = value

    return edit


def diff_json(capsys: pytest.CaptureFixture[str], a: object, b: object, *extra: str) -> tuple[int, dict[str, Any]]:
    status = main(["diff", "--json", str(a), str(b), *extra])
    return status, json.loads(capsys.readouterr().out)


def diff_text(capsys: pytest.CaptureFixture[str], a: object, b: object, *extra: str) -> tuple[int, str]:
    status = main(["diff", str(a), str(b), *extra])
    return status, capsys.readouterr().out


def test_the_same_file_is_identical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = saved(tmp_path)
    status, out = diff_text(capsys, path, path)
    assert status == 0 and out.splitlines() == [f"a: {path}", f"b: {path}", "identical"]
    status, data = diff_json(capsys, path, path)
    assert status == 0
    assert data == {
        "a": str(path),
        "b": str(path),
        "identical": True,
        "generation": [],
        "passes": [],
        "models": [],
        "environment": [],
        "graph": {"added": [], "removed": [], "changed": []},
    }


def test_another_seed_differs_in_the_seed_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = saved(tmp_path), saved(tmp_path, edit=set_input("3", "seed", 2))
    status, data = diff_json(capsys, a, b)
    assert status == 1 and data["identical"] is False
    assert data["generation"] == [{"field": "seed", "a": 261660645921551, "b": 2}]
    assert data["graph"] == {
        "added": [],
        "removed": [],
        "changed": [
            {"node": "3", "class_type": "KSampler", "input": "seed", "change": "changed", "a": 261660645921551, "b": 2}
        ],
    }
    assert [(p["pass"], p["field"]) for p in data["passes"]] == [(0, "seed")]
    assert data["models"] == [] and data["environment"] == []
    status, out = diff_text(capsys, a, b)
    assert status == 1
    assert "generation\n  seed: 261660645921551 -> 2\n" in out
    assert "graph\n  node 3 (KSampler).seed: 261660645921551 -> 2" in out


def test_a_lora_strength(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = saved(tmp_path), saved(tmp_path, edit=set_input("11", "strength_model", 0.5))
    status, data = diff_json(capsys, a, b)
    assert status == 1 and data["generation"] == []
    assert data["models"] == [
        {
            "role": "lora",
            "name": "blindbox_v1_mix.safetensors",
            "change": "changed",
            "field": "strength_model",
            "a": 0.75,
            "b": 0.5,
        }
    ]
    assert [p["field"] for p in data["passes"]] == ["loras[0].strength_model"]
    out = diff_text(capsys, a, b)[1]
    assert "  lora blindbox_v1_mix.safetensors strength_model: 0.75 -> 0.5" in out
    assert "  node 11 (LoraLoader).strength_model: 0.75 -> 0.5" in out


def test_a_swapped_model_file_shows_in_its_hashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = saved(tmp_path, name="default"), saved(tmp_path, name="default", sha256=SHA_B)
    status, data = diff_json(capsys, a, b)
    assert status == 1
    assert [(m["role"], m["field"], m["a"], m["b"]) for m in data["models"]] == [
        ("checkpoint", "hashes.sha256", SHA_A, SHA_B),
        ("checkpoint", "hashes.autov2", SHA_A[:10], SHA_B[:10]),
    ]
    assert data["generation"] == data["passes"] == data["environment"] == []
    assert data["graph"]["changed"] == []


def test_a_renamed_model_is_removed_and_added(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = saved(tmp_path, name="default")
    b = saved(tmp_path, name="default", edit=set_input("4", "ckpt_name", "other.safetensors"))
    data = diff_json(capsys, a, b)[1]
    assert [(m["change"], m["name"]) for m in data["models"]] == [
        ("removed", "v1-5-pruned-emaonly-fp16.safetensors"),
        ("added", "other.safetensors"),
    ]
    assert data["models"][1]["b"]["hashes"]["sha256"] == SHA_A


def test_png_and_webp_of_one_record_differ_in_format_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = saved(tmp_path), saved(tmp_path, fmt="webp")
    status, data = diff_json(capsys, a, b)
    assert status == 1
    assert data["environment"] == [{"field": "format", "a": "png", "b": "webp"}]
    assert data["generation"] == data["passes"] == data["models"] == []
    assert data["graph"] == {"added": [], "removed": [], "changed": []}
    assert diff_text(capsys, a, b)[1].endswith('environment\n  format: "png" -> "webp"\n')


def test_versions_are_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = diff_json(capsys, saved(tmp_path), saved(tmp_path, version="0.3.60"))[1]
    assert data["environment"] == [{"field": "comfyui_version", "a": "0.33.0", "b": "0.3.60"}]


def test_graph_nodes_added_removed_relinked_and_reclassed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def rewire(prompt: dict[str, Any]) -> None:
        prompt["3"]["inputs"]["model"] = ["4", 0]  # the LoRA loader bypassed for the sampler's model
        prompt["3"]["class_type"] = "KSamplerAdvanced"
        prompt["20"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
        del prompt["9"]["inputs"]["filename_prefix"]

    data = diff_json(capsys, saved(tmp_path), saved(tmp_path, edit=rewire))[1]
    graph = data["graph"]
    assert graph["added"] == [{"node": "20", "class_type": "PreviewImage"}]
    assert [(c["node"], c["input"], c["change"], c["a"], c["b"]) for c in graph["changed"]] == [
        ("3", None, "class_type", "KSampler", "KSamplerAdvanced"),
        ("3", "model", "changed", ["11", 0], ["4", 0]),
        ("9", "filename_prefix", "removed", "2loras_test_", None),
    ]
    assert diff_graphs({"1": {"class_type": "A", "inputs": {}}}, {}).removed == [{"node": "1", "class_type": "A"}]


def test_link_and_long_prompt_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def edit(prompt: dict[str, Any]) -> None:
        prompt["3"]["inputs"]["model"] = ["4", 0]
        prompt["6"]["inputs"]["text"] = prompt["6"]["inputs"]["text"].replace("many flowers", "few flowers")

    a, b = saved(tmp_path), saved(tmp_path, edit=edit)
    out = diff_text(capsys, a, b)[1]
    assert "  node 3 (KSampler).model: node 11 output 0 -> node 4 output 0" in out
    line = next(x for x in out.splitlines() if x.startswith("  positive: "))
    assert '"…wers in background, many flowers' in line and "few flowers" in line
    assert line.endswith("(first difference at character 158; 226 -> 225 characters)")
    positive = diff_json(capsys, a, b)[1]["generation"][0]
    assert positive["field"] == "positive" and len(positive["a"]) == 226 and "few flowers" in positive["b"]


def manifest(folder: Path, images: list[dict[str, Any]], name: str = "manifest.json", **snapshot: Any) -> Path:
    """A hand-written V2 run manifest, as `provenance batch` writes it."""
    prompt = copy.deepcopy(dict(context_for("lora").prompt or {}))
    base = {
        "version": "2.0",
        "timestamp": "2026-01-01T00:00:00Z",
        "runtime_info": {
            "comfyui_version": "0.33.0",
            "pack_version": "test",
            "models": [
                {"role": "checkpoint", "name": "dreamshaper_8.safetensors", "hashes": {"sha256": SHA_A}},
                {"role": "lora", "name": "blindbox_v1_mix.safetensors", "hashes": {"sha256": SHA_A}},
            ],
        },
        "resolved_template": {"prompt": "{Color} flowers"},
        "generation_params": {"mode": "combinatorial", "seed_mode": "fixed", "base_seed": 1, "num_images": 1},
        "api_params": prompt,
        "variations": {"Color": ["red", "blue"]},
    }
    path = folder / name
    path.write_text(json.dumps({"snapshot": {**base, **snapshot}, "images": images}), "utf-8")
    return path


def entry(seed: int = 261660645921551, filename: str = "gone.png", **fields: Any) -> dict[str, Any]:
    prompt = copy.deepcopy(dict(context_for("lora").prompt or {}))
    prompt["3"]["inputs"]["seed"] = seed
    base = {
        "filename": filename,
        "subfolder": "",
        "seed": seed,
        "prompt": prompt["6"]["inputs"]["text"],
        "negative": prompt["7"]["inputs"]["text"],
        "applied_variations": {"Color": "red"},
        "record_digest": "d1",
        "api_prompt": prompt,
    }
    return {**base, **fields}


def test_a_file_against_its_manifest_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = saved(tmp_path / "out", sha256=SHA_A)
    listed = manifest(tmp_path, [entry(), entry(seed=7, prompt="red flowers")])
    status, data = diff_json(capsys, path, f"{listed}#0")
    assert status == 0, data
    status, data = diff_json(capsys, path, f"{listed}#1")
    assert status == 1
    assert [(g["field"], g["b"]) for g in data["generation"]] == [("positive", "red flowers"), ("seed", 7)]
    assert data["environment"] == [] and data["models"] == []


def test_an_entry_whose_file_lies_beside_the_manifest_is_read_from_it(tmp_path: Path) -> None:
    path = saved(tmp_path / "out", version="0.40.0")
    listed = manifest(tmp_path, [entry(filename=path.name, subfolder="out", api_prompt=None)])
    side = load(f"{listed}#0")
    assert side.record is not None and side.record.provenance.comfyui_version == "0.40.0"
    outside = manifest(tmp_path / "out", [entry(filename=f"../out/{path.name}")], name="m.json")
    assert load(f"{outside}#0").record.provenance.comfyui_version == "0.33.0"  # type: ignore[union-attr]


def test_an_entry_without_its_graph_takes_the_snapshots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = saved(tmp_path / "out")
    listed = manifest(tmp_path, [entry(seed=9, api_prompt=None)])
    status, data = diff_json(capsys, path, f"{listed}#0")
    assert status == 1 and data["generation"] == [{"field": "seed", "a": 261660645921551, "b": 9}]
    assert data["graph"]["changed"] == []  # the snapshot's graph is the run's, before the seed was drawn


def test_two_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = manifest(tmp_path, [entry(1, "x1.png"), entry(2, "x2.png")], name="a.json")
    models = [{"role": "checkpoint", "name": "dreamshaper_8.safetensors", "hashes": {"sha256": SHA_B}}]
    b = manifest(
        tmp_path,
        [entry(1, "x1.png"), entry(3, "x2.png", applied_variations={"Color": "blue"}), entry(4, "x3.png")],
        name="b.json",
        timestamp="2026-02-02T00:00:00Z",
        runtime_info={"comfyui_version": "0.34.0", "pack_version": "test", "models": models},
        variations={"Color": ["red", "green"]},
    )
    status, data = diff_json(capsys, a, b)
    assert status == 1 and set(data) == {"a", "b", "identical", "snapshot", "images"}
    snapshot = data["snapshot"]
    assert snapshot["runtime_info"] == [{"field": "comfyui_version", "a": "0.33.0", "b": "0.34.0"}]
    assert [(m["name"], m["change"], m["field"]) for m in snapshot["models"]] == [
        ("dreamshaper_8.safetensors", "changed", "hashes.sha256"),
        ("blindbox_v1_mix.safetensors", "removed", None),
    ]
    assert snapshot["variations"] == [{"field": "Color", "a": ["red", "blue"], "b": ["red", "green"]}]
    assert snapshot["generation_params"] == snapshot["other"] == []
    assert [(i["a"], i["b"], i["change"]) for i in data["images"]] == [
        ({"index": 1, "filename": "x2.png"}, {"index": 1, "filename": "x2.png"}, "changed"),
        (None, {"index": 2, "filename": "x3.png"}, "added"),
    ]
    second = data["images"][0]
    assert [f["field"] for f in second["fields"]] == ["seed", "applied_variations"]
    assert [(c["node"], c["input"]) for c in second["graph"]["changed"]] == [("3", "seed")]
    out = diff_text(capsys, a, b)[1]
    assert '  variations.Color: ["red", "blue"] -> ["red", "green"]' in out
    assert "  image 1 (x2.png)\n    seed: 2 -> 3\n" in out and "    node 3 (KSampler).seed: 2 -> 3" in out
    assert "  image 2 (x3.png): only in b" in out


def test_manifest_images_matched_by_filename(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = manifest(tmp_path, [entry(1, "x1.png"), entry(2, "x2.png")], name="a.json")
    b = manifest(tmp_path, [entry(2, "x2.png"), entry(1, "x1.png")], name="b.json")
    assert diff_json(capsys, a, b)[0] == 1
    status, data = diff_json(capsys, a, b, "--match", "filename")
    assert status == 0 and data["identical"] is True


def test_unreadable_sides_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = saved(tmp_path)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    listed = manifest(tmp_path, [entry()])
    cases = {
        str(tmp_path / "missing.png"): "cannot open: no such file or directory",
        str(garbage): "not valid JSON",
        f"{listed}#5": "no image 5 in the manifest (it lists 1, numbered from 0)",
        str(listed): "a whole manifest compares only with another",
    }
    for spec, words in cases.items():
        assert main(["diff", str(good), spec]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err


def test_a_file_name_with_a_hash_sign_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = saved(tmp_path)
    odd = path.with_name("odd#0")
    odd.write_bytes(path.read_bytes())
    assert main(["diff", str(path), str(odd)]) == 0

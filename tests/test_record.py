"""The canonical record: dict and JSON round trips, unknown keys kept, and the published JSON schema."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import context_for, corpus_names, load_workflow, pixels
from jsonschema import Draft202012Validator

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.formats import xmp as xmp_module
from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.parser.parse import parse
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import (
    SCHEMA_ID,
    Generation,
    Generator,
    Image,
    Model,
    Pass,
    Placement,
    Provenance,
    Record,
)
from comfyui_provenance.metadata.save import SaveOptions, save_images

FORMATS = ("png", "jpeg", "webp")
SAVE_CLASSES = ("SaveImage", "SaveAnimatedWEBP")


@cache
def validator() -> Draft202012Validator:
    text = resources.files("comfyui_provenance.metadata").joinpath("schema/record-1.schema.json").read_text("utf-8")
    schema = json.loads(text)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(data: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator().iter_errors(data)]


def any_context(name: str) -> SaveContext:
    """A save context for any corpus workflow; ones without a SaveImage node read every output."""
    api, ui = load_workflow(name)
    save_id = next((k for k, v in api.items() if v.get("class_type") in SAVE_CLASSES), None)
    return SaveContext(
        prompt=api,
        extra_pnginfo={"workflow": ui},
        save_node_id=save_id,
        prompt_id="schema-test",
        comfyui_version="0.3.60",
    )


def full_record() -> Record:
    """A record with every part populated, the way the parser and the save path fill them."""
    api, ui = load_workflow("lora")
    rec = parse(api, "9", ui)
    rec.passes.append(
        Pass(
            node_id="11",
            class_type="KSampler",
            seed=2**64 - 1,
            steps=14,
            cfg=6.5,
            sampler="dpmpp_2m",
            scheduler="karras",
            denoise=0.5,
            start_step=0,
            end_step=14,
            positive="p",
            negative=None,
            model="m.safetensors",
            width=768,
            height=768,
            other={"upscale": {"class_type": "LatentUpscale", "method": "nearest-exact", "width": 768, "height": 768}},
        )
    )
    rec.models.append(Model(role="vae", name="vae.safetensors", node_id="20", hashes={"sha256": "ab" * 32}))
    rec.image = Image(format="png", width=96, height=64, batch_index=1, batch_size=2, filename="x_00001_.png")
    rec.provenance.created = "2025-01-02T03:04:05Z"
    rec.provenance.embedding = [
        Placement(target="record", location="png:iTXt:comfyui_provenance"),
        Placement(target="comfyui", location="sidecar:json", status="moved", reason="too big"),
    ]
    rec.provenance.warnings = ["a warning"]
    rec.extra = {"note": "kept"}
    return rec


# -- dict / JSON round trips -------------------------------------------------------------------------


def test_full_record_round_trips_through_dict_and_json() -> None:
    rec = full_record()
    data = rec.to_dict()
    again = Record.from_dict(copy.deepcopy(data))
    assert again.to_dict() == data
    assert Record.from_json(rec.to_json()).to_dict() == data
    assert Record.from_json(rec.to_json(indent=2).encode("utf-8")).to_dict() == data
    # Nested parts come back as their types, not as plain dicts.
    assert isinstance(again.generation, Generation)
    assert all(isinstance(p, Pass) for p in again.passes) and len(again.passes) == len(rec.passes)
    assert all(isinstance(m, Model) for m in again.models)
    assert isinstance(again.image, Image)
    assert isinstance(again.provenance, Provenance)
    assert isinstance(again.provenance.generator, Generator)
    assert all(isinstance(p, Placement) for p in again.provenance.embedding)
    assert again.passes[-1].seed == 2**64 - 1
    assert again.loras() and again.loras()[0].name == "blindbox_v1_mix.safetensors"


@pytest.mark.parametrize("name", corpus_names())
def test_parsed_corpus_records_round_trip(name: str) -> None:
    api, ui = load_workflow(name)
    rec = parse(api, None, ui)
    data = rec.to_dict()
    assert Record.from_dict(data).to_dict() == data
    assert json.loads(rec.to_json()) == data
    assert Record.from_json(rec.to_json()).to_dict() == data


def test_to_json_is_ascii_and_compact() -> None:
    rec = Record(generation=Generation(positive='Über 🌅 \u202eright-to-left\u202c \x00 "q"'))
    text = rec.to_json()
    assert text.isascii()
    assert text == json.dumps(rec.to_dict(), separators=(",", ":"))
    assert Record.from_json(text).generation.positive == rec.generation.positive


def test_from_json_refuses_non_objects() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        Record.from_json("[1, 2]")


def test_unknown_keys_survive_at_every_level() -> None:
    data = full_record().to_dict()
    data["future_top"] = {"nested": [1, {"deep": True}]}
    data["generation"]["future_gen"] = "x"
    data["passes"][0]["future_pass"] = [1, 2]
    data["models"][0]["future_model"] = {"a": None}
    data["image"]["color_space"] = "sRGB"
    data["provenance"]["future_prov"] = 3.5
    data["provenance"]["generator"]["build"] = "abc"
    data["provenance"]["embedding"][0]["future_placement"] = "kept"
    rec = Record.from_dict(copy.deepcopy(data))
    assert rec.to_dict() == data
    assert rec.other == {"future_top": {"nested": [1, {"deep": True}]}}
    assert rec.generation.other == {"future_gen": "x"}
    assert rec.provenance.generator.other == {"build": "abc"}
    assert Record.from_json(rec.to_json()).to_dict() == data
    assert not schema_errors(data), "unknown keys must be allowed by the schema"


def test_unknown_keys_in_a_sidecar_survive_read(tmp_path: Path) -> None:
    """A newer writer's keys are read by this version and handed on untouched."""
    saved = save_images(
        [pixels()], context_for("default"), tmp_path, "u", SaveOptions(targets=frozenset({"sidecar_json"}))
    )[0]
    sidecar = saved.path.with_name(saved.path.name + ".json")
    data = json.loads(sidecar.read_text("utf-8"))
    data["future_top"] = {"x": 1}
    data["generation"]["future_gen"] = [None]
    data["provenance"]["embedding"][0]["future_placement"] = True
    sidecar.write_text(json.dumps(data), "utf-8")
    assert read(saved.path).to_dict() == data


def test_missing_parts_come_back_as_nulls() -> None:
    """A field that is unknown is present as null rather than missing (the contract)."""
    data = Record.from_dict({}).to_dict()
    assert data["schema"] == SCHEMA_ID
    for key in ("positive", "negative", "seed", "steps", "cfg", "sampler", "scheduler", "denoise", "width", "height"):
        assert key in data["generation"] and data["generation"][key] is None
    assert data["prompt"] is None and data["workflow"] is None
    assert data["passes"] == [] and data["models"] == []
    assert not schema_errors(data)


# -- the schema checks what the save path writes ---------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(validator().schema)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_saved_record_validates(fmt: str, tmp_path: Path) -> None:
    """Every corpus workflow, all targets: the record returned, the JSON sidecar and read() all validate."""
    failures = {}
    checked = 0
    for name in corpus_names():
        out = tmp_path / name
        saved = save_images(
            [pixels(32, 24)],
            any_context(name),
            out,
            "s",
            SaveOptions(format=fmt, targets=frozenset(TARGETS)),
            version="1.2.3",
        )[0]
        assert saved.record is not None
        sidecar = json.loads(saved.path.with_name(saved.path.name + ".json").read_text("utf-8"))
        for label, data in (
            ("saved", saved.record.to_dict()),
            ("sidecar", sidecar),
            ("read", read(saved.path).to_dict()),
        ):
            checked += 1
            if errors := schema_errors(data):
                failures[f"{name} ({label})"] = errors[:3]
    assert not failures, json.dumps(failures, indent=1)
    assert checked == 3 * len(corpus_names())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("targets", [{"a1111"}, {"comfyui"}], ids=["a1111", "comfyui"])
def test_imported_records_validate(fmt: str, targets: set[str], tmp_path: Path) -> None:
    """Records read back from A1111-only or ComfyUI-only files (capture_mode imported) validate too."""
    saved = save_images(
        [pixels()], context_for("lora"), tmp_path, "i", SaveOptions(format=fmt, targets=frozenset(targets))
    )[0]
    rec = read(saved.path)
    assert rec.provenance.capture_mode == "imported"
    assert not schema_errors(rec.to_dict())


def _saved_record_dict(tmp_path: Path) -> dict[str, Any]:
    saved = save_images([pixels()], context_for("lora"), tmp_path, "v", SaveOptions(), version="1.0")[0]
    assert saved.record is not None
    data = saved.record.to_dict()
    assert not schema_errors(data), "the control record must validate"
    assert data["passes"] and data["models"] and data["provenance"]["embedding"]
    return data


def _drop(data: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    "path",
    [
        ("generation", "seed"),
        ("generation", "positive"),
        ("generation", "width"),
        ("schema",),
        ("prompt",),
        ("passes", 0, "node_id"),
        ("passes", 0, "denoise"),
        ("models", 0, "name"),
        ("models", 0, "hashes"),
        ("provenance", "created"),
        ("provenance", "digital_source_type"),
        ("provenance", "generator", "version"),
        ("provenance", "embedding", 0, "status"),
    ],
    ids=lambda p: "/".join(map(str, p)),
)
def test_schema_rejects_a_missing_contract_path(path: tuple[Any, ...], tmp_path: Path) -> None:
    data = _saved_record_dict(tmp_path)
    errors = schema_errors(_drop(data, path))
    assert errors, f"the schema accepts a record without {'/'.join(map(str, path))}"
    assert any(repr(path[-1]) in e for e in errors), errors


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("generation", "seed"), -1),
        (("generation", "seed"), 2**64),
        (("generation", "seed"), "123"),
        (("generation", "steps"), 1.5),
        (("generation", "cfg"), "7"),
        (("schema",), "comfyui-provenance/0"),
        (("passes",), {}),
        (("models", 0, "hashes"), {"sha256": "NOT-HEX"}),
        (("provenance", "capture_mode"), "guessed"),
        (("provenance", "created"), "yesterday"),
        (("provenance", "embedding", 0, "status"), "lost"),
        (("provenance", "warnings"), "one string"),
    ],
    ids=lambda v: "/".join(map(str, v)) if isinstance(v, tuple) else repr(v)[:20],
)
def test_schema_rejects_wrong_types(path: tuple[Any, ...], value: Any, tmp_path: Path) -> None:
    data = _saved_record_dict(tmp_path)
    assert schema_errors(_set(data, path, value)), f"the schema accepts {'/'.join(map(str, path))} = {value!r}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_fallback_records_validate(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a writer fails, the record that says so (and its JSON sidecar) still meets the schema."""

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("xmp writer down")

    monkeypatch.setattr(xmp_module, "build", explode)
    saved = save_images([pixels()], context_for("lora"), tmp_path, "f", SaveOptions(format=fmt))[0]
    assert saved.record is not None and saved.record.provenance.warnings
    assert not schema_errors(saved.record.to_dict())
    assert not schema_errors(json.loads(saved.sidecars[0].read_text("utf-8")))

"""Run manifests: the V2 schema, atomic writes, the manifest.jsonl log under concurrent writers, build and inspect."""

from __future__ import annotations

import csv
import io
import json
import logging
import multiprocessing
import os
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import context_for, pixels

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata import files, manifest_log
from comfyui_provenance.metadata.formats.base import DEFAULT_TARGETS, MANIFEST, MediaOptions
from comfyui_provenance.metadata.manifest_log import NAME, append, read_log, record_digest
from comfyui_provenance.metadata.media import clip_from, save_video
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images
from comfyui_provenance.reproduce import manifest
from comfyui_provenance.reproduce.manifest_build import build, seed_mode

WITH_MANIFEST = DEFAULT_TARGETS | {MANIFEST}


def save_to(
    folder: Path, name: str = "default", prefix: str = "img", count: int = 1, **options: Any
) -> list[SavedFile]:
    images = [pixels(seed=i) for i in range(count)]
    opts = SaveOptions(targets=options.pop("targets", WITH_MANIFEST), **options)
    return save_images(images, context_for(name), folder, prefix, opts, version="test")


def valid_manifest() -> dict[str, Any]:
    snapshot = manifest.snapshot(
        runtime_info=manifest.runtime_info("0.33.0", "0.1.0", []),
        resolved_template={"workflow": "w.json", "prompt": "a {A}"},
        generation_params=manifest.generation_params("combinatorial", "fixed", 1, 1, 2),
        api_params={"1": {"class_type": "X", "inputs": {}}},
        variations={"A": ["x", "y"]},
    )
    image = manifest.image_entry("a.png", "", None, api_prompt={}, applied={"A": "x"}, planned=(1, "a x", None))
    return {"snapshot": snapshot, "images": [image]}


# -- the schema --------------------------------------------------------------------------------


def test_a_valid_manifest_passes_and_keeps_exactly_the_v2_keys() -> None:
    data = manifest.check(valid_manifest())
    assert list(data["snapshot"]) == [
        "version",
        "timestamp",
        "runtime_info",
        "resolved_template",
        "generation_params",
        "api_params",
        "variations",
    ]
    assert set(data["images"][0]) == {
        "filename",
        "subfolder",
        "seed",
        "prompt",
        "negative",
        "applied_variations",
        "record_digest",
        "api_prompt",
    }
    assert data["snapshot"]["version"] == "2.0" and data["snapshot"]["timestamp"].endswith("Z")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda m: m.pop("images"), "not a run manifest"),
        (lambda m: m["snapshot"].update(version="1.0"), "version '1.0'"),
        (lambda m: m["snapshot"]["generation_params"].pop("seed_mode"), "generation_params"),
        (lambda m: m["images"][0].update(seed="7"), "images/0/seed"),
        (lambda m: m["images"][0].update(record_digest="md5:00"), "images/0/record_digest"),
        (lambda m: m["snapshot"]["runtime_info"]["models"].append({"role": "x"}), "models/0"),
    ],
)
def test_a_damaged_manifest_is_one_line_naming_the_place(edit: Any, words: str) -> None:
    data = valid_manifest()
    edit(data)
    with pytest.raises(manifest.ManifestError) as caught:
        manifest.check(data)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_writes_are_atomic_a_failed_replace_leaves_the_old_manifest_and_no_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / manifest.FILE_NAME
    first = valid_manifest()
    manifest.write(path, first)
    second = valid_manifest()
    second["images"].append(dict(second["images"][0], filename="b.png"))

    def crash(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError):
        manifest.write(path, second)
    monkeypatch.undo()
    assert manifest.read(path)["images"] == first["images"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [manifest.FILE_NAME]
    with pytest.raises(manifest.ManifestError):  # an invalid manifest is refused before anything is written
        manifest.write(path, {"snapshot": {}, "images": []})
    assert manifest.read(path)["images"] == first["images"]


# -- manifest.jsonl: the log the save target appends to ------------------------------------------


def test_the_manifest_target_appends_one_line_per_saved_file_with_the_record_and_its_digest(tmp_path: Path) -> None:
    saved = save_to(tmp_path, count=2) + save_to(tmp_path, prefix="sub/img")
    lines = read_log(tmp_path / NAME).entries
    assert [line["filename"] for line in lines] == [s.path.name for s in saved[:2]]
    for line, item in zip(lines, saved, strict=False):
        assert set(line) == {"filename", "subfolder", "record_digest", "saved_at", "record"}
        assert line["record_digest"] == record_digest(read(item.path))
        assert line["record"] == read(item.path).to_dict()
    sub = read_log(tmp_path / "sub" / NAME).entries  # each output folder keeps its own log
    assert [(e["filename"], e["subfolder"]) for e in sub] == [(saved[2].path.name, "sub")]


def test_without_the_target_or_with_metadata_disabled_no_log_is_written(tmp_path: Path) -> None:
    save_to(tmp_path, targets=DEFAULT_TARGETS)
    save_to(tmp_path, disable_metadata=True)
    assert not (tmp_path / NAME).exists()


def test_video_saves_append_too(tmp_path: Path) -> None:
    clip = clip_from(np.zeros((2, 32, 32, 3), dtype=np.uint8), Fraction(8))
    options = MediaOptions(format="webp", targets=WITH_MANIFEST)
    saved = save_video(clip, context_for("default"), tmp_path, "clip", options, version="test")
    (line,) = read_log(tmp_path / NAME).entries
    assert line["filename"] == saved.path.name and line["record_digest"] == record_digest(read(saved.path))


def test_a_failing_log_is_a_warning_and_the_file_is_still_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(folder: Path, entry: dict[str, Any]) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(manifest_log, "append", broken)
    with caplog.at_level(logging.WARNING):
        (saved,) = save_to(tmp_path)
    assert saved.path.exists() and read(saved.path).generation.seed is not None
    assert any("could not add" in r.getMessage() and NAME in r.getMessage() for r in caplog.records)


def test_a_record_over_the_inline_budget_is_a_pointer_that_build_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifest_log, "INLINE_RECORD_MAX", 100)
    (saved,) = save_to(tmp_path)
    (line,) = read_log(tmp_path / NAME).entries
    assert line["record"] == {"$ref": saved.path.name}
    (image,) = build(tmp_path).manifest["images"]
    assert image["seed"] == read(saved.path).generation.seed and image["record_digest"] == line["record_digest"]


def _entry(writer: int, number: int, pad: int) -> dict[str, Any]:
    # Lines bigger than a pipe buffer and a page: a torn or interleaved write would show.
    record = {"schema": "x", "writer": writer, "number": number, "pad": "x" * pad}
    return {"filename": f"w{writer}-{number}.png", "subfolder": "", "record_digest": None, "record": record}


def _append_many(folder: str, writer: int, count: int, pad: int) -> None:
    for number in range(count):
        append(Path(folder), _entry(writer, number, pad))


def _check_log(path: Path, writers: int, count: int) -> None:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == writers * count
    seen = {(e["record"]["writer"], e["record"]["number"]) for e in map(json.loads, lines)}
    assert seen == {(w, n) for w in range(writers) for n in range(count)}
    assert not read_log(path).warnings


def test_concurrent_threads_never_interleave_lines(tmp_path: Path) -> None:
    threads = [threading.Thread(target=_append_many, args=(str(tmp_path), w, 100, 70_000 + w)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _check_log(tmp_path / NAME, 8, 100)


@pytest.mark.skipif(os.name == "nt", reason="fork-free spawn is slow on Windows; the lock is the same")
def test_concurrent_processes_never_interleave_lines(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), w, 200, 20_000 + w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    _check_log(tmp_path / NAME, 4, 200)


def test_a_torn_last_line_is_skipped_with_a_warning_and_the_next_append_starts_fresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_to(tmp_path, count=2)
    log = tmp_path / NAME
    with log.open("ab") as handle:  # a save killed mid-line
        handle.write(b'{"filename": "torn.png", "record": {"sch')
    with caplog.at_level(logging.WARNING):
        torn = read_log(log)
    assert len(torn.entries) == 2 and torn.warnings == [
        f"{NAME} line 3: torn (a save was interrupted mid-line): skipped"
    ]
    assert any("torn" in r.getMessage() for r in caplog.records)
    (third,) = save_to(tmp_path)
    after = read_log(log)
    assert [e["filename"] for e in after.entries][-1] == third.path.name and len(after.entries) == 3
    assert after.warnings == [f"{NAME} line 3: not valid JSON: skipped"]
    built = build(tmp_path)
    assert len(built.manifest["images"]) == 3 and len(built.warnings) == 1


# -- build -------------------------------------------------------------------------------------


def test_build_compacts_the_log_into_a_v2_manifest_with_what_a_log_cannot_know_null(tmp_path: Path) -> None:
    saved = save_to(tmp_path, count=2) + save_to(tmp_path, "lora")
    assert main(["manifest", "build", str(tmp_path)]) == 0
    data = manifest.read(tmp_path / manifest.FILE_NAME)
    snapshot = data["snapshot"]
    assert snapshot["resolved_template"] is None and snapshot["api_params"] is None and snapshot["variations"] is None
    params = snapshot["generation_params"]
    assert params["mode"] is None and params["total_combinations"] is None and params["num_images"] == 3
    records = [read(s.path) for s in saved]
    assert params["base_seed"] == records[0].generation.seed
    assert snapshot["runtime_info"]["comfyui_version"] == "0.33.0"
    assert {m["name"] for m in snapshot["runtime_info"]["models"]} >= {m.name for r in records for m in r.models}
    for image, record, item in zip(data["images"], records, saved, strict=True):
        assert image["filename"] == item.path.name
        assert (image["seed"], image["prompt"], image["negative"]) == (
            record.generation.seed,
            record.generation.positive,
            record.generation.negative,
        )
        assert image["api_prompt"] == record.prompt and image["record_digest"] == record_digest(record)
        assert image["applied_variations"] == {}


def test_build_recursive_takes_subfolders_and_names_each_file_with_its_subfolder(tmp_path: Path) -> None:
    save_to(tmp_path)
    save_to(tmp_path, prefix="a/b/img")
    assert [i["subfolder"] for i in build(tmp_path).manifest["images"]] == [""]
    images = build(tmp_path, recursive=True).manifest["images"]
    assert [i["subfolder"] for i in images] == ["", "a/b"]


def test_build_never_replaces_a_batch_manifest_or_a_foreign_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_to(tmp_path)
    manifest.write(tmp_path / manifest.FILE_NAME, valid_manifest())
    assert main(["manifest", "build", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a batch's manifest" in err
    (tmp_path / manifest.FILE_NAME).write_text("my notes")
    assert main(["manifest", "build", str(tmp_path)]) == 1
    assert "is not a run manifest" in capsys.readouterr().err
    assert main(["manifest", "build", str(tmp_path), "--out", str(tmp_path / "m.json")]) == 0
    assert len(manifest.read(tmp_path / "m.json")["images"]) == 1


def test_build_of_a_folder_without_a_log_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "build", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no {NAME}" in err


@pytest.mark.parametrize(
    ("seeds", "mode"),
    [([5, 5, 5], "fixed"), ([5, 6, 7], "progressive"), ([9, 2], "random"), ([1, None], None), ([], None)],
)
def test_seed_mode_is_read_off_the_seeds(seeds: list[int | None], mode: str | None) -> None:
    assert seed_mode(seeds) == mode


# -- inspect -----------------------------------------------------------------------------------


def test_inspect_prints_the_snapshot_and_a_table_as_text_json_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / manifest.FILE_NAME
    data = valid_manifest()
    data["images"].append(manifest.image_entry("b, c.png", "s", None, api_prompt=None, planned=(2, 'say "hi"', "n")))
    manifest.write(path, data)
    assert main(["manifest", "inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "manifest 2.0" in text and "ComfyUI 0.33.0, pack 0.1.0" in text and "variation A (2): x, y" in text
    assert "a.png" in text and "s/b, c.png" in text and "A=x" in text
    assert main(["manifest", "inspect", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["snapshot"] == data["snapshot"]
    assert [r["index"] for r in shown["images"]] == [0, 1] and "api_prompt" not in shown["images"][0]
    assert main(["manifest", "inspect", str(path), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["applied_variations"] == "A=x" and rows[1]["filename"] == "b, c.png"
    assert rows[1]["prompt"] == 'say "hi"' and rows[1]["seed"] == "2" and rows[1]["record_digest"] == ""


def test_inspect_of_a_foreign_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    assert main(["manifest", "inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"{path}: not a run manifest (expected a JSON object with a snapshot and images)\n"

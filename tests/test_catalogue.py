"""The catalogue: real files saved from the corpus, indexed, then found by text, LoRA, model, hash, seed, date."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hostile
import pytest
from conftest import context_for, load_workflow, pixels
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from test_save_media import frames, video_context

from comfyui_provenance.catalogue import CatalogueError, Query, open_catalogue, sqlite_search
from comfyui_provenance.catalogue.rows import normalized
from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.media import MediaOptions, clip_from, save_video
from comfyui_provenance.metadata.record import Model
from comfyui_provenance.metadata.save import SaveOptions, save_images


def fake_hasher(models: list[Model]) -> None:
    """Hashes derived from the model's name: stable, distinct, and known to the test."""
    for model in models:
        model.hashes = digests(model.name)


def digests(name: str) -> dict[str, str]:
    sha = hashlib.sha256(name.encode()).hexdigest()
    return {"sha256": sha, "autov2": sha[:10], "autov3": sha[:12]}


def core_png(path: Path, name: str, when: str) -> Path:
    """A PNG as ComfyUI core writes it (its prompt and workflow only), dated `when` by its mtime."""
    api, ui = load_workflow(name)
    info = PngInfo()
    info.add_text("prompt", json.dumps(api))
    info.add_text("workflow", json.dumps(ui))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels()).save(path, pnginfo=info)
    stamp = datetime.fromisoformat(when).replace(tzinfo=timezone.utc).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def build_corpus(root: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for name, folder in (("lora", "a"), ("lora_multiple", "a"), ("default", "b"), ("flux_schnell", "b")):
        (saved,) = save_images(
            [pixels()], context_for(name), root / folder, name, SaveOptions(), version="t", hasher=fake_hasher
        )
        files[name] = saved.path
    clip = clip_from(frames(), 24, None)
    files["video"] = save_video(clip, video_context(fmt="mp4"), root / "v", "clip", MediaOptions(format="mp4")).path
    files["core_jan"] = core_png(root / "core" / "jan.png", "image_sdxl_simple", "2024-01-15T12:00:00")
    files["core_mar"] = core_png(root / "core" / "mar.png", "sdxlturbo_example", "2024-03-01T08:30:00")
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """(catalogue file, saved files by name): the corpus indexed once through the CLI."""
    root = tmp_path_factory.mktemp("catalogue")
    files = build_corpus(root / "out")
    db = root / "catalogue.sqlite"
    assert main(["index", str(root / "out"), "--db", str(db)]) == 0
    return db, files


def found(db: Path, **query: Any) -> set[str]:
    catalogue = open_catalogue(db)
    try:
        return {Path(row["path"]).name for row in catalogue.search(Query(**query))}
    finally:
        catalogue.close()


def names(files: dict[str, Path], *keys: str) -> set[str]:
    return {files[k].name for k in keys}


def test_everything_is_indexed(corpus: tuple[Path, dict[str, Path]]) -> None:
    db, files = corpus
    assert found(db) == names(files, *files)
    rows = {Path(r["path"]).name: r for r in open_catalogue(db).search(Query(seed=261660645921551))}
    row = rows[files["lora"].name]
    assert row["kind"] == "image" and (row["width"], row["height"]) == (96, 64)
    assert row["model"] == "dreamshaper_8.safetensors" and row["sampler"] == "dpmpp_2m"
    assert row["loras"] == [{"name": "blindbox_v1_mix.safetensors", "strength_model": 0.75, "strength_clip": 1.0}]
    assert row["digest"] == hashlib.sha256(files["lora"].read_bytes()).hexdigest()


def test_video_is_catalogued_with_its_frames(corpus: tuple[Path, dict[str, Path]]) -> None:
    db, files = corpus
    (row,) = open_catalogue(db).search(Query(folder=str(files["video"].parent)))
    assert row["kind"] == "video" and row["frames"] == 8 and row["seed"] == 1


def test_full_text_search(corpus: tuple[Path, dict[str, Path]]) -> None:
    db, files = corpus
    assert found(db, text="teddy") == names(files, "lora")
    assert found(db, text="galaxy bottle") == names(files, "default", "flux_schnell", "core_mar")
    assert found(db, text="fennec fox") == names(files, "core_mar")
    assert found(db, text="TEDDY Bear") == names(files, "lora")  # case and order do not matter
    assert found(db, text="nowhere-to-be-found") == set()


@pytest.mark.parametrize(
    "typed",
    ["blindbox_v1_mix", "blindbox_v1_mix.safetensors", "loras/blindbox_v1_mix.safetensors", "BlindBox_V1_Mix"],
)
def test_lora_name_as_users_type_it(corpus: tuple[Path, dict[str, Path]], typed: str) -> None:
    db, files = corpus
    assert found(db, lora=typed) == names(files, "lora", "lora_multiple")


def test_lora_and_model_filters_combine(corpus: tuple[Path, dict[str, Path]]) -> None:
    db, files = corpus
    assert found(db, lora="MoXinV1") == names(files, "lora_multiple")
    assert found(db, lora="blindbox_v1_mix", seed=261660645921551) == names(files, "lora")
    assert found(db, lora="dreamshaper_8") == set()  # a checkpoint is no LoRA
    assert found(db, model="checkpoints\\dreamshaper_8") == names(files, "lora", "lora_multiple")


@pytest.mark.parametrize("form", ["autov2", "autov3", "sha256"])
def test_model_hash_in_every_form(corpus: tuple[Path, dict[str, Path]], form: str) -> None:
    db, files = corpus
    assert found(db, model=digests("dreamshaper_8.safetensors")[form]) == names(files, "lora", "lora_multiple")
    assert found(db, model=digests("dreamshaper_8.safetensors")[form].upper()) == names(files, "lora", "lora_multiple")
    assert found(db, lora=digests("MoXinV1.safetensors")[form]) == names(files, "lora_multiple")


def test_seed_sampler_and_folder(corpus: tuple[Path, dict[str, Path]]) -> None:
    db, files = corpus
    assert found(db, seed=685468484323813) == names(files, "default")
    assert found(db, sampler="euler_ancestral") == names(files, "core_mar")
    assert found(db, sampler="DPMPP_2M") == names(files, "lora", "lora_multiple", "core_jan")
    assert found(db, folder=str(files["lora"].parent)) == names(files, "lora", "lora_multiple")
    assert found(db, folder=str(files["lora"].parent) + "/") == names(files, "lora", "lora_multiple")


def test_dates(corpus: tuple[Path, dict[str, Path]]) -> None:
    db, files = corpus
    assert found(db, since="2024-01-01", until="2024-01-31") == names(files, "core_jan")
    assert found(db, until="2024-03-01") == names(files, "core_jan", "core_mar")  # a bare date includes the day
    assert found(db, until="2024-03-01T08:00:00Z") == names(files, "core_jan")
    assert found(db, since="2025-01-01") == names(files, "lora", "lora_multiple", "default", "flux_schnell", "video")


def test_sql_metacharacters_are_just_text(corpus: tuple[Path, dict[str, Path]]) -> None:
    db, files = corpus
    for text in ("'; DROP TABLE files; --", '" OR 1=1 --', "NEAR(teddy bear)", "teddy*", "-", ")"):
        found(db, text=text, lora="'; DROP TABLE models; --", sampler="x' OR '1'='1")
        found(db, text=text)
    assert found(db, text="teddy OR") == set()  # OR is a word to look for, not an operator
    assert len(found(db)) == len(files)  # every table is still there


def test_search_cli_formats(corpus: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]) -> None:
    db, files = corpus
    assert main(["search", "teddy", "--db", str(db), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["path"] == str(files["lora"])
    assert main(["search", "--lora", "blindbox_v1_mix", "--db", f"sqlite:///{db}", "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["search", "--seed", "1", "--db", str(db), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("made,path") and len(lines) == 2
    assert main(["search", "--sampler", "euler", "--db", str(db)]) == 0
    assert str(files["default"]) in capsys.readouterr().out
    assert main(["search", "--since", "yesterday", "--db", str(db)]) == 2
    said = capsys.readouterr().err
    assert said == "provenance: --since: 'yesterday' is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)\n"


def test_stats(corpus: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = corpus
    assert main(["stats", "--db", str(db), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["files"] == 7 and stats["kinds"] == {"image": 6, "video": 1}
    assert {"name": "blindbox_v1_mix.safetensors", "files": 2} in stats["loras"]
    assert stats["samplers"][:2] == [{"name": "dpmpp_2m", "files": 3}, {"name": "euler", "files": 3}]
    assert {"day": "2024-01-15", "files": 1} in stats["days"]
    assert main(["stats", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("files: 7 (6 image, 1 video)")


def test_missing_catalogue_and_unknown_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "x", "--db", str(tmp_path / "none.sqlite")]) == 1
    assert "run `provenance index FOLDER` first" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()
    with pytest.raises(CatalogueError, match="catalogue open failed"):  # no server there: one line, no traceback
        open_catalogue("postgresql://localhost:1/catalogue")
    with pytest.raises(CatalogueError, match="not a catalogue path"):
        open_catalogue("mysql://localhost/x")


def test_env_url_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (saved,) = save_images([pixels()], context_for("lora"), tmp_path / "out", "x", SaveOptions(), version="t")
    monkeypatch.setenv("PROVENANCE_CATALOGUE_URL", str(tmp_path / "env.sqlite"))
    assert main(["index", str(saved.path)]) == 0
    assert (tmp_path / "env.sqlite").exists()
    assert main(["search", "--lora", "blindbox_v1_mix", "--format", "jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(saved.path)


def test_reindex_is_idempotent_and_a_moved_file_is_recognised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = build_corpus(tmp_path / "out")
    db = tmp_path / "c.sqlite"
    assert main(["index", str(tmp_path / "out"), "--db", str(db)]) == 0
    capsys.readouterr()
    before = dump(db)
    assert main(["index", str(tmp_path / "out"), "--db", str(db), "--jobs", "2"]) == 0
    assert "(7 unchanged)" in capsys.readouterr().err
    assert dump(db) == before
    os.utime(files["default"])  # touched: read again, same bytes, only its time changes
    assert main(["index", str(tmp_path / "out"), "--db", str(db)]) == 0
    assert "(7 unchanged)" in capsys.readouterr().err
    moved = tmp_path / "out" / "elsewhere" / "moved.png"
    moved.parent.mkdir()
    shutil.move(files["lora"], moved)
    assert main(["index", str(tmp_path / "out"), "--db", str(db)]) == 0
    assert "1 moved" in capsys.readouterr().err
    assert found(db, lora="blindbox_v1_mix.safetensors") == {"moved.png", files["lora_multiple"].name}
    assert len(found(db)) == 7 and dump(db)["models"] == before["models"]


def test_prune_forgets_files_that_are_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = build_corpus(tmp_path / "out")
    db = tmp_path / "c.sqlite"
    assert main(["index", str(tmp_path / "out"), "--db", str(db)]) == 0
    files["core_jan"].unlink()
    files["video"].unlink()
    assert main(["index", str(tmp_path / "out" / "a"), "--db", str(db), "--prune"]) == 0
    assert len(found(db)) == 7  # gone, but not under the folder pruned
    assert main(["index", str(tmp_path / "out"), "--db", str(db), "--prune"]) == 0
    assert "2 pruned" in capsys.readouterr().err
    assert found(db) == names(files, "lora", "lora_multiple", "default", "flux_schnell", "core_mar")
    assert found(db, text="marble statue") == set()  # its full-text row went with it


def test_hostile_files_are_one_line_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = hostile.build(tmp_path / "hostile")
    db = tmp_path / "c.sqlite"
    status = main(["index", str(tmp_path / "hostile"), "--db", str(db), "--jobs", "2"])
    captured = capsys.readouterr()
    assert status in (0, 1)
    lines = captured.err.splitlines()
    assert lines[-1].startswith("provenance: ") and " files (" in lines[-1]
    for line in lines[:-1]:
        assert line.startswith(str(tmp_path)) and ": " in line, line
        assert "internal error" not in line and "Traceback" not in line
    assert {c.expect for c in cases} >= {"error"}
    errors = [c for c in cases if c.expect == "error" and c.image.is_file() and not c.image.is_symlink()]
    for case in errors:
        assert any(line.startswith(f"{case.image}: ") for line in lines), case.name
    found(db, text="anything")  # the catalogue is sound afterwards


def test_schema_is_versioned(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    open_catalogue(db).close()
    open_catalogue(db).close()  # a second open applies nothing twice
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT version FROM schema_migrations").fetchall() == [(1,)]
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        raw.execute("INSERT INTO schema_migrations VALUES (99, 'later')")
    with pytest.raises(CatalogueError, match="newer than this version knows"):
        open_catalogue(db)


def test_normalized_names() -> None:
    assert normalized("loras/epiNoiseoffset_v2.safetensors") == "epinoiseoffset_v2"
    assert normalized("epiNoiseoffset_v2") == "epinoiseoffset_v2"
    assert normalized("C:\\models\\x.ckpt") == "x"
    assert normalized("v1.5-model") == "v1.5-model"


def dump(db: Path) -> dict[str, list[Any]]:
    """The catalogue's content, minus the times it was indexed."""
    with sqlite3.connect(db) as raw:
        return {
            "files": raw.execute("SELECT path, size, digest, made FROM files ORDER BY path").fetchall(),
            "models": raw.execute("SELECT role, name, sha256 FROM models ORDER BY name, role").fetchall(),
            "prompts": raw.execute("SELECT rowid, prompt FROM prompts ORDER BY rowid").fetchall(),
        }


def test_seeds_over_two_to_the_63_survive(tmp_path: Path) -> None:
    api, _ = load_workflow("default")
    sampler = next(k for k, v in api.items() if v["class_type"] == "KSampler")
    api[sampler]["inputs"]["seed"] = 2**64 - 1  # ComfyUI's largest seed
    context = dataclasses.replace(context_for("default"), prompt=api)
    (saved,) = save_images([pixels()], context, tmp_path / "out", "big", SaveOptions(), version="t")
    db = tmp_path / "c.sqlite"
    assert main(["index", str(saved.path), "--db", str(db)]) == 0
    assert found(db, seed=2**64 - 1) == {saved.path.name}
    (row,) = open_catalogue(db).search(Query(seed=2**64 - 1))
    assert row["seed"] == 2**64 - 1
    assert main(["search", "--seed", str(2**64), "--db", str(db)]) == 2


def test_concurrent_indexers_and_searchers(tmp_path: Path) -> None:
    """4 processes index overlapping folders while 2 search: every file once, no lost or doubled rows."""
    files = build_corpus(tmp_path / "src")
    for copy in range(4):
        for name, path in files.items():
            target = tmp_path / "out" / str(copy) / f"{name}{path.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    db = tmp_path / "c.sqlite"
    cli = [sys.executable, "-m", "comfyui_provenance.cli.main"]
    indexers = [
        subprocess.Popen([*cli, "index", str(tmp_path / "out" / str(n)), str(tmp_path / "out"), "--db", str(db)])
        for n in range(4)
    ]
    searchers = [subprocess.Popen([*cli, "search", "galaxy", "--db", str(db)], stdout=subprocess.DEVNULL)]
    searchers.append(subprocess.Popen([*cli, "stats", "--db", str(db)], stdout=subprocess.DEVNULL))
    assert [p.wait(timeout=120) for p in indexers] == [0, 0, 0, 0]
    assert all(p.wait(timeout=120) in (0, 1) for p in searchers)  # 1: it ran before any indexer made the file
    with sqlite3.connect(db) as raw:
        tables = ("files", "generations", "provenance", "prompts")
        assert [raw.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables] == [4 * len(files)] * 4
        one = "SELECT count(*) FROM models m JOIN files f ON f.id = m.file_id WHERE f.folder = ?"
        per_copy = raw.execute(one, (str(tmp_path / "out" / "0"),)).fetchone()[0]
        assert per_copy > 0 and raw.execute("SELECT count(*) FROM models").fetchone()[0] == 4 * per_copy


@pytest.mark.parametrize(
    "query",
    [
        {"text": "bottle"},
        {"text": "galaxy bottle", "limit": 1},
        {"text": "bottle", "limit": 1, "offset": 1},
        {"text": "a", "since": "2024-01-01", "until": "2024-12-31"},
        {"text": "the", "limit": 2, "offset": 3},
        {"text": "nowhere-to-be-found"},
    ],
)
def test_walking_files_newest_first_gives_the_sorted_answer(
    corpus: tuple[Path, dict[str, Path]], monkeypatch: pytest.MonkeyPatch, query: dict[str, Any]
) -> None:
    """The plan a common word gets at scale (walk `made`, probe the matches) returns exactly the rows, in
    the order, of the plan a rare word gets (sort every match): forced both ways on the same corpus."""
    db, _ = corpus
    catalogue = open_catalogue(db)
    try:
        monkeypatch.setattr(sqlite_search, "WALK_MIN_MATCHES", 10**9)
        sorted_rows = catalogue.search(Query(**query))
        monkeypatch.setattr(sqlite_search, "WALK_MIN_MATCHES", 1)
        monkeypatch.setattr(sqlite_search, "SORT_OVER_WALK", 0.0)
        assert sqlite_search.walk_newest_first(catalogue.db, Query(**query)) == (query["text"] != "nowhere-to-be-found")
        assert catalogue.search(Query(**query)) == sorted_rows
    finally:
        catalogue.close()

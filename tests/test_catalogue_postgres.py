"""The PostgreSQL catalogue: the same corpus indexed into SQLite and PostgreSQL answers every query identically."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import context_for, load_workflow, pixels
from pg_cluster import PgCluster, postgres_db_fixture, postgres_fixture
from test_catalogue import build_corpus, digests

from comfyui_provenance.catalogue import CatalogueError, Query, open_catalogue
from comfyui_provenance.catalogue.indexer import examine, store
from comfyui_provenance.catalogue.postgres import shown
from comfyui_provenance.catalogue.postgres_search import tokens, tsvector
from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.save import SaveOptions, save_images

psycopg = pytest.importorskip("psycopg")
__all__ = ["postgres_db_fixture", "postgres_fixture"]  # pytest finds the fixtures by these imports

BIG_SEED = 2**64 - 1
TABLES = ("files", "generations", "provenance")


def big_seed_png(root: Path) -> Path:
    api, _ = load_workflow("default")
    sampler = next(k for k, v in api.items() if v["class_type"] == "KSampler")
    api[sampler]["inputs"]["seed"] = BIG_SEED
    context = dataclasses.replace(context_for("default"), prompt=api)
    (saved,) = save_images([pixels()], context, root / "big", "big", SaveOptions(), version="t")
    return saved.path


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, postgres: PgCluster) -> Iterator[tuple[str, str, dict[str, Path]]]:
    """(SQLite path, PostgreSQL URL, files): the same corpus indexed into each through the CLI."""
    root = tmp_path_factory.mktemp("parity")
    files = build_corpus(root / "out")
    files["big"] = big_seed_png(root / "out")
    postgres.dropdb("parity")
    postgres.createdb("parity")
    url = postgres.url_for("parity")
    sqlite = str(root / "c.sqlite")
    for db in (sqlite, url):
        assert main(["index", str(root / "out"), "--db", db]) == 0
    yield sqlite, url, files
    postgres.dropdb("parity")


def answers(location: str, queries: list[dict[str, Any]]) -> list[Any]:
    catalogue = open_catalogue(location)
    try:
        return [catalogue.search(Query(**q)) for q in queries] + [catalogue.stats(), catalogue.stats(top=2)]
    finally:
        catalogue.close()


def test_sqlite_and_postgres_answer_identically(both: tuple[str, str, dict[str, Path]]) -> None:
    sqlite, url, files = both
    dream, moxin = digests("dreamshaper_8.safetensors"), digests("MoXinV1.safetensors")
    folder = str(files["lora"].parent)
    queries: list[dict[str, Any]] = [
        {},
        {"text": "teddy"},
        {"text": "galaxy bottle"},
        {"text": "TEDDY Bear"},
        {"text": "fennec fox"},
        {"text": "nowhere-to-be-found"},
        {"text": "teddy OR"},
        {"text": "'; DROP TABLE files; --"},
        {"text": "_ -"},
        *({"lora": typed} for typed in ("blindbox_v1_mix", "loras/blindbox_v1_mix.safetensors", "BlindBox_V1_Mix")),
        {"lora": "dreamshaper_8"},
        {"model": "checkpoints\\dreamshaper_8"},
        *({"model": dream[form]} for form in ("autov2", "autov3", "sha256")),
        *({"lora": moxin[form].upper()} for form in ("autov2", "autov3", "sha256")),
        {"seed": 261660645921551},
        {"seed": 685468484323813},
        {"seed": BIG_SEED},
        {"seed": 2**63},
        {"sampler": "DPMPP_2M"},
        {"sampler": "euler_ancestral"},
        {"since": "2024-01-01", "until": "2024-01-31"},
        {"until": "2024-03-01"},
        {"until": "2024-03-01T08:00:00Z"},
        {"since": "2025-01-01"},
        {"folder": folder},
        {"folder": folder + "/"},
        {"limit": 2},
        {"limit": 3, "offset": 2},
        {"text": "galaxy", "sampler": "euler", "limit": 1},
    ]
    expected = answers(sqlite, queries)
    assert answers(url, queries) == expected
    assert [Path(r["path"]).name for r in expected[queries.index({"seed": BIG_SEED})]] == [files["big"].name]
    assert expected[queries.index({"seed": BIG_SEED})][0]["seed"] == BIG_SEED
    assert len(expected[0]) == len(files) and expected[1] and expected[-2]["files"] == len(files)


def test_tokens_follow_fts5_unicode61() -> None:
    text = "blindbox_v1_mix, Émile's (masterpiece:1.2) nowhere-to-be-found ÜBER naïve 東京タワー http://x.y/z"
    with sqlite3.connect(":memory:") as raw:
        raw.execute("CREATE VIRTUAL TABLE t USING fts5 (a, tokenize = 'unicode61')")
        raw.execute("CREATE VIRTUAL TABLE v USING fts5vocab (t, 'instance')")
        raw.execute("INSERT INTO t VALUES (?)", (text,))
        fts5 = [term for (term,) in raw.execute("SELECT term FROM v ORDER BY offset")]
    assert tokens(text) == fts5
    assert tsvector("a b", "c") == "'a':1 'b':2 'c':4"  # no phrase spans prompt and negative
    assert tsvector(None, "") is None


def test_phrases_and_columns_match_as_in_sqlite(tmp_path: Path, postgres_db: str) -> None:
    """Words with underscores are phrases; a phrase never spans the prompt and the negative."""
    (saved,) = save_images([pixels()], context_for("lora"), tmp_path / "out", "x", SaveOptions(), version="t")
    sqlite = str(tmp_path / "c.sqlite")
    for db in (sqlite, postgres_db):
        assert main(["index", str(saved.path), "--db", db]) == 0
    prompt = open_catalogue(sqlite).search(Query())[0]["prompt"]
    words = prompt.split()
    queries = [{"text": t} for t in (words[0], "_".join(words[:2]), "_".join(words[1::-1]), words[-1] + " x")]
    assert answers(postgres_db, queries) == answers(sqlite, queries)


def test_schema_is_versioned_and_reopens(postgres_db: str) -> None:
    with pytest.raises(CatalogueError, match="no catalogue at"):
        open_catalogue(postgres_db, readonly=True)  # a searcher never creates the tables
    open_catalogue(postgres_db).close()
    reader = open_catalogue(postgres_db, readonly=True)
    assert reader.search(Query()) == []
    reader.close()
    open_catalogue(postgres_db).close()  # a second open applies nothing twice
    with psycopg.connect(postgres_db, autocommit=True) as raw:
        assert raw.execute("SELECT version FROM schema_migrations").fetchall() == [(1,)]
        raw.execute("INSERT INTO schema_migrations VALUES (99, 'later')")
    with pytest.raises(CatalogueError, match="newer than this version knows"):
        open_catalogue(postgres_db)


def test_missing_psycopg_and_unreachable_server(monkeypatch: pytest.MonkeyPatch, postgres: PgCluster) -> None:
    with pytest.raises(CatalogueError, match="catalogue open failed") as caught:
        open_catalogue(postgres.url_for("no_such_database"))
    assert "\n" not in str(caught.value)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(CatalogueError, match=r"pip install 'comfyui-provenance\[postgres\]'"):
        open_catalogue("postgresql://localhost/catalogue")
    assert shown("postgresql://me:secret@db/c") == "postgresql://me:***@db/c"


def test_reindex_move_and_prune(tmp_path: Path, postgres_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    files = build_corpus(tmp_path / "out")
    out = str(tmp_path / "out")
    assert main(["index", out, "--db", postgres_db]) == 0
    assert main(["index", out, "--db", postgres_db, "--jobs", "2"]) == 0
    assert "(7 unchanged)" in capsys.readouterr().err
    moved = tmp_path / "out" / "elsewhere" / "moved.png"
    moved.parent.mkdir()
    shutil.move(files["lora"], moved)
    assert main(["index", out, "--db", postgres_db]) == 0
    assert "1 moved" in capsys.readouterr().err
    files["core_jan"].unlink()
    assert main(["index", out, "--db", postgres_db, "--prune"]) == 0
    assert "1 pruned" in capsys.readouterr().err
    catalogue = open_catalogue(postgres_db)
    names = {Path(r["path"]).name for r in catalogue.search(Query(lora="blindbox_v1_mix"))}
    assert names == {"moved.png", files["lora_multiple"].name}
    assert len(catalogue.search(Query())) == 6 and catalogue.search(Query(text="marble statue")) == []
    catalogue.close()


def counts(url: str, folder: str) -> list[int]:
    with psycopg.connect(url) as raw:
        tables = [raw.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES]
        words = raw.execute("SELECT count(*) FROM files WHERE words IS NOT NULL").fetchone()[0]
        one = "SELECT count(*) FROM models m JOIN files f ON f.id = m.file_id WHERE f.folder = %s"
        per_copy = raw.execute(one, (folder,)).fetchone()[0]
        models = raw.execute("SELECT count(*) FROM models").fetchone()[0]
    return [*tables, words, models, per_copy]


def test_concurrent_indexers_and_searchers(tmp_path: Path, postgres_db: str) -> None:
    """4 processes index overlapping folders while 2 search: every file once, no lost or doubled rows."""
    files = build_corpus(tmp_path / "src")
    for copy in range(4):
        for name, path in files.items():
            target = tmp_path / "out" / str(copy) / f"{name}{path.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    cli = [sys.executable, "-m", "comfyui_provenance.cli.main"]
    out = str(tmp_path / "out")
    indexers = [
        subprocess.Popen([*cli, "index", str(tmp_path / "out" / str(n)), out, "--db", postgres_db]) for n in range(4)
    ]
    searchers = [subprocess.Popen([*cli, "search", "galaxy", "--db", postgres_db], stdout=subprocess.DEVNULL)]
    searchers.append(subprocess.Popen([*cli, "stats", "--db", postgres_db], stdout=subprocess.DEVNULL))
    assert [p.wait(timeout=120) for p in indexers] == [0, 0, 0, 0]
    assert all(p.wait(timeout=120) in (0, 1) for p in searchers)  # 1: it ran before any indexer made the file
    *tables, models, per_copy = counts(postgres_db, str(tmp_path / "out" / "0"))
    n = 4 * len(files)
    assert tables == [n] * 4 and per_copy > 0 and models == 4 * per_copy


def test_server_stopped_mid_batch_then_indexing_resumes(
    tmp_path: Path, postgres: PgCluster, postgres_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files = build_corpus(tmp_path / "out")
    paths = sorted(str(p) for p in files.values())
    catalogue = open_catalogue(postgres_db)
    try:
        with pytest.raises(CatalogueError) as caught, catalogue.batch():
            for path in paths[:3]:
                store(catalogue, examine(path))
            postgres.stop()
            store(catalogue, examine(paths[3]))
    finally:
        postgres.start()
    message = str(caught.value)
    assert "\n" not in message and message.startswith("catalogue ") and "failed" in message
    assert catalogue.search(Query()) == []  # the batch was rolled back; the same object connects again
    catalogue.close()
    assert main(["index", str(tmp_path / "out"), "--db", postgres_db]) == 0
    assert "(7 new)" in capsys.readouterr().err
    assert counts(postgres_db, str(files["lora"].parent))[:3] == [7, 7, 7]

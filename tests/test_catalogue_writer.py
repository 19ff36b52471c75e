"""The save nodes' background writer: real saved files indexed off the save's path, a locked or
unreachable catalogue retried until free, a full queue counted, and GET /provenance/search."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import context_for, load_workflow, pixels, small_disk

from comfyui_provenance import compat
from comfyui_provenance.catalogue import open_catalogue, sqlite, writer
from comfyui_provenance.catalogue.writer import Writer
from comfyui_provenance.cli.main import main
from comfyui_provenance.hooks import route
from comfyui_provenance.metadata import settings
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.save import SaveOptions, save_images
from comfyui_provenance.nodes import save_image


@pytest.fixture(autouse=True)
def no_shared_writers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PROVENANCE_CATALOGUE_URL", raising=False)
    writer.stop_all()
    yield
    writer.stop_all()


def saved_files(folder: Path, count: int = 2, prefix: str = "cat") -> list[str]:
    """Real files with metadata (the default workflow: a 'beautiful scenery' prompt)."""
    files = save_images(
        [pixels(seed=i) for i in range(count)], context_for("default"), folder, prefix, SaveOptions(), version="test"
    )
    return [str(f.path) for f in files]


def search_paths(db: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """The paths `provenance search` (the CLI) finds."""
    capsys.readouterr()
    assert main(["search", *args, "--db", str(db), "--format", "jsonl"]) == 0
    return sorted(json.loads(line)["path"] for line in capsys.readouterr().out.splitlines() if line.strip())


def test_the_writer_indexes_what_it_is_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = saved_files(tmp_path / "out")
    db = tmp_path / "cat.sqlite"
    w = Writer(str(db))
    w.submit(paths)
    assert w.stop()
    assert w.stats()["indexed"] == 2 and w.stats()["failed"] == 0
    assert search_paths(db, capsys, "scenery") == sorted(paths)


def test_a_missing_file_is_skipped_not_retried(tmp_path: Path) -> None:
    w = Writer(str(tmp_path / "cat.sqlite"))
    w.submit([str(tmp_path / "gone.png")])
    assert w.stop()
    assert (w.stats()["skipped"], w.stats()["retries"]) == (1, 0)


def test_a_locked_catalogue_is_retried_until_free(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_S", 0.05)
    db = tmp_path / "cat.sqlite"
    open_catalogue(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    paths = saved_files(tmp_path / "out")
    w = Writer(str(db), backoff_s=0.02, max_backoff_s=0.1, attempts=1000)
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="comfyui_provenance.catalogue.writer"):
        w.submit(paths)
        assert time.perf_counter() - started < 0.05  # the caller never waits for the database
        assert not w.flush(0.5)
        assert w.stats()["retries"] >= 2 and w.stats()["indexed"] == 0 and w.stats()["failing"]
        holder.execute("ROLLBACK")
        holder.close()
        assert w.stop(10)
    assert (w.stats()["indexed"], w.stats()["failed"], w.stats()["failing"]) == (2, 0, False)
    streak = [r for r in caplog.records if "cannot index" in r.getMessage()]
    assert len(streak) == 1  # one warning for the whole failure streak
    assert search_paths(db, capsys, "scenery") == sorted(paths)


def test_an_unwritable_catalogue_folder_is_retried_until_it_can_be_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "cat"
    blocker.write_text("a file where the catalogue's folder should be")  # unwritable, even for root
    db = blocker / "cat.sqlite"
    paths = saved_files(tmp_path / "out", count=1)
    w = Writer(str(db), backoff_s=0.02, max_backoff_s=0.05, attempts=1000)
    w.submit(paths)
    assert not w.flush(0.3)
    assert w.stats()["last_error"] and w.stats()["indexed"] == 0
    blocker.unlink()
    assert w.stop(10)
    assert w.stats()["indexed"] == 1
    assert search_paths(db, capsys, "scenery") == paths


def test_attempts_are_bounded_and_what_failed_is_counted(tmp_path: Path) -> None:
    blocker = tmp_path / "cat"
    blocker.write_text("")
    w = Writer(str(blocker / "cat.sqlite"), backoff_s=0.001, max_backoff_s=0.001, attempts=3)
    w.submit(saved_files(tmp_path / "out", count=1))
    assert w.stop(10)
    assert (w.stats()["failed"], w.stats()["retries"]) == (1, 2)


def test_a_full_queue_drops_the_oldest_and_counts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gate, real = threading.Event(), writer.examine
    monkeypatch.setattr(writer, "examine", lambda path: (gate.wait(10), real(path))[1])
    w = Writer(str(tmp_path / "cat.sqlite"), capacity=3)
    with caplog.at_level(logging.WARNING, logger="comfyui_provenance.catalogue.writer"):
        w.submit([str(tmp_path / f"{i}.png") for i in range(10)])
    gate.set()
    assert w.stop(10)
    stats = w.stats()
    assert stats["submitted"] == 10 and stats["dropped"] >= 6 and stats["queued"] == 0
    assert len([r for r in caplog.records if "queue is full" in r.getMessage()]) == 1
    assert writer.status() == {}  # a private Writer is not a shared one


# -- the node, end to end with ComfyUI faked -----------------------------------------------------------------------
@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(compat, "user_directory", lambda: tmp_path / "user")
    monkeypatch.setattr(compat, "metadata_disabled", lambda: False)
    monkeypatch.setattr(compat, "current_prompt_id", lambda: None)
    monkeypatch.setattr(compat, "comfyui_version", lambda: "0.33.0")
    monkeypatch.setattr(compat, "output_directory", lambda: out)
    monkeypatch.setattr(compat, "save_namer", lambda: None)
    monkeypatch.setattr(compat, "searchable_directories", lambda: [out])
    monkeypatch.setattr(save_image, "comfyui_hasher", lambda models: None)
    settings.set_file(None)
    api, ui = load_workflow("default")

    def run(**inputs: Any) -> list[str]:
        before = set(out.iterdir())
        save_image.run(
            **{
                "images": [pixels()],
                "filename_prefix": "node",
                "format": "png",
                "quality": 95,
                "lossless": False,
                "targets": None,
                "prompt": api,
                "extra_pnginfo": {"workflow": ui},
                "unique_id": "9",
                **inputs,
            }
        )
        return sorted(str(p) for p in set(out.iterdir()) - before)

    return run


def test_a_save_with_the_catalogue_on_is_indexed(
    node: Callable[..., list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = node()
    db = tmp_path / "user" / "provenance" / "catalogue.sqlite"
    assert list(writer.status()) == [str(db)]
    writer.stop_all()
    assert search_paths(db, capsys, "scenery") == paths


def test_the_options_input_turns_the_catalogue_off_for_one_save(
    node: Callable[..., list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = node(filename_prefix="kept")
    node(filename_prefix="skipped", options='{"catalogue": false}')
    writer.stop_all()
    db = tmp_path / "user" / "provenance" / "catalogue.sqlite"
    assert search_paths(db, capsys, "scenery") == kept


def test_the_catalogue_url_setting_names_the_catalogue(
    node: Callable[..., list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "elsewhere.sqlite"
    monkeypatch.setenv("PROVENANCE_CATALOGUE_URL", f"sqlite:///{db}")
    paths = node()
    writer.stop_all()
    assert search_paths(db, capsys, "scenery") == paths


def test_a_broken_writer_never_fails_the_save(
    node: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(where: str) -> Writer:
        raise RuntimeError("no writer today")

    monkeypatch.setattr(writer, "shared", broken)
    with caplog.at_level(logging.WARNING):
        assert len(node()) == 1
    assert any("not queued for the catalogue" in r.getMessage() for r in caplog.records)


# -- a full disk under the catalogue (a real tmpfs: ENOSPC from the kernel, SQLITE_FULL from SQLite) ---------------
def fill_up(disk: Path) -> Path:
    """Take every free byte of `disk` with one file; deleting it frees them again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        for block in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):  # ENOSPC: as full as blocks of this size get
                while os.write(fd, bytes(block)):
                    pass
    finally:
        os.close(fd)
    return filler


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def test_a_full_disk_under_the_catalogue_never_touches_saves_and_indexing_resumes(
    node: Callable[..., list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = writer.Writer
    monkeypatch.setattr(writer, "Writer", lambda where: real(where, backoff_s=0.05, max_backoff_s=0.2, attempts=10**6))
    with small_disk(tmp_path / "disk", "1m") as disk:
        db = disk / "cat.sqlite"
        monkeypatch.setenv("PROVENANCE_CATALOGUE_URL", f"sqlite:///{db}")
        before = node(filename_prefix="before")  # the catalogue is made while there is room
        (shared,) = writer._writers.values()
        assert shared.flush(20) and shared.stats()["indexed"] == 1
        filler = fill_up(disk)
        with caplog.at_level(logging.WARNING, logger="comfyui_provenance.catalogue.writer"):
            during = node(filename_prefix="during") + node(filename_prefix="during")
            assert len(during) == 2  # both saved in full, on the disk beside the full one
            assert all(read(p).generation.positive and "scenery" in read(p).generation.positive for p in during)
            assert wait_for(lambda: shared.stats()["failing"])
            stats = shared.stats()
            assert "full" in stats["last_error"] and stats["indexed"] == 1 and stats["retries"] >= 1
            filler.unlink()
            assert shared.flush(30)
        assert (shared.stats()["indexed"], shared.stats()["failed"], shared.stats()["failing"]) == (3, 0, False)
        messages = [r.getMessage() for r in caplog.records]
        assert sum("cannot index" in m for m in messages) == 1 and any("writable again" in m for m in messages)
        writer.stop_all()
        assert search_paths(db, capsys, "scenery") == sorted(before + during)
        with sqlite3.connect(db) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_index_on_a_full_disk_says_so_in_one_line_and_a_rerun_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = saved_files(tmp_path / "out", count=6)
    with small_disk(tmp_path / "disk", "1m") as disk:
        db = disk / "cat.sqlite"
        assert main(["index", paths[0], "--db", str(db)]) == 0
        filler = fill_up(disk)
        capsys.readouterr()
        assert main(["index", str(tmp_path / "out"), "--db", str(db), "--jobs", "1"]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "full" in err[0] and "Traceback" not in err[0], err
        filler.unlink()  # (searching needs room too: SQLite makes its shared-memory index beside the file)
        assert search_paths(db, capsys, "scenery") == [paths[0]]  # the failed batch left nothing half-written
        capsys.readouterr()
        assert main(["index", str(tmp_path / "out"), "--db", str(db)]) == 0
        assert "5 new, 1 unchanged" in capsys.readouterr().err
        assert search_paths(db, capsys, "scenery") == sorted(paths)
        with sqlite3.connect(db) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- GET /provenance/search ------------------------------------------------------------------------------------------
def get_search(**params: str) -> tuple[int, Any]:
    class Table(list):  # type: ignore[type-arg]
        def get(self, path: str) -> Callable[[Any], Any]:
            def add(handler: Any) -> Any:
                self.append(SimpleNamespace(path=path, handler=handler))
                return handler

            return add

    table = Table()
    route.register(table, dict)
    (handler,) = [r.handler for r in table if r.path == route.SEARCH_PATH]
    request = SimpleNamespace(rel_url=SimpleNamespace(query=params))
    return asyncio.run(handler(request))  # type: ignore[no-any-return]


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(route, "_json", lambda data, status=200: (status, data))


def test_the_search_route_pages_matches_under_comfyuis_folders(
    node: Callable[..., list[str]], tmp_path: Path, web: None
) -> None:
    paths = [p for _ in range(3) for p in node()]
    writer.stop_all()
    db = tmp_path / "user" / "provenance" / "catalogue.sqlite"
    outside = saved_files(tmp_path / "elsewhere", count=1)
    w = Writer(str(db))
    w.submit(outside)
    assert w.stop()
    status, body = get_search(text="scenery", limit="2")
    assert status == 200 and (body["limit"], body["offset"], body["next_offset"]) == (2, 0, 2)
    first = [r["path"] for r in body["results"]]
    status, body = get_search(text="scenery", limit="2", offset="2")
    rest = [r["path"] for r in body["results"]]
    assert body["next_offset"] is None
    assert sorted(first + rest) == sorted(paths) and outside[0] not in first + rest
    status, body = get_search(seed="999999")
    assert (status, body["results"]) == (200, [])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "201"}, "limit must be 1..200"),
        ({"limit": "many"}, "limit must be a whole number"),
        ({"since": "yesterday"}, "since"),
        ({"offset": "-1"}, "offset"),
        ({"color": "red"}, "unknown parameter 'color'"),
    ],
)
def test_bad_search_parameters_are_a_400(
    node: Callable[..., list[str]], web: None, params: dict[str, str], message: str
) -> None:
    status, body = get_search(**params)
    assert status == 400 and message in body["error"] and "\n" not in body["error"]


def test_no_catalogue_yet_is_an_empty_answer_with_a_note(
    node: Callable[..., list[str]], tmp_path: Path, web: None
) -> None:
    status, body = get_search(text="scenery")
    assert status == 200 and body["results"] == [] and body["note"]
    assert not (tmp_path / "user" / "provenance" / "catalogue.sqlite").exists()  # read-only: nothing created

"""Against a real ComfyUI (COMFYUI_PATH): files the save nodes write are found by `provenance search`.

Issue 11's acceptance, twice: a fresh ComfyUI with the pack saves an SD1.5 image and a video from
the random checkpoint and LoRA, its background writer indexes them into the default SQLite
catalogue in ComfyUI's user folder, and `provenance search --lora NAME` finds both; then the same
with PROVENANCE_CATALOGUE_URL pointing every save at a throwaway PostgreSQL. Without
COMFYUI_PATH every test here is skipped.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import comfyui_harness as harness
import pytest
from pg_cluster import PgCluster
from test_comfyui import files_of, require_sd, sd_graph

from comfyui_provenance.cli.main import main

pytestmark = pytest.mark.comfyui

LORA_TYPED = "random_sd15_lora"  # as a user types it: no folder, no extension
INDEX_WAIT_S = 60.0


def saves(prefix: str) -> dict[str, dict[str, Any]]:
    return {
        "9": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
        "20": {
            "class_type": "ProvenanceSaveVideo",
            "inputs": {"images": ["8", 0], "filename_prefix": f"{prefix}_video", "format": "mp4", "fps": 8.0},
        },
    }


def found(db: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """What `provenance search --lora` finds, waiting for the background writer (it indexes off the save)."""
    deadline = time.monotonic() + INDEX_WAIT_S
    while True:
        status = main(["search", "--lora", LORA_TYPED, "--db", db, "--format", "json"])
        out = capsys.readouterr().out
        rows = json.loads(out) if status == 0 and out.strip() else []
        if len(rows) >= 2 or time.monotonic() > deadline:
            return rows  # type: ignore[no-any-return]
        time.sleep(0.5)


def run_and_search(server: Any, db: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, entry = server.run(sd_graph(7, saves(prefix)), timeout=300)
    written = {p.resolve() for node in ("9", "20") for p in files_of(server, entry["outputs"][node]["images"])}
    rows = found(db, capsys)
    assert {Path(r["path"]).resolve() for r in rows} >= written, (rows, server.log_tail())
    kinds = {Path(r["path"]).suffix for r in rows}
    assert {".png", ".mp4"} <= kinds


def test_saves_are_found_in_the_default_sqlite_catalogue(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = harness.require_checkout("real-ComfyUI catalogue tests")
    require_sd(checkout)
    server = harness.Server(checkout, tmp_path_factory.mktemp("comfyui_catalogue"))
    try:
        server.wait_ready()
        run_and_search(server, str(server.user / "provenance" / "catalogue.sqlite"), "cat/sqlite", capsys)
    finally:
        server.stop()


def test_saves_are_found_in_postgresql(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = harness.require_checkout("real-ComfyUI catalogue tests")
    require_sd(checkout)
    probe = subprocess.run([harness.comfyui_python(checkout), "-c", "import psycopg"], check=False, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("ComfyUI's Python has no psycopg: pip install 'comfyui-provenance[postgres]' there")
    with PgCluster(dbname="catalogue") as pg:
        env = {"PROVENANCE_CATALOGUE_URL": pg.url}
        server = harness.Server(checkout, tmp_path_factory.mktemp("comfyui_catalogue_pg"), env=env)
        try:
            server.wait_ready()
            run_and_search(server, pg.url, "cat/pg", capsys)
        finally:
            server.stop()

"""The throwaway PostgreSQL cluster the catalogue's PostgreSQL tests run on (tests/pg_cluster.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pg_cluster import PgCluster, alive, find_bindir, postgres_db_fixture, postgres_fixture  # noqa: F401
from readers.common import unavailable

PROMPTS = [
    "a lighthouse on a cliff at dusk, dramatic clouds",
    "portrait of an old fisherman, film grain",
    "lighthouses along a stormy coast",
]


@pytest.fixture
def psycopg() -> ModuleType:
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install '.[postgres]')")
    return psycopg


def _gone(cluster_root: Path, pid: int) -> bool:
    return not alive(pid) and not cluster_root.exists()


def _fill(psycopg: Any, url: str, prompts: list[str]) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE generations (id serial PRIMARY KEY, prompt text NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO generations (prompt) VALUES (%s)", [(p,) for p in prompts])


def _search(psycopg: Any, url: str, text: str) -> list[str]:
    query = (
        "SELECT prompt FROM generations "
        "WHERE to_tsvector('english', prompt) @@ plainto_tsquery('english', %s) ORDER BY id"
    )
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(query, (text,))]


def test_full_text_search_then_everything_is_gone(psycopg: Any) -> None:
    with PgCluster() as pg:
        root, pid = pg.root, pg.pid
        assert root is not None and pid is not None
        assert pg.url.startswith("postgresql://") and pg.url.endswith(f"host={root}&port={pg.port}")
        _fill(psycopg, pg.url, PROMPTS)
        # English stemming: "lighthouse" finds "lighthouses"; every word of the query must match.
        assert _search(psycopg, pg.url, "lighthouse") == [PROMPTS[0], PROMPTS[2]]
        assert _search(psycopg, pg.url, "stormy lighthouse") == [PROMPTS[2]]
        assert _search(psycopg, pg.url, "'; DROP TABLE generations; --") == []
    assert _gone(root, pid)
    assert pg.root is None


def test_the_server_never_runs_as_root() -> None:
    with PgCluster() as pg:
        assert pg.pid is not None
        status = Path(f"/proc/{pg.pid}/status").read_text()
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        assert uid != 0
        assert uid == (pg.owner.pw_uid if pg.owner else os.geteuid())


def test_two_clusters_at_once_do_not_collide(psycopg: Any) -> None:
    # Both unix-socket clusters use port 5432, each in its own socket dir; the third listens on TCP.
    with PgCluster() as one, PgCluster() as two, PgCluster(tcp=True) as three:
        assert len({one.url, two.url, three.url}) == 3
        assert one.port == two.port and three.port != one.port and "host=127.0.0.1" in three.url
        for cluster, prompts in ((one, PROMPTS[:1]), (two, PROMPTS[1:2]), (three, PROMPTS[2:])):
            _fill(psycopg, cluster.url, prompts)
        assert _search(psycopg, one.url, "lighthouse") == PROMPTS[:1]
        assert _search(psycopg, two.url, "lighthouse") == []
        assert _search(psycopg, three.url, "lighthouse") == PROMPTS[2:]
        running = [(c.root, c.pid) for c in (one, two, three)]
    assert all(_gone(root, pid) for root, pid in running if root and pid)


def test_a_failing_body_still_stops_and_deletes_the_cluster() -> None:
    seen: dict[str, Any] = {}
    with pytest.raises(RuntimeError, match="the test failed"), PgCluster() as pg:
        seen.update(root=pg.root, pid=pg.pid)
        raise RuntimeError("the test failed")
    assert _gone(seen["root"], seen["pid"])


@pytest.mark.parametrize("tcp", [False, True], ids=["socket", "tcp"])
def test_stop_and_start_keep_the_data_and_the_url(psycopg: Any, tcp: bool) -> None:
    # What the catalogue's "PostgreSQL down mid-batch" tests do.
    with PgCluster(tcp=tcp) as pg:
        url = pg.url
        _fill(psycopg, url, PROMPTS)
        pg.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=5)
        pg.start()
        assert pg.url == url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM generations").fetchone() == (3,)


def test_a_private_tmpdir_is_refused_as_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root hands the cluster to another user")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr("tempfile.tempdir", str(private))
    with pytest.raises(RuntimeError, match="set TMPDIR"), PgCluster():
        pass
    assert list(private.iterdir()) == []


def test_a_killed_server_is_still_cleaned_up() -> None:
    pg = PgCluster()
    with pg:
        root, pid = pg.root, pg.pid
        assert root is not None and pid is not None
        os.kill(pid, signal.SIGKILL)
    assert _gone(root, pid)


def test_fixtures_give_each_test_a_fresh_database(psycopg: Any, postgres: PgCluster, postgres_db: str) -> None:
    assert postgres_db.startswith("postgresql://") and postgres_db != postgres.url
    _fill(psycopg, postgres_db, PROMPTS)
    assert _search(psycopg, postgres_db, "fisherman") == [PROMPTS[1]]


def test_fixtures_database_is_dropped_after_the_test(postgres: PgCluster, postgres_db: str) -> None:
    # The test above's database is gone; only this test's is left.
    left = postgres.psql("SELECT datname FROM pg_database WHERE datname LIKE 'test%'").split()
    assert [postgres.url_for(name) for name in left] == [postgres_db]


def test_missing_binaries_skip_or_fail_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("pg_cluster.find_bindir", lambda: None)
    monkeypatch.delenv("PROVENANCE_REQUIRE_READERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package postgresql"):
        PgCluster()
    monkeypatch.setenv("PROVENANCE_REQUIRE_READERS", "1")
    with pytest.raises(pytest.fail.Exception, match="PROVENANCE_REQUIRE_READERS=1"):
        PgCluster()


def test_bindir_can_be_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("initdb", "pg_ctl", "postgres"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PROVENANCE_PG_BINDIR", str(tmp_path))
    assert find_bindir() == tmp_path
    (tmp_path / "pg_ctl").unlink()
    assert find_bindir() != tmp_path

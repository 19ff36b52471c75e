"""A throwaway PostgreSQL cluster for tests: Debian's binaries, a temp dir, a unix socket, gone on exit."""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import pytest
from readers.common import unavailable

SUPERUSER = "postgres"
DBNAME = "provenance"
TIMEOUT = 60
# PostgreSQL refuses to run as root; as root the cluster belongs to this user (PROVENANCE_PG_USER overrides).
DEFAULT_USER = "nobody"
# Durability is worthless in a cluster that is deleted after the test; dropping it makes writes fast.
FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "100",
}
# pg_ctl's shutdown modes and the signals they send the postmaster.
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def find_bindir() -> Path | None:
    """The newest PostgreSQL bin directory with initdb and pg_ctl: PROVENANCE_PG_BINDIR, Debian's
    /usr/lib/postgresql/<version>/bin (not on PATH there), then PATH."""
    wanted = ("initdb", "pg_ctl", "postgres")
    candidates = [os.environ.get("PROVENANCE_PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    for candidate in filter(None, candidates):
        if all(os.access(Path(candidate, name), os.X_OK) for name in wanted):
            return Path(candidate)
    return None


def _version(bindir: str) -> tuple[int, ...]:
    parts = Path(bindir).parent.name.split(".")
    return tuple(int(p) for p in parts if p.isdigit())


def require_bindir() -> Path:
    """find_bindir(), or skip the test (a failure under PROVENANCE_REQUIRE_READERS=1)."""
    bindir = find_bindir()
    if bindir is None:
        unavailable("PostgreSQL's initdb/pg_ctl not found (Debian package postgresql, or set PROVENANCE_PG_BINDIR)")
    return bindir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """A PostgreSQL cluster in its own temp dir, started on enter and stopped and deleted on exit.

    with PgCluster() as pg:
        psycopg.connect(pg.url)          # postgresql://postgres@/provenance?host=<socket dir>&port=<port>

    The server listens on a unix socket in the temp dir (no port collides); tcp=True also listens on a
    free 127.0.0.1 port and `url` uses it. stop()/start() take the server down and bring it back with its
    data (for fault tests); the cluster itself is deleted only by close()/exit, which also runs when the
    body raises.
    """

    def __init__(
        self,
        dbname: str = DBNAME,
        *,
        tcp: bool = False,
        settings: Mapping[str, str] | None = None,
        bindir: Path | None = None,
    ) -> None:
        self.dbname = dbname
        self.tcp = tcp
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.bindir = bindir or require_bindir()
        self.owner = _owner()
        self.root: Path | None = None
        self.port = 5432
        self.pid: int | None = None
        self.started = False

    # ---- paths and URLs ------------------------------------------------------------------------

    @property
    def data(self) -> Path:
        return self._root / "data"

    @property
    def log(self) -> Path:
        return self._root / "server.log"

    @property
    def socket_dir(self) -> Path:
        return self._root

    @property
    def host(self) -> str:
        return "127.0.0.1" if self.tcp else str(self.socket_dir)

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        """A libpq URL (psycopg 3, psql) for another database of this cluster."""
        return f"postgresql://{SUPERUSER}@/{quote(dbname, safe='')}?host={quote(self.host, safe='/')}&port={self.port}"

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("the cluster is not created yet (use it as a context manager)")
        return self.root

    # ---- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> PgCluster:
        try:
            self.create()
            self.start()
            self.createdb(self.dbname)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def create(self) -> None:
        """A fresh cluster in a new temp dir, copied from a per-process initdb template."""
        self.root = Path(tempfile.mkdtemp(prefix="provenance-pg-"))
        _chown(self.root, self.owner)
        _check_reachable(self.root, self.owner)
        if self.tcp:
            self.port = _free_port()
        self._run(["cp", "-a", str(_template(self.bindir, self.owner)), str(self.data)])
        conf = {
            **self.settings,
            "listen_addresses": "'127.0.0.1'" if self.tcp else "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as f:
            f.writelines(f"{key} = {value}\n" for key, value in conf.items())

    def start(self) -> None:
        """Start the server and wait until it accepts connections. With tcp=True a port taken in the meantime
        means another free port on the first start; a restart keeps the port, so `url` stays valid."""
        for attempt in range(3):
            args = [str(self.bindir / "pg_ctl"), "start", "-w", "-t", str(TIMEOUT), "-D", str(self.data)]
            args += ["-l", str(self.log), "-o", f"-p {self.port}"]
            result = self._run(args, check=False)
            self._adopt()  # a server that started but did not answer in time is still ours to stop
            if result.returncode == 0:
                self.started = True
                return
            if not self.tcp or self.started or attempt == 2:
                raise RuntimeError(f"pg_ctl start failed ({result.returncode}): {result.stderr}\n{self.log_tail()}")
            self.stop("immediate")
            self.port = _free_port()

    def _adopt(self) -> None:
        with contextlib.suppress(OSError, IndexError, ValueError):
            self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self, mode: str = "fast") -> None:
        """Stop the server and wait for it to exit; the data stays for start(). The modes are pg_ctl's (smart
        waits for clients, fast disconnects them, immediate skips the shutdown checkpoint), but the signal is
        sent here: pg_ctl only waits for the pid file, and misreads a killed server that is not reaped yet."""
        if self.pid is not None:
            _end(self.pid, STOP_SIGNALS[mode])
            self.pid = None

    def close(self) -> None:
        """Stop the server however it can be stopped and delete the temp dir."""
        try:
            self.stop("immediate")
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    # ---- databases -----------------------------------------------------------------------------

    def createdb(self, dbname: str) -> None:
        self._client("createdb", dbname)

    def dropdb(self, dbname: str) -> None:
        """Drop a database, closing its open connections."""
        self._client("dropdb", "--force", "--if-exists", dbname)

    def psql(self, sql: str, dbname: str | None = None) -> str:
        """Run SQL through psql; its unaligned, tuples-only output."""
        args = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dbname or self.dbname, "-c", sql]
        return self._client("psql", *args).stdout

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _client(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        base = [str(self.bindir / program), "-h", self.host, "-p", str(self.port), "-U", SUPERUSER]
        return _run([*base, *args], None, cwd=self.root)

    def _run(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a server program as the cluster's owner."""
        return _run(args, self.owner, cwd=self.root, check=check)


def _owner() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root; None means ourselves."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("PROVENANCE_PG_USER", DEFAULT_USER)
    try:
        return pwd.getpwnam(name)
    except KeyError as err:
        reason = f"as root, PostgreSQL needs an unprivileged user; {name!r} does not exist (PROVENANCE_PG_USER)"
        raise RuntimeError(reason) from err


def _chown(path: Path, owner: pwd.struct_passwd | None) -> None:
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _check_reachable(path: Path, owner: pwd.struct_passwd | None) -> None:
    """As root, the owner must be able to reach the temp dir: a private TMPDIR would fail later, obscurely."""
    if owner is None:
        return
    for parent in path.parents:
        info = parent.stat()
        if info.st_uid != owner.pw_uid and not info.st_mode & stat.S_IXOTH:
            raise RuntimeError(f"{owner.pw_name} cannot reach {path} ({parent} is private); set TMPDIR to e.g. /tmp")


def _run(
    args: Sequence[str], owner: pwd.struct_passwd | None, *, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a program, as `owner` when given (no runuser/su: Python switches uid and gid itself)."""
    extra: dict[str, Any] = {}
    env = {**os.environ, "LC_ALL": "C", "PGTZ": "UTC"}
    if owner is not None:
        extra = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        env["HOME"] = str(cwd or "/")
    result = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd or "/",
        env=env,
        check=False,
        **extra,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


@functools.cache
def _template(bindir: Path, owner: pwd.struct_passwd | None) -> Path:
    """An initdb'd data dir, made once per process and copied for each cluster (initdb ≈ 0.6 s, a copy ≈ 0.1 s)."""
    root = Path(tempfile.mkdtemp(prefix="provenance-pg-template-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    _chown(root, owner)
    args = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER, "-A", "trust"]
    args += ["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
    _run(args, owner, cwd=root)
    return root / "data"


def _end(pid: int, sig: signal.Signals) -> None:
    """Send `sig` and wait for the process to exit; SIGKILL it if it has not within TIMEOUT."""
    for signum, wait in ((sig, TIMEOUT), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.01)


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for init to reap it does not)."""
    try:
        proc = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return proc.rpartition(")")[2].split()[0] not in ("Z", "X")


# ---- pytest fixtures `postgres` and `postgres_db`; a test module imports them under these names:
#      from pg_cluster import postgres_db_fixture, postgres_fixture


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture() -> Iterator[PgCluster]:
    """One cluster for the whole session."""
    with PgCluster() as cluster:
        yield cluster


_DATABASES = itertools.count()


@pytest.fixture(name="postgres_db")
def postgres_db_fixture(postgres: PgCluster) -> Iterator[str]:
    """The URL of a fresh database in the session's cluster, dropped after the test."""
    name = f"test_{next(_DATABASES)}"
    postgres.dropdb(name)
    postgres.createdb(name)
    try:
        yield postgres.url_for(name)
    finally:
        postgres.dropdb(name)

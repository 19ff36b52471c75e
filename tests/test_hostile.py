"""Every reader entry point on every hostile file (tests/hostile.py), each case in its own process.

`read`, `read --json`, `parse`, `convert` and `verify` run one after another in a subprocess under an
address-space limit; the case passes when each gave at most one line on stderr and no traceback,
the readers' verdict is the case's (a clean error, or a record read from what is sound), the
process's peak memory stayed under the acceptance bound, and every file of the case is byte for
byte what it was. The wall-clock limit only catches hangs: speed is measured in benchmarks/.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import hostile
import pytest

HERE = Path(__file__).resolve().parent
ADDRESS_SPACE = 2 << 30  # a runaway allocation fails here instead of taking the machine
PEAK_RSS_MAX_MB = 300  # issue 7's acceptance, for all four entry points of a case together
HANG_S = 120


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, hostile.Case]:
    return {case.name: case for case in hostile.build(tmp_path_factory.mktemp("hostile"))}


def digest(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def run_case(case: hostile.Case, out: Path) -> tuple[dict[str, Any], str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "hostile.py"), "--run", str(case.image), str(out)],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            preexec_fn=limit,  # noqa: PLW1509 - pytest starts no threads that could hold a lock here
        )
        try:
            process.wait(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"{case.name}: the readers did not finish within {HANG_S} s")
        stdout.seek(0)
        stderr.seek(0)
        text, errors = stdout.read().decode(), stderr.read().decode(errors="replace")
    assert process.returncode == 0, f"{case.name}: the run itself failed ({process.returncode}): {errors[-2000:]}"
    return json.loads(text), errors


@pytest.mark.parametrize("name", list(hostile.CASES))
def test_hostile_file(name: str, cases: dict[str, hostile.Case], tmp_path: Path) -> None:
    case = cases[name]
    before = digest(case.files)
    report, errors = run_case(case, tmp_path / "out")
    assert "Traceback" not in errors, errors
    for entry in hostile.ENTRIES:
        result = report[entry]
        stderr = result["stderr"]
        assert "Traceback" not in stderr, f"{entry}: {stderr}"
        assert stderr.count("\n") <= 1, f"{entry} said more than one line: {stderr!r}"
        assert result["status"] in (0, 1), f"{entry}: exit status {result['status']}"
    for entry in ("read", "read --json"):
        result = report[entry]
        if case.expect == "error":
            assert result["status"] == 1 and result["stderr"].startswith(f"{case.image}: "), (entry, result)
            if case.says:
                assert case.says in result["stderr"].lower(), (entry, result["stderr"])
        else:
            assert result["status"] == 0, (entry, result)
    peak_mb = report["maxrss_kb"] / 1024
    assert peak_mb < PEAK_RSS_MAX_MB, f"peak RSS {peak_mb:.0f} MB"
    assert digest(case.files) == before, "a reader changed the case's files"
    leftovers = [p.name for p in case.image.parent.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_the_generator_covers_every_carrier() -> None:
    """The acceptance names these; a case list that loses one fails here."""
    names = " ".join(hostile.CASES)
    for needed in (
        "xmp-billion-laughs", "sidecar-xmp", "ztxt-bomb", "split-bomb", "claims", "truncated", "exif-huge-count",
        "exif-cycle", "deep-json", "record-models-int", "record-refs-string", "record-warnings-int",
        "sidecar-json-fifo", "sidecar-json-dev-zero", "runtime-sidecar-fifo", "image-is-a-fifo",
        "graph-200000-nodes", "combine-chain-10000", "prompt-50-mb",
    ):  # fmt: skip
        assert needed in names, needed


def test_fifo_cases_exist_where_the_platform_has_fifos() -> None:
    assert hasattr(os, "mkfifo"), "these tests need a POSIX system"

"""The real `provenance` process in a pipeline: a reader that stops early, and inputs that fail, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CORPUS, context_for

from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.save import SavedFile

COMMAND = [sys.executable, "-m", "comfyui_provenance.cli.main"]
PIPE_BUFFER = 1 << 16  # Linux's default pipe capacity: more than this blocks the writer until read


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False)


def closed_early(*args: str, keep: int) -> tuple[int, str]:
    """Like `provenance ARGS | head -c KEEP`: read `keep` bytes, close the pipe; (exit status, stderr)."""
    proc = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    if keep:
        assert len(proc.stdout.read(keep)) == keep
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=60), err


READS = [["read"], ["read", "--json"], ["read", "--jsonl"]]
REPEAT = 20  # the folder named this many times: output well over the pipe buffer in every mode


@pytest.fixture
def images(save: Callable[..., SavedFile], tmp_path: Path) -> list[str]:
    """`read` arguments whose output is bigger than the pipe buffer, so the writer must meet the closed end."""
    for name in ("lora", "lora_multiple", "hiresfix_latent_workflow", "default"):
        for fmt in ("png", "webp"):
            save(context_for(name), format=fmt, targets=frozenset(TARGETS))
    return [str(tmp_path)] * REPEAT


@pytest.mark.parametrize("keep", [0, 10])
@pytest.mark.parametrize("argv", READS)
def test_read_into_a_closed_pipe_is_quiet(images: list[str], argv: list[str], keep: int) -> None:
    status, err = closed_early(*argv, *images, keep=keep)
    assert (status, err) == (141, "")


def test_read_output_is_bigger_than_the_pipe(images: list[str]) -> None:
    """Guards the test above: output the pipe can hold whole would never fail to write, fix or no fix."""
    for argv in READS:
        done = run(*argv, *images)
        assert done.returncode == 0 and len(done.stdout.encode()) > 2 * PIPE_BUFFER, argv


@pytest.mark.parametrize(
    "argv",
    [
        ["rules", "list"],
        ["parse", str(CORPUS / "lora.api.json"), "--json"],
        ["--help"],
        [],
    ],
)
def test_other_commands_into_a_closed_pipe_are_quiet(argv: list[str]) -> None:
    status, err = closed_early(*argv, keep=0)
    assert "Traceback" not in err and "Exception ignored" not in err and err == ""
    assert status in (0, 141)  # --help may finish writing into the pipe buffer before the close


def test_demo_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    status, err = closed_early("demo", "--out", str(tmp_path), keep=0)
    assert (status, err) == (141, "")


def test_parse_takes_a_saved_image(save: Callable[..., SavedFile]) -> None:
    done = run("parse", str(save(context_for("lora"), format="webp").path))
    assert done.returncode == 0 and "seed 261660645921551" in done.stdout and done.stderr == ""


BAD_INPUTS = [
    b"",
    b"\x89PNG\r\n\x1a\n garbage",
    bytes(range(256)) * 8,
    b"RIFF\x00\x10\x00\x00WEBP" + bytes(64),
    b"[" * 50_000,
]


def bad_files(folder: Path) -> list[Path]:
    paths = [folder / f"bad{i}.png" for i in range(len(BAD_INPUTS))]
    for path, content in zip(paths, BAD_INPUTS, strict=True):
        path.write_bytes(content)
    return paths


def test_read_bad_input_is_one_line_each_not_a_traceback(tmp_path: Path) -> None:
    paths = bad_files(tmp_path)
    done = run("read", *map(str, paths))
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and done.stdout == "" and len(lines) == len(paths), done.stderr
    assert all(line.startswith(f"{path}: ") for line, path in zip(lines, paths, strict=True))


@pytest.mark.parametrize("index", range(len(BAD_INPUTS)))
def test_parse_bad_input_is_one_line_not_a_traceback(tmp_path: Path, index: int) -> None:
    path = bad_files(tmp_path)[index]
    done = run("parse", str(path))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"{path}: "), done.stderr


@pytest.mark.parametrize(
    "argv,status,start",
    [
        (["read", "missing.png"], 1, "missing.png: cannot open"),
        (["parse", "missing.json"], 1, "missing.json: cannot open"),
        (["demo", "--targets", "bogus"], 2, "provenance: --targets: unknown target bogus; allowed: a1111"),
        (["convert", "--in-place", ".", "--targets", ","], 2, "provenance: --targets: no target; allowed:"),
    ],
)
def test_failures_are_one_line(tmp_path: Path, argv: list[str], status: int, start: str) -> None:
    done = subprocess.run([*COMMAND, *argv], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert done.returncode == status and done.stderr.count("\n") == 1 and done.stderr.startswith(start), done.stderr
    assert list(tmp_path.iterdir()) == []

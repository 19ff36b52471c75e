"""The `provenance` command's shape: global flags, --version, bare help, clean summaries, errors as one line."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import context_for

from comfyui_provenance import __version__
from comfyui_provenance.cli import parse
from comfyui_provenance.cli import read as read_command
from comfyui_provenance.cli.main import main
from comfyui_provenance.cli.summary import number, summary
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Generation, Model, Pass, Record
from comfyui_provenance.metadata.save import SavedFile


@pytest.mark.parametrize("argv", [["--version"], ["read", "--version"], ["rules", "list", "--version"]])
def test_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out == f"provenance {__version__}\n"


def test_bare_command_prints_help_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: provenance") and "read" in captured.out and captured.err == ""
    assert main(["rules"]) == 0
    assert capsys.readouterr().out.startswith("usage: provenance rules")


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read"]) == 2
    assert main(["frobnicate"]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_works_before_or_after_the_subcommand(
    where: str,
    save: Callable[..., SavedFile],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """-v anywhere shows an unforeseen error's traceback; without it, one line and no traceback."""
    path = str(save(context_for("default")).path)

    def broken(_: object) -> Record:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(read_command, "read", broken)
    argv = ["-v", "read", path] if where == "before" else ["read", path, "-v"]
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        f"{path}: internal error (RuntimeError: boom second line); run with -v to see where\n"
    )
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno == logging.DEBUG]
    assert len(tracebacks) == 1 and "RuntimeError" in caplog.text
    caplog.clear()
    assert main(["read", path]) == 1
    assert not [r for r in caplog.records if r.exc_info]


def test_an_unforeseen_error_anywhere_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prompt = tmp_path / "prompt.json"
    prompt.write_text(json.dumps({"1": {"class_type": "KSampler", "inputs": {}}}))

    class Broken:
        def parse(self, *args: object) -> Record:
            raise KeyError("inputs")

    monkeypatch.setattr(parse, "WorkflowParser", Broken)
    assert main(["parse", str(prompt)]) == 1
    err = capsys.readouterr().err
    assert err == "provenance: internal error (KeyError: 'inputs'); run with -v to see where\n"


@pytest.mark.parametrize(
    "value,text",
    [(1.0000000000000002, "1"), (0.75, "0.75"), (7.0, "7"), (0.123456, "0.1235"), (-0.0, "0"), (1e-7, "1e-07")],
)
def test_numbers_are_printed_clean(value: float, text: str) -> None:
    assert number(value) == text


def test_summary_leaves_unknowns_out_and_labels_strengths() -> None:
    record = Record(
        generation=Generation(seed=5, cfg=1.0000000000000002, width=832, height=480, frames=81, fps=16.0),
        models=[
            Model(role="lora", name="a.safetensors", strength_model=0.75, strength_clip=1.0),
            Model(role="lora", name="b.safetensors", strength_model=1.0000000000000002),
        ],
        passes=[Pass(node_id="3", steps=20, denoise=1.0), Pass(node_id="9", sampler="euler")],
    )
    text = summary(record)
    assert "None" not in text
    assert "  settings  : seed 5  cfg 1  size 832x480  frames 81  fps 16\n" in text
    assert "a.safetensors  model 0.75, clip 1\n" in text and "b.safetensors  model 1\n" in text
    assert "pass 0 (node 3): steps 20  denoise 1\n" in text and "pass 1 (node 9): sampler euler\n" in text
    assert "  settings  : -" in summary(Record())


def test_video_summary_shows_frames_and_fps(capsys: pytest.CaptureFixture[str]) -> None:
    video = Path(__file__).parent / "corpus" / "images" / "image_to_video_wan-1.webp"
    gen = read(video).generation
    assert main(["read", str(video)]) == 0
    out = capsys.readouterr().out
    assert f"frames {gen.frames}  fps {number(gen.fps)}" in out and "None" not in out

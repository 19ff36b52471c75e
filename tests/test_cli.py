"""The `provenance` command: read, parse and demo, run as a user would (in-process main())."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CORPUS, context_for, expected, load_workflow

from comfyui_provenance.cli import demo
from comfyui_provenance.cli.demo import examples
from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Record
from comfyui_provenance.metadata.save import SavedFile


def test_read_prints_a_summary_and_json(save: Callable[..., SavedFile], capsys: pytest.CaptureFixture[str]) -> None:
    saved = save(context_for("lora"), format="jpeg")
    assert main(["read", str(saved.path)]) == 0
    out = capsys.readouterr().out
    assert "seed 261660645921551" in out and "blindbox_v1_mix.safetensors  model 0.75, clip 1" in out
    assert main(["read", "--json", str(saved.path)]) == 0
    assert saved.record is not None
    assert json.loads(capsys.readouterr().out) == saved.record.to_dict()


def test_read_reports_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["read", str(bad)]) == 1
    assert "bad.png" in capsys.readouterr().err


def test_parse_a_prompt_file(capsys: pytest.CaptureFixture[str]) -> None:
    prompt = CORPUS / "hiresfix_latent_workflow.api.json"
    assert main(["parse", str(prompt), "--save-node", "12", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    want = expected("hiresfix_latent_workflow")
    assert record["generation"]["seed"] == want["seed"]
    assert [p["node_id"] for p in record["passes"]] == [s["node"] for s in want["stages"]]


def test_parse_accepts_a_prompt_request_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"prompt": json.loads((CORPUS / "default.api.json").read_text()), "client_id": "x"}))
    assert main(["parse", str(body)]) == 0
    assert "seed 685468484323813" in capsys.readouterr().out


def test_parse_refuses_a_ui_workflow_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    ui = CORPUS / "default.ui.json"
    assert main(["parse", str(ui)]) == 1
    assert capsys.readouterr().err.startswith(f"{ui}: this is a UI workflow; export it with 'Export (API)'")


def test_demo_writes_every_example_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--targets", "a1111,comfyui,record,xmp,sidecar_json"]) == 0
    out = capsys.readouterr().out
    images = sorted(p for p in tmp_path.iterdir() if p.suffix in (".png", ".jpg", ".webp"))
    assert len(images) == 3 * len(list((Path(__file__).parents[1] / "metadata" / "examples").glob("*.api.json")))
    assert "0 read back differently" in out
    for image in images:
        assert (tmp_path / (image.name + ".json")).exists()
        assert read(image).provenance.prompt_id is not None


def _models_dir(root: Path) -> dict[str, str]:
    """A models folder holding the lora workflow's checkpoint and LoRA (tiny real safetensors files)."""
    import hashlib

    import numpy as np
    from safetensors.numpy import save_file

    files = {
        "checkpoints/dreamshaper_8.safetensors": np.ones((32, 32), dtype=np.float32),
        "loras/blindbox_v1_mix.safetensors": np.zeros((8, 8), dtype=np.float32),
    }
    autov2 = {}
    for rel, tensor in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"w": tensor}, str(path))
        autov2[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return autov2


def test_parse_hashes_models_from_a_models_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    autov2 = _models_dir(tmp_path / "models")
    argv = ["parse", str(CORPUS / "lora.api.json"), "--json", "--models-dir", str(tmp_path / "models")]
    assert main([*argv, "--hash-cache", str(tmp_path / "cache")]) == 0
    record = json.loads(capsys.readouterr().out)
    got = {m["name"]: m["hashes"].get("autov2") for m in record["models"]}
    assert got == autov2


def test_convert_with_models_dir_writes_civitai_hashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image, PngImagePlugin

    autov2 = _models_dir(tmp_path / "models")
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", (CORPUS / "lora.api.json").read_text())
    source = tmp_path / "in" / "ComfyUI_00001_.png"
    source.parent.mkdir()
    Image.new("RGB", (64, 64)).save(source, pnginfo=info)
    argv = ["convert", str(source), "--out", str(tmp_path / "out"), "--models-dir", str(tmp_path / "models")]
    assert main([*argv, "--hash-cache", str(tmp_path / "cache")]) == 0
    text = Image.open(tmp_path / "out" / source.name).text["parameters"]
    assert f"Model hash: {autov2['dreamshaper_8.safetensors']}" in text
    assert f'"lora:blindbox_v1_mix": "{autov2["blindbox_v1_mix.safetensors"]}"' in text


# -- read: folders, JSON for scripts, one message per bad file ---------------------------------------------

ALL_TARGETS = frozenset(TARGETS)


@pytest.fixture
def folder(save: Callable[..., SavedFile], tmp_path: Path) -> tuple[Path, list[Path]]:
    """Images with every sidecar beside them, one in a sub-folder, and what a walk must leave out."""
    first = save(context_for("lora"), targets=ALL_TARGETS).path
    second = save(context_for("default"), format="webp", targets=ALL_TARGETS).path
    assert {p.name for p in tmp_path.iterdir()} >= {first.name + ext for ext in (".json", ".xmp", ".txt")}
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / "nested.jpg"
    jpeg = save(context_for("lora"), format="jpeg")
    assert not jpeg.sidecars
    jpeg.path.rename(nested)
    (tmp_path / ".hidden.png").write_bytes(first.read_bytes())
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "thumb.png").write_bytes(first.read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path, [first, second, nested]


def test_read_walks_a_folder_and_skips_sidecars(
    folder: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, images = folder
    assert main(["read", "--jsonl", str(root)]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["file"] for line in lines] == [str(p) for p in images]
    assert [line["record"] for line in lines] == [read(p).to_dict() for p in images]
    assert captured.err == ""
    assert main(["read", str(root)]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if not line.startswith(" ")] == [str(p) for p in images]


def test_read_json_is_one_document_for_several_files(
    folder: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, images = folder
    bad = root / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["read", "--json", str(images[0]), str(bad), str(images[1])]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [read(images[0]).to_dict(), read(images[1]).to_dict()]
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"{bad}: ")
    assert main(["read", "--json", str(root / "sub")]) == 0  # a folder is always an array, even of one
    assert json.loads(capsys.readouterr().out) == [read(images[2]).to_dict()]
    (root / "empty").mkdir()
    assert main(["read", "--json", str(root / "empty")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [] and "no PNG, JPEG or WEBP files" in captured.err


def test_read_jsonl_leaves_failures_out_of_stdout(
    folder: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, images = folder
    missing = root / "missing.png"
    assert main(["read", "--jsonl", str(missing), str(images[1])]) == 1
    captured = capsys.readouterr()
    assert [json.loads(line)["file"] for line in captured.out.splitlines()] == [str(images[1])]
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"{missing}: cannot open: ")


def test_read_names_each_bad_file_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing, garbage, text = tmp_path / "nope.png", tmp_path / "garbage.png", tmp_path / "text.png"
    garbage.write_bytes(bytes(range(256)))
    text.write_text("hello")
    assert main(["read", str(missing), str(garbage), str(text)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    for line, path in zip(lines, (missing, garbage, text), strict=True):
        assert line.startswith(f"{path}: ") and line.count(path.name) == 1, line
    assert (
        "cannot open" in lines[0] and "not a PNG, JPEG, WEBP, GIF, MP4/MOV, WebM/MKV, FLAC, MP3 or Ogg file" in lines[1]
    )


# -- parse: prompt files and ComfyUI images, errors in words -------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_parse_takes_a_comfyui_image(
    fmt: str, save: Callable[..., SavedFile], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api, ui = load_workflow("lora")
    saved = save(context_for("lora"), format=fmt, targets=frozenset({"comfyui"}))
    disguised = tmp_path / "looks_like.json"  # told by content, not by name
    disguised.write_bytes(saved.path.read_bytes())
    for path in (saved.path, disguised):
        assert main(["parse", str(path), "--json"]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["generation"]["seed"] == 261660645921551
        assert record["prompt"] == api and record["workflow"] == ui
    assert main(["parse", str(saved.path)]) == 0
    assert "model 0.75, clip 1" in capsys.readouterr().out


def test_parse_says_when_an_image_has_no_comfyui_prompt(
    save: Callable[..., SavedFile], capsys: pytest.CaptureFixture[str]
) -> None:
    saved = save(context_for("lora"), targets=frozenset({"a1111", "record"}))
    assert main(["parse", str(saved.path)]) == 1
    want = f"{saved.path}: carries no ComfyUI prompt (`provenance read` shows what it carries)"
    assert capsys.readouterr().err.splitlines() == [want]


@pytest.mark.parametrize(
    "content,message",
    [
        (b"# a README\n", "not valid JSON (line 1, column 1)"),
        (b'{"a": 1,\n  oops}', "not valid JSON (line 2, column 3)"),
        (b"", "empty, not JSON"),
        (b"BM\x89\xff\x00", "not UTF-8 text, nor an image, video or audio file we read"),
        (b"[1, 2]", "not a JSON object"),
        (b"[" * 100_000, "JSON nests too deeply to decode"),
        (b'{"1": {"inputs": {}}}', "not an API prompt"),
    ],
)
def test_parse_errors_are_one_line_in_words(
    content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    assert main(["parse", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{path}: {message}"), err


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="needs FIFOs and /dev/zero")
def test_parse_refuses_folders_and_devices_without_blocking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, why in ((tmp_path, "a folder"), (fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file")):
        assert main(["parse", str(path)]) == 1
        assert capsys.readouterr().err.startswith(f"{path}: {why}")


# -- demo: what it writes, what it compares -------------------------------------------------------------------


def test_demo_keeps_the_default_targets_and_counts_sidecars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    images = [p for p in tmp_path.iterdir() if p.suffix in (".png", ".jpg", ".webp")]
    sidecars = [p for p in tmp_path.iterdir() if p not in images]
    assert len(images) == 3 * len(examples())
    assert f"{len(images)} images and {len(sidecars)} sidecar" in out
    assert not any(p.suffix in (".xmp", ".txt") for p in sidecars)  # no sidecars unless a format needs one
    assert "0 read back differently" in out and "same record" in out


def test_demo_compares_what_the_targets_carry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--targets", "a1111"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(tuple(name for name, _, _ in examples()))]
    assert len(rows) == 3 * len(examples()) and all("same infotext fields" in row for row in rows)


def test_demo_exits_1_when_a_file_reads_back_differently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "examples", lambda: examples()[:1])

    def off_by_one(path: Path) -> Record:
        record = read(path)
        record.generation.seed = (record.generation.seed or 0) + 1
        return record

    monkeypatch.setattr(demo, "read", off_by_one)
    assert main(["demo", "--out", str(tmp_path / "a"), "--targets", "a1111,xmp"]) == 1
    out = capsys.readouterr().out
    assert out.count("DIFFERENT infotext fields (seed)") == 3 and "3 read back differently" in out
    assert main(["demo", "--out", str(tmp_path / "b")]) == 1
    assert capsys.readouterr().out.count("DIFFERENT record (generation)") == 3


def test_unknown_targets_are_one_usage_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["demo", "--out", str(tmp_path / "demo")], ["convert", str(tmp_path), "--in-place"]):
        assert main([*command, "--targets", "a1111,bogus"]) == 2
        err = capsys.readouterr().err
        assert err == f"provenance: --targets: unknown target bogus; allowed: {', '.join(TARGETS)}\n"
    assert not (tmp_path / "demo").exists()

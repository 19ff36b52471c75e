"""The `provenance` command: read, parse and demo, run as a user would (in-process main())."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CORPUS, context_for, expected

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.save import SavedFile


def test_read_prints_a_summary_and_json(save: Callable[..., SavedFile], capsys: pytest.CaptureFixture[str]) -> None:
    saved = save(context_for("lora"), format="jpeg")
    assert main(["read", str(saved.path)]) == 0
    out = capsys.readouterr().out
    assert "seed 261660645921551" in out and "blindbox_v1_mix.safetensors  strength 0.75/1.0" in out
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


def test_parse_refuses_a_ui_workflow_with_a_clear_message() -> None:
    with pytest.raises(SystemExit, match="UI workflow"):
        main(["parse", str(CORPUS / "default.ui.json")])


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

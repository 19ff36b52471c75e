"""`provenance rules suggest`: the rules the parser inferred, as a user-rules file that checks and pins them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.parser import infer as infer_module
from comfyui_provenance.metadata.parser import schemas
from comfyui_provenance.metadata.parser.infer import infer
from comfyui_provenance.metadata.parser.rules import ENV_RULES_DIR, bundled
from comfyui_provenance.metadata.record import Record

OBJECT_INFO = Path(__file__).parent / "corpus" / "object_info" / "core_sample.json"
SAVE = "9"


@pytest.fixture(autouse=True)
def fresh_inference(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No user rules folder, no process-wide schemas, and infer.py's rule cache empty (it remembers the
    first schema source it saw a rule come from: see tests/test_schemas.py's xfail)."""
    monkeypatch.delenv(ENV_RULES_DIR, raising=False)
    schemas.set_user_schemas(None)
    infer_module._parsed.clear()
    yield
    infer_module._parsed.clear()


def default_prompt() -> dict[str, Any]:
    return json.loads((CORPUS / "default.api.json").read_text("utf-8"))  # type: ignore[no-any-return]


def unruled_prompt() -> dict[str, Any]:
    """The default SD1.5 graph with core classes that have no bundled rule: a LoRA loader (bypass mode) on the
    model and clip, an ImageInvert before the save; plus an unknown class and an EmptyImage off to the side."""
    prompt = default_prompt()
    lora = {"model": ["4", 0], "clip": ["4", 1], "lora_name": "detail.safetensors"}
    prompt["10"] = {"class_type": "LoraLoaderBypass", "inputs": {**lora, "strength_model": 0.6, "strength_clip": 0.4}}
    prompt["3"]["inputs"]["model"] = ["10", 0]
    prompt["6"]["inputs"]["clip"] = prompt["7"]["inputs"]["clip"] = ["10", 1]
    prompt["11"] = {"class_type": "ImageInvert", "inputs": {"image": ["8", 0]}}
    prompt[SAVE]["inputs"]["images"] = ["11", 0]
    prompt["12"] = {"class_type": "AcmeSharpen", "inputs": {"amount": 2}}
    prompt["13"] = {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}
    assert not {"LoraLoaderBypass", "ImageInvert", "EmptyImage"} & set(bundled().classes())
    return prompt


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), "utf-8")
    return path


def suggest(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, Any], str]:
    """(the suggested rules document, stderr)."""
    assert main(["rules", "suggest", *argv]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def parsed(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["parse", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_suggest_drafts_every_inferred_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = write(tmp_path / "prompt.json", unruled_prompt())
    document, err = suggest(capsys, str(prompt), "--save-node", SAVE)
    assert document["version"] == 1 and "provenance rules suggest" in document["about"]
    snapshot = schemas.bundled()
    assert document["nodes"] == {
        name: {**infer(schema), "_schema": "snapshot"}  # type: ignore[dict-item]
        for name in ("ImageInvert", "LoraLoaderBypass")
        if (schema := snapshot.get(name)) is not None
    }
    assert document["nodes"]["LoraLoaderBypass"]["role"] == "lora"
    assert err == (
        "provenance: no rule and nothing inferable for AcmeSharpen (no schema: try --object-info or --server),"
        " EmptyImage (its snapshot schema says nothing sure)\n"
    )


def test_suggested_rules_check_and_pin_the_same_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The draft passes `rules check`; kept in the user's rules folder, it reads the graph exactly as
    inference did, with the record no longer saying anything was inferred."""
    prompt = str(write(tmp_path / "prompt.json", unruled_prompt()))
    document, _ = suggest(capsys, prompt, "--save-node", SAVE)
    folder = tmp_path / "rules"
    folder.mkdir()
    pinned = write(folder / "suggested.json", document)
    assert main(["rules", "check", str(pinned)]) == 0
    assert capsys.readouterr().out == f"{pinned}: OK, 2 rule(s)\n"

    inferred = parsed(capsys, prompt, "--save-node", SAVE)
    assert inferred["provenance"].pop("inferred_rules") == {
        "ImageInvert": "inferred:snapshot",
        "LoraLoaderBypass": "inferred:snapshot",
    }
    loras = [(m["name"], m["strength_model"], m["strength_clip"]) for m in inferred["models"] if m["role"] == "lora"]
    assert loras == [("detail.safetensors", 0.6, 0.4)]
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_RULES_DIR, str(folder))
        assert parsed(capsys, prompt, "--save-node", SAVE) == inferred
        assert main(["rules", "suggest", prompt, "--save-node", SAVE]) == 0
        assert json.loads(capsys.readouterr().out)["nodes"] == {}  # nothing left to infer


def test_suggest_with_nothing_inferred_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    document, err = suggest(capsys, str(CORPUS / "default.api.json"))
    assert document["nodes"] == {}
    assert err == "provenance: no class in this graph was read by inference: nothing to suggest\n"


def test_suggest_reads_custom_classes_from_object_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A custom pack's text encoder, known only to the user's ComfyUI: its /object_info makes it a text rule."""
    info = json.loads(OBJECT_INFO.read_text("utf-8"))
    acme = {**info["CLIPTextEncode"], "name": "AcmeTextEncode", "python_module": "custom_nodes.acme"}
    object_info = write(tmp_path / "object_info.json", {"AcmeTextEncode": acme})
    prompt = default_prompt()
    prompt["6"]["class_type"] = "AcmeTextEncode"
    path = str(write(tmp_path / "prompt.json", prompt))

    document, err = suggest(capsys, path)
    assert document["nodes"] == {} and "AcmeTextEncode (no schema: try --object-info or --server)" in err
    assert parsed(capsys, path)["generation"]["positive"] is None  # unknown: never guessed

    document, err = suggest(capsys, path, "--object-info", str(object_info))
    assert document["nodes"] == {
        "AcmeTextEncode": {
            "role": "text",
            "fields": {"text": "text"},
            "inputs": {"clip": "clip"},
            "_schema": "object_info",
        }
    }
    assert err == ""
    folder = tmp_path / "rules"
    folder.mkdir()
    write(folder / "acme.json", document)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_RULES_DIR, str(folder))
        record = parsed(capsys, path)
    assert record["generation"]["positive"] == prompt["6"]["inputs"]["text"]
    assert "inferred_rules" not in record["provenance"]


def test_suggest_takes_a_comfyui_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image, PngImagePlugin

    prompt = unruled_prompt()
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    png = tmp_path / "ComfyUI_00001_.png"
    Image.new("RGB", (8, 8)).save(png, pnginfo=info)
    from_image, _ = suggest(capsys, str(png), "--save-node", SAVE)
    from_json, _ = suggest(capsys, str(write(tmp_path / "prompt.json", prompt)), "--save-node", SAVE)
    assert from_image == from_json and sorted(from_image["nodes"]) == ["ImageInvert", "LoraLoaderBypass"]


def test_suggest_refuses_what_parse_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ui = CORPUS / "default.ui.json"
    assert main(["rules", "suggest", str(ui)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"{ui}: this is a UI workflow")


def test_record_type_is_what_parse_prints() -> None:
    """Guards the comparisons above: `parse --json` prints Record.to_dict(), inferred_rules at provenance level."""
    record = Record()
    record.provenance.other["inferred_rules"] = {"X": "inferred:snapshot"}
    assert record.to_dict()["provenance"]["inferred_rules"] == {"X": "inferred:snapshot"}

"""Node schemas from every source: /object_info (file, server, live classes), UI workflows, the bundled snapshot.

tests/corpus/object_info/core_sample.json holds real GET /object_info entries of ComfyUI 0.33.0
(commit 783545f6) for a few core classes, V1 and V3, local and cloud (see its README).
"""

from __future__ import annotations

import json
import os
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import CORPUS

from comfyui_provenance import compat
from comfyui_provenance.cli import objectinfo
from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.limits import READ_JSON_MAX
from comfyui_provenance.metadata.parser import infer as infer_module
from comfyui_provenance.metadata.parser import schemas
from comfyui_provenance.metadata.parser.infer import infer
from comfyui_provenance.metadata.parser.parse import WorkflowParser
from comfyui_provenance.metadata.parser.rules import bundled_files
from comfyui_provenance.metadata.parser.schemas import Input, NodeSchema, SchemaSet

OBJECT_INFO = Path(__file__).parent / "corpus" / "object_info" / "core_sample.json"
# EmptyImage -> ImageInvert -> SaveImage: ImageInvert has no bundled rule, so the parser infers one.
INVERTED = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
}


def sample() -> dict[str, Any]:
    return json.loads(OBJECT_INFO.read_text("utf-8"))  # type: ignore[no-any-return]


def unsourced(found: SchemaSet) -> dict[str, NodeSchema]:
    """The schemas with their source left out, to compare what two sources say."""
    return {c: NodeSchema(c, s.inputs, s.outputs, s.api_node) for c in found.classes() if (s := found.get(c))}


@pytest.fixture(autouse=True)
def no_process_schemas() -> Iterator[None]:
    """Every test starts and ends with no live provider and no user schemas (both are process-wide), and
    with infer.py's cache of parsed rules empty."""
    schemas.set_live_provider(None)
    schemas.set_user_schemas(None)
    infer_module._parsed.clear()
    yield
    schemas.set_live_provider(None)
    schemas.set_user_schemas(None)
    infer_module._parsed.clear()


# -- /object_info ------------------------------------------------------------------------------------


def test_from_object_info_reads_real_v1_and_v3_entries() -> None:
    found = schemas.from_object_info(sample())
    assert found.classes() == sorted(sample())
    ksampler = found.get("KSampler")
    assert ksampler is not None and ksampler.source == "object_info"
    assert {n: i.type for n, i in ksampler.inputs.items()} == {
        "model": "MODEL",
        "seed": "INT",
        "steps": "INT",
        "cfg": "FLOAT",
        "sampler_name": "COMBO",  # a V1 combo is the list of choices itself
        "scheduler": "COMBO",
        "positive": "CONDITIONING",
        "negative": "CONDITIONING",
        "latent_image": "LATENT",
        "denoise": "FLOAT",
    }
    assert ksampler.outputs == (("LATENT", "LATENT"),)
    wan = found.get("WanImageToVideo")
    assert wan is not None
    assert wan.outputs == (("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT"))
    assert [n for n, i in wan.inputs.items() if i.optional] == ["clip_vision_output", "start_image"]
    switch = found.get("ComfySwitchNode")  # V3, its type matched to what it is linked to
    assert switch is not None
    assert {n: i.type for n, i in switch.inputs.items()} == {
        "switch": "BOOLEAN",
        "on_false": "COMFY_MATCHTYPE_V3",
        "on_true": "COMFY_MATCHTYPE_V3",
    }
    assert switch.outputs == (("output", "COMFY_MATCHTYPE_V3"),)
    flux = found.get("FluxProUltraImageNode")  # a cloud node: hidden inputs (the API key) are not inputs
    assert flux is not None and flux.api_node and flux.inputs["prompt"] == Input("STRING", multiline=True)
    assert "api_key_comfy_org" not in flux.inputs and flux.inputs["image_prompt"] == Input("IMAGE", optional=True)
    text = found.get("CLIPTextEncode")
    assert text is not None and text.inputs["text"].multiline and text.outputs == (("CONDITIONING", "CONDITIONING"),)
    lora = found.get("LoraLoader")
    assert lora is not None and lora.inputs["lora_name"].type == "COMBO"
    assert lora.outputs == (("MODEL", "MODEL"), ("CLIP", "CLIP"))


def test_real_entries_infer_the_rules_their_shapes_call_for() -> None:
    found = schemas.from_object_info(sample())
    roles = {c: (rule or {}).get("role") for c in found.classes() if (s := found.get(c)) for rule in [infer(s)]}
    assert roles == {
        "CLIPTextEncode": "text",
        "ComfySwitchNode": "switch",
        "EmptyImage": None,  # an image from nothing but numbers: nothing sure to say
        "FluxProUltraImageNode": "api",
        "ImageInvert": "passthrough",
        "KSampler": "sampler",
        "LoraLoader": "lora",
        "WanImageToVideo": "passthrough",
    }
    wan = found.get("WanImageToVideo")
    assert wan is not None
    assert infer(wan) == {
        "role": "passthrough",
        "outputs": ["positive", "negative", None],
        "fields": {"width": "width", "height": "height", "batch_size": "batch_size", "frames": "length"},
    }


def test_the_sample_agrees_with_the_bundled_snapshot() -> None:
    """The snapshot was written from the same ComfyUI's /object_info by `provenance rules snapshot`."""
    found = unsourced(schemas.from_object_info(sample()))
    snapshot = unsourced(schemas.bundled())
    assert {c: snapshot[c] for c in found} == found


@pytest.mark.parametrize(
    "entry",
    [
        "KSampler",
        None,
        [],
        {},
        {"input": []},
        {"input": {"required": [["MODEL"]], "optional": "x"}},
        {"input": {"required": {"a": [], "b": "INT", "c": 5}}, "output": "IMAGE", "output_name": {"0": "x"}},
        {"input": {"required": {"a": [["x", "y"], {"multiline": "yes"}]}}, "output": [1, None], "api_node": "yes"},
    ],
)
def test_malformed_object_info_entries_never_raise(entry: Any) -> None:
    found = schemas.from_object_info({"Bad": entry, **{k: v for k, v in sample().items() if k == "CLIPTextEncode"}})
    assert "CLIPTextEncode" in found
    bad = found.get("Bad")
    if bad is not None:  # what is kept is typed as documented, never the raw junk
        assert all(isinstance(n, str) and isinstance(i.type, str) for n, i in bad.inputs.items())
        assert all(isinstance(t, str) for _, t in bad.outputs) and bad.api_node is False
        assert not any(i.multiline for i in bad.inputs.values())


# -- UI workflows --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.ui.json")), ids=lambda p: p.name[: -len(".ui.json")])
def test_from_workflow_agrees_with_the_snapshot(path: Path) -> None:
    """Every typed input and output a corpus workflow records has the snapshot's type, but where the
    snapshot says COMBO (the frontend may type a widget otherwise) or a V3 match type (the frontend
    resolves it to the type linked)."""
    found = schemas.from_workflow(json.loads(path.read_text("utf-8")))
    assert found, path.name
    snapshot = schemas.bundled()
    loose = {"COMBO", "COMFY_MATCHTYPE_V3"}
    for class_type in found.classes():
        mine, real = found.get(class_type), snapshot.get(class_type)
        if mine is None or real is None:
            continue  # a subgraph's uuid, a note, a frontend-only node
        assert mine.source == "workflow"
        for name, spec in mine.inputs.items():
            if name in real.inputs and spec.type != "*" and real.inputs[name].type not in loose:
                assert spec.type == real.inputs[name].type, (class_type, name)
        for index, (_, kind) in enumerate(mine.outputs):
            if kind != "*" and real.output_type(index) not in loose:
                assert kind == real.output_type(index), (class_type, index)


def test_from_workflow_reads_subgraph_definitions() -> None:
    workflow = json.loads((CORPUS / "01_qwen_t2i_subgraphed.ui.json").read_text("utf-8"))
    assert "KSampler" not in {n["type"] for n in workflow["nodes"]}  # only inside the subgraph
    found = schemas.from_workflow(workflow)
    ksampler = found.get("KSampler")
    assert ksampler is not None and ksampler.outputs == (("LATENT", "LATENT"),)
    assert {n: i.type for n, i in ksampler.inputs.items() if n in ("model", "positive", "latent_image")} == {
        "model": "MODEL",
        "positive": "CONDITIONING",
        "latent_image": "LATENT",
    }


@pytest.mark.parametrize(
    "workflow", [None, [], {"nodes": "x"}, {"nodes": [1, {"type": 5}, {"type": "A", "inputs": {}}]}]
)
def test_from_workflow_shrugs_off_junk(workflow: Any) -> None:
    found = schemas.from_workflow(workflow)
    assert found.classes() in ([], ["A"])


# -- the compact snapshot ------------------------------------------------------------------------------


def test_compact_round_trip_keeps_every_schema() -> None:
    found = schemas.from_object_info(sample())
    data = schemas.to_compact(found, "ComfyUI 0.33.0 sample")
    text = schemas.dump_compact(data)
    assert json.loads(text) == data
    again = schemas.from_json(json.loads(text), "snapshot")
    assert unsourced(again) == unsourced(found)
    assert schemas.from_json(sample(), "x").classes() == found.classes()  # the same door takes /object_info


def test_bundled_snapshot_is_one_class_per_line_and_names_its_comfyui() -> None:
    text = schemas.snapshot_path().read_text("utf-8")
    data = json.loads(text)
    assert text == schemas.dump_compact(data)  # what `provenance rules snapshot` writes, unedited
    assert len(text.splitlines()) == len(data["nodes"]) + 2
    assert "ComfyUI 0.33.0" in data["about"] and "783545f6" in data["about"]


def test_bundled_snapshot_has_every_core_class_the_corpus_uses() -> None:
    """The corpus is ComfyUI's own templates: every class its prompts use that no third-party pack's rules
    claim is core, and the snapshot must know it."""
    third_party: set[str] = set()
    for path in bundled_files()[1:]:
        third_party |= set(json.loads(path.read_text("utf-8"))["nodes"])
    used = {n["class_type"] for p in CORPUS.glob("*.api.json") for n in json.loads(p.read_text("utf-8")).values()}
    core = used - third_party
    assert len(core) > 80
    assert sorted(core - set(schemas.bundled().classes())) == []


# -- the CLI: --object-info and --server -------------------------------------------------------------------


def write_prompt(tmp_path: Path, prompt: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "prompt.api.json"
    path.write_text(json.dumps(prompt or INVERTED), "utf-8")
    return path


def parsed_provenance(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["parse", *argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)["provenance"]  # type: ignore[no-any-return]


def test_parse_takes_an_object_info_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = str(write_prompt(tmp_path))
    assert parsed_provenance(capsys, prompt)["inferred_rules"] == {"ImageInvert": "inferred:snapshot"}
    other = parsed_provenance(capsys, prompt, "--object-info", str(OBJECT_INFO))
    assert other["inferred_rules"] == {"ImageInvert": "inferred:object_info"}
    assert schemas.user_schemas() is None  # set for the command only


def test_rules_snapshot_writes_what_object_info_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "snap.json"
    argv = ["rules", "snapshot", "--object-info", str(OBJECT_INFO), "--out", str(out), "--about", "ComfyUI 0.33.0"]
    assert main(argv) == 0
    assert capsys.readouterr().out == f"{out}: 8 node classes (ComfyUI 0.33.0)\n"
    text = out.read_text("utf-8")
    assert text == schemas.dump_compact(json.loads(text)) and len(text.splitlines()) == 8 + 2
    assert unsourced(schemas.from_json(json.loads(text), "x")) == unsourced(schemas.from_object_info(sample()))
    other = parsed_provenance(capsys, str(write_prompt(tmp_path)), "--object-info", str(out))
    assert other["inferred_rules"] == {"ImageInvert": "inferred:object_info"}


def test_rules_snapshot_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "snapshot"]) == 2
    assert "one of the arguments --object-info --server is required" in capsys.readouterr().err


def hostile_files(tmp_path: Path) -> list[tuple[Path, str]]:
    """(file, what the one-line complaint starts with) for /object_info files no one should trust."""
    cases = {
        "empty.json": (b"", "the /object_info is not valid JSON"),
        "binary.json": (b"\x89PNG\r\n\x1a\n\xff\xfe", "the /object_info is not UTF-8 text"),
        "broken.json": (b'{"KSampler": {"input": ', "the /object_info is not valid JSON (line 1"),
        "array.json": (b"[1, 2, 3]", "the /object_info is not a JSON object of node classes"),
        "bomb.json": (b"[" * 200_000, "the /object_info nests"),
        "prompt.json": (json.dumps(INVERTED).encode(), "the /object_info describes no node class"),
        "junk.json": (b'{"A": 1, "B": {"input": 2}, "C": []}', "the /object_info describes no node class"),
        "junk_snapshot.json": (b'{"version": 1, "nodes": {"A": 5, "B": []}}', "the /object_info describes no node"),
    }
    found = []
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        found.append((tmp_path / name, message))
    huge = tmp_path / "huge.json"
    with huge.open("wb") as fp:  # sparse: costs no disk, and the reader stops at the limit anyway
        fp.truncate(READ_JSON_MAX + 1)
    found.append((huge, "the file ("))
    found.append((tmp_path / "missing.json", "cannot open: no such file"))
    found.append((tmp_path, "cannot open: it is a folder"))
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        found.append((tmp_path / "fifo", "cannot open: not a regular file"))
    return found


@pytest.mark.parametrize("command", ["parse", "suggest", "read", "snapshot"])
def test_hostile_object_info_files_are_one_line_each(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    prompt = str(write_prompt(tmp_path))
    argv = {
        "parse": ["parse", prompt],
        "suggest": ["rules", "suggest", prompt],
        "read": ["read", str(tmp_path)],
        "snapshot": ["rules", "snapshot", "--out", str(tmp_path / "snap.json")],
    }[command]
    for path, message in hostile_files(inputs):
        assert main([*argv, "--object-info", str(path)]) == 1, path
        captured = capsys.readouterr()
        assert captured.err.startswith(f"{path}: {message}"), captured.err
        assert captured.err.count("\n") == 1 and captured.out == ""
    assert not (tmp_path / "snap.json").exists()


class Answers(BaseHTTPRequestHandler):
    """GET /object_info (the sample) and /system_stats; a path under /slow/ answers only after a while."""

    routes: ClassVar[dict[str, tuple[int, bytes]]] = {
        "/object_info": (200, OBJECT_INFO.read_bytes()),
        "/system_stats": (200, json.dumps({"system": {"comfyui_version": "0.33.0"}}).encode()),
        "/garbage/object_info": (200, b"<html>not json</html>"),
    }

    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):
            threading.Event().wait(2.0)
        status, body = self.routes.get(self.path.removeprefix("/slow"), (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_parse_and_snapshot_ask_a_server(server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = parsed_provenance(capsys, str(write_prompt(tmp_path)), "--server", server + "/")
    assert other["inferred_rules"] == {"ImageInvert": "inferred:server"}
    out = tmp_path / "snap.json"
    assert main(["rules", "snapshot", "--server", server.removeprefix("http://"), "--out", str(out)]) == 0
    assert json.loads(out.read_text("utf-8"))["about"] == f"ComfyUI 0.33.0 /object_info from {server}"
    assert capsys.readouterr().out.startswith(f"{out}: 8 node classes")


def test_server_failures_are_one_line(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt = str(write_prompt(tmp_path))
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(objectinfo, "TIMEOUT_S", 0.5)
    cases = [
        (closed, 1, f"{closed}: cannot reach {closed}/object_info: connection refused"),
        (f"{server}/nothing", 1, f"{server}/nothing: {server}/nothing/object_info answered HTTP 404"),
        (f"{server}/garbage", 1, f"{server}/garbage: the /object_info is not valid JSON"),
        (f"{server}/slow", 1, f"{server}/slow: cannot read {server}/slow/object_info: "),
        ("file:///etc/passwd", 2, "file:///etc/passwd: --server: give the ComfyUI address as http://HOST:PORT"),
    ]
    for url, status, message in cases:
        assert main(["parse", prompt, "--server", url]) == status, url
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_read_and_convert_parse_with_the_named_schemas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A PNG ComfyUI core saved (its graph only) is parsed afresh by read and convert: with the schemas named."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(INVERTED))
    png = tmp_path / "core.png"
    Image.new("RGB", (8, 8)).save(png, pnginfo=info)
    assert main(["read", "--json", str(png), "--object-info", str(OBJECT_INFO)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["provenance"]["inferred_rules"] == {"ImageInvert": "inferred:object_info"}
    out = tmp_path / "out"
    out.mkdir()
    assert main(["convert", str(png), "--out", str(out), "--object-info", str(OBJECT_INFO)]) == 0
    capsys.readouterr()
    assert main(["read", "--json", str(out / "core.png")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["provenance"]["inferred_rules"] == {"ImageInvert": "inferred:object_info"}
    assert schemas.user_schemas() is None


# -- live: inside ComfyUI ------------------------------------------------------------------------------


class V1Invert:
    """A V1 node class as ComfyUI's nodes.py defines them."""

    CATEGORY = "image/color"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",)}}


def test_compat_node_info_builds_object_infos_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compat.node_info("ImageInvert") is None  # no ComfyUI `nodes` module here
    fake = types.SimpleNamespace(NODE_CLASS_MAPPINGS={"ImageInvert": V1Invert}, NODE_DISPLAY_NAME_MAPPINGS={})
    monkeypatch.setitem(__import__("sys").modules, "nodes", fake)
    info = compat.node_info("ImageInvert")
    assert info is not None
    real = sample()["ImageInvert"]
    same = ("input", "input_order", "output", "output_name", "output_is_list", "name", "category", "output_node")
    assert {k: json.loads(json.dumps(info[k])) for k in same} == {k: real[k] for k in same}
    assert compat.node_info("NoSuchNode") is None
    schemas.set_live_provider(compat.node_info)
    record = WorkflowParser().parse(INVERTED, "3")
    assert record.provenance.other["inferred_rules"] == {"ImageInvert": "inferred:live"}


def test_a_broken_live_class_costs_only_its_own_schema() -> None:
    def provider(class_type: str) -> dict[str, Any] | None:
        if class_type == "ImageInvert":
            raise RuntimeError("INPUT_TYPES failed")
        return None

    schemas.set_live_provider(provider)
    record = WorkflowParser().parse(INVERTED, "3")
    assert record.provenance.other["inferred_rules"] == {"ImageInvert": "inferred:snapshot"}


def test_live_beats_the_user_who_beats_the_snapshot() -> None:
    schemas.set_user_schemas(schemas.from_object_info(sample(), "object_info"))
    found = schemas.gather(["ImageInvert", "NoSuchNode"], None)
    assert found.get("ImageInvert") is not None and found.get("ImageInvert").source == "object_info"  # type: ignore[union-attr]
    schemas.set_live_provider(lambda c: sample().get(c))
    assert schemas.gather(["ImageInvert"], None).get("ImageInvert").source == "live"  # type: ignore[union-attr]
    assert "NoSuchNode" not in found


def test_the_origin_names_this_parses_schema_source() -> None:
    assert WorkflowParser().parse(INVERTED, "3").provenance.other["inferred_rules"] == {
        "ImageInvert": "inferred:snapshot"
    }
    schemas.set_user_schemas(schemas.from_object_info(sample(), "object_info"))
    assert WorkflowParser().parse(INVERTED, "3").provenance.other["inferred_rules"] == {
        "ImageInvert": "inferred:object_info"
    }

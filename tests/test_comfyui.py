"""Against a real ComfyUI (COMFYUI_PATH): the API the pack assumes, and the node end to end.

Contract tests run one probe script in ComfyUI's own Python and check every ComfyUI symbol
compat.py and nodes/ use, with the shapes they assume, so the fakes other tests use stay honest.
End-to-end tests start a loopback server (one per module, plus one with --disable-metadata),
post graphs with Save Image (Provenance) and read the files back with the pack's reader.
Without COMFYUI_PATH every test here is skipped, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comfyui_harness as harness  # tests/ is on pytest's pythonpath (pyproject)
import pytest
from PIL import Image as PILImage

from comfyui_provenance.metadata.errors import ReadError
from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.read import read
from comfyui_provenance.nodes.save_image import FORMATS

pytestmark = pytest.mark.comfyui

CHECKPOINT = "random_sd15.safetensors"


def file_hashes(path: Path) -> dict[str, str]:
    """sha256/AutoV2 of the whole file and AutoV3 (bytes after the safetensors header), by hand."""
    data = path.read_bytes()
    header = 8 + struct.unpack("<Q", data[:8])[0]
    full = hashlib.sha256(data).hexdigest()
    return {"sha256": full, "autov2": full[:10], "autov3": hashlib.sha256(data[header:]).hexdigest()}


LORA = "random_sd15_lora.safetensors"
SECRETS = {
    "api_key_comfy_org": "sk-PROVENANCE-TEST-API-KEY-4242",
    "auth_token_comfy_org": "PROVENANCE-TEST-AUTH-TOKEN-4242",
}
ALL_TARGETS = list(TARGETS)
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
SD_TIMEOUT_S = 300.0


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkout() -> Path:
    return harness.require_checkout("real-ComfyUI contract and end-to-end tests")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def servers(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Both servers start together (startup is the slow part); each fixture below waits for its own."""
    started = {
        "main": harness.Server(checkout, tmp_path_factory.mktemp("comfyui")),
        "nometa": harness.Server(checkout, tmp_path_factory.mktemp("comfyui_nometa"), "--disable-metadata"),
    }
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def server(servers: dict[str, Any]) -> Any:
    servers["main"].wait_ready()
    return servers["main"]


@pytest.fixture(scope="module")
def nometa_server(servers: dict[str, Any]) -> Any:
    servers["nometa"].wait_ready()
    return servers["nometa"]


@pytest.fixture(scope="module")
def facts(checkout: Path) -> dict[str, Any]:
    return harness.run_probe(checkout, PROBE)  # type: ignore[no-any-return]


# --- contract: the probe -----------------------------------------------------------------------

PROBE = r"""
import asyncio, atexit, dataclasses, importlib.util, inspect, json, os, shutil, sys, tempfile
sys.path.insert(0, os.getcwd())
# Parse a CPU command line the way main.py does, so importing execution needs no GPU.
sys.argv = ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
facts = {}

def params(fn):
    return list(inspect.signature(fn).parameters)

import folder_paths
out = tempfile.mkdtemp(prefix="provenance_probe_")
atexit.register(shutil.rmtree, out, True)
facts["get_save_image_path.params"] = params(folder_paths.get_save_image_path)
result = folder_paths.get_save_image_path("sub/probe_%width%x%height%", out, 64, 32)
facts["get_save_image_path.result"] = [type(result).__name__, len(result)] + [
    os.path.relpath(v, out) if i == 0 else v for i, v in enumerate(result)]
facts["get_output_directory.type"] = type(folder_paths.get_output_directory()).__name__
folder_paths.set_output_directory(out)

from comfy.cli_args import args
facts["disable_metadata"] = repr(getattr(args, "disable_metadata", "MISSING"))

import comfyui_version
facts["comfyui_version"] = comfyui_version.__version__

from comfy_execution.utils import CurrentNodeContext, get_executing_context
facts["context.outside"] = repr(get_executing_context())
with CurrentNodeContext("probe-prompt", "7"):
    ctx = get_executing_context()
    facts["context.inside"] = {"prompt_id": ctx.prompt_id, "node_id": ctx.node_id}

import comfy_api.latest as latest
facts["latest.exports"] = {n: hasattr(latest, n) for n in ("ComfyExtension", "io", "ui")}
io = latest.io
facts["io.ComfyNode.methods"] = {n: callable(getattr(io.ComfyNode, n, None)) for n in ("define_schema", "execute")}
facts["io.Schema.fields"] = [f.name for f in dataclasses.fields(io.Schema)]
facts["input.params"] = {
    name: params(getattr(io, name).Input.__init__)
    for name in ("Image", "String", "Combo", "Int", "Boolean", "MultiCombo")}
facts["output.params"] = params(io.Image.Output.__init__)
facts["hidden"] = {n: getattr(io.Hidden, n).value for n in ("prompt", "extra_pnginfo", "unique_id")}
holder = io.HiddenHolder.from_dict({io.Hidden.prompt: {"1": {}}, io.Hidden.extra_pnginfo: {"workflow": {}},
                                    io.Hidden.unique_id: "9"})
facts["hidden_holder"] = [holder.prompt, holder.extra_pnginfo, holder.unique_id]
output = io.NodeOutput("pixels", ui={"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]})
facts["node_output"] = {"params": params(io.NodeOutput.__init__), "result": list(output.result), "ui": output.ui}
facts["extension"] = {"abstract": sorted(getattr(latest.ComfyExtension, "__abstractmethods__", ())),
                      "get_node_list_async": inspect.iscoroutinefunction(latest.ComfyExtension.get_node_list),
                      "on_load_async": inspect.iscoroutinefunction(latest.ComfyExtension.on_load)}

# The pack itself, loaded the way pip would name it, against these real modules.
repo = os.environ["PROVENANCE_REPO"]
spec = importlib.util.spec_from_file_location("comfyui_provenance", os.path.join(repo, "__init__.py"),
                                              submodule_search_locations=[repo])
pack = importlib.util.module_from_spec(spec)
sys.modules["comfyui_provenance"] = pack
spec.loader.exec_module(pack)
from comfyui_provenance import compat
from comfyui_provenance.nodes import extension, v1
facts["pack.exports"] = sorted(getattr(pack, "__all__", []))
# __init__.py picks V3 vs V1 by comfy_api.latest; the loader must call comfy_entrypoint exactly then.
with open("nodes.py", encoding="utf-8") as fp:
    facts["loader"] = {"calls_comfy_entrypoint": "comfy_entrypoint" in fp.read(),
                       "has_comfy_api_latest": importlib.util.find_spec("comfy_api.latest") is not None}
nodes = asyncio.run(pack.comfy_entrypoint().get_node_list())
facts["pack.nodes"] = [(n.__name__, issubclass(n, io.ComfyNode)) for n in nodes]
schema = extension.ProvenanceSaveImage.define_schema()
facts["pack.schema"] = {"type": type(schema).__name__, "node_id": schema.node_id,
                        "inputs": [[i.get_io_type(), i.id, getattr(i, "multiselect", None)] for i in schema.inputs],
                        "hidden": [h.value for h in schema.hidden], "is_output_node": schema.is_output_node}
namer = compat.save_namer()
folder, base, counter, subfolder = namer("deep/name_%width%", 64, 32)
facts["compat.namer"] = [os.path.relpath(folder, out), base, counter, subfolder]
facts["compat.output_directory"] = str(compat.output_directory()) == out
facts["compat.metadata_disabled"] = compat.metadata_disabled()
facts["compat.comfyui_version"] = compat.comfyui_version()
facts["compat.prompt_id.outside"] = compat.current_prompt_id()
with CurrentNodeContext("probe-prompt", "7"):
    facts["compat.prompt_id.inside"] = compat.current_prompt_id()
facts["compat.user_directory"] = str(compat.user_directory()) == folder_paths.get_user_directory()
facts["compat.hash_cache_directory"] = os.path.relpath(compat.hash_cache_directory(), folder_paths.get_user_directory())
ckpts = folder_paths.get_filename_list("checkpoints")
locator = compat.model_locator()
found = str(locator.locate("checkpoint", ckpts[0])) if ckpts else None
facts["compat.locator"] = [
    found == folder_paths.get_full_path("checkpoints", ckpts[0]) if ckpts else None,
    locator.locate("lora", "no-such-lora.safetensors"),
]

# The V1 fallback, fed by ComfyUI's own get_input_data, as the V1 executor would.
import torch
import execution
from comfy_execution.graph import DynamicPrompt
widgets = {"filename_prefix": "v1/probe", "format": "png", "quality": 90, "lossless": False,
           "targets": "a1111,comfyui,record"}
prompt = {"5": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["4", 0], **widgets}},
          "4": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}}
workflow = {"nodes": [{"id": 5, "type": "ProvenanceSaveImage"}], "links": [], "version": 0.4}
data, missing, _ = execution.get_input_data(prompt["5"]["inputs"], v1.ProvenanceSaveImageV1, "5", None,
                                            DynamicPrompt(prompt), {"extra_pnginfo": {"workflow": workflow}})
kwargs = {k: v[0] for k, v in data.items() if k != "images"}
with CurrentNodeContext("probe-prompt", "5"):
    ret = v1.ProvenanceSaveImageV1().save(images=torch.rand(1, 32, 64, 3), **kwargs)
from comfyui_provenance.metadata.read import read
record = json.loads(read(os.path.join(out, "v1", ret["ui"]["images"][0]["filename"])).to_json())
facts["v1"] = {"hidden_keys": sorted(k for k in data if k not in widgets and k != "images"),
               "ui": ret["ui"], "result_len": len(ret["result"]),
               "prompt_id": record["provenance"]["prompt_id"], "save_node_id": record["provenance"]["save_node_id"],
               "prompt_equal": record["prompt"] == prompt, "workflow_equal": record["workflow"] == workflow}
print(json.dumps(facts, default=repr))
"""


def test_folder_paths_contract(facts: dict[str, Any]) -> None:
    """compat.save_namer: get_save_image_path(prefix, output_dir, width, height) -> 5-tuple."""
    assert facts["get_save_image_path.params"][:4] == ["filename_prefix", "output_dir", "image_width", "image_height"]
    assert facts["get_save_image_path.result"] == ["tuple", 5, "sub", "probe_64x32", 1, "sub", "sub/probe_64x32"]
    assert facts["get_output_directory.type"] == "str"


def test_cli_args_version_and_context_contract(facts: dict[str, Any]) -> None:
    assert facts["disable_metadata"] == "False"
    assert re.fullmatch(r"\d+\.\d+\.\d+", facts["comfyui_version"])
    assert facts["context.outside"] == "None"
    assert facts["context.inside"] == {"prompt_id": "probe-prompt", "node_id": "7"}


def test_v3_api_contract(facts: dict[str, Any]) -> None:
    """Every comfy_api.latest name nodes/extension.py uses, with the keywords it passes."""
    assert facts["latest.exports"] == {"ComfyExtension": True, "io": True, "ui": True}
    assert facts["io.ComfyNode.methods"] == {"define_schema": True, "execute": True}
    assert {
        "node_id",
        "display_name",
        "category",
        "description",
        "inputs",
        "outputs",
        "hidden",
        "is_output_node",
    } <= set(facts["io.Schema.fields"])
    used = {
        "Image": {"id", "tooltip"},
        "String": {"id", "default", "tooltip"},
        "Combo": {"id", "options", "default", "tooltip"},
        "Int": {"id", "default", "min", "max", "tooltip"},
        "Boolean": {"id", "default", "optional", "tooltip"},
        "MultiCombo": {"id", "options", "default", "tooltip"},
    }
    for name, keywords in used.items():
        assert keywords <= set(facts["input.params"][name]), name
    assert "display_name" in facts["output.params"]
    assert facts["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}
    assert facts["hidden_holder"] == [{"1": {}}, {"workflow": {}}, "9"]
    assert "ui" in facts["node_output"]["params"]
    assert facts["node_output"]["result"] == ["pixels"]
    assert facts["node_output"]["ui"] == {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}
    assert facts["extension"] == {"abstract": ["get_node_list"], "get_node_list_async": True, "on_load_async": True}


def test_pack_against_real_modules(facts: dict[str, Any]) -> None:
    """The pack's compat accessors and node schema, run inside ComfyUI's Python."""
    loader = facts["loader"]
    assert loader["calls_comfy_entrypoint"] == loader["has_comfy_api_latest"], loader
    assert facts["pack.exports"] == ["comfy_entrypoint"]
    assert facts["pack.nodes"] == [["ProvenanceSaveImage", True]]
    schema = facts["pack.schema"]
    assert schema["type"] == "Schema" and schema["node_id"] == "ProvenanceSaveImage" and schema["is_output_node"]
    names = ["images", "filename_prefix", "format", "quality", "lossless", "targets", "prefer_runtime"]
    assert [i[1] for i in schema["inputs"]] == names
    assert [i[0] for i in schema["inputs"]] == ["IMAGE", "STRING", "COMBO", "INT", "BOOLEAN", "COMBO", "BOOLEAN"]
    assert schema["inputs"][5][2] is True  # targets is a MultiCombo
    assert schema["hidden"] == ["PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID"]
    assert facts["compat.namer"] == ["deep", "name_64", 1, "deep"]
    assert facts["compat.output_directory"] is True
    assert facts["compat.metadata_disabled"] is False
    assert facts["compat.comfyui_version"] == facts["comfyui_version"]
    assert facts["compat.prompt_id.outside"] is None
    assert facts["compat.prompt_id.inside"] == "probe-prompt"
    assert facts["compat.user_directory"] is True
    assert facts["compat.hash_cache_directory"] == "provenance"
    assert facts["compat.locator"][1] is None
    assert facts["compat.locator"][0] in (True, None)  # None: the probe's models folder has no checkpoint


def test_v1_fallback_with_real_get_input_data(facts: dict[str, Any]) -> None:
    v1 = facts["v1"]
    assert v1["hidden_keys"] == ["extra_pnginfo", "prompt", "unique_id"]
    assert v1["ui"] == {"images": [{"filename": "probe_00001_.png", "subfolder": "v1", "type": "output"}]}
    assert v1["result_len"] == 1
    assert (v1["prompt_id"], v1["save_node_id"]) == ("probe-prompt", "5")
    assert v1["prompt_equal"] and v1["workflow_equal"]


# --- the server: loading and /object_info -------------------------------------------------------


def test_pack_imports_cleanly(server: Any) -> None:
    log = server.log()
    lines = [line for line in log.splitlines() if harness.PACK_DIR_NAME in line]
    assert any(re.search(r"\d+\.\d+ seconds: .*comfyui_provenance$", line) for line in lines), server.log_tail()
    assert not any("IMPORT FAILED" in line or "Cannot import" in line for line in lines), "\n".join(lines)


def test_object_info_lists_node(server: Any) -> None:
    info = server.get("/object_info/ProvenanceSaveImage")["ProvenanceSaveImage"]
    required = info["input"]["required"]
    assert info["input_order"]["required"] == ["images", "filename_prefix", "format", "quality", "lossless", "targets"]
    assert required["images"][0] == "IMAGE"
    assert required["filename_prefix"][0] == "STRING" and required["filename_prefix"][1]["default"] == "ComfyUI"
    assert required["format"][0] == "COMBO" and required["format"][1]["options"] == ["png", "jpeg", "webp"]
    assert required["format"][1]["default"] == "png"
    assert required["quality"][0] == "INT"
    assert (required["quality"][1]["min"], required["quality"][1]["max"]) == (1, 100)
    assert required["lossless"][0] == "BOOLEAN"
    targets = required["targets"]
    assert targets[0] == "COMBO" and targets[1]["multiselect"] is True
    assert targets[1]["options"] == ALL_TARGETS
    assert set(targets[1]["default"]) <= set(ALL_TARGETS)
    assert info["input"]["hidden"] == {
        "prompt": ["PROMPT"],
        "extra_pnginfo": ["EXTRA_PNGINFO"],
        "unique_id": ["UNIQUE_ID"],
    }
    assert info["output"] == ["IMAGE"] and info["output_name"] == ["images"]
    assert info["output_node"] is True
    assert info["category"] == "image/provenance" and info["description"]


# --- end to end --------------------------------------------------------------------------------


def save_node(images: list[Any], prefix: str, fmt: str, targets: list[str]) -> dict[str, Any]:
    return {
        "class_type": "ProvenanceSaveImage",
        "inputs": {
            "images": images,
            "filename_prefix": prefix,
            "format": fmt,
            "quality": 90,
            "lossless": False,
            "targets": {"__value__": targets},
        },
    }


def ui_workflow(prompt: dict[str, Any]) -> dict[str, Any]:
    """A small frontend-shaped workflow (what the browser sends as extra_pnginfo.workflow)."""
    nodes = [
        {
            "id": int(k),
            "type": v["class_type"],
            "pos": [i * 300, 0],
            "mode": 0,
            "order": i,
            "widgets_values": [w for w in v["inputs"].values() if not isinstance(w, list)][:3],
        }
        for i, (k, v) in enumerate(sorted(prompt.items()))
    ]
    return {
        "last_node_id": max(int(k) for k in prompt),
        "last_link_id": 0,
        "nodes": nodes,
        "links": [],
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}},
        "version": 0.4,
    }


def posted_view(prompt: dict[str, Any]) -> dict[str, Any]:
    """The posted graph as ComfyUI normalizes it: `{"__value__": v}` widgets unwrapped."""

    def value(v: Any) -> Any:
        return v["__value__"] if isinstance(v, dict) and "__value__" in v else v

    return {
        k: {"class_type": n["class_type"], "inputs": {i: value(v) for i, v in n["inputs"].items()}}
        for k, n in prompt.items()
    }


def core_view(prompt: dict[str, Any] | None) -> dict[str, Any]:
    """class_type and inputs only (ComfyUI may add `is_changed`; the frontend adds `_meta`)."""
    assert isinstance(prompt, dict)
    return {k: {"class_type": n["class_type"], "inputs": n["inputs"]} for k, n in prompt.items()}


def outputs_of(entry: dict[str, Any], node_id: str) -> list[dict[str, str]]:
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    return entry["outputs"][node_id]["images"]  # type: ignore[no-any-return]


def files_of(server: Any, images: list[dict[str, str]]) -> list[Path]:
    return [server.output / img["subfolder"] / img["filename"] for img in images]


def written_with(path: Path) -> list[Path]:
    """The image and every sidecar beside it (`<name>.<ext>.json`, ...)."""
    return sorted(p for p in path.parent.iterdir() if p.name == path.name or p.name.startswith(path.name + "."))


def assert_no_secrets(paths: list[Path], *texts: str) -> None:
    for path in paths:
        data = path.read_bytes()
        for secret in SECRETS.values():
            assert secret.encode() not in data, f"{secret} leaked into {path.name}"
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


@pytest.mark.parametrize("fmt", FORMATS)
def test_cheap_graph_saves_readable_record(server: Any, fmt: str) -> None:
    """EmptyImage (batch of 2) -> ProvenanceSaveImage: names, UI result, record, secrets."""
    prompt = {
        "3": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0x336699 + len(fmt)},
        },
        "9": save_node(["3", 0], f"e2e/cheap_{fmt}", fmt, ALL_TARGETS),
    }
    workflow = ui_workflow(prompt)
    marker = {"suite": "test_comfyui", "format": fmt}
    # The secrets go where ComfyUI expects them (extra_data) and, once, where a careless client might
    # put one (a top-level extra_pnginfo key, which core SaveImage would write as a chunk of its own).
    extra_pnginfo = {"workflow": workflow, "e2e_marker": marker, "api_key_comfy_org": SECRETS["api_key_comfy_org"]}
    prompt_id, entry = server.run(prompt, {"extra_pnginfo": extra_pnginfo, **SECRETS})
    images = outputs_of(entry, "9")
    ext = EXTENSIONS[fmt]
    assert [i["filename"] for i in images] == [f"cheap_{fmt}_00001_.{ext}", f"cheap_{fmt}_00002_.{ext}"]
    assert all(i["subfolder"] == "e2e" and i["type"] == "output" for i in images)
    paths = files_of(server, images)
    version = server_version(server)  # "0.33.0" on the checkout these tests were written against
    for index, path in enumerate(paths):
        assert path.is_file(), path
        record = read(path)
        prov = record.provenance
        assert prov.prompt_id == prompt_id
        assert prov.save_node_id == "9"
        assert prov.comfyui_version == version
        assert core_view(record.prompt) == posted_view(prompt)
        assert core_view(record.prompt) == core_view(entry["prompt"][2])  # ComfyUI's own stored copy
        assert record.workflow == workflow
        assert (record.image.format, record.image.width, record.image.height) == (fmt, 64, 64)
        assert (record.image.batch_index, record.image.batch_size) == (index, 2)
        assert not [w for w in prov.warnings if "fail" in w or "not written" in w], prov.warnings
        with PILImage.open(path) as pil:
            assert pil.size == (64, 64) and pil.format == fmt.upper()
        assert written_with(path) == [path] + [path.with_name(path.name + s) for s in (".json", ".txt", ".xmp")]
        sidecar = json.loads(path.with_name(path.name + ".json").read_text("utf-8"))
        assert sidecar["provenance"]["prompt_id"] == prompt_id
        assert_no_secrets(written_with(path))
        if fmt == "png":
            text = dict(text_chunk(v) for k, v in png_chunks(path) if k == b"tEXt")
            assert json.loads(text["prompt"]) == record.prompt
            assert json.loads(text["workflow"]) == workflow
            assert json.loads(text["e2e_marker"]) == marker
            assert "api_key_comfy_org" not in text
    assert_no_secrets([], server.log())


def text_chunk(data: bytes) -> tuple[str, str]:
    key, _, value = data.partition(b"\0")
    return key.decode("latin-1"), value.decode("latin-1")


def server_version(server: Any) -> str:
    return str(server.get("/system_stats")["system"]["comfyui_version"])


def test_disable_metadata_writes_pixels_only(nometa_server: Any) -> None:
    prompt: dict[str, Any] = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0xAA5500}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "core"}},
    }
    for i, fmt in enumerate(FORMATS):
        prompt[str(2 + i)] = save_node(["1", 0], f"nometa_{fmt}", fmt, ALL_TARGETS)
    _, entry = nometa_server.run(prompt, {"extra_pnginfo": {"workflow": ui_workflow(prompt)}, **SECRETS})
    core = files_of(nometa_server, outputs_of(entry, "9"))[0]
    written = sorted(p.name for p in nometa_server.output.rglob("*") if p.is_file())
    assert written == sorted(
        ["core_00001_.png", "nometa_jpeg_00001_.jpg", "nometa_png_00001_.png", "nometa_webp_00001_.webp"]
    )  # no sidecars
    for i, fmt in enumerate(FORMATS):
        (path,) = files_of(nometa_server, outputs_of(entry, str(2 + i)))
        with pytest.raises(ReadError):
            read(path)
        with PILImage.open(path) as pil:
            assert pil.size == (64, 64)
            assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment", "parameters", "prompt", "workflow"} & set(
                pil.info
            ), pil.info.keys()
        data = path.read_bytes()
        if fmt == "png":
            assert [k for k, _ in png_chunks(path)] == [k for k, _ in png_chunks(core)]
            assert [k for k, _ in png_chunks(path)] == [b"IHDR", b"IDAT", b"IEND"]
        elif fmt == "jpeg":
            assert b"Exif\0\0" not in data and b"http://ns.adobe.com/xap/1.0/" not in data
            assert b"\xff\xfe" not in data[: data.index(b"\xff\xda")]  # no COM segment before the scan
        else:
            assert b"EXIF" not in data and b"XMP " not in data
        assert_no_secrets([path])


def test_invalid_targets_rejected_by_validation(server: Any) -> None:
    """ComfyUI's multiselect validation rejects the prompt and names the allowed values."""
    base = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 1}}}
    for bad, received in (
        ({"__value__": ["a1111", "bogus"]}, ["a1111", "bogus"]),
        ("a1111,comfyui", "a1111,comfyui"),
    ):  # a comma string is the V1 form only
        prompt = {**base, "2": save_node(["1", 0], "invalid", "png", [])}
        prompt["2"]["inputs"]["targets"] = bad
        status, reply = server.post_prompt(prompt)
        assert status == 400, reply
        assert reply["error"]["type"] == "prompt_outputs_failed_validation"
        (error,) = reply["node_errors"]["2"]["errors"]
        assert error["type"] == "value_not_in_list"
        assert error["extra_info"]["input_name"] == "targets"
        assert error["extra_info"]["received_value"] == received
        assert all(repr(t) in error["details"] for t in ALL_TARGETS), error["details"]
    assert not list(server.output.glob("invalid*"))


def test_prefix_outside_output_fails_the_node(server: Any) -> None:
    """ComfyUI's own guard in get_save_image_path surfaces as the node's execution error."""
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 2}},
        "2": save_node(["1", 0], "../escaped", "png", ["record"]),
    }
    _, entry = server.run(prompt)
    assert entry["status"]["status_str"] == "error"
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors and errors[0]["node_id"] == "2" and errors[0]["node_type"] == "ProvenanceSaveImage"
    assert "outside the output folder" in errors[0]["exception_message"]
    assert not list(server.output.parent.glob("escaped*"))


def test_sd15_lora_txt2img_record(server: Any, checkout: Path) -> None:
    """The random SD1.5 checkpoint + LoRA, 2 steps at 64x64, saved as png, jpeg and webp."""
    choices = server.get("/object_info/LoraLoader")["LoraLoader"]["input"]["required"]["lora_name"]
    checkpoints = server.get("/object_info/CheckpointLoaderSimple")["CheckpointLoaderSimple"]
    if CHECKPOINT not in str(checkpoints["input"]["required"]["ckpt_name"]) or LORA not in str(choices):
        pytest.skip(
            f"{CHECKPOINT} / {LORA} not in {checkout}/models (checkpoints, loras): the SD1.5 end-to-end test needs them"
        )
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "10": {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["4", 0],
                "clip": ["4", 1],
                "lora_name": LORA,
                "strength_model": 0.8,
                "strength_clip": 0.6,
            },
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff, storm", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, text", "clip": ["10", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 987654321,
                "steps": 2,
                "cfg": 6.5,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["10", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    }
    for i, fmt in enumerate(FORMATS):
        prompt[str(20 + i)] = save_node(["8", 0], f"sd15_{fmt}", fmt, ["a1111", "comfyui", "record", "xmp"])
    workflow = ui_workflow(prompt)
    prompt_id, entry = server.run(prompt, {"extra_pnginfo": {"workflow": workflow}, **SECRETS}, timeout=SD_TIMEOUT_S)
    for i, fmt in enumerate(FORMATS):
        (path,) = files_of(server, outputs_of(entry, str(20 + i)))
        assert re.fullmatch(rf"sd15_{fmt}_00001_\.{EXTENSIONS[fmt]}", path.name)
        record = read(path)
        gen = record.generation
        assert (gen.positive, gen.negative) == ("a lighthouse on a cliff, storm", "blurry, text")
        assert (gen.seed, gen.steps, gen.cfg, gen.sampler, gen.scheduler) == (987654321, 2, 6.5, "euler", "normal")
        assert (gen.width, gen.height) == (64, 64)
        checkpoint = record.first_model("checkpoint")
        assert checkpoint is not None and checkpoint.name == CHECKPOINT and checkpoint.node_id == "4"
        assert [(m.name, m.strength_model, m.strength_clip, m.node_id) for m in record.loras()] == [
            (LORA, 0.8, 0.6, "10")
        ]
        assert (record.provenance.prompt_id, record.provenance.save_node_id) == (prompt_id, str(20 + i))
        assert core_view(record.prompt) == posted_view(prompt)
        assert record.workflow == workflow
        assert record.provenance.warnings == []
        # Hashes come from the real files, computed here independently (the first save hashed them).
        assert checkpoint.hashes == file_hashes(checkout / "models" / "checkpoints" / CHECKPOINT)
        assert record.loras()[0].hashes == file_hashes(checkout / "models" / "loras" / LORA)
        text = path.read_bytes() if fmt == "png" else b""
        if fmt == "png":
            assert f"Model hash: {checkpoint.hashes['autov2']}".encode() in text
            assert f'Lora hashes: "random_sd15_lora: {record.loras()[0].hashes["autov3"][:12]}"'.encode() in text
        assert_no_secrets(written_with(path))
    assert_no_secrets([], server.log())

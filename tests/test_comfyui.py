"""Against a real ComfyUI (COMFYUI_PATH): the API the pack assumes, and the node end to end.

Contract tests run one probe script in ComfyUI's own Python and check every ComfyUI symbol
compat.py and nodes/ use, with the shapes they assume, so the fakes other tests use stay honest.
End-to-end tests start loopback servers (plain, --disable-metadata, and one without the model-hash
prefetch), post graphs with Save Image (Provenance) and read the files back with the pack's reader.
The suite is version-aware (tests/comfyui_harness.py `features`): on a ComfyUI without
comfy_api.latest (before 0.3.48) the pack registers its V1 node, `targets` is posted as a comma
string, and V3-only checks skip with the reason. Without COMFYUI_PATH every test here is skipped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sqlite3
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comfyui_harness as harness  # tests/ is on pytest's pythonpath (pyproject)
import numpy as np
import pytest
from PIL import Image as PILImage

from comfyui_provenance.metadata.errors import ReadError
from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.hashing import CACHE_FILENAME
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.settings import PER_RUN
from comfyui_provenance.nodes.save_image import FORMATS

pytestmark = pytest.mark.comfyui

CHECKPOINT = "random_sd15.safetensors"
LORA = "random_sd15_lora.safetensors"
SECRETS = {
    "api_key_comfy_org": "sk-PROVENANCE-TEST-API-KEY-4242",
    "auth_token_comfy_org": "PROVENANCE-TEST-AUTH-TOKEN-4242",
}
ALL_TARGETS = list(TARGETS)
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
SD_TIMEOUT_S = 300.0
# The node's contract: only these two are required, so a prompt that swaps core SaveImage for it validates.
REQUIRED = ["images", "filename_prefix"]
# The optional inputs and the defaults README/tooltips document (a later optional input may follow them).
DOCUMENTED_DEFAULTS: dict[str, Any] = {
    "format": "png",
    "quality": 95,
    "lossless": False,
    "targets": ["a1111", "comfyui", "record", "xmp"],
    "prefer_runtime": True,
}
OPTIONAL = list(DOCUMENTED_DEFAULTS)
# Debug output from the pack (PROVENANCE_LOG_LEVEL) and from ComfyUI's console (--verbose, needed since
# ComfyUI filters its console handler at --verbose's level: see test_provenance_log_level_alone_shows_saves).
DEBUG_ENV = {"PROVENANCE_LOG_LEVEL": "DEBUG"}
DEBUG_ARGS = ("--verbose", "DEBUG")
# A save that hashed the 2.1 GB checkpoint inline waits seconds; one that found it in the cache, milliseconds.
NOT_HASHED_INLINE_MS = 1000.0
BACKGROUND_HASH_TIMEOUT_S = 240.0


def file_hashes(path: Path) -> dict[str, str]:
    """sha256/AutoV2 of the whole file and AutoV3 (bytes after the safetensors header), by hand."""
    return dict(_file_hashes(str(path.resolve())))


@functools.lru_cache(maxsize=4)
def _file_hashes(path: str) -> tuple[tuple[str, str], ...]:
    whole, tensors = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as fp:
        head = fp.read(8)
        header = fp.read(struct.unpack("<Q", head)[0])
        whole.update(head + header)
        while chunk := fp.read(16 << 20):
            whole.update(chunk)
            tensors.update(chunk)
    full = whole.hexdigest()
    return (("sha256", full), ("autov2", full[:10]), ("autov3", tensors.hexdigest()))


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkout() -> Path:
    return harness.require_checkout("real-ComfyUI contract and end-to-end tests")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def feats(checkout: Path) -> harness.Features:
    return harness.features(checkout)


def sd_models_missing(checkout: Path) -> str | None:
    """Why the SD1.5 tests cannot run here, or None (the harness serves the checkout's models/)."""
    wanted = [checkout / "models" / "checkpoints" / CHECKPOINT, checkout / "models" / "loras" / LORA]
    missing = [str(p) for p in wanted if not p.exists()]
    return f"{', '.join(missing)} missing: the SD1.5 end-to-end tests need them" if missing else None


@pytest.fixture(scope="module")
def servers(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The servers start together (startup is the slow part); each fixture below waits for its own.

    main: DEBUG logging (the save line) and a fresh hash cache, so its SD1.5 test is a first save.
    nometa: --disable-metadata, with PROVENANCE_LOG_LEVEL=DEBUG alone (no --verbose).
    noprefetch: PROVENANCE_HASH_PREFETCH=0 and PROVENANCE_HASH_WAIT_S=0, only when the SD1.5 models exist.
    """
    started = {
        "main": harness.Server(checkout, tmp_path_factory.mktemp("comfyui"), *DEBUG_ARGS, env=DEBUG_ENV),
        "nometa": harness.Server(
            checkout, tmp_path_factory.mktemp("comfyui_nometa"), "--disable-metadata", env=DEBUG_ENV
        ),
    }
    try:
        if sd_models_missing(checkout) is None:
            env = {**DEBUG_ENV, "PROVENANCE_HASH_PREFETCH": "0", "PROVENANCE_HASH_WAIT_S": "0"}
            started["noprefetch"] = harness.Server(
                checkout, tmp_path_factory.mktemp("comfyui_noprefetch"), *DEBUG_ARGS, env=env
            )
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
import asyncio, atexit, contextlib, dataclasses, importlib, importlib.util, inspect, json, os, shutil, sys
import tempfile, types
sys.path.insert(0, os.getcwd())
# Parse a CPU command line the way main.py does, so importing execution needs no GPU.
sys.argv = ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
facts = {}

def params(fn):
    return list(inspect.signature(fn).parameters)

def has_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a parent package that does not exist in this version
        return False

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

# Only what this version has is imported: comfy_execution.utils from 0.3.45, comfy_api.latest from 0.3.48.
v3 = has_module("comfy_api.latest")
has_context = has_module("comfy_execution.utils") and hasattr(
    importlib.import_module("comfy_execution.utils"), "get_executing_context")
facts["features"] = {"v3": v3, "executing_context": has_context}
if has_context:
    from comfy_execution.utils import CurrentNodeContext, get_executing_context
    facts["context.outside"] = repr(get_executing_context())
    with CurrentNodeContext("probe-prompt", "7"):
        ctx = get_executing_context()
        facts["context.inside"] = {"prompt_id": ctx.prompt_id, "node_id": ctx.node_id}
    running = CurrentNodeContext
else:
    # compat.current_prompt_id's fallback: server.PromptServer.instance.last_prompt_id, which main.py's prompt
    # worker sets before it executes the prompt. Importing server.py outside main.py fails on these versions
    # (its `utils` package is shadowed), so its shape is read from the source and a stand-in is installed.
    with open("main.py", encoding="utf-8") as fp:
        worker = fp.read().split("def prompt_worker", 1)[-1]
    with open("server.py", encoding="utf-8") as fp:
        server_py = fp.read()
    facts["last_prompt_id"] = {
        "prompt_server": "class PromptServer" in server_py and "PromptServer.instance = self" in server_py,
        "set_before_execute": 0 <= worker.find("last_prompt_id = prompt_id") < worker.find(".execute("),
    }

    @contextlib.contextmanager
    def running(prompt_id, node_id):
        instance = types.SimpleNamespace(last_prompt_id=prompt_id)
        sys.modules["server"] = types.SimpleNamespace(PromptServer=types.SimpleNamespace(instance=instance))
        try:
            yield
        finally:
            del sys.modules["server"]

if v3:
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
from comfyui_provenance.nodes import v1
facts["pack.exports"] = sorted(getattr(pack, "__all__", []))
# __init__.py picks V3 vs V1 by comfy_api.latest; the loader must call comfy_entrypoint exactly then.
with open("nodes.py", encoding="utf-8") as fp:
    facts["loader"] = {"calls_comfy_entrypoint": "comfy_entrypoint" in fp.read(), "has_comfy_api_latest": v3}
if v3:
    from comfyui_provenance.nodes import extension
    nodes = asyncio.run(pack.comfy_entrypoint().get_node_list())
    facts["pack.nodes"] = [[n.__name__, issubclass(n, io.ComfyNode)] for n in nodes]
    schema = extension.ProvenanceSaveImage.define_schema()
    facts["pack.schema"] = {"type": type(schema).__name__, "node_id": schema.node_id,
                            "is_output_node": schema.is_output_node}
    facts["pack.inputs"] = [[i.get_io_type(), i.id, bool(getattr(i, "optional", False)),
                             getattr(i, "multiselect", None)] for i in schema.inputs]
    facts["pack.hidden"] = [h.value for h in schema.hidden]
else:
    facts["pack.nodes"] = [[name, cls.__name__] for name, cls in pack.NODE_CLASS_MAPPINGS.items()]
    types_ = v1.ProvenanceSaveImageV1.INPUT_TYPES()
    facts["pack.schema"] = {"type": "INPUT_TYPES", "node_id": next(iter(pack.NODE_CLASS_MAPPINGS)),
                            "is_output_node": v1.ProvenanceSaveImageV1.OUTPUT_NODE}
    facts["pack.inputs"] = [["COMBO" if isinstance(value[0], list) else value[0], name, section == "optional", None]
                            for section in ("required", "optional") for name, value in types_.get(section, {}).items()]
    facts["pack.hidden"] = list(types_["hidden"].values())
namer = compat.save_namer()
folder, base, counter, subfolder = namer("deep/name_%width%", 64, 32)
facts["compat.namer"] = [os.path.relpath(folder, out), base, counter, subfolder]
facts["compat.output_directory"] = str(compat.output_directory()) == out
facts["compat.metadata_disabled"] = compat.metadata_disabled()
facts["compat.comfyui_version"] = compat.comfyui_version()
facts["compat.prompt_id.outside"] = compat.current_prompt_id()
with running("probe-prompt", "7"):
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
# (input_data_all, missing_keys) before 0.3.48; a third item (V3 hidden inputs) after.
data = execution.get_input_data(prompt["5"]["inputs"], v1.ProvenanceSaveImageV1, "5", None,
                                DynamicPrompt(prompt), {"extra_pnginfo": {"workflow": workflow}})[0]
kwargs = {k: v[0] for k, v in data.items() if k != "images"}
with running("probe-prompt", "5"):
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


def test_cli_args_version_and_context_contract(facts: dict[str, Any], feats: harness.Features) -> None:
    """--disable-metadata, the version module, and where compat.current_prompt_id finds the prompt id."""
    assert facts["disable_metadata"] == "False"
    assert re.fullmatch(r"\d+\.\d+\.\d+", facts["comfyui_version"])
    assert tuple(int(p) for p in facts["comfyui_version"].split(".")) == feats.version
    # The harness reads the checkout's files; the probe imports the modules: both must agree.
    assert facts["features"] == {"v3": feats.v3, "executing_context": feats.executing_context}
    if feats.executing_context:
        assert facts["context.outside"] == "None"
        assert facts["context.inside"] == {"prompt_id": "probe-prompt", "node_id": "7"}
    else:  # before 0.3.45: main.py's worker sets PromptServer.instance.last_prompt_id before executing
        assert facts["last_prompt_id"] == {"prompt_server": True, "set_before_execute": True}


def test_v3_api_contract(facts: dict[str, Any], feats: harness.Features) -> None:
    """Every comfy_api.latest name nodes/extension.py uses, with the keywords it passes."""
    if not feats.v3:
        pytest.skip(f"ComfyUI {facts['comfyui_version']} has no comfy_api.latest: the pack registers its V1 node")
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
        "String": {"id", "default", "tooltip", "optional", "multiline", "placeholder", "dynamic_prompts"},
        "Combo": {"id", "options", "default", "optional", "tooltip"},
        "Int": {"id", "default", "min", "max", "optional", "tooltip"},
        "Boolean": {"id", "default", "optional", "tooltip"},
        "MultiCombo": {"id", "options", "default", "optional", "tooltip"},
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


def test_pack_against_real_modules(facts: dict[str, Any], feats: harness.Features) -> None:
    """The pack's compat accessors and node inputs (V3 schema or V1 INPUT_TYPES), inside ComfyUI's Python."""
    loader = facts["loader"]
    assert loader["calls_comfy_entrypoint"] == loader["has_comfy_api_latest"], loader
    schema = facts["pack.schema"]
    assert schema["node_id"] == "ProvenanceSaveImage" and schema["is_output_node"] is True
    if feats.v3:
        assert facts["pack.exports"] == ["comfy_entrypoint"]
        assert facts["pack.nodes"] == [
            [n, True]
            for n in (
                "ProvenanceSaveImage",
                "ProvenanceSaveVideo",
                "ProvenanceSaveAudio",
                "ProvenanceSampler",
                "ProvenanceVideoSampler",
            )
        ]
        assert schema["type"] == "Schema"
    else:
        assert facts["pack.exports"] == ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
        assert facts["pack.nodes"] == [
            [n, f"{n}V1"]
            for n in (
                "ProvenanceSaveImage",
                "ProvenanceSaveVideo",
                "ProvenanceSaveAudio",
                "ProvenanceSampler",
                "ProvenanceVideoSampler",
            )
        ]
    inputs = facts["pack.inputs"]
    names = [i[1] for i in inputs]
    assert names[: len(REQUIRED) + len(OPTIONAL)] == REQUIRED + OPTIONAL
    assert [i[1] for i in inputs if not i[2]] == REQUIRED  # everything after images/filename_prefix is optional
    targets_type = "COMBO" if feats.v3 else "STRING"  # a multi-select; the V1 fallback takes a comma string
    assert [i[0] for i in inputs[:7]] == ["IMAGE", "STRING", "COMBO", "INT", "BOOLEAN", targets_type, "BOOLEAN"]
    if feats.v3:
        assert inputs[5][3] is True  # targets is a MultiCombo
    assert facts["pack.hidden"] == ["PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID"]
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


def hidden_type(value: Any) -> str:
    """/object_info lists a hidden input as "PROMPT" (V1 nodes) or ["PROMPT"] (V3 nodes)."""
    return str(value if isinstance(value, str) else value[0])


def test_object_info_lists_node(server: Any, feats: harness.Features) -> None:
    """Required: images, filename_prefix; optional: format, quality, lossless, targets, prefer_runtime."""
    info = server.get("/object_info/ProvenanceSaveImage")["ProvenanceSaveImage"]
    order = info["input_order"]
    required, optional = info["input"]["required"], info["input"]["optional"]
    assert order["required"] == REQUIRED and list(required) == REQUIRED
    assert order["optional"][: len(OPTIONAL)] == OPTIONAL, order
    assert list(optional) == order["optional"]
    # A later optional input must carry a default too, or a drop-in prompt would miss it.
    assert all("default" in optional[name][1] for name in order["optional"]), optional
    assert required["images"][0] == "IMAGE"
    assert required["filename_prefix"][0] == "STRING" and required["filename_prefix"][1]["default"] == "ComfyUI"
    fmt = optional["format"]
    if feats.v3:
        assert fmt[0] == "COMBO" and fmt[1]["options"] == FORMATS
    else:  # V1 combos are the list itself
        assert fmt[0] == FORMATS
    assert optional["quality"][0] == "INT"
    assert (optional["quality"][1]["min"], optional["quality"][1]["max"]) == (1, 100)
    assert optional["lossless"][0] == "BOOLEAN"
    assert optional["prefer_runtime"][0] == "BOOLEAN"
    targets = optional["targets"]
    if feats.v3:
        assert targets[0] == "COMBO" and targets[1]["multiselect"] is True
        assert targets[1]["options"] == ALL_TARGETS
    else:
        assert targets[0] == "STRING"
    assert {name: optional[name][1]["default"] for name in OPTIONAL} == {
        **DOCUMENTED_DEFAULTS,
        "targets": targets_value(DOCUMENTED_DEFAULTS["targets"], feats, wrapped=False),
    }
    assert {k: hidden_type(v) for k, v in info["input"]["hidden"].items()} == {
        "prompt": "PROMPT",
        "extra_pnginfo": "EXTRA_PNGINFO",
        "unique_id": "UNIQUE_ID",
    }
    assert info["output"] == ["IMAGE"] and info["output_name"] == ["images"]
    assert info["output_node"] is True
    assert info["category"] == "image/provenance" and info["description"]


# --- end to end --------------------------------------------------------------------------------


def targets_value(targets: list[str], feats: harness.Features, *, wrapped: bool = True) -> Any:
    """`targets` the way this server takes it: a multi-select list on V3 (posted as `{"__value__": [...]}`,
    as the frontend does; `wrapped=False` gives /object_info's form), a comma string on V1."""
    if not feats.v3:
        return ",".join(targets)
    return {"__value__": list(targets)} if wrapped else list(targets)


def save_node(images: list[Any], prefix: str, fmt: str, targets: list[str], feats: harness.Features) -> dict[str, Any]:
    return {
        "class_type": "ProvenanceSaveImage",
        "inputs": {
            "images": images,
            "filename_prefix": prefix,
            "format": fmt,
            "quality": 90,
            "lossless": False,
            "targets": targets_value(targets, feats),
        },
    }


def drop_in_node(images: list[Any], prefix: str) -> dict[str, Any]:
    """Exactly what core SaveImage takes: a prompt that only swaps the class_type."""
    return {"class_type": "ProvenanceSaveImage", "inputs": {"images": images, "filename_prefix": prefix}}


def empty_image(color: int, batch_size: int = 1) -> dict[str, Any]:
    inputs = {"width": 64, "height": 64, "batch_size": batch_size, "color": color}
    return {"class_type": "EmptyImage", "inputs": inputs}


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


def text_chunk(data: bytes) -> tuple[str, str]:
    key, _, value = data.partition(b"\0")
    return key.decode("latin-1"), value.decode("latin-1")


def png_layout(path: Path) -> list[str]:
    """Every chunk type in file order, text chunks with their keyword (`tEXt:parameters`)."""
    layout = []
    for kind, data in png_chunks(path):
        keyword = text_chunk(data)[0] if kind in (b"tEXt", b"iTXt", b"zTXt") else None
        layout.append(kind.decode() if keyword is None else f"{kind.decode()}:{keyword}")
    return layout


def png_text(path: Path) -> dict[str, str]:
    """Every text chunk's keyword and decoded text (tEXt, zTXt and iTXt, as Pillow reads them)."""
    with PILImage.open(path) as pil:
        return dict(pil.text)


def pixels(path: Path) -> np.ndarray:
    with PILImage.open(path) as pil:
        return np.asarray(pil.convert("RGB"))


def server_version(server: Any) -> str:
    return str(server.get("/system_stats")["system"]["comfyui_version"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_cheap_graph_saves_readable_record(server: Any, feats: harness.Features, fmt: str) -> None:
    """EmptyImage (batch of 2) -> ProvenanceSaveImage: names, UI result, record, secrets."""
    prompt = {
        "3": empty_image(0x336699 + len(fmt), batch_size=2),
        "9": save_node(["3", 0], f"e2e/cheap_{fmt}", fmt, ALL_TARGETS, feats),
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
    version = server_version(server)
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


def explicit_defaults(server: Any, feats: harness.Features) -> dict[str, Any]:
    """Every optional input set to its documented default (a later optional input: to /object_info's default)."""
    info = server.get("/object_info/ProvenanceSaveImage")["ProvenanceSaveImage"]
    optional = info["input"]["optional"]
    values = {name: optional[name][1]["default"] for name in info["input_order"]["optional"]}
    values.update(DOCUMENTED_DEFAULTS)
    values["targets"] = targets_value(DOCUMENTED_DEFAULTS["targets"], feats)
    return values


def comparable(record: Any) -> dict[str, Any]:
    """The record less what two saves of one image necessarily differ in: the save nodes' inputs in the
    prompt graph (and the node's id, when both sit in one prompt), the time, the file name and the prompt id."""
    data = json.loads(record.to_json())
    for node in data["prompt"].values():
        if node["class_type"] == "ProvenanceSaveImage":
            node["inputs"] = None
    provenance = data["provenance"]
    provenance["save_node_id"] = provenance["created"] = provenance["prompt_id"] = data["image"]["filename"] = None
    return data  # type: ignore[no-any-return]


def assert_same_file(plain: Path, spelled: Path) -> None:
    """Two PNGs of one image, saved by the drop-in node and with every input at its default, are the same
    file apart from what must differ: pixels, chunk layout, A1111 text and `comparable` records agree."""
    assert np.array_equal(pixels(plain), pixels(spelled))
    assert png_layout(plain) == png_layout(spelled)
    assert png_text(plain)["parameters"] == png_text(spelled)["parameters"]
    assert comparable(read(plain)) == comparable(read(spelled))


def test_drop_in_for_save_image(server: Any, feats: harness.Features) -> None:
    """A core SaveImage prompt with only class_type swapped validates and saves the full record; the same
    save with every optional input spelled out at its documented default writes the same file."""
    core = {"1": empty_image(0x2468AC), "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    core["9"]["inputs"]["filename_prefix"] = "dropin/img"
    workflow = ui_workflow(core)
    extra = {"extra_pnginfo": {"workflow": workflow}}
    dropin = {**core, "9": drop_in_node(["1", 0], "dropin/img")}
    status, reply = server.post_prompt(dropin, extra)
    assert status == 200 and reply["node_errors"] == {}, reply
    entry = server.wait_history(reply["prompt_id"])
    (plain,) = files_of(server, outputs_of(entry, "9"))
    explicit = {**core, "9": drop_in_node(["1", 0], "dropin/img")}
    explicit["9"]["inputs"].update(explicit_defaults(server, feats))
    _, entry = server.run(explicit, extra)
    (spelled,) = files_of(server, outputs_of(entry, "9"))
    assert (plain.name, spelled.name) == ("img_00001_.png", "img_00002_.png")

    # The drop-in file carries everything the default targets write, inline, and no sidecar.
    record = read(plain)
    assert {"parameters", "prompt", "workflow", "comfyui_provenance", "XML:com.adobe.xmp"} <= set(png_text(plain))
    written = {e.target for e in record.provenance.embedding if e.status == "written"}
    assert written == set(DOCUMENTED_DEFAULTS["targets"]), record.provenance.embedding
    assert core_view(record.prompt) == posted_view(dropin) and record.workflow == workflow
    assert written_with(plain) == [plain]

    assert_same_file(plain, spelled)
    assert core_view(read(spelled).prompt) == posted_view(explicit)


def test_disable_metadata_writes_pixels_only(nometa_server: Any, feats: harness.Features) -> None:
    """--disable-metadata: every format, and the drop-in node (no optional input), write pixels only."""
    prompt: dict[str, Any] = {
        "1": empty_image(0xAA5500),
        "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "core"}},
        "8": drop_in_node(["1", 0], "nometa_dropin"),
    }
    for i, fmt in enumerate(FORMATS):
        prompt[str(2 + i)] = save_node(["1", 0], f"nometa_{fmt}", fmt, ALL_TARGETS, feats)
    _, entry = nometa_server.run(prompt, {"extra_pnginfo": {"workflow": ui_workflow(prompt)}, **SECRETS})
    core = files_of(nometa_server, outputs_of(entry, "9"))[0]
    written = sorted(p.name for p in nometa_server.output.rglob("*") if p.is_file())
    assert written == sorted(
        [
            "core_00001_.png",
            "nometa_dropin_00001_.png",
            "nometa_jpeg_00001_.jpg",
            "nometa_png_00001_.png",
            "nometa_webp_00001_.webp",
        ]
    )  # no sidecars
    for node_id, fmt in [("8", "png")] + [(str(2 + i), fmt) for i, fmt in enumerate(FORMATS)]:
        (path,) = files_of(nometa_server, outputs_of(entry, node_id))
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


def test_provenance_log_level_alone_shows_saves(nometa_server: Any) -> None:
    """PROVENANCE_LOG_LEVEL=DEBUG (no --verbose) puts the save node's timing line in ComfyUI's log, also
    where ComfyUI sets its console handler to --verbose's level (0.33): the pack then has its own."""
    before = len(harness.save_timings(nometa_server.log()))
    _, entry = nometa_server.run({"1": empty_image(0x010203), "2": drop_in_node(["1", 0], "debug_line")})
    outputs_of(entry, "2")
    assert len(harness.save_timings(nometa_server.log())) == before + 1, nometa_server.log_tail()


def test_invalid_targets_rejected(server: Any, feats: harness.Features) -> None:
    """Unknown targets never save: ComfyUI's queue-time validation rejects them where it checks V3 combos
    (0.33.0); where it does not (0.3.48 validates multi-selects only when run, V1 takes a string), the node
    fails with the same list of allowed values."""
    base = {"1": empty_image(1)}
    cases: list[tuple[Any, Any]] = [(targets_value(["a1111", "bogus"], feats), None)]
    if feats.v3 and feats.queue_validates_v3_combos:
        cases = [
            ({"__value__": ["a1111", "bogus"]}, ["a1111", "bogus"]),
            ("a1111,comfyui", "a1111,comfyui"),  # a comma string is the V1 form only
        ]
    for bad, received in cases:
        prompt = {**base, "2": save_node(["1", 0], "invalid", "png", [], feats)}
        prompt["2"]["inputs"]["targets"] = bad
        if received is None:
            _, entry = server.run(prompt)
            assert entry["status"]["status_str"] == "error"
            errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
            assert errors and errors[0]["node_id"] == "2", entry["status"]
            assert "unknown target bogus" in errors[0]["exception_message"]
            assert all(t in errors[0]["exception_message"] for t in ALL_TARGETS), errors[0]
            continue
        status, reply = server.post_prompt(prompt)
        assert status == 400, reply
        assert reply["error"]["type"] == "prompt_outputs_failed_validation"
        (error,) = reply["node_errors"]["2"]["errors"]
        assert error["type"] == "value_not_in_list"
        assert error["extra_info"]["input_name"] == "targets"
        assert error["extra_info"]["received_value"] == received
        assert all(repr(t) in error["details"] for t in ALL_TARGETS), error["details"]
    assert not list(server.output.glob("invalid*"))


def test_options_override_settings_for_one_save(server: Any, feats: harness.Features) -> None:
    """`options`, the last optional input (default empty), applies per-run settings to its own save only;
    bad JSON or an unknown key fails the node with the allowed keys, as bad targets do."""
    info = server.get("/object_info/ProvenanceSaveImage")["ProvenanceSaveImage"]
    assert info["input_order"]["optional"][-1] == "options"
    kind, spec = info["input"]["optional"]["options"]
    assert kind == "STRING" and spec["default"] == "" and spec["multiline"] is True
    defaults = DOCUMENTED_DEFAULTS["targets"]
    prompt = {
        "1": empty_image(0x13579B),
        "2": save_node(["1", 0], "options/only_a1111", "png", defaults, feats),
        "3": save_node(["1", 0], "options/plain", "png", defaults, feats),
    }
    prompt["2"]["inputs"]["options"] = '{"targets": ["a1111"]}'
    _, entry = server.run(prompt)
    (only,) = files_of(server, outputs_of(entry, "2"))
    (plain,) = files_of(server, outputs_of(entry, "3"))
    assert set(png_text(only)) == {"parameters"} and written_with(only) == [only]
    assert {"parameters", "prompt"} <= set(png_text(plain))
    prompt = {"1": prompt["1"], "2": save_node(["1", 0], "options/bad", "png", defaults, feats)}
    prompt["2"]["inputs"]["options"] = '{"colour": "blue"}'
    _, entry = server.run(prompt)
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors and errors[0]["node_id"] == "2", entry["status"]
    assert "options: unknown setting 'colour'" in errors[0]["exception_message"]
    assert all(key in errors[0]["exception_message"] for key in PER_RUN), errors[0]
    assert not list(server.output.glob("options/bad*"))


def test_prefix_outside_output_fails_the_node(server: Any, feats: harness.Features) -> None:
    """ComfyUI's own guard in get_save_image_path surfaces as the node's execution error."""
    prompt = {"1": empty_image(2), "2": save_node(["1", 0], "../escaped", "png", ["record"], feats)}
    _, entry = server.run(prompt)
    assert entry["status"]["status_str"] == "error"
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert errors and errors[0]["node_id"] == "2" and errors[0]["node_type"] == "ProvenanceSaveImage"
    assert "outside the output folder" in errors[0]["exception_message"]
    assert not list(server.output.parent.glob("escaped*"))


# --- node schemas: the live classes against the bundled snapshot -----------------------------------

# In ComfyUI's Python: every node class loaded as main.py loads them (its custom_nodes/ aside), then
# compat.node_info for each class of the bundled snapshot, read as the parser reads /object_info.
SCHEMA_PROBE = r"""
import asyncio, importlib.util, inspect, json, logging, os, sys
wanted = sys.argv[1:]  # the classes whose whole node_info is reported
sys.path.insert(0, os.getcwd())
sys.argv = ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
logging.disable(logging.WARNING)
import nodes
init = nodes.init_extra_nodes
kwargs = {"init_custom_nodes": False}
if "init_api_nodes" in inspect.signature(init).parameters:
    kwargs["init_api_nodes"] = True
done = init(**kwargs)
if inspect.iscoroutine(done):
    asyncio.run(done)
repo = os.environ["PROVENANCE_REPO"]
spec = importlib.util.spec_from_file_location("comfyui_provenance", os.path.join(repo, "__init__.py"),
                                              submodule_search_locations=[repo])
pack = importlib.util.module_from_spec(spec)
sys.modules["comfyui_provenance"] = pack
spec.loader.exec_module(pack)
from comfyui_provenance import compat
from comfyui_provenance.metadata.parser import schemas

def shape(schema):
    return {"inputs": {n: [i.type, i.multiline, i.optional] for n, i in schema.inputs.items()},
            "outputs": [list(o) for o in schema.outputs], "api_node": schema.api_node}

snapshot = schemas.bundled()
facts = {"loaded": len(nodes.NODE_CLASS_MAPPINGS), "about": json.load(open(schemas.snapshot_path()))["about"],
         "missing": [], "differ": {}, "errors": {}, "unknown": compat.node_info("NoSuchNodeClass"), "infos": {}}
for name in snapshot.classes():
    try:
        info = json.loads(json.dumps(compat.node_info(name)))
    except Exception as err:
        facts["errors"][name] = f"{type(err).__name__}: {err}"
        continue
    if info is None:
        facts["missing"].append(name)
        continue
    live = schemas.from_object_info({name: info}, "live").get(name)
    if live is None or shape(live) != shape(snapshot.get(name)):
        facts["differ"][name] = {"snapshot": shape(snapshot.get(name)), "live": shape(live) if live else None}
for name in wanted:
    facts["infos"][name] = json.loads(json.dumps(compat.node_info(name)))
print(json.dumps(facts))
"""
# Compared whole with the server's GET /object_info/<class>: V1 and V3 nodes, a file list, a match type.
INFO_CLASSES = ["KSampler", "CLIPTextEncode", "LoraLoader", "ImageInvert", "WanImageToVideo", "ComfySwitchNode"]


@pytest.fixture(scope="module")
def schema_facts(checkout: Path) -> dict[str, Any]:
    return harness.run_probe(checkout, SCHEMA_PROBE, *INFO_CLASSES)  # type: ignore[no-any-return]


def test_live_schemas_match_the_bundled_snapshot(schema_facts: dict[str, Any], checkout: Path) -> None:
    """compat.node_info, read as the parser reads /object_info, gives every class of the snapshot the same
    input and output names and types (and multiline, optional, api_node) on the ComfyUI it was taken from;
    on another version the differences are reported."""
    facts = schema_facts
    assert facts["errors"] == {}, facts["errors"]
    assert facts["unknown"] is None
    # Classes ComfyUI ships as examples in its own custom_nodes/ load only with the custom nodes.
    examples = "".join(p.read_text("utf-8", errors="replace") for p in (checkout / "custom_nodes").glob("*.py"))
    version = harness.features(checkout).version
    described = re.search(r"ComfyUI (\d+(?:\.\d+)+)", facts["about"])
    if described is None or tuple(int(p) for p in described[1].split(".")) != version:
        names = ", ".join(sorted(facts["differ"])[:20])
        pytest.skip(
            f"the snapshot describes {facts['about']!r}, this checkout is {version}: "
            f"{len(facts['differ'])} classes differ ({names}), {len(facts['missing'])} missing"
        )
    assert [c for c in facts["missing"] if f'"{c}"' not in examples] == [], facts["missing"]
    assert facts["differ"] == {}, "\n".join(f"{c}: {d}" for c, d in facts["differ"].items())


def test_node_info_is_object_infos_answer(schema_facts: dict[str, Any], server: Any) -> None:
    """compat.node_info builds, for V1 and V3 classes, exactly what the server's GET /object_info/<class> answers."""
    for name, info in schema_facts["infos"].items():
        assert info == server.get(f"/object_info/{name}")[name], name


def test_save_node_infers_from_live_classes(server: Any) -> None:
    """After startup the pack has registered ComfyUI's live classes as the schema source: a class with no
    rule (ImageInvert) is read by a rule inferred from its live schema, and the record says so."""
    prompt = {
        "1": empty_image(0x102030),
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": drop_in_node(["2", 0], "live_schema"),
    }
    _, entry = server.run(prompt)
    (path,) = files_of(server, outputs_of(entry, "3"))
    inferred = read(path).provenance.other.get("inferred_rules", {})
    assert inferred.get("ImageInvert") == "inferred:live", inferred


# --- SD1.5 + LoRA: real model hashes, and the first save after a fresh hash cache ------------------


def require_sd(checkout: Path) -> None:
    reason = sd_models_missing(checkout)
    if reason is not None:
        pytest.skip(reason)


def sd_graph(seed: int, saves: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The random SD1.5 checkpoint + LoRA, 2 steps at 64x64; node 8's pixels go to each save node."""
    sampler = {
        "seed": seed,
        "steps": 2,
        "cfg": 6.5,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
        "model": ["10", 0],
        "positive": ["6", 0],
        "negative": ["7", 0],
        "latent_image": ["5", 0],
    }
    lora = {"model": ["4", 0], "clip": ["4", 1], "lora_name": LORA, "strength_model": 0.8, "strength_clip": 0.6}
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "10": {"class_type": "LoraLoader", "inputs": lora},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff, storm", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, text", "clip": ["10", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": sampler},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        **saves,
    }


def model_files(checkout: Path) -> dict[str, Path]:
    return {
        "checkpoint": checkout / "models" / "checkpoints" / CHECKPOINT,
        "lora": checkout / "models" / "loras" / LORA,
    }


def expected_rows(checkout: Path) -> dict[str, tuple[str, str]]:
    """What the hash cache must hold for both models: resolved path -> (sha256, autov3), from hashlib here."""
    rows = {}
    for path in model_files(checkout).values():
        hashes = file_hashes(path)
        rows[os.path.realpath(path)] = (hashes["sha256"], hashes["autov3"])
    return rows


def cache_rows(server: Any) -> dict[str, tuple[str, str | None]]:
    """The server's hash cache (`<user directory>/provenance/hash-cache.sqlite`): path -> (sha256, autov3)."""
    path = server.user / "provenance" / CACHE_FILENAME
    if not path.exists():
        return {}
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0]: (row[1], row[2]) for row in db.execute("SELECT path, sha256, autov3 FROM hashes")}
    finally:
        db.close()


def new_saves(server: Any, seen: int) -> list[tuple[int, float, float]]:
    """The save lines logged since `seen` lines: (files, ms, ms waiting for model hashes)."""
    timings: list[tuple[int, float, float]] = harness.save_timings(server.log())
    return timings[seen:]


def test_sd15_lora_first_save_hashes_in_background(server: Any, checkout: Path, feats: harness.Features) -> None:
    """The random SD1.5 checkpoint + LoRA on a server started with an empty hash cache, saved as png, jpeg,
    webp, by the drop-in node (images and filename_prefix only) and with every input at its default. The
    model hashes are right (hashlib, here) and were computed in the background while the prompt ran: no
    save waited for them. The drop-in and spelled-out saves write the same file (A1111 text included)."""
    require_sd(checkout)
    expected = expected_rows(checkout)
    assert not set(expected) & set(cache_rows(server)), "this test needs a hash cache that has not seen the models"
    kinds = {str(20 + i): (fmt, f"sd15_{fmt}") for i, fmt in enumerate(FORMATS)}
    saves = {
        node_id: save_node(["8", 0], prefix, fmt, DOCUMENTED_DEFAULTS["targets"], feats)
        for node_id, (fmt, prefix) in kinds.items()
    }
    kinds["23"], kinds["24"] = ("png", "sd15_dropin"), ("png", "sd15_spelled")
    saves["23"], saves["24"] = drop_in_node(["8", 0], "sd15_dropin"), drop_in_node(["8", 0], "sd15_spelled")
    saves["24"]["inputs"].update(explicit_defaults(server, feats))
    prompt = sd_graph(987654321, saves)
    workflow = ui_workflow(prompt)
    seen = len(harness.save_timings(server.log()))
    try:
        prompt_id, entry = server.run(
            prompt, {"extra_pnginfo": {"workflow": workflow}, **SECRETS}, timeout=SD_TIMEOUT_S
        )
        for node_id, (fmt, prefix) in kinds.items():
            (path,) = files_of(server, outputs_of(entry, node_id))
            assert re.fullmatch(rf"{prefix}_00001_\.{EXTENSIONS[fmt]}", path.name)
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
            assert (record.provenance.prompt_id, record.provenance.save_node_id) == (prompt_id, node_id)
            assert core_view(record.prompt) == posted_view(prompt)
            assert record.workflow == workflow
            assert record.provenance.warnings == []
            assert not any(m.other.get("hash_pending") for m in record.models)
            # Hashes come from the real files, computed here independently.
            assert checkpoint.hashes == file_hashes(model_files(checkout)["checkpoint"])
            assert record.loras()[0].hashes == file_hashes(model_files(checkout)["lora"])
            if fmt == "png":
                text = png_text(path)
                assert {"parameters", "prompt", "workflow", "comfyui_provenance", "XML:com.adobe.xmp"} <= set(text)
                assert f"Model hash: {checkpoint.hashes['autov2']}" in text["parameters"]
                lora_hash = record.loras()[0].hashes["autov3"][:12]
                assert f'Lora hashes: "random_sd15_lora: {lora_hash}"' in text["parameters"]
            assert_no_secrets(written_with(path))
        assert_no_secrets([], server.log())
        # The prompt handler queued both files when the prompt was posted: the hash overlapped the model
        # load and sampling, so even the first save found it in the cache (hashing inline takes seconds).
        (plain,), (spelled,) = (files_of(server, outputs_of(entry, node_id)) for node_id in ("23", "24"))
        assert_same_file(plain, spelled)
        timings = new_saves(server, seen)
        assert len(timings) == len(saves), server.log_tail()
        assert max(waited for _, _, waited in timings) < NOT_HASHED_INLINE_MS, timings
        assert {path: row for path, row in cache_rows(server).items() if path in expected} == expected
    finally:
        server.free()  # the SD1.5 model holds about 5 GB


def test_without_prefetch_the_wait_cap_records_hashes_pending(
    servers: dict[str, Any], checkout: Path, feats: harness.Features
) -> None:
    """PROVENANCE_HASH_PREFETCH=0 (nothing hashes before the save runs) and PROVENANCE_HASH_WAIT_S=0: the
    first save does not wait, records the checkpoint's hash as pending and warns; the background hash goes
    on, and the next save (only the seed changed) carries the hashes."""
    require_sd(checkout)
    server = servers["noprefetch"]
    server.wait_ready()
    expected = expected_rows(checkout)
    assert not set(expected) & set(cache_rows(server))
    try:
        seen = len(harness.save_timings(server.log()))
        _, entry = server.run(sd_graph(1, {"9": drop_in_node(["8", 0], "pending")}), timeout=SD_TIMEOUT_S)
        (path,) = files_of(server, outputs_of(entry, "9"))
        record = read(path)
        checkpoint = record.first_model("checkpoint")
        assert checkpoint is not None and checkpoint.other.get("hash_pending") is True, checkpoint
        assert "sha256" not in checkpoint.hashes
        assert "Model hash:" not in png_text(path)["parameters"]
        for model in record.models:  # the LoRA queued behind the checkpoint is usually pending too
            if model.other.get("hash_pending"):
                note = f"{model.role} {model.name}: hash still being computed"
                assert any(w.startswith(note) for w in record.provenance.warnings), record.provenance.warnings
            else:
                assert model.hashes == file_hashes(model_files(checkout)[model.role])
        ((_, _, waited),) = new_saves(server, seen)
        assert waited < NOT_HASHED_INLINE_MS

        deadline = time.monotonic() + BACKGROUND_HASH_TIMEOUT_S
        while not set(expected) <= set(cache_rows(server)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert {path: row for path, row in cache_rows(server).items() if path in expected} == expected

        seen = len(harness.save_timings(server.log()))
        _, entry = server.run(sd_graph(2, {"9": drop_in_node(["8", 0], "pending")}), timeout=SD_TIMEOUT_S)
        (path,) = files_of(server, outputs_of(entry, "9"))
        record = read(path)
        assert record.provenance.warnings == []
        assert not any(m.other.get("hash_pending") for m in record.models)
        checkpoint = record.first_model("checkpoint")
        assert checkpoint is not None
        assert checkpoint.hashes == file_hashes(model_files(checkout)["checkpoint"])
        assert record.loras()[0].hashes == file_hashes(model_files(checkout)["lora"])
        assert f"Model hash: {checkpoint.hashes['autov2']}" in png_text(path)["parameters"]
        ((_, _, waited),) = new_saves(server, seen)
        assert waited < NOT_HASHED_INLINE_MS
    finally:
        server.stop()  # the SD1.5 model holds about 5 GB

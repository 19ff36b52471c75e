"""`provenance reproduce` against a real ComfyUI (COMFYUI_PATH), and the fake server's shapes against it.

Server A runs the pack with PROVENANCE_HOOKS=1 and a tiny node pack this test writes: a node whose
IS_CHANGED is NaN and whose INT output is drawn at execution, linked to the KSampler's seed. The
SD1.5 image it saves is reproduced on A: identical pixels. Server B sees the same checkout through
a view whose models/loras holds a LoRA file with one byte changed: reproduce refuses and names it.
Without COMFYUI_PATH (or the SD1.5 files) every test here is skipped, with the reason.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comfyui_harness as harness  # tests/ is on pytest's pythonpath (pyproject)
import pytest
from fake_comfyui import FakeComfyUI
from fake_nodes import CHECKPOINT, LORA, RANDOM_SEED, default_object_info, sd_graph

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.hashing import CACHE_FILENAME
from comfyui_provenance.metadata.read import read
from comfyui_provenance.reproduce.check import combo_options, input_specs

pytestmark = pytest.mark.comfyui

SD_TIMEOUT_S = 300.0
# The classes of the SD1.5 graph, as the fake describes them.
SD_CLASSES = ("CheckpointLoaderSimple", "LoraLoader", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode")
SD_CLASSES += ("SaveImage", "PreviewImage", "ProvenanceSaveImage")
WORKFLOW = {"nodes": [{"id": 9, "type": "ProvenanceSaveImage"}], "links": [], "version": 0.4}
RANDOM_SEED_PACK = f'''
"""A node whose INT output is drawn when it executes: a seed no graph holds."""
import random


class {RANDOM_SEED}:
    RETURN_TYPES = ("INT",)
    FUNCTION = "draw"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{}}}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # never equal to itself: ComfyUI runs it every time

    def draw(self):
        return (random.SystemRandom().randrange(2**48),)


NODE_CLASS_MAPPINGS = {{"{RANDOM_SEED}": {RANDOM_SEED}}}
'''


@pytest.fixture(scope="module")
def checkout() -> Path:
    path: Path = harness.require_checkout("real-ComfyUI reproduce tests")
    missing = [p for p in (path / "models/checkpoints" / CHECKPOINT, path / "models/loras" / LORA) if not p.exists()]
    if missing:
        pytest.skip(f"{', '.join(map(str, missing))} missing: the reproduce tests need the SD1.5 files")
    return path


def base_with_seed_pack(base: Path) -> Path:
    pack = base / "custom_nodes" / "provenance_test_random_seed"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(textwrap.dedent(RANDOM_SEED_PACK), "utf-8")
    return base


def view_with_other_lora(checkout: Path, root: Path) -> Path:
    """The checkout seen through links, except models/loras, whose LoRA has one byte changed."""
    for entry in checkout.iterdir():
        if entry.name != "models":
            (root / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for folder in (checkout / "models").iterdir():
        if folder.name != "loras":
            (root / "models" / folder.name).parent.mkdir(exist_ok=True)
            (root / "models" / folder.name).symlink_to(folder, target_is_directory=True)
    data = bytearray((checkout / "models" / "loras" / LORA).read_bytes())
    data[-1] ^= 0xFF  # a tensor byte, not the header: the file still loads, it is just another LoRA
    (root / "models" / "loras").mkdir()
    (root / "models" / "loras" / LORA).write_bytes(bytes(data))
    return root


def copy_hash_cache(source: harness.Server, target: Path) -> None:
    """A's hash cache for B (same checkpoint file): B need not hash 2 GB again; the changed LoRA it must."""
    folder = target / "user" / "provenance"
    folder.mkdir(parents=True)
    with (
        sqlite3.connect(source.user / "provenance" / CACHE_FILENAME) as src,
        sqlite3.connect(folder / CACHE_FILENAME) as dst,
    ):
        src.backup(dst)


@pytest.fixture(scope="module")
def server_a(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    server = harness.Server(
        checkout, base_with_seed_pack(tmp_path_factory.mktemp("reproduce_a")), env={"PROVENANCE_HOOKS": "1"}
    )
    try:
        server.wait_ready(timeout=240)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def original(server_a: harness.Server) -> Path:
    _, entry = server_a.run(sd_graph(["11", 0]), {"extra_pnginfo": {"workflow": WORKFLOW}}, timeout=SD_TIMEOUT_S)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:2000]
    (image,) = entry["outputs"]["9"]["images"]
    return server_a.output / image["subfolder"] / image["filename"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["reproduce", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_seed_drawn_at_run_time_reproduces_identically(
    server_a: harness.Server, original: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = read(original)
    assert record.provenance.capture_mode == "parser+hooks", (record.provenance.warnings, server_a.log_tail(5))
    assert record.prompt is not None and record.prompt["3"]["inputs"]["seed"] == ["11", 0]
    drawn = record.runtime["nodes"]["3"]["inputs"]["seed"]  # type: ignore[index]
    assert isinstance(drawn, int) and record.generation.seed == drawn
    assert record.first_model("lora") is not None and record.first_model("lora").hashes.get("sha256")  # type: ignore[union-attr]
    code, out, err = cli(capsys, str(original), "--server", server_a.url, "--timeout", str(SD_TIMEOUT_S), "--json")
    report = json.loads(out)
    assert code == 0, (report, err, server_a.log_tail())
    assert report["status"] == "identical" and report["comparison"]["max_abs_diff"] == 0
    assert report["pinned"] == [{"node": "3", "input": "seed", "from": "11", "value": drawn}]
    assert report["freed_caches"] is True and report["checks"]["differences"] == []
    assert sorted(report["checks"]["hashes_checked"]) == [f"checkpoint:{CHECKPOINT}", f"lora:{LORA}"]
    reproduced = server_a.output / report["output"]["subfolder"] / report["output"]["filename"]
    assert reproduced.parent.name == "reproduce" and read(reproduced).generation.seed == drawn


def test_another_lora_file_is_refused_by_name(
    checkout: Path,
    server_a: harness.Server,
    original: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lora = read(original).first_model("lora")
    assert lora is not None and lora.hashes.get("sha256"), "the record must carry the LoRA's hash to compare"
    view = view_with_other_lora(checkout, tmp_path_factory.mktemp("checkout_view"))
    base = tmp_path_factory.mktemp("reproduce_b")
    copy_hash_cache(server_a, base)
    server_b = harness.Server(view, base)  # no seed pack: the pinned prompt does not need it
    try:
        server_b.wait_ready(timeout=240)
        code, out, err = cli(capsys, str(original), "--server", server_b.url)
        history = server_b.get("/history")
    finally:
        server_b.stop()
    assert code == 2, (out, err)
    differences = [line.strip() for line in out.splitlines() if line.strip().startswith("difference:")]
    assert len(differences) == 1 and differences[0].startswith(f"difference: model differs: lora '{LORA}'")
    assert history == {}  # nothing was queued


def test_the_hash_route_on_a_real_server(server_a: harness.Server, original: Path, checkout: Path) -> None:
    import hashlib

    answer = server_a.get(f"/provenance/hash?folder=loras&name={LORA}")
    data = (checkout / "models" / "loras" / LORA).read_bytes()
    assert answer["sha256"] == hashlib.sha256(data).hexdigest() and answer["size"] == len(data)
    assert set(answer) == {"name", "folder", "sha256", "autov3", "size", "mtime"}
    for query, status in (("folder=loras&name=../../comfyui.log", 400), ("folder=loras&name=none.safetensors", 404)):
        try:
            server_a.get(f"/provenance/hash?{query}")
            raise AssertionError(f"{query} answered 200")
        except harness.urllib.error.HTTPError as err:
            assert err.code == status


# -- the fake, kept honest ----------------------------------------------------------------------------
def test_the_fake_object_info_matches_the_real_one(server_a: harness.Server) -> None:
    real = server_a.get("/object_info")
    fake = default_object_info({"checkpoints": [CHECKPOINT], "loras": [LORA]})
    for name in SD_CLASSES:
        mine, theirs = input_specs(fake[name]), input_specs(real[name])
        assert set(mine) <= set(theirs), name
        for key, spec in mine.items():
            options = combo_options(spec)
            assert (options is None) == (combo_options(theirs[key]) is None), (name, key)
            if options is None:
                assert spec[0] == theirs[key][0], (name, key)
            elif name in ("CheckpointLoaderSimple", "LoraLoader"):
                assert set(options) <= set(combo_options(theirs[key]) or []), (name, key)
        assert fake[name]["output_node"] == real[name]["output_node"], name


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = harness.urllib.request.Request(f"{url}/prompt", data=json.dumps(body).encode("utf-8"))
    try:
        with harness.urllib.request.urlopen(request, timeout=harness.HTTP_TIMEOUT_S) as resp:
            return resp.status, json.load(resp)
    except harness.urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_the_fake_refuses_like_the_real_one(server_a: harness.Server) -> None:
    missing = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}}
    bodies: list[dict[str, Any]] = [
        {"prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}}},
        {"prompt": {"1": missing}},
        {"prompt": sd_graph(5) | {"4": missing}},
        {"prompt": sd_graph(5), "prompt_id": str(uuid.uuid4()).upper()},
        {"number": 1},
    ]
    with FakeComfyUI(models={"checkpoints": [CHECKPOINT], "loras": [LORA]}) as fake:
        for body in bodies:
            real_status, real_body = post(server_a.url, body)
            fake_status, fake_body = post(fake.url, body)
            assert real_status == 400 and (fake_status, shape(fake_body)) == (real_status, shape(real_body)), body


def shape(body: Any) -> Any:
    """Keys and error types, not the wording of details."""
    if not isinstance(body, dict):
        return type(body).__name__
    error = body.get("error") or {}
    nodes = body.get("node_errors") or {}
    return {
        "keys": sorted(body),
        "error": (sorted(error), error.get("type")),
        "node_errors": {k: (sorted(v), [e["type"] for e in v["errors"]]) for k, v in nodes.items()},
    }

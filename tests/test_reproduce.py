"""`provenance reproduce` against the fake ComfyUI: pinning, checks and refusals, the run, the comparison."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_comfyui import FakeComfyUI, NodeError
from fake_nodes import CHECKPOINT, HASHES, LORA, MODELS, Renderer, default_object_info, sd_graph

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.read import read
from comfyui_provenance.reproduce.client import Client, ServerError
from comfyui_provenance.reproduce.pin import pin

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
WORKFLOW = {"nodes": [{"id": 9, "type": "ProvenanceSaveImage"}], "links": [], "version": 0.4}


def server(tmp_path: Path, name: str = "server", **options: Any) -> FakeComfyUI:
    """A fake whose renderer writes under tmp_path/name; the random-seed node is installed."""
    noise = options.pop("noise", 0)
    options.setdefault("models", MODELS)
    options.setdefault("hashes", HASHES)
    options.setdefault("object_info", default_object_info(options["models"], random_seed=True))
    fake = FakeComfyUI(**options)
    fake.execute = Renderer(fake, tmp_path / name, noise=noise)
    return fake


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeComfyUI]:
    with server(tmp_path) as running:
        yield running


def run_prompt(fake: FakeComfyUI, prompt: dict[str, Any], tmp_path: Path, name: str = "server") -> list[Path]:
    """Queue through the fake as a user would; the files its save node wrote."""
    client = Client(fake.url)
    prompt_id = str(uuid.uuid4())
    client.queue(prompt, prompt_id, {"extra_pnginfo": {"workflow": WORKFLOW}})
    entry = client.wait(prompt_id, timeout=60)
    images = entry["outputs"]["9"]["images"]
    return [tmp_path / name / i["subfolder"] / i["filename"] for i in images]


@pytest.fixture
def original(fake: FakeComfyUI, tmp_path: Path) -> Path:
    """A file whose KSampler seed was drawn at run time by node 11."""
    (path,) = run_prompt(fake, sd_graph(["11", 0]), tmp_path)
    return path


def reproduce(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["reproduce", *args])
    out, err = capsys.readouterr()
    return code, out, err


def reproduced_prompts(fake: FakeComfyUI) -> list[dict[str, Any]]:
    return [b for b in fake.posted if b["prompt"]["9"]["inputs"]["filename_prefix"].startswith("reproduce/")]


# -- the prompt ------------------------------------------------------------------------------------
def test_a_seed_drawn_at_run_time_is_pinned(original: Path) -> None:
    record = read(original)
    assert record.prompt is not None and record.prompt["3"]["inputs"]["seed"] == ["11", 0]
    drawn = record.runtime["nodes"]["3"]["inputs"]["seed"]  # type: ignore[index]
    prompt, pins, warnings = pin(record.prompt, record.runtime)
    assert prompt["3"]["inputs"]["seed"] == drawn and isinstance(drawn, int)
    assert [(p.node_id, p.input, p.source, p.value) for p in pins] == [("3", "seed", "11", drawn)]
    assert warnings == [] and record.prompt["3"]["inputs"]["seed"] == ["11", 0]  # the record is left alone


def test_without_runtime_capture_nothing_is_pinned_and_it_says_so() -> None:
    graph = sd_graph(["11", 0])
    graph["11"]["is_changed"] = [float("nan")]  # what ComfyUI's executor writes into the prompt
    prompt, pins, warnings = pin(graph, None)
    assert pins == [] and prompt["3"]["inputs"]["seed"] == ["11", 0] and "is_changed" not in prompt["11"]
    assert warnings == ["the record has no runtime capture: values computed at run time are not pinned"]


def test_identical_pixels_exit_0(fake: FakeComfyUI, original: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = reproduce(capsys, str(original), "--server", fake.url)
    assert code == 0, err
    assert "identical pixels (64x64)" in out and "pinned: node 3 seed" in out
    (body,) = reproduced_prompts(fake)
    queued = body["prompt"]
    assert "11" not in queued  # the node that drew the seed is not needed any more
    assert queued["3"]["inputs"]["seed"] == read(original).generation.seed
    assert queued["9"]["inputs"]["filename_prefix"] == "reproduce/ComfyUI_00001"
    assert body["extra_data"] == {"extra_pnginfo": {"workflow": WORKFLOW}}
    assert len(list((original.parent / "reproduce").glob("*.png"))) == 1  # beside, never over, the original


def test_the_caches_are_cleared_first_and_the_prompt_id_is_a_new_uuid(
    fake: FakeComfyUI, original: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = reproduce(capsys, str(original), "--server", fake.url)
    assert code == 0 and "POST /free" in err
    (body,) = reproduced_prompts(fake)
    assert UUID4.fullmatch(body["prompt_id"]) and body["prompt_id"] != read(original).provenance.prompt_id
    kinds = [kind for kind, _ in fake.events]
    assert kinds[kinds.index("free") :] == ["free", "queued", "executed"]
    assert fake.frees == [{"free_memory": True, "unload_models": True}]
    assert fake.executed[-1] == body["prompt_id"]  # really ran, not served from the cache


def test_the_fake_serves_a_repeated_prompt_from_its_cache_until_freed(fake: FakeComfyUI, tmp_path: Path) -> None:
    first = run_prompt(fake, sd_graph(7), tmp_path)
    again = run_prompt(fake, sd_graph(7), tmp_path)
    assert again == first and [k for k, _ in fake.events][-2:] == ["queued", "cached"]
    Client(fake.url).free()
    assert run_prompt(fake, sd_graph(7), tmp_path) != first


def test_seed_sets_the_main_sampler_and_the_pixels_differ(
    fake: FakeComfyUI, original: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = reproduce(capsys, str(original), "--server", fake.url, "--seed", "42", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["status"] == "differs" and report["seed_set"] == "3.seed"
    assert reproduced_prompts(fake)[0]["prompt"]["3"]["inputs"]["seed"] == 42
    comparison = report["comparison"]
    assert comparison["max_abs_diff"] > 0 and 0 < comparison["mean_abs_diff"] <= 255
    seed = next(f for f in comparison["fields"] if f["field"] == "generation.seed")
    assert seed == {"field": "generation.seed", "original": read(original).generation.seed, "reproduced": 42}


def test_different_pixels_exit_1_with_max_and_mean(
    original: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with server(tmp_path, "other", noise=1) as other:  # same graph, same seed, other pixels
        code, out, _ = reproduce(capsys, str(original), "--server", other.url)
    assert code == 1
    assert re.search(r"pixel difference: max \d+, mean \d+\.\d{4} \(of 255\)", out)
    assert "the pixels differ" in out and "field differs" not in out


def test_refusal_lists_every_difference_and_queues_nothing(
    original: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = {"checkpoints": ["another.safetensors"], "loras": [LORA]}
    info = default_object_info(models)
    del info["VAEDecode"]
    hashes = {("loras", LORA): {"sha256": "9" * 64}}
    with server(tmp_path, "other", models=models, hashes=hashes, object_info=info) as other:
        code, out, err = reproduce(capsys, str(original), "--server", other.url)
        assert other.posted == [] and other.frees == []
    assert code == 2
    differences = [line.strip() for line in out.splitlines() if line.strip().startswith("difference:")]
    assert differences == [
        f"difference: missing model: checkpoint '{CHECKPOINT}' is not on the server "
        "(node 4 CheckpointLoaderSimple.ckpt_name)",
        "difference: node 8: the server has no node class 'VAEDecode'",
        f"difference: model differs: lora '{LORA}' on the server has sha256 999999999999…, the record 111111111111…",
    ]
    assert err.strip().splitlines()[-1] == f"{original}: cannot reproduce on {other.url}: 3 difference(s)"


def test_a_server_without_the_pack_is_a_warning_not_a_refusal(
    original: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with server(tmp_path, "plain", pack=False, comfyui_version="0.34.1") as plain:
        code, out, _ = reproduce(capsys, str(original), "--server", plain.url)
    assert code == 0
    assert "warning: the server does not run the provenance pack: model hashes cannot be checked" in out
    assert "warning: ComfyUI 0.33.0 made the file; the server runs 0.34.1" in out


def test_hashes_not_ready_yet_are_waited_for(
    original: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with server(tmp_path, "busy") as busy:
        busy.hash_pending[("loras", LORA)] = 2  # "not hashed yet" twice, then the hash
        code, out, _ = reproduce(capsys, str(original), "--server", busy.url)
    assert code == 0 and f"hashes match: checkpoint:{CHECKPOINT}, lora:{LORA}" in out


def test_dry_run_checks_and_prints_the_prompt(
    fake: FakeComfyUI, original: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(fake.posted)
    code, out, err = reproduce(capsys, str(original), "--server", fake.url, "--dry-run")
    assert code == 0 and len(fake.posted) == before and fake.frees == []
    prompt = json.loads(out)
    assert prompt["3"]["inputs"]["seed"] == read(original).generation.seed and "11" not in prompt
    assert "dry run: the server can run it; nothing queued" in err
    written = tmp_path / "prompt.json"
    code, out, _ = reproduce(capsys, str(original), "--server", fake.url, "--dry-run", "--out", str(written))
    assert code == 0 and json.loads(written.read_text("utf-8")) == prompt and "nothing queued" in out


def test_server_down_is_one_line_exit_2(original: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeComfyUI() as gone:
        url = gone.url
    code, out, err = reproduce(capsys, str(original), "--server", url)
    assert code == 2 and out == ""
    assert err == f"provenance: cannot reach ComfyUI at {url}: connection refused\n"


def test_a_server_that_dies_mid_run_is_exit_2(
    original: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with server(tmp_path, "dying", crash_after=0) as dying:
        code, _, err = reproduce(capsys, str(original), "--server", dying.url)
        assert [k for k, _ in dying.events][-2:] == ["queued", "gone"]
    # refused, or reset when the poll met the server going down: either way one line naming the server
    assert code == 2 and re.fullmatch(rf"provenance: (cannot reach )?ComfyUI at {dying.url}\b.*", err.splitlines()[-1])


def test_a_node_error_is_exit_2_with_its_message(
    original: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(prompt: dict[str, Any], extra: dict[str, Any]) -> Any:
        raise NodeError("3", "Expected all tensors on one device\n", "RuntimeError")

    with server(tmp_path, "broken") as broken:
        broken.execute = fail
        code, out, err = reproduce(capsys, str(original), "--server", broken.url)
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == (
        "provenance: ComfyUI failed running the prompt: node 3 (KSampler): Expected all tensors on one device"
    )


def test_a_manifest_entry_is_reproduced(fake: FakeComfyUI, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = sd_graph(["11", 0])
    graph["5"]["inputs"]["batch_size"] = 2
    files = run_prompt(fake, graph, tmp_path)
    manifest = tmp_path / "server" / "manifest.json"
    images = [
        {"filename": f.name, "subfolder": "", "seed": read(f).generation.seed, "api_prompt": read(f).prompt}
        for f in files
    ]
    snapshot = {"version": "2.0", "runtime_info": {"comfyui_version": "0.33.0", "models": []}}
    manifest.write_text(json.dumps({"snapshot": snapshot, "images": images}), "utf-8")
    code, out, _ = reproduce(capsys, f"{manifest}#1", "--server", fake.url, "--json")
    report = json.loads(out)
    assert code == 0 and report["status"] == "identical" and report["target"] == f"{manifest}#1"
    assert report["output"]["filename"].endswith("_00002_.png")  # the second of the batch, as the original
    files[1].unlink()  # only the entry's api_prompt is left: it runs, but nothing proves it identical
    code, out, _ = reproduce(capsys, f"{manifest}#1", "--server", fake.url, "--json")
    assert code == 2 and json.loads(out)["status"] == "ran"
    code, _, err = reproduce(capsys, f"{manifest}#7", "--server", fake.url)
    assert code == 2 and err == f"provenance: {manifest}: no image #7 (the manifest lists 2, numbered from 0)\n"


def test_a_file_without_a_prompt_cannot_be_reproduced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.png"
    path.write_bytes(b"not an image")
    code, _, err = reproduce(capsys, str(path), "--server", "http://127.0.0.1:9")
    assert code == 2 and err.startswith(f"provenance: {path}: ") and len(err.splitlines()) == 1


def test_the_fake_goes_away_and_comes_back_on_the_same_port(fake: FakeComfyUI, tmp_path: Path) -> None:
    (path,) = run_prompt(fake, sd_graph(3), tmp_path)
    url = fake.url
    fake.go_away()
    with pytest.raises(ServerError, match=f"ComfyUI at {url}"):
        Client(url).object_info()
    fake.restart()
    assert fake.url == url and fake.history == {}
    assert Client(url).view(path.name) == path.read_bytes()  # the files survive, as on disk
    assert run_prompt(fake, sd_graph(3), tmp_path) != [path]  # a fresh cache: it runs again


# -- GET /provenance/hash --------------------------------------------------------------------------
@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder the pack's locator searches, and a hash cache of this test's own."""
    from comfyui_provenance import compat
    from comfyui_provenance.metadata.hashing import RootsLocator

    root = tmp_path / "models"
    (root / "loras").mkdir(parents=True)
    monkeypatch.setattr(compat, "model_locator", lambda: RootsLocator([root]))
    monkeypatch.setattr(compat, "hash_cache_directory", lambda: tmp_path / "cache")
    return root


def test_the_hash_route_answers_from_the_cache_and_hashes_in_the_background(models_dir: Path) -> None:
    import hashlib
    import os
    import time

    from comfyui_provenance.hooks.route import model_hash

    data = os.urandom(4096)
    (models_dir / "loras" / "style.bin").write_bytes(data)
    os.utime(models_dir / "loras" / "style.bin", (1_000_000_000, 1_000_000_000))  # not "racily clean"
    status, body = model_hash("loras", "style.bin")
    while status == 404 and body["error"] == "not hashed yet":  # queued on the background hasher
        time.sleep(0.05)
        status, body = model_hash("loras", "style.bin")
    assert status == 200
    assert body == {
        "name": "style.bin",
        "folder": "loras",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": 4096,
        "mtime": 1_000_000_000.0,
    }


@pytest.mark.parametrize(
    ("folder", "name", "status", "error"),
    [
        ("loras", "missing.safetensors", 404, "no such file"),
        ("custom_nodes", "x.py", 400, "unknown models folder 'custom_nodes'"),
        ("loras", "../../etc/passwd", 400, "name must be a file name inside the models folder"),
        ("loras", "/etc/passwd", 400, "name must be a file name inside the models folder"),
    ],
)
def test_the_hash_route_never_reaches_outside_the_models_folders(
    models_dir: Path, folder: str, name: str, status: int, error: str
) -> None:
    from comfyui_provenance.hooks.route import model_hash

    code, body = model_hash(folder, name)
    assert code == status and body["error"].startswith(error) and "path" not in body


def test_the_hash_route_is_registered_beside_the_status_route(models_dir: Path) -> None:
    import asyncio
    from types import SimpleNamespace

    from comfyui_provenance.hooks.route import HASH_PATH, SEARCH_PATH, STATUS_PATH, register

    class Routes(list):  # type: ignore[type-arg]
        def get(self, path: str) -> Any:
            return lambda handler: self.append(SimpleNamespace(path=path, handler=handler))

    routes = Routes()
    assert register(routes, dict) is True
    assert [r.path for r in routes] == [STATUS_PATH, HASH_PATH, SEARCH_PATH]
    request = SimpleNamespace(rel_url=SimpleNamespace(query={"folder": "loras", "name": "none.safetensors"}))
    response = asyncio.run(routes[1].handler(request))
    assert response.status == 404 and json.loads(response.text) == {
        "error": "no such file",
        "name": "none.safetensors",
        "folder": "loras",
    }


def test_a_file_saved_by_core_save_image_is_reproduced_from_its_graph(
    fake: FakeComfyUI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (path,) = run_prompt(fake, sd_graph(21, save="SaveImage"), tmp_path)
    code, out, _ = reproduce(capsys, str(path), "--server", fake.url)
    assert code == 0 and "identical pixels" in out
    assert "note: the record has no runtime capture: values computed at run time are not pinned" in out
    assert reproduced_prompts(fake)[0]["prompt"]["9"]["inputs"]["filename_prefix"] == "reproduce/ComfyUI_00001"


@pytest.mark.parametrize(
    ("mine", "kind"),
    [({"sha256": "1" * 64}, "sha256"), ({"autov3": "2" * 12}, "autov3"), ({"autov2": "1" * 10}, "autov2")],
)
def test_the_strongest_hash_both_sides_know_is_compared(mine: dict[str, str], kind: str) -> None:
    from comfyui_provenance.reproduce.check import shared_kind

    answer = {"sha256": "1" * 64, "autov3": "2" * 12}
    assert shared_kind(mine, answer) == (kind, next(iter(mine.values())))
    assert shared_kind(mine, {"size": 1}) == (None, "")


def test_list_values_go_back_wrapped_as_comfyui_takes_them(fake: FakeComfyUI) -> None:
    """A file's prompt holds a multi-select as a bare list (ComfyUI unwraps {"__value__": ...} in place
    while validating); queued as is, /prompt reads it as a broken link. Links stay links."""
    prompt = sd_graph(5)
    prompt["9"]["inputs"]["targets"] = ["a1111", "record"]
    prompt["9"]["inputs"]["pair"] = ["xmp", 0]  # two items, but no node "xmp": a value, not a link
    client = Client(fake.url)
    client.queue(prompt, str(uuid.uuid4()), {})
    sent = fake.posted[-1]["prompt"]["9"]["inputs"]
    assert sent["targets"] == {"__value__": ["a1111", "record"]}
    assert sent["pair"] == {"__value__": ["xmp", 0]}
    assert sent["images"] == prompt["9"]["inputs"]["images"]  # a link to node 8
    assert prompt["9"]["inputs"]["targets"] == ["a1111", "record"]  # the caller's prompt is left alone

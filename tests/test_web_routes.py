"""The web panel's routes on a real aiohttp app, the fallback event and the frontend settings layer.

The routes are served the way ComfyUI serves them (the pack's RouteTableDef, mirrored under /api as
server.py's add_routes does), with compat pointed at temporary output/input/temp folders. Files are
real: saved by the pack, or by the fake ComfyUI the reproduce tests use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import hostile
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import context_for, deadline, expected, load_workflow, pixels
from fake_comfyui import FakeComfyUI
from fake_nodes import HASHES, MODELS, Renderer, default_object_info, sd_graph
from yarl import URL

from comfyui_provenance import compat
from comfyui_provenance.cli.main import main
from comfyui_provenance.hooks import route, web_routes
from comfyui_provenance.metadata import settings
from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.formats.base import AudioClip, MediaOptions
from comfyui_provenance.metadata.media import clip_from, save_audio, save_video
from comfyui_provenance.metadata.record import Placement, Record
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images
from comfyui_provenance.nodes import save_image
from comfyui_provenance.reproduce.client import Client

WORKFLOW = {"nodes": [{"id": 9, "type": "ProvenanceSaveImage"}], "links": [], "version": 0.4}


# -- the app ---------------------------------------------------------------------------------------------------------
def app(status: dict[str, Any] | None = None) -> web.Application:
    table = web.RouteTableDef()
    route.register(table, lambda: dict(status or {"pack_version": "test"}))
    application = web.Application()
    mirrored = web.RouteTableDef()
    for r in table:  # what ComfyUI's PromptServer.add_routes does with every pack's routes
        if isinstance(r, web.RouteDef):
            mirrored.route(r.method, "/api" + r.path)(r.handler, **r.kwargs)
    application.add_routes(mirrored)
    application.add_routes(table)
    return application


def call(method: str, url: str | URL, **kwargs: Any) -> tuple[int, Any]:
    """One request to a fresh server; (status, the JSON answer)."""

    async def go() -> tuple[int, Any]:
        async with TestClient(TestServer(app())) as client:
            resp = await client.request(method, url, **kwargs)
            assert resp.content_type == "application/json"
            return resp.status, await resp.json()

    return asyncio.run(go())


def get(path: str, **params: str) -> tuple[int, Any]:
    return call("GET", path, params=params)


def raw(path_and_query: str) -> tuple[int, Any]:
    """A URL sent exactly as written: the client neither decodes nor normalises it."""
    return call("GET", URL(path_and_query, encoded=True))


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    made = {kind: tmp_path / kind for kind in ("output", "input", "temp")}
    for folder in made.values():
        folder.mkdir()
    monkeypatch.setattr(compat, "file_directories", lambda: dict(made))
    monkeypatch.setattr(compat, "user_directory", lambda: tmp_path / "user")
    monkeypatch.setattr(settings._Process, "file", None)
    monkeypatch.setattr(settings._Process, "frontend", None)
    return made


def save_png(folder: Path, prefix: str = "test", seed: int | None = None, **options: Any) -> SavedFile:
    context = context_for("default")
    if seed is not None:
        prompt = json.loads(json.dumps(context.prompt))
        next(n for n in prompt.values() if n["class_type"] == "KSampler")["inputs"]["seed"] = seed
        context = SaveContext(prompt, context.extra_pnginfo, context.save_node_id, "test-prompt", "0.33.0")
    (saved,) = save_images([pixels()], context, folder, prefix, SaveOptions(**options), version="test")
    return saved


@pytest.fixture
def png(folders: dict[str, Path]) -> Path:
    return save_png(folders["output"]).path


# -- GET /provenance/record ------------------------------------------------------------------------------------------
def test_record_answers_the_record_as_provenance_read_prints_it(png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, body = get("/provenance/record", filename=png.name)
    assert status == 200, body
    assert main(["read", "--json", str(png)]) == 0
    assert body["record"] == json.loads(capsys.readouterr().out)
    want = expected("default")
    assert body["record"]["generation"]["seed"] == want["seed"]
    api, ui = load_workflow("default")
    assert body["prompt"] == api and body["workflow"] == ui
    assert body["a1111"].startswith(want["positive"]) and f"Seed: {want['seed']}" in body["a1111"]
    file = body["file"]
    assert (file["filename"], file["subfolder"], file["type"], file["kind"]) == (png.name, "", "output", "image")
    assert file["size"] == png.stat().st_size and file["mtime"] == pytest.approx(png.stat().st_mtime)
    assert body["view"] == f"/view?filename={png.name}&subfolder=&type=output"


def test_every_route_is_also_under_api(png: Path) -> None:
    assert get("/api/provenance/record", filename=png.name)[0] == 200
    assert get("/api/provenance/status")[0] == 200


def test_subfolders_and_the_other_folders(folders: dict[str, Path]) -> None:
    saved = save_png(folders["input"] / "a b", prefix="x")
    status, body = get("/provenance/record", filename=saved.path.name, subfolder="a b", type="input")
    assert status == 200 and body["file"]["subfolder"] == "a b" and body["file"]["type"] == "input"
    assert body["view"] == f"/view?filename={saved.path.name}&subfolder=a+b&type=input"
    assert get("/provenance/record", filename=saved.path.name, subfolder="a b")[0] == 404  # not in output


@pytest.mark.parametrize(
    "query",
    [
        "filename=..%2Fsecret.png",
        "filename=secret.png&subfolder=..%2F",
        "filename=secret.png&subfolder=%2e%2e/",
        "filename=secret.png&subfolder=%2E%2E%2F",
        "filename=%252e%252e%252fsecret.png",
        "filename=secret.png&subfolder=%252e%252e",
        "filename=secret.png&subfolder=%25252e%25252e",
        "filename=%2Ftmp%2Fsecret.png",
        "filename=secret.png&subfolder=%2Ftmp",
        "filename=secret.png&subfolder=sub/../..",
        "filename=..",
        "filename=a%00.png",
        "filename=..%5Csecret.png",
        "filename=secret.png&subfolder=..%5C",
        "filename=secret.png&subfolder=C:/Windows",
        "filename=",
        "subfolder=x",
        "filename=secret.png&type=models",
    ],
)
def test_names_that_could_leave_the_folder_are_a_400(folders: dict[str, Path], query: str) -> None:
    (folders["output"].parent / "secret.png").write_bytes(b"not for you")
    status, body = raw(f"/provenance/record?{query}")
    assert status == 400, body
    assert body["error"] and "\n" not in body["error"]


def test_a_link_out_of_the_folder_is_refused_and_one_inside_is_followed(png: Path, tmp_path: Path) -> None:
    outside = save_png(tmp_path / "elsewhere").path
    out = png.parent
    (out / "out.png").symlink_to(outside)
    (out / "outdir").symlink_to(outside.parent, target_is_directory=True)
    (out / "in.png").symlink_to(png)
    (out / "indir").symlink_to(out, target_is_directory=True)
    assert get("/provenance/record", filename="out.png")[0] == 403
    assert get("/provenance/record", filename=outside.name, subfolder="outdir")[0] == 403
    status, body = get("/provenance/record", filename="in.png")
    assert status == 200 and body["file"]["filename"] == "in.png"
    assert get("/provenance/record", filename=png.name, subfolder="indir")[0] == 200


def test_a_fifo_or_a_folder_is_never_opened(folders: dict[str, Path]) -> None:
    os.mkfifo(folders["output"] / "pipe.png")
    (folders["output"] / "folder.png").mkdir()
    with deadline(20):
        status, body = get("/provenance/record", filename="pipe.png")
    assert status == 404 and "not a regular file" in body["error"]
    assert get("/provenance/record", filename="folder.png")[0] == 404
    assert get("/provenance/record", filename="missing.png")[0] == 404


def test_a_file_over_the_limit_is_a_413(png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_routes, "RECORD_MAX_BYTES", png.stat().st_size - 1)
    status, body = get("/provenance/record", filename=png.name)
    assert status == 413 and "limit" in body["error"]


def test_a_hostile_file_is_one_line_422(folders: dict[str, Path]) -> None:
    case = hostile.CASES["jpeg-exif-huge-count"](folders["output"] / "bad")
    status, body = get("/provenance/record", filename=case.image.name, subfolder="bad")
    assert status == 422 and "exif" in body["error"].lower() and "\n" not in body["error"]
    (folders["output"] / "text.png").write_text("just text")
    status, body = get("/provenance/record", filename="text.png")
    assert status == 422 and "not a PNG" in body["error"]


def test_video_and_audio_kinds(folders: dict[str, Path]) -> None:
    out = folders["output"]
    api, ui = load_workflow("default")
    context = SaveContext(api, {"workflow": ui}, "9", "p", "0.33.0")
    frames = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    video = save_video(clip_from(frames, 8, None), context, out, "v/clip", MediaOptions(format="mp4"), version="t")
    wave = np.stack([0.2 * np.sin(np.arange(4410, dtype=np.float32) / 7)] * 2)
    sound = AudioClip(waveform=wave, sample_rate=44100)
    audio = save_audio(sound, context, out, "a/sound", MediaOptions(format="flac"), version="t")
    for saved, kind in ((video, "video"), (audio, "audio")):
        status, body = get("/provenance/record", filename=saved.path.name, subfolder=saved.subfolder)
        assert status == 200, body
        assert body["file"]["kind"] == kind and body["prompt"] == api
        assert body["record"]["generation"]["seed"] == expected("default")["seed"]


# -- POST /provenance/inspect ----------------------------------------------------------------------------------------
@pytest.fixture
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the route's temp folders go, to see that none is left behind."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_an_uploaded_file_is_read_and_not_kept(png: Path, uploads: Path) -> None:
    status, body = call("POST", "/provenance/inspect", params={"name": "../dir/My pic.PNG"}, data=png.read_bytes())
    assert status == 200, body
    assert body["file"] == {"filename": "My pic.PNG", "size": png.stat().st_size, "kind": "image", "uploaded": True}
    assert body["view"] is None and body["record"]["generation"]["seed"] == expected("default")["seed"]
    assert body["a1111"] and body["prompt"] and body["workflow"]
    assert list(uploads.iterdir()) == []


def test_an_upload_without_a_name_is_sniffed(png: Path, uploads: Path) -> None:
    status, body = call("POST", "/api/provenance/inspect", data=png.read_bytes())
    assert status == 200 and body["file"]["filename"] == "" and body["file"]["kind"] == "image"


def test_a_hostile_upload_is_one_line_422(folders: dict[str, Path], uploads: Path) -> None:
    case = hostile.CASES["webp-exif-huge-count"](folders["temp"] / "bad")
    status, body = call("POST", "/provenance/inspect", params={"name": "x.webp"}, data=case.image.read_bytes())
    assert status == 422 and "\n" not in body["error"]
    assert list(uploads.iterdir()) == []


def test_an_upload_over_the_cap_is_a_413_and_leaves_nothing(
    png: Path, uploads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_routes, "INSPECT_MAX_BYTES", 1000)
    status, body = call("POST", "/provenance/inspect", params={"name": "big.png"}, data=png.read_bytes())
    assert status == 413 and "limit" in body["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap is checked while streaming
        for _ in range(8):
            yield b"\x89PNG" + bytes(500)

    status, body = call("POST", "/provenance/inspect", params={"name": "big.png"}, data=chunks())
    assert status == 413 and "limit" in body["error"]
    assert list(uploads.iterdir()) == []


# -- GET /provenance/diff --------------------------------------------------------------------------------------------
def test_diff_answers_what_provenance_diff_prints(folders: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a = save_png(folders["output"], "a")
    b = save_png(folders["input"] / "s", "b", seed=7)
    status, body = get("/provenance/diff", a=a.path.name, b=b.path.name, b_subfolder="s", b_type="input")
    assert status == 200, body
    assert main(["diff", "--json", str(a.path), str(b.path)]) == 1
    cli = json.loads(capsys.readouterr().out)
    assert body["diff"] == {**cli, "a": f"{a.path.name} [output]", "b": f"s/{b.path.name} [input]"}
    assert {"field": "seed", "a": expected("default")["seed"], "b": 7} in body["diff"]["generation"]
    assert body["a"]["filename"] == a.path.name and body["b"]["type"] == "input" and body["b"]["kind"] == "image"


def test_diff_refuses_as_record_does(png: Path) -> None:
    status, body = raw(f"/provenance/diff?a={png.name}&b=..%2Fx.png")
    assert status == 400 and body["error"].startswith("b: ")
    status, body = get("/provenance/diff", a="missing.png", b=png.name)
    assert status == 404 and body["error"].startswith("a: ")


# -- POST /provenance/reproduce --------------------------------------------------------------------------------------
@pytest.fixture
def fake(tmp_path: Path, folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComfyUI]:
    """A fake ComfyUI whose renders land in our output folder, standing in for this very server."""
    server = FakeComfyUI(models=MODELS, hashes=HASHES, object_info=default_object_info(MODELS, random_seed=True))
    server.execute = Renderer(server, folders["output"])
    with server as running:
        monkeypatch.setattr(compat, "server_url", lambda: running.url)
        yield running


@pytest.fixture
def original(fake: FakeComfyUI, folders: dict[str, Path]) -> Path:
    prompt_id = str(uuid.uuid4())
    client = Client(fake.url)
    client.queue(sd_graph(["11", 0]), prompt_id, {"extra_pnginfo": {"workflow": WORKFLOW}})
    (image,) = client.wait(prompt_id, timeout=60)["outputs"]["9"]["images"]
    return folders["output"] / image["subfolder"] / image["filename"]


def post_reproduce(**body: Any) -> tuple[int, Any]:
    return call("POST", "/provenance/reproduce", json=body)


def test_reproduce_dry_run_checks_against_the_server(fake: FakeComfyUI, original: Path) -> None:
    status, body = post_reproduce(filename=original.name)
    assert status == 200, body
    report = body["report"]
    assert report["status"] == "dry-run" and report["prompt_id"] is None and "prompt" not in report
    assert report["target"] == f"{original.name} [output]" and report["server"] == fake.url
    assert [(p["node"], p["input"]) for p in report["pinned"]] == [("3", "seed")]
    assert not [b for b in fake.posted if b["prompt"]["9"]["inputs"]["filename_prefix"].startswith("reproduce/")]


def test_reproduce_queues_and_returns_without_waiting(fake: FakeComfyUI, original: Path) -> None:
    status, body = post_reproduce(filename=original.name, subfolder="", type="output", seed=5, dry_run=False)
    assert status == 200, body
    report = body["report"]
    assert report["status"] == "queued" and report["comparison"] is None and report["output"] is None
    queued = [b for b in fake.posted if b.get("prompt_id") == report["prompt_id"]]
    assert len(queued) == 1 and queued[0]["prompt"]["3"]["inputs"]["seed"] == 5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "JSON object"),
        ({"filename": "x.png", "colour": "red"}, "unknown field 'colour'"),
        ({"filename": "x.png", "seed": "5"}, "seed"),
        ({"filename": "x.png", "seed": True}, "seed"),
        ({"filename": "x.png", "dry_run": "no"}, "dry_run"),
        ({"filename": 3}, "strings"),
        ({"filename": "../x.png"}, "file name"),
    ],
)
def test_a_bad_reproduce_body_is_a_400(folders: dict[str, Path], body: Any, message: str) -> None:
    status, answer = call("POST", "/provenance/reproduce", json=body)
    assert status == 400 and message in answer["error"]
    status, answer = call("POST", "/provenance/reproduce", data=b"{not json")
    assert status == 400


def test_reproduce_refuses_files_as_record_does(png: Path, folders: dict[str, Path]) -> None:
    assert post_reproduce(filename="missing.png")[0] == 404
    (folders["output"] / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    status, body = post_reproduce(filename="bad.png")
    assert status == 422 and str(folders["output"]) not in body["error"] and "\n" not in body["error"]


def test_reproduce_says_502_when_the_loopback_call_fails(png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "server_url", lambda: "http://127.0.0.1:9")  # nothing listens on discard
    status, body = post_reproduce(filename=png.name)
    assert status == 502 and "cannot reach ComfyUI" in body["error"] and "\n" not in body["error"]


# -- GET /provenance/search and /status ------------------------------------------------------------------------------
def test_search_results_carry_their_view_names(folders: dict[str, Path], tmp_path: Path) -> None:
    first = save_png(folders["output"], "o").path
    second = save_png(folders["input"] / "deep" / "er", "i").path
    db = tmp_path / "user" / "provenance" / "catalogue.sqlite"
    assert main(["index", str(folders["output"]), str(folders["input"]), "--db", str(db)]) == 0
    status, body = get("/provenance/search", text="scenery")
    assert status == 200, body
    views = sorted((r["view"]["type"], r["view"]["subfolder"], r["view"]["filename"]) for r in body["results"])
    assert views == [("input", "deep/er", second.name), ("output", "", first.name)]


def test_status_says_whether_the_catalogue_is_on(folders: dict[str, Path], tmp_path: Path) -> None:
    status, body = get("/provenance/status")
    assert status == 200 and body["pack_version"] == "test" and body["catalogue_enabled"] is True
    front = tmp_path / "comfy.settings.json"
    front.write_text(json.dumps({"Provenance.Catalogue.Enabled": False}))
    settings.set_frontend_file(front)
    assert get("/provenance/status")[1]["catalogue_enabled"] is False


def test_only_a_table_that_takes_posts_gets_the_web_routes() -> None:
    table = web.RouteTableDef()
    route.register(table, dict)
    paths = sorted({r.path for r in table if isinstance(r, web.RouteDef)})
    assert {"/provenance/record", "/provenance/inspect", "/provenance/diff", "/provenance/reproduce"} <= set(paths)
    assert route.register(table, dict) is False and len(list(table)) == len(paths)
    gets_only = SimpleNamespace(added=[], get=lambda path: lambda handler: gets_only.added.append(path))
    assert web_routes.register(gets_only, lambda routes, path: False) == []


# -- the fallback event ----------------------------------------------------------------------------------------------
def test_a_clean_save_has_no_fallback(folders: dict[str, Path]) -> None:
    assert save_image.fallback_event([save_png(folders["output"])], "p", "9", disabled=False) is None


def test_a_target_moved_to_a_sidecar_and_a_pending_hash_are_reasons(folders: dict[str, Path]) -> None:
    def pending(models: list[Any]) -> None:
        for model in models:
            model.other["hash_pending"] = True

    context = context_for("default")
    options = SaveOptions(format="jpeg", targets=frozenset({"a1111", "comfyui", "record"}))
    (saved,) = save_images([pixels()], context, folders["output"], "j", options, version="t", hasher=pending)
    event = save_image.fallback_event([saved], "p", "9", disabled=False)
    assert event is not None and event["prompt_id"] == "p" and event["node_id"] == "9"
    assert event["files"] == [{"filename": saved.path.name, "subfolder": "", "type": "output"}]
    kinds = {r["kind"]: r["detail"] for r in event["reasons"]}
    assert "record went to sidecar:json" in kinds["sidecar"] and "XMP" in kinds["sidecar"]
    assert "hash still being computed" in kinds["hash_pending"]
    assert all("\n" not in r["detail"] for r in event["reasons"])


def test_metadata_disabled_is_a_reason_for_every_file(folders: dict[str, Path]) -> None:
    context = context_for("default")
    options = SaveOptions(disable_metadata=True)
    saved = save_images([pixels(), pixels(seed=1)], context, folders["output"], "d", options, version="t")
    event = save_image.fallback_event(saved, None, "9", disabled=True)
    assert event is not None and len(event["files"]) == 2
    assert [r["kind"] for r in event["reasons"]] == ["metadata_disabled"]


def test_failed_and_whole_embedding_failures_are_reasons() -> None:
    record = Record()
    record.provenance.embedding = [
        Placement(target="xmp", location="png:iTXt", status="failed", reason="disk\nfull"),
        Placement(target="a1111", location="png:tEXt", status="omitted"),
        Placement(target="sidecar_json", location="sidecar:json"),
    ]
    record.warn("embedding metadata failed: boom")
    reasons = save_image.record_fallbacks(record)
    assert reasons == [
        {"kind": "embed_failed", "detail": "embedding metadata failed: boom"},
        {"kind": "embed_failed", "detail": "xmp (png:iTXt) failed: disk full"},
        {"kind": "other", "detail": "a1111 (png:tEXt) omitted"},
    ]


@pytest.fixture
def node(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Any:
    """save_image.run with ComfyUI's side faked (tests/test_settings.py's way); the events sent."""
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(compat, "metadata_disabled", lambda: False)
    monkeypatch.setattr(compat, "current_prompt_id", lambda: "p1")
    monkeypatch.setattr(compat, "comfyui_version", lambda: "0.33.0")
    monkeypatch.setattr(compat, "output_directory", lambda: folders["output"])
    monkeypatch.setattr(compat, "save_namer", lambda: None)
    monkeypatch.setattr(compat, "send_event", lambda event, data: sent.append((event, data)) or True)
    monkeypatch.setattr(save_image, "comfyui_hasher", lambda models: None)
    api, ui = load_workflow("default")

    def run(**inputs: Any) -> list[dict[str, str]]:
        return save_image.run(
            **{
                "images": [pixels()],
                "filename_prefix": "node",
                "format": "png",
                "quality": 95,
                "lossless": False,
                "targets": None,
                "prompt": api,
                "extra_pnginfo": {"workflow": ui},
                "unique_id": "9",
                "options": '{"catalogue": false}',
                **inputs,
            }
        )

    return SimpleNamespace(run=run, sent=sent)


def test_the_node_sends_the_event_only_when_something_fell_back(node: Any) -> None:
    node.run()
    assert node.sent == []
    (entry,) = node.run(format="jpeg", targets="a1111,comfyui,record")
    ((event, data),) = node.sent
    assert event == "provenance.fallback" and data["prompt_id"] == "p1" and data["node_id"] == "9"
    assert data["files"] == [entry] and data["reasons"][0]["kind"] == "sidecar"


def test_a_failing_send_never_fails_the_save(node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(event: str, data: dict[str, Any]) -> bool:
        raise RuntimeError("websocket gone")

    monkeypatch.setattr(compat, "send_event", broken)
    assert len(node.run(format="jpeg", targets="a1111,comfyui,record")) == 1


def test_compat_sends_through_the_prompt_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "server", raising=False)
    assert compat.send_event("provenance.fallback", {}) is False
    assert compat.server_url() is None
    calls: list[tuple[Any, ...]] = []
    server = ModuleType("server")
    instance = SimpleNamespace(send_sync=lambda *a: calls.append(a), client_id="abc", address="0.0.0.0", port=8190)
    server.PromptServer = SimpleNamespace(instance=instance)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "server", server)
    assert compat.send_event("provenance.fallback", {"x": 1}) is True
    assert calls == [("provenance.fallback", {"x": 1}, "abc")]
    assert compat.server_url() == "http://127.0.0.1:8190"
    instance.address = "::"
    assert compat.server_url() == "http://[::1]:8190"
    instance.address = "192.168.1.5"
    assert compat.server_url() == "http://192.168.1.5:8190"


# -- the frontend settings layer -------------------------------------------------------------------------------------
@pytest.fixture
def front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(settings._Process, "file", None)
    monkeypatch.setattr(settings._Process, "frontend", None)
    path = tmp_path / "default" / "comfy.settings.json"
    path.parent.mkdir()
    settings.set_frontend_file(path)
    return path


def test_the_frontend_switch_sits_between_the_settings_file_and_the_overrides(front: Path, tmp_path: Path) -> None:
    assert settings.current().catalogue is True  # no file yet
    own = tmp_path / "settings.json"
    own.write_text('{"catalogue": true}')
    settings.set_file(own)
    front.write_text(json.dumps({"Comfy.Other": 1, "Provenance.Catalogue.Enabled": False}))
    assert settings.current().catalogue is False
    with settings.override(catalogue=True):
        assert settings.current().catalogue is True
    front.write_text(json.dumps({"Comfy.Other": 12345}))  # the key gone: the settings file decides again
    own.write_text('{"catalogue": false}')
    assert settings.current().catalogue is False
    own.write_text('{"catalogue": true }')
    assert settings.current().catalogue is True


@pytest.mark.parametrize(
    ("content", "warning"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"Provenance.Catalogue.Enabled": "no"}', "true or false"),
        ('{"x": "' + "a" * (1 << 20) + '"}', "over"),
    ],
)
def test_a_bad_frontend_file_is_ignored_with_one_warning(
    front: Path, caplog: pytest.LogCaptureFixture, content: str, warning: str
) -> None:
    front.write_text(content)
    with caplog.at_level(logging.WARNING):
        assert settings.current().catalogue is True
        assert settings.current().catalogue is True
    messages = [r.getMessage() for r in caplog.records if "frontend settings" in r.getMessage()]
    assert len(messages) == 1 and warning in messages[0]
    front.write_text('{"Provenance.Catalogue.Enabled": false}')
    assert settings.current().catalogue is False  # re-read once it changed


def test_a_fifo_as_the_frontend_file_never_blocks(front: Path) -> None:
    os.mkfifo(front)
    with deadline(20):
        assert settings.current().catalogue is True


def test_answers_are_strict_json_even_for_a_prompt_holding_nan() -> None:
    # ComfyUI's executor writes `is_changed: [NaN]` into prompts; JSON.parse refuses NaN
    assert web_routes.dumps({"is_changed": [float("nan")], "x": 1.5}) == '{"is_changed": [null], "x": 1.5}'

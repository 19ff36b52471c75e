"""The OpenAI-compatible API (service/) as the official `openai` SDK sees it, against the fake ComfyUI.

The service is mounted on the fake's own server, as hooks/openai_routes.py mounts it on ComfyUI's,
so `/v1/...`, `/view` and `/prompt` share one host, and the Renderer saves through the pack's real
save path: every image the SDK receives is read back for its provenance record.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import numpy as np
import openai
import pytest
from fake_comfyui import FakeComfyUI, NodeError
from fake_nodes import Renderer
from PIL import Image

from comfyui_provenance.metadata import settings
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Record
from comfyui_provenance.service.api import Service
from comfyui_provenance.service.templates import BUNDLED_DIR

KEY = "sk-test"
RATE_KEY = "sk-rate"  # the rate-limit test's own key: buckets are per key and the service lives per module
CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
OTHER = "other.safetensors"
SUFFIX = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
DATA_URL = re.compile(r"!\[image 1\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")
SETTLE_S = 20.0  # a deadline for what happens in the background, never a speed asserted


@dataclass
class Server:
    fake: FakeComfyUI
    service: Service
    output: Path

    @property
    def url(self) -> str:
        return self.fake.url

    def client(self, key: str = KEY, **options: Any) -> openai.OpenAI:
        options.setdefault("timeout", 60.0)
        return openai.OpenAI(api_key=key, base_url=self.url + "/v1", max_retries=0, **options)

    def queue(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/queue", timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


@contextmanager
def serving(output: Path, **fake_options: Any) -> Iterator[Server]:
    """A fake ComfyUI with the service mounted on its server, rendering into `output`."""
    fake: FakeComfyUI | None = None
    service = Service(lambda: fake.url if fake is not None else None)
    fake = FakeComfyUI(models={"checkpoints": [CHECKPOINT, OTHER]}, routes=service.routes(), **fake_options)
    fake.execute = Renderer(fake, output)
    fake.start()
    try:
        yield Server(fake, service, output)
    finally:
        if service._comfy is not None:
            fake.call(service._comfy.close())
        fake.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("openai-output")) as running:
        yield running


@pytest.fixture(scope="module")
def older_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A ComfyUI without POST /api/jobs/{id}/cancel: the service cancels with /queue delete and /interrupt."""
    with serving(tmp_path_factory.mktemp("openai-older"), jobs_api=False) as running:
        yield running


@pytest.fixture(autouse=True)
def defaults(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two keys, no rate limit, every other setting its default; afterwards the queue is left empty."""
    monkeypatch.setenv("PROVENANCE_OPENAI_KEYS", f"{KEY},{RATE_KEY}")
    monkeypatch.setenv("PROVENANCE_OPENAI_RATE_PER_MIN", "0")
    for name in ("TIMEOUT_S", "KEEPALIVE_S", "QUEUE_LIMIT", "TEMPLATES_DIR"):
        monkeypatch.delenv(f"PROVENANCE_OPENAI_{name}", raising=False)
    yield
    server.fake.delay = 0.0
    settle(lambda: server.service.in_flight == 0 and not any(server.queue().values()), "the queue to empty")


@pytest.fixture
def settings_file(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Name a settings file holding the given keys (the file-only openai_* keys); none again afterwards."""

    def write(values: dict[str, Any]) -> None:
        path = tmp_path / f"settings-{len(list(tmp_path.glob('settings-*.json')))}.json"
        path.write_text(json.dumps(values), "utf-8")
        settings.set_file(path)

    try:
        yield write
    finally:
        settings.set_file(None)


def settle(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {SETTLE_S:g} s for {what}"
        time.sleep(0.05)


def read_back(data: bytes, tmp_path: Path, fmt: str = "png") -> Record:
    path = tmp_path / f"got-{len(list(tmp_path.iterdir()))}{SUFFIX[fmt]}"
    path.write_bytes(data)
    return read(path)


def check(record: Record, prompt: str, seed: int, **expected: Any) -> None:
    """The record says what was asked, and its graph was saved by our node."""
    generation = record.generation
    assert generation.positive == prompt
    assert generation.seed == seed
    for name, value in expected.items():
        assert getattr(generation, name) == value, name
    assert record.prompt is not None and record.provenance.save_node_id is not None
    assert record.prompt[record.provenance.save_node_id]["class_type"] == "ProvenanceSaveImage"


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png(width: int, height: int, *, alpha: bool = False, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4 if alpha else 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA" if alpha else "RGB").save(out, "PNG")
    return out.getvalue()


def provenance(item: Any) -> dict[str, Any]:
    """Our extra field on an image item: ComfyUI's output ref and the seed."""
    extra = item.model_extra or {}
    assert isinstance(extra.get("provenance"), dict)
    return extra["provenance"]  # type: ignore[no-any-return]


# -- models ---------------------------------------------------------------------------------------------------------
def test_models_are_the_bundled_templates_whose_checkpoint_comfyui_has(server: Server) -> None:
    client = server.client()
    assert sorted(m.id for m in client.models.list()) == ["sd15", "sd15-img2img", "sd15-inpaint"]
    model = client.models.retrieve("sd15-inpaint")
    assert (model.id, model.object, model.owned_by) == ("sd15-inpaint", "model", "comfyui-provenance")
    for absent in ("sdxl", "flux", "gpt-image-1"):
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve(absent)


def test_a_user_template_folder_adds_a_model_named_after_its_file(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    graph = json.loads((BUNDLED_DIR / "sd15.json").read_text("utf-8"))["workflow"]  # a bare API graph
    (folder / "lighthouse.json").write_text(json.dumps(graph), "utf-8")
    monkeypatch.setenv("PROVENANCE_OPENAI_TEMPLATES_DIR", str(folder))
    client = server.client()
    assert "lighthouse" in [m.id for m in client.models.list()]
    assert client.models.retrieve("lighthouse").id == "lighthouse"

    result = client.images.generate(model="lighthouse", prompt="a user template", size="64x64", extra_body={"seed": 11})
    posted = server.fake.posted[-1]["prompt"]
    saves = [n for n in posted.values() if n["class_type"] in ("SaveImage", "ProvenanceSaveImage")]
    assert [n["class_type"] for n in saves] == ["ProvenanceSaveImage"]  # the file's SaveImage swapped for ours
    assert saves[0]["inputs"]["filename_prefix"] == "openai/lighthouse"
    assert result.data is not None and result.data[0].b64_json is not None
    check(read_back(base64.b64decode(result.data[0].b64_json), tmp_path), "a user template", 11)


def test_openai_checkpoints_serve_a_template_with_another_file(
    server: Server, tmp_path: Path, settings_file: Callable[[dict[str, Any]], None]
) -> None:
    settings_file({"openai_checkpoints": {"sd15": OTHER}})
    client = server.client()
    assert "sd15" in [m.id for m in client.models.list()]
    result = client.images.generate(model="sd15", prompt="another checkpoint", size="64x64", extra_body={"seed": 12})
    loaders = [n for n in server.fake.posted[-1]["prompt"].values() if n["class_type"] == "CheckpointLoaderSimple"]
    assert [n["inputs"]["ckpt_name"] for n in loaders] == [OTHER]
    assert result.data is not None and result.data[0].b64_json is not None
    record = read_back(base64.b64decode(result.data[0].b64_json), tmp_path)
    check(record, "another checkpoint", 12)
    assert [m.name for m in record.models if m.role == "checkpoint"] == [OTHER]

    settings_file({"openai_checkpoints": {"sd15": "not-on-this-server.safetensors"}})  # the family's key
    assert not [m.id for m in client.models.list() if m.id.startswith("sd15")]


# -- images.generate ------------------------------------------------------------------------------------------------
def test_generate_b64_json_carries_the_provenance_of_what_was_asked(server: Server, tmp_path: Path) -> None:
    prompt = "a red fox in the snow"
    result = server.client().images.generate(
        model="sd15",
        prompt=prompt,
        size="512x512",
        extra_body={"seed": 4242, "negative_prompt": "blurry, text", "steps": 7, "cfg": 5.5},
    )
    assert result.data is not None and len(result.data) == 1
    item = result.data[0]
    assert item.b64_json is not None
    data = base64.b64decode(item.b64_json)
    assert decoded(data).size == (512, 512)
    record = read_back(data, tmp_path)
    check(record, prompt, 4242, negative="blurry, text", steps=7, cfg=5.5, width=512, height=512)
    assert provenance(item)["seed"] == 4242
    assert provenance(item)["prompt_id"] == record.provenance.prompt_id
    assert data == server.fake.files[("output", provenance(item)["subfolder"], provenance(item)["filename"])]


def test_generate_url_points_at_comfyuis_view_on_the_same_host(server: Server, tmp_path: Path) -> None:
    result = server.client().images.generate(
        model="sd15", prompt="a lighthouse by url", size="64x64", response_format="url", extra_body={"seed": 31}
    )
    assert result.data is not None and result.data[0].url is not None
    url = urlsplit(result.data[0].url)
    assert (url.scheme, url.netloc, url.path) == ("http", urlsplit(server.url).netloc, "/view")
    query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    assert query["type"] == "output"
    with urllib.request.urlopen(result.data[0].url, timeout=10) as response:
        data = response.read()
    assert data == server.fake.files[("output", query["subfolder"], query["filename"])]
    check(read_back(data, tmp_path), "a lighthouse by url", 31)


def test_n_2_gives_two_distinct_images_of_one_batch(server: Server, tmp_path: Path) -> None:
    posted = len(server.fake.posted)
    result = server.client().images.generate(
        model="sd15", prompt="two foxes", n=2, size="64x64", extra_body={"seed": 5}
    )
    assert result.data is not None and len(result.data) == 2
    images = [base64.b64decode(item.b64_json or "") for item in result.data]
    assert images[0] != images[1]
    assert len({provenance(item)["filename"] for item in result.data}) == 2
    assert len(server.fake.posted) == posted + 1  # one prompt, batch_size 2
    for data in images:
        check(read_back(data, tmp_path), "two foxes", 5, batch_size=2)


@pytest.mark.parametrize(("size", "pixels"), [("512x512", (512, 512)), ("768x512", (768, 512))])
def test_size_is_the_rendered_size(server: Server, tmp_path: Path, size: str, pixels: tuple[int, int]) -> None:
    result = server.client().images.generate(model="sd15", prompt=f"sized {size}", size=size, extra_body={"seed": 21})
    assert result.data is not None and result.size == size
    data = base64.b64decode(result.data[0].b64_json or "")
    assert decoded(data).size == pixels
    check(read_back(data, tmp_path), f"sized {size}", 21, width=pixels[0], height=pixels[1])


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_output_format_is_the_file_format(server: Server, tmp_path: Path, fmt: Literal["jpeg", "webp"]) -> None:
    result = server.client().images.generate(
        model="sd15", prompt=f"a {fmt} fox", size="64x64", output_format=fmt, extra_body={"seed": 41}
    )
    assert result.data is not None and result.output_format == fmt
    data = base64.b64decode(result.data[0].b64_json or "")
    assert decoded(data).format == PIL_FORMAT[fmt]
    check(read_back(data, tmp_path, fmt), f"a {fmt} fox", 41)


# -- images.edit ----------------------------------------------------------------------------------------------------
def _loaded(prompt: dict[str, Any]) -> list[str]:
    return [n["inputs"]["image"] for _, n in sorted(prompt.items()) if n["class_type"] == "LoadImage"]


def _stored(server: Server, name: str) -> bytes:
    subfolder, _, filename = name.rpartition("/")
    return server.fake.files[("input", subfolder, filename)]


def test_edit_with_a_mask_inpaints_the_uploaded_image(server: Server, tmp_path: Path) -> None:
    photo, mask = png(96, 64, seed=1), png(96, 64, alpha=True, seed=2)
    result = server.client().images.edit(
        image=("photo.png", photo, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a boat on the lake",
        extra_body={"seed": 61},
    )
    prompt = server.fake.posted[-1]["prompt"]
    assert "VAEEncodeForInpaint" in {n["class_type"] for n in prompt.values()}
    image_name, mask_name = _loaded(prompt)  # node 10 the image, node 12 the mask
    assert _stored(server, image_name) == photo and _stored(server, mask_name) == mask
    assert result.data is not None
    data = base64.b64decode(result.data[0].b64_json or "")
    assert provenance(result.data[0])["filename"].startswith("sd15-inpaint")
    assert decoded(data).size == (96, 64)
    record = read_back(data, tmp_path)
    check(record, "a boat on the lake", 61)
    assert image_name in (record.generation.input_images or [])


def test_edit_without_a_mask_is_image_to_image(server: Server, tmp_path: Path) -> None:
    photo = png(64, 80, seed=3)
    result = server.client().images.edit(
        image=("photo.png", photo, "image/png"), prompt="the same, at night", extra_body={"seed": 62, "strength": 0.5}
    )
    prompt = server.fake.posted[-1]["prompt"]
    classes = {n["class_type"] for n in prompt.values()}
    assert "VAEEncode" in classes and "VAEEncodeForInpaint" not in classes
    (image_name,) = _loaded(prompt)
    assert _stored(server, image_name) == photo
    assert result.data is not None
    assert provenance(result.data[0])["filename"].startswith("sd15-img2img")
    record = read_back(base64.b64decode(result.data[0].b64_json or ""), tmp_path)
    check(record, "the same, at night", 62, denoise=0.5, input_images=[image_name])


def test_edit_n_2_queues_one_prompt_per_image_with_consecutive_seeds(server: Server, tmp_path: Path) -> None:
    posted = len(server.fake.posted)
    result = server.client().images.edit(
        image=("photo.png", png(64, 64, seed=4), "image/png"), prompt="twice", n=2, extra_body={"seed": 63}
    )
    assert len(server.fake.posted) == posted + 2  # the img2img graph has no batch size
    assert result.data is not None and len(result.data) == 2
    assert [provenance(item)["seed"] for item in result.data] == [63, 64]
    for item, seed in zip(result.data, (63, 64), strict=True):
        check(read_back(base64.b64decode(item.b64_json or ""), tmp_path), "twice", seed)


# -- chat.completions -----------------------------------------------------------------------------------------------
def test_chat_answers_markdown_with_the_image(server: Server, tmp_path: Path) -> None:
    completion = server.client().chat.completions.create(
        model="sd15",
        messages=[{"role": "user", "content": "a cat on a windowsill"}],
        extra_body={"seed": 71, "size": "64x64"},
    )
    content = completion.choices[0].message.content or ""
    match = DATA_URL.fullmatch(content)
    assert match is not None, content[:80]
    check(read_back(base64.b64decode(match[1]), tmp_path), "a cat on a windowsill", 71)


def test_chat_stream_joins_to_the_same_markdown(server: Server, tmp_path: Path) -> None:
    stream = server.client().chat.completions.create(
        model="sd15",
        messages=[{"role": "user", "content": [{"type": "text", "text": "a streamed owl"}]}],
        stream=True,
        extra_body={"seed": 72, "size": "64x64"},
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    match = DATA_URL.fullmatch(content)
    assert match is not None, content[:80]
    check(read_back(base64.b64decode(match[1]), tmp_path), "a streamed owl", 72)


def test_chat_stream_error_is_an_error_event(server: Server) -> None:
    stream = server.client().chat.completions.create(
        model="sd15", messages=[{"role": "user", "content": "odd"}], stream=True, extra_body={"size": "500x500"}
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "size"


# -- errors ---------------------------------------------------------------------------------------------------------
def test_a_wrong_key_is_refused_before_anything_is_queued(server: Server) -> None:
    posted = len(server.fake.posted)
    with pytest.raises(openai.AuthenticationError) as caught:
        server.client(key="sk-wrong").images.generate(model="sd15", prompt="refused")
    assert caught.value.status_code == 401
    assert len(server.fake.posted) == posted


def test_no_key_configured_refuses_every_request(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVENANCE_OPENAI_KEYS")
    with pytest.raises(openai.AuthenticationError) as caught:
        server.client().models.list()
    assert caught.value.status_code == 401
    assert "No API key is configured" in caught.value.message


def test_a_size_the_family_cannot_render_names_size(server: Server) -> None:
    posted = len(server.fake.posted)
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().images.generate(model="sd15", prompt="odd size", size="500x500")
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "size"
    assert len(server.fake.posted) == posted


def test_an_unknown_field_is_named(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().images.generate(model="sd15", prompt="typo", extra_body={"sede": 1})
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "sede"
    assert "sede" in caught.value.message


def test_generating_with_an_image_editing_model_is_refused_before_anything_is_queued(server: Server) -> None:
    posted = len(server.fake.posted)
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().images.generate(model="sd15-img2img", prompt="no image given")
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "model"
    assert "call images.edit" in caught.value.message
    assert len(server.fake.posted) == posted


def test_comfyuis_refusal_is_a_400_naming_its_reason(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user template with a node class this ComfyUI lacks: /prompt refuses it, the client hears why."""
    folder = tmp_path / "templates"
    folder.mkdir()
    graph = json.loads((BUNDLED_DIR / "sd15.json").read_text("utf-8"))["workflow"]
    graph["8"]["class_type"] = "VAEDecodeTiledByAPackNotInstalled"
    (folder / "needs-a-pack.json").write_text(json.dumps(graph), "utf-8")
    monkeypatch.setenv("PROVENANCE_OPENAI_TEMPLATES_DIR", str(folder))
    executed = len(server.fake.executed)
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().images.generate(model="needs-a-pack", prompt="a missing node", size="64x64")
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "invalid_workflow"
    assert "VAEDecodeTiledByAPackNotInstalled" in caught.value.message or "not found" in caught.value.message
    assert len(server.fake.executed) == executed


def test_an_unknown_model_is_not_found(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        server.client().images.generate(model="dall-e-3", prompt="no such model")
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "model"


def test_a_full_queue_answers_429_with_retry_after(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANCE_OPENAI_QUEUE_LIMIT", "1")
    server.fake.delay = 1.0
    client = server.client()
    posted = len(server.fake.posted)
    first: list[Any] = []
    thread = threading.Thread(
        target=lambda: first.append(
            client.images.generate(model="sd15", prompt="first in", size="64x64", extra_body={"seed": 81})
        )
    )
    thread.start()
    try:
        settle(lambda: len(server.fake.posted) > posted, "the first prompt to be queued")
        with pytest.raises(openai.RateLimitError) as caught:
            client.images.generate(model="sd15", prompt="second in", size="64x64", extra_body={"seed": 82})
        assert int(caught.value.response.headers["Retry-After"]) >= 1
        assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "queue_full"
        assert len(server.fake.posted) == posted + 1
    finally:
        thread.join(timeout=SETTLE_S)
    assert len(first) == 1 and first[0].data  # the first one is served


def test_the_per_key_rate_limit_answers_429(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANCE_OPENAI_RATE_PER_MIN", "2")
    client = server.client(key=RATE_KEY)
    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        client.models.list()
    assert int(caught.value.response.headers["Retry-After"]) >= 1
    assert server.client().models.list().data  # another key has its own bucket


def test_an_upload_over_the_limit_is_413(server: Server, settings_file: Callable[[dict[str, Any]], None]) -> None:
    settings_file({"openai_max_upload_mb": 1})
    uploads = len([k for k in server.fake.files if k[0] == "input"])
    big = b"\x89PNG\r\n\x1a\n" + bytes(1 << 20)
    with pytest.raises(openai.APIStatusError) as caught:
        server.client().images.edit(image=("big.png", big, "image/png"), prompt="too big")
    assert caught.value.status_code == 413
    assert len([k for k in server.fake.files if k[0] == "input"]) == uploads


# -- timeouts, keep-alive, logs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("comfyui", ["jobs-api", "older"])
def test_client_timeouts_cancel_their_prompts(comfyui: str, request: pytest.FixtureRequest) -> None:
    """One prompt runs, one waits behind it; both clients give up: the running one is interrupted, the
    waiting one taken off the queue (or interrupted, if the first went before its cancel came)."""
    running: Server = request.getfixturevalue("server" if comfyui == "jobs-api" else "older_server")
    fake = running.fake
    fake.delay = 5.0
    files, posted = set(fake.files), len(fake.posted)

    def impatient(index: int) -> None:
        with pytest.raises(openai.APITimeoutError):
            running.client(timeout=1.0).images.generate(model="sd15", prompt=f"never mind {index}", size="64x64")

    first = threading.Thread(target=impatient, args=(1,))
    first.start()
    settle(lambda: len(fake.posted) > posted, "the first prompt to be queued")
    impatient(2)
    first.join(timeout=SETTLE_S)
    prompt_ids = [body["prompt_id"] for body in fake.posted[posted:]]
    assert len(prompt_ids) == 2

    def gone(prompt_id: str) -> bool:
        return ("interrupted", prompt_id) in fake.events or ("deleted", prompt_id) in fake.events

    settle(lambda: all(gone(p) for p in prompt_ids), "both prompts to be cancelled")
    assert ("interrupted", prompt_ids[0]) in fake.events
    assert fake.history[prompt_ids[0]]["status"]["status_str"] == "error"
    assert not set(prompt_ids) & set(fake.executed)
    running.fake.delay = 0.0
    settle(lambda: running.service.in_flight == 0 and not any(running.queue().values()), "the queue to empty")
    assert set(fake.files) == files


def test_the_server_timeout_cancels_and_answers_500(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANCE_OPENAI_TIMEOUT_S", "1")
    server.fake.delay = 5.0
    posted = len(server.fake.posted)
    with pytest.raises(openai.InternalServerError) as caught:
        server.client().images.generate(model="sd15", prompt="too slow", size="64x64")
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "timeout"
    prompt_id = server.fake.posted[posted]["prompt_id"]
    settle(lambda: ("interrupted", prompt_id) in server.fake.events, "the prompt to be interrupted")
    assert prompt_id not in server.fake.executed


def test_keepalive_whitespace_still_parses(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVENANCE_OPENAI_KEEPALIVE_S", "0.2")
    server.fake.delay = 1.0
    raw = server.client().images.with_raw_response.generate(
        model="sd15", prompt="slow but alive", size="64x64", extra_body={"seed": 91}
    )
    assert raw.status_code == 200 and raw.content.startswith(b" ")  # whitespace went out while it rendered
    result = raw.parse()
    assert result.data is not None
    check(read_back(base64.b64decode(result.data[0].b64_json or ""), tmp_path), "slow but alive", 91)
    again = server.client().images.generate(model="sd15", prompt="slow, parsed", size="64x64")
    assert again.data is not None and again.data[0].b64_json


def test_a_failure_after_the_keepalive_began_is_an_error_for_the_client(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 200 went out with the whitespace: the service cuts the body short, so the SDK raises rather than
    returning a response without images; the error object is what the connection carried before it ended."""
    monkeypatch.setenv("PROVENANCE_OPENAI_KEEPALIVE_S", "0.2")
    server.fake.delay = 1.0
    renderer = server.fake.execute

    def failing(prompt: dict[str, Any], extra: dict[str, Any]) -> Any:
        raise NodeError("8", "CUDA out of memory (a pretend one)")

    server.fake.execute = failing
    try:
        with pytest.raises(openai.APIConnectionError):
            server.client().images.generate(model="sd15", prompt="fails late", size="64x64")
    finally:
        server.fake.execute = renderer
    again = server.client().images.generate(model="sd15", prompt="after the failure", size="64x64")
    assert again.data is not None and again.data[0].b64_json


def test_one_log_line_per_request_without_key_or_prompt(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    secret_prompt = "a secret garden behind the wall"
    caplog.set_level(logging.DEBUG)
    client = server.client()
    client.images.generate(model="sd15", prompt=secret_prompt, size="64x64", extra_body={"seed": 101})
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="sd15", prompt=secret_prompt, size="500x500")
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="nope", prompt=secret_prompt)
    with pytest.raises(openai.AuthenticationError):
        server.client(key="sk-not-a-key").images.generate(model="sd15", prompt=secret_prompt)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "provenance openai:" in r.getMessage()]

    settle(lambda: len(lines()) >= 4, "four log lines")
    logged = lines()
    assert len(logged) == 4, logged
    for line, status, model in zip(logged, (200, 400, 404, 401), ("sd15", "sd15", "nope", "-"), strict=True):
        assert f"-> {status} " in line and f"model={model} " in line, line
    text = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    for secret in (KEY, "sk-not-a-key", secret_prompt, "secret garden"):
        assert secret not in text


# -- load -----------------------------------------------------------------------------------------------------------
def test_fifty_concurrent_requests_each_get_one_answer(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    limit, count = 10, 50
    monkeypatch.setenv("PROVENANCE_OPENAI_QUEUE_LIMIT", str(limit))
    server.fake.delay = 0.02
    executed = len(server.fake.executed)
    client = server.client()

    def one(index: int) -> tuple[str, Any]:
        try:
            result = client.images.generate(
                model="sd15", prompt=f"load {index}", size="64x64", extra_body={"seed": 10_000 + index}
            )
        except openai.RateLimitError as err:
            return "429", err
        assert result.data is not None and len(result.data) == 1
        return "ok", provenance(result.data[0])

    with ThreadPoolExecutor(max_workers=count) as pool:
        answers = list(pool.map(one, range(count)))
    served = [a for kind, a in answers if kind == "ok"]
    refused = [a for kind, a in answers if kind == "429"]
    assert len(served) + len(refused) == count
    assert len(served) >= limit
    assert len({(p["subfolder"], p["filename"]) for p in served}) == len(served)
    assert sorted(p["seed"] for p in served) == sorted(set(p["seed"] for p in served))
    assert len(server.fake.executed) - executed == len(served)
    for err in refused:  # each refusal saw the queue at its limit
        assert err.body["code"] == "queue_full"
        assert f"({limit} of {limit} prompts" in err.message

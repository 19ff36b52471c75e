"""The OpenAI-compatible image API on a real ComfyUI (COMFYUI_PATH), driven by the official `openai` SDK.

One server runs the pack with PROVENANCE_OPENAI=1, one key, and a settings file that points the
bundled SD1.5 family at the random test checkpoint; every request is tiny (64x64, 2 steps) so SD1.5
on CPU answers in seconds. What the SDK gets back is checked against the file ComfyUI saved (same
bytes) and against the record the pack's reader finds in it; `provenance reproduce` remakes one of
them; a request that times out on the client leaves no prompt running and no file. Without
COMFYUI_PATH (or the checkpoint) every test here is skipped, with the reason.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comfyui_harness as harness  # tests/ is on pytest's pythonpath (pyproject)
import pytest
from PIL import Image as PILImage
from test_comfyui import CHECKPOINT, file_hashes

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.read import read

openai = pytest.importorskip("openai", reason="the openai SDK is not installed here (pip install openai)")

pytestmark = pytest.mark.comfyui

KEY = "sk-prov-test-0123456789abcdef"
SD_TIMEOUT_S = 300.0
TINY: dict[str, Any] = {"steps": 2}
BUNDLED_HERE = {"sd15", "sd15-img2img", "sd15-inpaint"}  # sdxl and flux: their checkpoints are not in the checkout
CLIENT_ID = "provenance-openai"  # service/api.py: the client_id of the API's prompts
CANCEL_DEADLINE_S = 60.0
PNG = b"\x89PNG\r\n\x1a\n"
DATA_URL = re.compile(r"!\[image 1\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


@pytest.fixture(scope="module")
def checkout() -> Path:
    path: Path = harness.require_checkout("OpenAI-compatible API tests")
    if not (path / "models" / "checkpoints" / CHECKPOINT).exists():
        pytest.skip(f"models/checkpoints/{CHECKPOINT} missing: the OpenAI API tests need the SD1.5 checkpoint")
    return path


@pytest.fixture(scope="module")
def server(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    base = tmp_path_factory.mktemp("comfyui_openai")
    settings_file = base / "user" / "provenance" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    # The family's key: sd15, sd15-img2img and sd15-inpaint all load the random checkpoint.
    settings_file.write_text(json.dumps({"openai_checkpoints": {"sd15": CHECKPOINT}}), "utf-8")
    env = {
        "PROVENANCE_OPENAI": "1",
        "PROVENANCE_OPENAI_KEYS": KEY,
        "PROVENANCE_HASH_WAIT_S": "240",  # the first save waits for the 2 GB checkpoint's hash: the record has it
    }
    started = harness.Server(checkout, base, env=env)
    try:
        started.wait_ready(timeout=240)
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def client(server: harness.Server) -> Any:
    return openai.OpenAI(api_key=KEY, base_url=f"{server.url}/v1", max_retries=0, timeout=SD_TIMEOUT_S)


# -- helpers ------------------------------------------------------------------------------------------------------
def saved_files(server: harness.Server) -> set[Path]:
    return {p for p in server.output.rglob("*") if p.is_file()}


def on_disk(server: harness.Server, item: Any) -> Path:
    """The file ComfyUI saved for one `data` item (its `provenance` extension names it)."""
    where: dict[str, str] = item.model_dump()["provenance"]
    assert where["type"] == "output", where
    return Path(server.output, where["subfolder"], where["filename"])


def b64_file(item: Any, path: Path) -> bytes:
    data = base64.b64decode(item.b64_json)
    path.write_bytes(data)
    return data


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=harness.HTTP_TIMEOUT_S) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def png_bytes(image: PILImage.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def photo() -> bytes:
    image = PILImage.new("RGB", (64, 64), (30, 90, 160))
    image.paste((220, 200, 40), (16, 16, 48, 48))
    return png_bytes(image)


def mask() -> bytes:
    """Opaque everywhere but a transparent square: the part to repaint (OpenAI's convention)."""
    image = PILImage.new("RGBA", (64, 64), (0, 0, 0, 255))
    image.paste((0, 0, 0, 0), (16, 16, 48, 48))
    return png_bytes(image)


def api_prompts(server: harness.Server, text: str) -> dict[str, str]:
    """prompt_id -> where it is ('running', 'pending', 'history') for every API prompt whose graph holds `text`."""

    def ours(row: Any) -> bool:
        graph, extra = row[2], row[3] if len(row) > 3 else {}
        return extra.get("client_id") == CLIENT_ID and text in json.dumps(graph)

    queue = server.get("/queue")
    found = {row[1]: "running" for row in queue.get("queue_running", []) if ours(row)}
    found |= {row[1]: "pending" for row in queue.get("queue_pending", []) if ours(row)}
    for prompt_id, entry in server.get("/history").items():
        if prompt_id not in found and ours(entry.get("prompt") or []):
            found[prompt_id] = "history"
    return found


# -- models ---------------------------------------------------------------------------------------------------------
def test_models_lists_the_templates_whose_checkpoint_is_there(server: harness.Server, client: Any) -> None:
    assert {m.id for m in client.models.list()} == BUNDLED_HERE
    model = client.models.retrieve("sd15-inpaint")
    assert (model.id, model.object, model.owned_by) == ("sd15-inpaint", "model", "comfyui-provenance")
    # ComfyUI mirrors every route under /api/: the same answer there, to a plain client.
    status, body = fetch(f"{server.url}/api/v1/models", {"Authorization": f"Bearer {KEY}"})
    assert status == 200 and {m["id"] for m in json.loads(body)["data"]} == BUNDLED_HERE
    status, body = fetch(f"{server.url}/api/v1/models")
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"


def test_comfyuis_origin_checks_stay_in_force(server: harness.Server) -> None:
    """A browser page on another site, key and all, is turned away by ComfyUI before the API sees it."""
    cross = {"Authorization": f"Bearer {KEY}", "Origin": "https://elsewhere.example", "Sec-Fetch-Site": "cross-site"}
    status, _ = fetch(f"{server.url}/v1/models", cross)
    assert status == 403


# -- errors ---------------------------------------------------------------------------------------------------------
def test_a_wrong_key_is_refused_and_queues_nothing(server: harness.Server) -> None:
    before, history = saved_files(server), server.get("/history")
    wrong = openai.OpenAI(api_key="sk-not-the-key", base_url=f"{server.url}/v1", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.images.generate(model="sd15", prompt="a refused lighthouse", size="64x64", extra_body=TINY)
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert server.get("/history") == history and saved_files(server) == before


def test_a_size_the_family_cannot_make_is_a_400_naming_size(server: harness.Server, client: Any) -> None:
    before = saved_files(server)
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="sd15", prompt="an odd size", size="65x64", extra_body=TINY)
    assert caught.value.param == "size" and "multiples of 8" in caught.value.message
    assert saved_files(server) == before


def test_an_unknown_model_is_a_404(client: Any) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.images.generate(model="no-such-model", prompt="anything", size="64x64", extra_body=TINY)
    assert (caught.value.code, caught.value.param) == ("model_not_found", "model")
    assert "sd15" in caught.value.message  # the refusal lists the models there are


# -- generations ----------------------------------------------------------------------------------------------------
def test_a_batch_of_two_b64_pngs_carries_the_request(
    server: harness.Server, client: Any, checkout: Path, tmp_path: Path
) -> None:
    prompt, seed = "a lighthouse at dusk, batch of two", 4242
    result = client.images.generate(
        model="sd15",
        prompt=prompt,
        n=2,
        size="64x64",
        response_format="b64_json",
        extra_body={**TINY, "seed": seed},
    )
    assert len(result.data) == 2 and result.size == "64x64" and result.output_format == "png"
    expected = file_hashes(checkout / "models" / "checkpoints" / CHECKPOINT)
    paths = set()
    for i, item in enumerate(result.data):
        data = b64_file(item, tmp_path / f"batch_{i}.png")
        assert data.startswith(PNG)
        with PILImage.open(tmp_path / f"batch_{i}.png") as image:
            assert (image.format, image.size) == ("PNG", (64, 64))
        record = read(tmp_path / f"batch_{i}.png")
        assert record.generation.positive == prompt
        assert record.generation.seed == seed and record.generation.steps == 2  # one batch: the requested seed
        assert record.generation.batch_size == 2
        checkpoint = record.first_model("checkpoint")
        assert checkpoint is not None and checkpoint.name == CHECKPOINT
        assert checkpoint.hashes.get("sha256") == expected["sha256"], checkpoint.hashes
        assert item.model_dump()["provenance"]["seed"] == seed
        path = on_disk(server, item)
        assert path.parent == server.output / "openai" and path.read_bytes() == data
        paths.add(path)
    assert len(paths) == 2


def test_a_url_answer_is_the_saved_file_and_jpeg_works(server: harness.Server, client: Any, tmp_path: Path) -> None:
    prompt = "a lighthouse at dusk, by url"
    result = client.images.generate(
        model="sd15", prompt=prompt, size="64x64", response_format="url", extra_body={**TINY, "seed": 7}
    )
    (item,) = result.data
    assert item.url.startswith(f"{server.url}/view?") and item.b64_json is None
    status, data = fetch(item.url)  # ComfyUI's own /view on the same server
    assert status == 200 and data == on_disk(server, item).read_bytes() and data.startswith(PNG)

    prompt = "a lighthouse at dusk, as a jpeg"
    result = client.images.generate(
        model="sd15", prompt=prompt, size="64x64", output_format="jpeg", extra_body={**TINY, "seed": 8}
    )
    (item,) = result.data
    assert result.output_format == "jpeg"
    data = b64_file(item, tmp_path / "out.jpg")
    with PILImage.open(tmp_path / "out.jpg") as image:
        assert (image.format, image.size) == ("JPEG", (64, 64))
    assert read(tmp_path / "out.jpg").generation.positive == prompt
    assert on_disk(server, item).read_bytes() == data


# -- edits ----------------------------------------------------------------------------------------------------------
def test_an_edit_with_a_mask_inpaints_the_uploaded_image(server: harness.Server, client: Any, tmp_path: Path) -> None:
    source, prompt = photo(), "a red door, inpainted"
    result = client.images.edit(
        image=("photo.png", source, "image/png"),
        mask=("mask.png", mask(), "image/png"),
        prompt=prompt,
        extra_body={**TINY, "seed": 11},
    )
    (item,) = result.data
    path = on_disk(server, item)
    assert path.name.startswith("sd15-inpaint"), path  # a mask picks the inpainting model
    record = read(path)
    assert record.generation.positive == prompt and record.generation.seed == 11
    inputs = record.generation.input_images or []
    uploaded = [name for name in inputs if (server.base / "input" / name).read_bytes() == source]
    assert len(uploaded) == 1 and uploaded[0].startswith("provenance-openai/"), inputs
    with PILImage.open(io.BytesIO(base64.b64decode(item.b64_json))) as image:
        assert image.size == (64, 64)


def test_an_edit_without_a_mask_is_img2img(server: harness.Server, client: Any) -> None:
    source, prompt = photo(), "the same photo, at dusk"
    result = client.images.edit(
        image=("photo.png", source, "image/png"), prompt=prompt, extra_body={**TINY, "seed": 12, "strength": 0.6}
    )
    (item,) = result.data
    path = on_disk(server, item)
    assert path.name.startswith("sd15-img2img"), path
    record = read(path)
    assert record.generation.positive == prompt and record.generation.denoise == pytest.approx(0.6)
    assert record.generation.input_images is not None
    (uploaded,) = record.generation.input_images
    assert uploaded.startswith("provenance-openai/")
    assert (server.base / "input" / uploaded).read_bytes() == source


# -- chat -----------------------------------------------------------------------------------------------------------
def test_a_chat_completion_answers_markdown_with_the_image(client: Any, tmp_path: Path) -> None:
    prompt = "a lighthouse at dusk, asked in a chat"
    completion = client.chat.completions.create(
        model="sd15",
        messages=[{"role": "user", "content": prompt}],
        extra_body={**TINY, "size": "64x64", "seed": 13},
    )
    (choice,) = completion.choices
    assert completion.model == "sd15" and choice.finish_reason == "stop"
    match = DATA_URL.fullmatch(choice.message.content or "")
    assert match is not None, (choice.message.content or "")[:200]
    (tmp_path / "chat.png").write_bytes(base64.b64decode(match[1]))
    assert read(tmp_path / "chat.png").generation.positive == prompt


# -- reproduce ------------------------------------------------------------------------------------------------------
def test_provenance_reproduce_remakes_an_api_image(
    server: harness.Server, client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    result = client.images.generate(
        model="sd15", prompt="a lighthouse to reproduce", size="64x64", extra_body={**TINY, "seed": 99}
    )
    (item,) = result.data
    original = on_disk(server, item)
    code = main(["reproduce", str(original), "--server", server.url, "--timeout", str(SD_TIMEOUT_S), "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == 0, (report, err, server.log_tail())
    assert report["status"] == "identical" and report["comparison"]["max_abs_diff"] == 0
    assert report["checks"]["differences"] == [] and f"checkpoint:{CHECKPOINT}" in report["checks"]["hashes_checked"]
    reproduced = server.output / report["output"]["subfolder"] / report["output"]["filename"]
    assert reproduced.parent.name == "reproduce" and read(reproduced).generation.seed == 99


# -- cancel ---------------------------------------------------------------------------------------------------------
def test_a_client_timeout_cancels_its_prompt(server: harness.Server) -> None:
    prompt = "a slow lighthouse the client gives up on"
    before = saved_files(server)
    impatient = openai.OpenAI(api_key=KEY, base_url=f"{server.url}/v1", max_retries=0, timeout=2.0)
    with pytest.raises(openai.APITimeoutError):
        impatient.images.generate(model="sd15", prompt=prompt, size="256x256", extra_body={"steps": 30, "seed": 31337})
    # Poll until every API prompt of this request left the queue (run, interrupted or dequeued).
    deadline = time.monotonic() + CANCEL_DEADLINE_S
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        now = api_prompts(server, prompt)
        seen |= now
        if seen and all(where == "history" for where in now.values()):
            break
        time.sleep(0.5)
    try:
        assert len(seen) == 1, (seen, server.log_tail())
        ((prompt_id, _),) = seen.items()
        where = api_prompts(server, prompt).get(prompt_id, "dequeued")
        assert where in ("history", "dequeued"), (
            f"{prompt_id} still {where} {CANCEL_DEADLINE_S:g} s after the client left"
        )
        if where == "history":  # it had started: interrupted, and its save node never ran
            entry = server.wait_history(prompt_id, timeout=10)
            assert entry["status"]["status_str"] == "error", entry["status"]
            events = [event for event, _ in entry["status"].get("messages", [])]
            assert "execution_interrupted" in events and not entry.get("outputs"), (events, entry.get("outputs"))
        assert saved_files(server) == before
    finally:
        server.free()

"""The web extension end to end: a real ComfyUI, its real frontend, headless Chromium (issue 12).

A fresh ComfyUI with the pack runs the random SD1.5 checkpoint + LoRA through the frontend's own
queue (so the files carry the UI workflow, as a user's do) into our image, mp4 and webm save nodes.
Then, in the browser: the extension registers, the Provenance tab opens, search finds the image,
its inspector shows the prompt and seed, "Load workflow" puts the graph on the canvas, dropping our
png/mp4/webm on ComfyUI loads their workflow, dropping a file on the tab inspects it, diff and
reproduce (check, then queue) work, and the routes refuse cross-site requests as ComfyUI does.

Each step leaves a screenshot in build/e2e/<frontend>/ (or $PROVENANCE_E2E_ARTIFACTS). It runs once
with the frontend ComfyUI pins and once with $PROVENANCE_FRONTEND_ROOT (the static folder of a newer
comfyui-frontend-package wheel) when that is set. Needs COMFYUI_PATH (with the random SD1.5 models),
Playwright (`pip install playwright`) and Debian's chromium (never a downloaded browser build).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import comfyui_harness as harness
import pytest
from test_comfyui import require_sd, sd_graph

from comfyui_provenance import __version__
from comfyui_provenance.metadata.read import read

pytestmark = pytest.mark.comfyui

REPO = Path(__file__).resolve().parent.parent
EXTENSION = "comfyui.provenance"
PROMPT_TEXT = "a lighthouse on a cliff, storm"
SEED = 424242
TIMEOUT_MS = 60_000
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Seeded into ComfyUI's user settings: no first-run template browser over the canvas.
FRONTEND_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingModelsWarning": False}


def frontends() -> list[Any]:
    newest = os.environ.get("PROVENANCE_FRONTEND_ROOT")
    reason = (
        "PROVENANCE_FRONTEND_ROOT not set: point it at the static/ folder of the newest comfyui-frontend-package "
        "wheel (pip download comfyui-frontend-package --no-deps; unzip) to run these against it too"
    )
    return [
        pytest.param(None, id="pinned"),
        pytest.param(newest, id="newest", marks=() if newest else pytest.mark.skip(reason=reason)),
    ]


def chromium() -> str:
    found = os.environ.get("PROVENANCE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no chromium on PATH: apt-get install chromium (Playwright's own browser download is not used)")
    return found


def saves(prefix: str) -> dict[str, dict[str, Any]]:
    return {
        "9": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
        "20": {
            "class_type": "ProvenanceSaveVideo",
            "inputs": {"images": ["8", 0], "filename_prefix": f"{prefix}_mp4", "format": "mp4", "fps": 8.0},
        },
        "21": {
            "class_type": "ProvenanceSaveVideo",
            "inputs": {"images": ["8", 0], "filename_prefix": f"{prefix}_webm", "format": "webm", "fps": 8.0},
        },
    }


@dataclass
class Session:
    server: harness.Server
    page: Any
    shots: Path
    files: dict[str, Path]  # png, mp4, webm as saved by the run queued from the browser
    step: int = 0

    def shot(self, name: str) -> Path:
        self.step += 1
        path = self.shots / f"{self.step:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def nodes(self) -> list[str]:
        """The class of each node on the canvas."""
        return self.page.evaluate("() => (app.graph.nodes || app.graph._nodes || []).map(n => n.type)")  # type: ignore[no-any-return]

    def clear_canvas(self) -> None:
        self.page.evaluate("() => app.graph.clear()")
        assert self.nodes() == []

    def open_tab(self) -> Any:
        tab = self.page.locator('[data-testid="provenance-tab"]')
        if not tab.is_visible():
            self.page.locator('.side-bar-button[aria-label^="Provenance"]').first.click()
        tab.wait_for(state="visible", timeout=TIMEOUT_MS)
        return tab

    def http(self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> int:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.server.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)


@pytest.fixture(scope="module", params=frontends())
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    checkout = harness.require_checkout("web extension's end-to-end tests in headless Chromium")
    require_sd(checkout)
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser is Debian's)")
    root = request.param
    name = "newest" if root else "pinned"
    shots = Path(os.environ.get("PROVENANCE_E2E_ARTIFACTS") or REPO / "build" / "e2e") / name
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    base = tmp_path_factory.mktemp(f"web-{name}")
    (base / "user" / "default").mkdir(parents=True)
    (base / "user" / "default" / "comfy.settings.json").write_text(json.dumps(FRONTEND_SETTINGS), "utf-8")
    server = harness.Server(checkout, base, *(("--front-end-root", root) if root else ()))
    try:
        server.wait_ready()
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(server.url)
            page.wait_for_function("window.app && window.app.extensionManager && window.app.graph", timeout=TIMEOUT_MS)
            files = queue_from_browser(page, server, f"web_{name}")
            yield Session(server, page, shots, files)
            ours = [e for e in errors if "provenance" in e.lower()]
            assert not ours, ours  # nothing of ours threw in the page
            browser.close()
    finally:
        server.stop()


def queue_from_browser(page: Any, server: harness.Server, prefix: str) -> dict[str, Path]:
    """Load the SD graph into the canvas and queue it with the frontend's own Queue: the files carry its workflow."""
    graph = sd_graph(SEED, saves(prefix))
    page.evaluate("(prompt) => app.loadApiJson(prompt, 'provenance-e2e')", graph)
    page.wait_for_function("() => (app.graph.nodes || app.graph._nodes).length >= 10", timeout=TIMEOUT_MS)
    page.evaluate("() => app.queuePrompt(0, 1)")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        history = server.get("/history")
        done = [e for e in history.values() if e.get("status", {}).get("completed") is not None]
        if done:
            entry = done[-1]
            assert entry["status"]["status_str"] == "success", (entry["status"], server.log_tail())
            outputs = entry["outputs"]
            found = {}
            for node, kind in (("9", "png"), ("20", "mp4"), ("21", "webm")):
                (item,) = outputs[node].get("images") or outputs[node].get("gifs") or outputs[node].get("videos")
                found[kind] = server.output / item["subfolder"] / item["filename"]
            for path in found.values():
                assert path.is_file() and read(path).generation.seed == SEED
            assert isinstance(read(found["png"]).workflow, dict)  # the frontend's UI workflow came along
            return found
        time.sleep(1)
    raise AssertionError(f"the browser's queued prompt did not finish:\n{server.log_tail()}")


# -- the flows, in order (the module-scoped session carries the page from one to the next) --------------------------


def test_the_extension_registers_and_the_tab_opens(session: Session) -> None:
    names = session.page.evaluate("() => app.extensions.map(e => e.name)")
    assert EXTENSION in names
    badges = session.page.evaluate(f"() => app.extensions.find(e => e.name === '{EXTENSION}').aboutPageBadges")
    assert any(__version__ in b["label"] for b in badges), badges
    format_default = session.page.evaluate("() => app.extensionManager.setting.get('Provenance.SaveDefaults.Format')")
    assert format_default == "png"
    session.shot("canvas-with-extension")
    tab = session.open_tab()
    status = tab.locator('[data-testid="provenance-status"]')
    status.wait_for(state="visible")
    session.page.wait_for_function(
        "() => document.querySelector('[data-testid=provenance-status]').textContent.trim().length > 0"
    )
    assert "hook" in status.inner_text().lower()
    session.shot("tab-open")


def test_search_finds_the_saved_image(session: Session) -> None:
    tab = session.open_tab()
    tab.locator('[data-testid="provenance-search"]').fill("lighthouse")
    tab.locator('[data-testid="provenance-search-button"]').click()
    png = session.files["png"].name
    tile = tab.locator(f'[data-testid="provenance-tile"][data-filename="{png}"]')
    deadline = time.monotonic() + 60  # the catalogue writer indexes off the save: search again until it did
    while not tile.count() and time.monotonic() < deadline:
        time.sleep(1)
        tab.locator('[data-testid="provenance-search-button"]').click()
    tile.first.wait_for(state="visible", timeout=TIMEOUT_MS)
    names = tab.locator('[data-testid="provenance-tile"]').evaluate_all("ts => ts.map(t => t.dataset.filename)")
    assert {session.files[k].name for k in ("png", "mp4", "webm")} <= set(names), names
    session.shot("search-lighthouse")


def test_the_inspector_shows_prompt_and_seed(session: Session) -> None:
    tab = session.open_tab()
    tab.locator(f'[data-testid="provenance-tile"][data-filename="{session.files["png"].name}"]').first.click()
    inspector = tab.locator('[data-testid="provenance-inspector"]')
    inspector.locator('[data-testid="provenance-prompt"]').wait_for(state="visible", timeout=TIMEOUT_MS)
    assert PROMPT_TEXT in inspector.locator('[data-testid="provenance-prompt"]').inner_text()
    assert str(SEED) in inspector.locator('[data-testid="provenance-seed"]').inner_text()
    models = inspector.locator('[data-testid="provenance-models"]').inner_text()
    assert "random_sd15_lora" in models
    a1111 = inspector.locator('[data-testid="provenance-a1111"]').inner_text()
    assert f"Seed: {SEED}" in a1111 and "<lora:random_sd15_lora" in a1111
    session.shot("inspector")


def test_load_workflow_puts_the_graph_on_the_canvas(session: Session) -> None:
    session.clear_canvas()
    tab = session.open_tab()
    tab.locator('[data-testid="provenance-load-workflow"]').click()
    session.page.wait_for_function("() => (app.graph.nodes || app.graph._nodes).length >= 10", timeout=TIMEOUT_MS)
    nodes = session.nodes()
    assert {"KSampler", "LoraLoader", "ProvenanceSaveImage", "ProvenanceSaveVideo"} <= set(nodes), nodes
    session.shot("workflow-loaded")


@pytest.mark.parametrize("kind", ["png", "mp4", "webm"])
def test_dropping_our_file_on_comfyui_loads_its_workflow(session: Session, kind: str) -> None:
    session.clear_canvas()
    session.page.set_input_files("#comfy-file-input", str(session.files[kind]))
    session.page.wait_for_function("() => (app.graph.nodes || app.graph._nodes).length >= 10", timeout=TIMEOUT_MS)
    nodes = session.nodes()
    assert {"KSampler", "CheckpointLoaderSimple", "ProvenanceSaveVideo"} <= set(nodes), (kind, nodes)
    session.shot(f"dropped-{kind}")


def test_a_file_dropped_on_the_tab_is_inspected(session: Session) -> None:
    tab = session.open_tab()
    tab.locator('[data-testid="provenance-file-input"]').set_input_files(str(session.files["mp4"]))
    prompt = tab.locator('[data-testid="provenance-inspector"] [data-testid="provenance-prompt"]')
    session.page.wait_for_function(
        "(text) => (document.querySelector('[data-testid=provenance-inspector] [data-testid=provenance-prompt]')"
        " || {}).textContent?.includes(text)",
        arg=PROMPT_TEXT,
        timeout=TIMEOUT_MS,
    )
    assert PROMPT_TEXT in prompt.inner_text()
    assert str(SEED) in tab.locator('[data-testid="provenance-inspector"] [data-testid="provenance-seed"]').inner_text()
    session.shot("dropped-on-tab")


def test_diff_against_another_file(session: Session) -> None:
    tab = session.open_tab()
    tab.locator(f'[data-testid="provenance-tile"][data-filename="{session.files["png"].name}"]').first.click()
    tab.locator('[data-testid="provenance-diff"]').click()
    tab.locator(f'[data-testid="provenance-tile"][data-filename="{session.files["webm"].name}"]').first.click()
    result = tab.locator('[data-testid="provenance-diff-result"]')
    result.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert result.inner_text().strip()
    session.shot("diff")


def test_reproduce_checks_then_queues(session: Session) -> None:
    tab = session.open_tab()
    tab.locator(f'[data-testid="provenance-tile"][data-filename="{session.files["png"].name}"]').first.click()
    before = set(session.server.get("/history"))
    tab.locator('[data-testid="provenance-reproduce"]').click()
    queue = tab.locator('[data-testid="provenance-queue"]')
    queue.wait_for(state="visible", timeout=TIMEOUT_MS)
    session.shot("reproduce-check")
    queue.click()
    result = tab.locator('[data-testid="provenance-reproduce-result"]')
    session.page.wait_for_function(
        "() => /queued/i.test(document.querySelector('[data-testid=provenance-reproduce-result]')?.textContent || '')"
        " || (document.querySelector('[data-testid=provenance-error]')?.textContent || '').trim()",
        timeout=TIMEOUT_MS,
    )
    error = tab.locator('[data-testid="provenance-error"]').inner_text().strip()
    assert not error and "queued" in result.inner_text().lower(), (error, result.inner_text())
    session.shot("reproduce-queued")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        new = {k: v for k, v in session.server.get("/history").items() if k not in before}
        if any(e.get("status", {}).get("completed") is not None for e in new.values()):
            break
        time.sleep(1)
    (entry,) = new.values()
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert next(iter(new)) in result.inner_text()


def test_routes_refuse_cross_site_requests_as_comfyui_does(session: Session) -> None:
    png = session.files["png"].name
    query = f"/provenance/record?filename={png}&type=output"
    assert session.http("GET", query) == 200
    assert session.http("GET", "/api" + query) == 200
    assert session.http("GET", query, {"Sec-Fetch-Site": "cross-site"}) == 403
    body = {"filename": png, "subfolder": "", "type": "output", "dry_run": True}
    evil = {"Origin": "http://evil.example", "Content-Type": "application/json"}
    assert session.http("POST", "/provenance/reproduce", evil, body) == 403
    assert session.http("POST", "/api/provenance/reproduce", evil, body) == 403

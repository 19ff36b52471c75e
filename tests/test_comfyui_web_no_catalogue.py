"""The web extension with no catalogue at all (issue 12): the gallery says so, a dropped file is still inspected.

Its own module: Playwright's sync API runs one loop at a time, and test_comfyui_web.py holds its
browser for the whole module. Needs COMFYUI_PATH, Playwright and Debian's chromium (skips otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path

import comfyui_harness as harness
import pytest
from test_comfyui_web import CHROMIUM_FLAGS, FRONTEND_SETTINGS, TIMEOUT_MS, Session, chromium

pytestmark = pytest.mark.comfyui


def test_with_the_catalogue_off_the_inspector_and_drop_still_work(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No catalogue at all (the setting off, nothing indexed): the gallery says so, a dropped file is inspected."""
    checkout = harness.require_checkout("web extension's end-to-end tests in headless Chromium")
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser is Debian's)")
    from conftest import context_for, pixels

    from comfyui_provenance.metadata.save import SaveOptions, save_images

    (saved,) = save_images([pixels()], context_for("lora"), tmp_path / "mine", "mine", SaveOptions(), version="t")
    base = tmp_path_factory.mktemp("web-no-catalogue")
    (base / "user" / "default").mkdir(parents=True)
    (base / "user" / "default" / "comfy.settings.json").write_text(
        json.dumps({**FRONTEND_SETTINGS, "Provenance.Catalogue.Enabled": False}), "utf-8"
    )
    server = harness.Server(checkout, base)
    try:
        server.wait_ready()
        assert server.get("/provenance/status")["catalogue_enabled"] is False
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.goto(server.url)
            page.wait_for_function("window.app && window.app.extensionManager && window.app.graph", timeout=TIMEOUT_MS)
            session = Session(server, page, tmp_path, {})
            tab = session.open_tab()
            tab.locator('[data-testid="provenance-search-button"]').click()
            note = tab.locator('[data-testid="provenance-gallery-note"]')
            note.wait_for(state="visible", timeout=TIMEOUT_MS)
            assert "catalogue" in note.inner_text().lower()
            assert tab.locator('[data-testid="provenance-tile"]').count() == 0
            tab.locator('[data-testid="provenance-file-input"]').set_input_files(str(saved.path))
            page.wait_for_function(
                "() => (document.querySelector('[data-testid=provenance-inspector] [data-testid=provenance-seed]')"
                " || {}).textContent?.includes('261660645921551')",
                timeout=TIMEOUT_MS,
            )
            assert "teddy" in tab.locator('[data-testid="provenance-prompt"]').inner_text().lower()
            browser.close()
    finally:
        server.stop()

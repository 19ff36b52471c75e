"""The web extension (web/): its Node unit tests, its version, and modules that are safe to import anywhere.

ComfyUI imports every .js file under WEB_DIRECTORY on its own, so each library module must load without
a browser and do nothing until called; only web/provenance.js registers (and imports the frontend).
Without `node` these skip, unless PROVENANCE_REQUIRE_READERS=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REQUIRE_READERS

from comfyui_provenance import __version__

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
ENTRY = WEB / "provenance.js"
LIBRARY = sorted(p for p in WEB.rglob("*.js") if p != ENTRY)
NODE_TIMEOUT_S = 300

# Browser and frontend globals a library module must not touch while it is imported.
GUARD = """
const touched = [];
for (const name of ["window", "document", "app", "api", "navigator", "localStorage", "location", "customElements"]) {
  Object.defineProperty(globalThis, name, {
    configurable: true,
    get() { touched.push(name); throw new Error(`touched ${name} at import`); },
  });
}
try {
  await import(process.argv[1]);
  console.log(JSON.stringify({ ok: touched.length === 0, touched }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, touched, error: String(err?.stack ?? err) }));
}
"""


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if REQUIRE_READERS:
            pytest.fail("node is not on PATH, and PROVENANCE_REQUIRE_READERS=1 requires it")
        pytest.skip("node is not on PATH: the web extension's tests need Node 20+")
    return found


def test_node_unit_tests_pass() -> None:
    done = subprocess.run(
        [node(), "--test", "tests/js/"], cwd=ROOT, capture_output=True, text=True, timeout=NODE_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, f"node --test tests/js/ failed:\n{done.stdout[-20000:]}\n{done.stderr[-5000:]}"


def test_web_version_is_the_pack_version() -> None:
    found = re.search(r'^export const VERSION = "([^"]+)";$', (WEB / "lib" / "version.js").read_text("utf-8"), re.M)
    assert found is not None, 'web/lib/version.js must export const VERSION = "…";'
    assert found.group(1) == __version__


@pytest.mark.parametrize("module", LIBRARY, ids=lambda p: str(p.relative_to(WEB)))
def test_library_module_imports_without_browser_globals(module: Path) -> None:
    done = subprocess.run(
        [node(), "--input-type=module", "-e", GUARD, module.as_uri()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"], f"{module.relative_to(ROOT)}: {result}"


def test_only_the_entry_module_imports_the_frontend() -> None:
    importers = [p.name for p in WEB.rglob("*.js") if "/scripts/" in p.read_text("utf-8")]
    assert importers == ["provenance.js"]


@pytest.mark.parametrize("module", sorted(WEB.rglob("*.js")), ids=lambda p: str(p.relative_to(WEB)))
def test_relative_imports_name_their_js_file(module: Path) -> None:
    """The browser resolves no extensionless or bare specifiers (no bundler, no import map)."""
    specifiers = re.findall(r'^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"', module.read_text("utf-8"), re.M | re.S)
    for spec in specifiers:
        assert spec.startswith(("./", "../")) and spec.endswith(".js"), f"{module.name}: {spec}"


def test_the_default_targets_agree_with_the_nodes() -> None:
    from comfyui_provenance.nodes import save_image, save_media

    found = re.search(
        r"^export const DEFAULT_TARGETS = (\[[^\]]*\]);$", (WEB / "lib" / "settings.js").read_text("utf-8"), re.M
    )
    assert found is not None, "web/lib/settings.js must export const DEFAULT_TARGETS = [...];"
    assert json.loads(found.group(1)) == save_image.DEFAULT_TARGET_LIST == save_media.DEFAULT_TARGET_LIST

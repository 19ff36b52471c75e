"""The toggle: what importing the pack inside a (fake) running ComfyUI installs and registers.

ComfyUI's main.py imports `execution` and creates `PromptServer.instance` before it loads packs;
here the fake execution module and a stub server stand in for both, and the pack is loaded the
way ComfyUI loads it (a package under a name of its own). aiohttp is stubbed: the route handlers
only need `web.json_response`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
FAKE = Path(__file__).with_name("fake_execution.py")
_copies = itertools.count()


class Routes(list):  # type: ignore[type-arg]
    """The part of aiohttp's RouteTableDef the pack uses: .get(path)(handler), iteration over RouteDefs."""

    def get(self, path: str) -> Callable[[Any], Any]:
        def add(handler: Any) -> Any:
            self.append(SimpleNamespace(method="GET", path=path, handler=handler))
            return handler

        return add

    def handler(self, path: str) -> Any:
        (found,) = [r.handler for r in self if r.path == path]
        return found


@pytest.fixture
def comfyui(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """`execution` (the fake), `server` with PromptServer.instance, and aiohttp.web, as sys.modules entries."""
    for name in ("PROVENANCE_HOOKS", "PROVENANCE_HOOKS_DEBUG", "PROVENANCE_HOOKS_FAULT"):
        monkeypatch.delenv(name, raising=False)
    spec = importlib.util.spec_from_file_location("execution", FAKE)
    assert spec is not None and spec.loader is not None
    execution = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "execution", execution)
    spec.loader.exec_module(execution)
    routes = Routes()
    server = ModuleType("server")
    server.PromptServer = SimpleNamespace(instance=SimpleNamespace(routes=routes))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "server", server)
    aiohttp = ModuleType("aiohttp")
    aiohttp.web = SimpleNamespace(json_response=lambda data, status=200: (status, data))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aiohttp", aiohttp)
    loaded: list[str] = []
    yield SimpleNamespace(execution=execution, routes=routes, loaded=loaded)
    for name in loaded:
        if f"{name}.hooks" in sys.modules:
            sys.modules[f"{name}.hooks"].uninstall()
    for name in [m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in loaded)]:
        del sys.modules[name]


def load_pack(env: SimpleNamespace) -> ModuleType:
    """Import the repository as ComfyUI does: a package named after its folder path."""
    name = f"custom_nodes_copy_{next(_copies)}"
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    env.loaded.append(name)
    spec.loader.exec_module(module)
    return module


def targets(execution: ModuleType) -> list[Any]:
    return [
        execution.PromptExecutor.execute_async,
        execution.execute,
        execution.get_input_data,
        execution.get_output_data,
        execution.get_output_from_returns,
    ]


def get(routes: Routes, path: str, **match: str) -> tuple[int, Any]:
    request = SimpleNamespace(match_info=match)
    return asyncio.run(routes.handler(path)(request))  # type: ignore[no-any-return]


@pytest.mark.parametrize("value", [None, "0", "false", "off", "maybe"])
def test_hooks_off_leave_comfyui_untouched(
    comfyui: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, value: Any
) -> None:
    if value is not None:
        monkeypatch.setenv("PROVENANCE_HOOKS", value)
    before = targets(comfyui.execution)
    load_pack(comfyui)
    assert all(a is b for a, b in zip(targets(comfyui.execution), before, strict=True))
    status, body = get(comfyui.routes, "/provenance/status")
    assert status == 200 and body["enabled_by_env"] is False and body["installed"] is False
    assert all("PROVENANCE_HOOKS is not set" in h["skipped"] for h in body["hooks"].values())
    assert body["catalogue"] == {}  # no save has queued anything for the catalogue yet
    assert [r.path for r in comfyui.routes] == ["/provenance/status", "/provenance/hash", "/provenance/search"]


@pytest.mark.parametrize("value", ["1", "true", "ON", "Yes"])
def test_hooks_on_install_when_comfyui_imports_the_pack(
    comfyui: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PROVENANCE_HOOKS", value)
    before = targets(comfyui.execution)
    pack = load_pack(comfyui)
    after = targets(comfyui.execution)
    assert [a is b for a, b in zip(after, before, strict=True)] == [False, False, False, True, False]
    _, body = get(comfyui.routes, "/provenance/status")
    assert body["enabled_by_env"] and body["installed"] and body["active"]
    assert body["pack_version"] == pack.__version__
    # the debug route needs its own switch
    assert [r.path for r in comfyui.routes] == ["/provenance/status", "/provenance/hash", "/provenance/search"]
    pack.hooks.uninstall()
    assert all(a is b for a, b in zip(targets(comfyui.execution), before, strict=True))


def test_debug_route_serves_snapshots(comfyui: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANCE_HOOKS", "1")
    monkeypatch.setenv("PROVENANCE_HOOKS_DEBUG", "1")
    load_pack(comfyui)
    fake = comfyui.execution
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(seed=5), "dbg")
    status, body = get(comfyui.routes, "/provenance/debug/session/{prompt_id}", prompt_id="dbg")
    assert status == 200 and body["nodes"]["8"]["outputs"] == [5]
    status, body = get(comfyui.routes, "/provenance/debug/session/{prompt_id}", prompt_id="nope")
    assert status == 404


def test_a_second_copy_neither_wraps_nor_routes_again(
    comfyui: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PROVENANCE_HOOKS", "1")
    load_pack(comfyui)
    wrapped = targets(comfyui.execution)
    with caplog.at_level(logging.WARNING):
        second = load_pack(comfyui)
    assert targets(comfyui.execution) == wrapped
    assert [r.path for r in comfyui.routes] == ["/provenance/status", "/provenance/hash", "/provenance/search"]
    assert all("another copy of this pack" in (h.skipped or "") for h in second.hooks.installed_hooks())


def test_outside_comfyui_nothing_happens(comfyui: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANCE_HOOKS", "1")
    monkeypatch.delitem(sys.modules, "execution")
    load_pack(comfyui)
    assert list(comfyui.routes) == []


def test_a_failing_setup_never_breaks_the_import(
    comfyui: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(path: str) -> Any:
        raise RuntimeError("routes table gone")

    monkeypatch.setattr(comfyui.routes, "get", broken)
    with caplog.at_level(logging.WARNING):
        pack = load_pack(comfyui)
    assert pack.comfy_entrypoint is not None
    assert any("Provenance hooks: setup failed" in r.getMessage() for r in caplog.records)

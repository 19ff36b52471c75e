"""A fake ComfyUI 0.33 HTTP server on loopback, honest about the shapes of the routes clients use.

Usage (a context manager; it serves from its own thread, so plain blocking tests can call it)::

    with FakeComfyUI(execute, models={"checkpoints": ["a.safetensors"]}) as fake:
        fake.url                      # "http://127.0.0.1:<free port>"

Routes (each also under /api, as ComfyUI mirrors them), shapes as in ComfyUI 0.33.0 (server.py,
execution.py; research/video-frontend-engines.md §4):

- GET /object_info, /object_info/{class}: `object_info` (default: `default_object_info(models)`,
  the real entries of tests/corpus/object_info/ plus a subset for SD1.5 graphs, combos filled from
  `models`; tests/fake_nodes.py, which also has `Renderer`, a ready `execute` callback).
- POST /prompt {"prompt", "prompt_id"?, "client_id"?, "extra_data"?} → {"prompt_id", "number",
  "node_errors": {}}; 400 {"error": {type, message, details, extra_info}, "node_errors"} for
  `no_prompt`, `invalid_prompt_id` (not a canonical lowercase UUID), `missing_node_type`,
  `prompt_no_outputs`, and `prompt_outputs_failed_validation` (a literal COMBO value, a model
  file say, not among the options: node_errors[id].errors[] of type `value_not_in_list`).
- GET /history, /history/{id}: {} until the prompt finished, then {id: {"prompt": [number, id,
  prompt, extra_data, outputs_to_execute], "outputs": {node_id: {"images": [{filename, subfolder,
  type}]}}, "status": {"status_str": "success"|"error", "completed", "messages"}, "meta": {}}}.
- GET /queue {"queue_running", "queue_pending"}; POST /queue {"delete": [ids]} or {"clear": true}
  takes pending prompts off the queue; POST /interrupt {"prompt_id"?} interrupts the running prompt
  (only that one when named).
- POST /api/jobs/{id}/cancel (`jobs_api=False`: absent, as before ComfyUI had it): a pending prompt
  is taken off the queue, a running one interrupted; {"cancelled": bool}.
- POST /upload/image (multipart `image` file, `subfolder`, `type` (input), `overwrite`) →
  {"name", "subfolder", "type"}; stored in `files[(type, subfolder, name)]`; a taken name without
  `overwrite` becomes "name (1).ext", as ComfyUI renames it; 400 for `..` or an absolute subfolder.
- GET /view?filename=&subfolder=&type=: the bytes (400 for `..` or an absolute name, 404 unknown).
- POST /free {"free_memory", "unload_models"}: recorded in `frees`; resets the cache below.
- GET /system_stats {"system": {"comfyui_version", ...}, "devices": [...]}.
- GET /provenance/status and /provenance/hash?folder=&name= (404 for both with `pack=False`):
  {"name", "folder", "sha256", "autov3"?, "size", "mtime"} from `hashes[(folder, name)]`; 404
  {"error": "no such file"} for a name not in `models[folder]`, {"error": "not hashed yet"} while
  `hash_pending[(folder, name)]` > 0 (each answer counts it down) or without an entry.

Execution: one prompt at a time, in order, after `delay` seconds, by `execute(prompt, extra_data)`
→ {node_id: [(filename, subfolder, bytes)]}, run off the event loop (`current_prompt_id` names the
prompt). An interrupt during the delay ends the prompt unexecuted: its history has status "error"
with an `execution_interrupted` message, as ComfyUI's does. Raising `NodeError` gives an error
status whose messages carry an `execution_error` (exception_message, node_id, node_type, ...), as
ComfyUI's history does. Cache: a prompt equal to one already executed since the last /free is not
executed again; its history repeats the earlier outputs and no new file appears (`cache=False`
turns that off). `crash_after=N`: after N prompts finished, the server goes away while running the
next one (accepted, never finished): from then on every connection is reset unanswered (a client
sees "connection reset" or "remote end closed"); `go_away()` does that at once and `restart()`
brings it back on the same port with the files kept and history, queue and cache empty, as a
restarted ComfyUI. Records: `posted` (every POST /prompt body), `frees`, `events` (("free", body),
("queued", id), ("executed", id), ("cached", id), ("error", id), ("deleted", id) (taken off the
queue), ("interrupted", id), ("gone", None) in order), `executed` (ids the callback ran for),
`files` {(type, subfolder, filename): bytes} (outputs and uploads).

`routes`: (method, path, handler) served beside ComfyUI's and also under /api, as a custom node's
routes on PromptServer.instance.routes are (the pack's OpenAI API, say); `call(coro)` runs a
coroutine on the server's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import BodyPartReader, web
from fake_nodes import default_object_info, error_body, validate

from comfyui_provenance import __version__ as PACK_VERSION

Output = tuple[str, str, bytes]  # (filename, subfolder, bytes)
Execute = Callable[[dict[str, Any], dict[str, Any]], Mapping[str, list[Output]]]
Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]
Item = tuple[float, str, dict[str, Any], dict[str, Any]]  # (number, prompt_id, prompt, extra_data)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class NodeError(Exception):
    """Raised by an `execute` callback: the prompt ends with ComfyUI's execution_error for this node."""

    def __init__(self, node_id: str, message: str, exception_type: str = "RuntimeError") -> None:
        super().__init__(message)
        self.node_id, self.message, self.exception_type = node_id, message, exception_type


class FakeComfyUI:
    """The fake server; see the module docstring."""

    def __init__(
        self,
        execute: Execute | None = None,
        *,
        object_info: Mapping[str, Any] | None = None,
        models: Mapping[str, list[str]] | None = None,
        hashes: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
        pack: bool = True,
        delay: float = 0.0,
        cache: bool = True,
        crash_after: int | None = None,
        comfyui_version: str = "0.33.0",
        pack_version: str = PACK_VERSION,
        jobs_api: bool = True,
        routes: Iterable[Route] = (),
    ) -> None:
        self.execute = execute or (lambda prompt, extra: {})
        self.models = {k: list(v) for k, v in (models or {}).items()}
        self.object_info = dict(object_info) if object_info is not None else default_object_info(self.models)
        self.hashes = {k: dict(v) for k, v in (hashes or {}).items()}
        self.hash_pending: dict[tuple[str, str], int] = {}
        self.pack, self.delay, self.cache, self.crash_after = pack, delay, cache, crash_after
        self.comfyui_version, self.pack_version = comfyui_version, pack_version
        self.jobs_api, self.routes = jobs_api, list(routes)
        self.posted: list[dict[str, Any]] = []
        self.frees: list[dict[str, Any]] = []
        self.events: list[tuple[str, Any]] = []
        self.executed: list[str] = []
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.current_prompt_id: str | None = None
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-comfyui", daemon=True)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._reset()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeComfyUI:
        if not self._thread.is_alive():
            self._thread.start()
        self._call(self._serve())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._call(self._shutdown())
        if self._listener is not None:
            self._call(self._close_listener())
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def go_away(self) -> None:
        """The server dies now: every connection is reset until restart()."""
        self._call(self._shutdown())

    def restart(self) -> None:
        """A fresh ComfyUI on the same port: files kept; history, queue and cache empty."""
        if self._runner is not None:
            self.go_away()
        self._call(self._close_listener())
        self._reset()
        self.crash_after = None
        self._call(self._serve())

    def __enter__(self) -> FakeComfyUI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_file(self, filename: str, data: bytes, subfolder: str = "", kind: str = "output") -> None:
        self.files[(kind, subfolder, filename)] = data

    def call(self, coro: Any) -> Any:
        """Run `coro` on the server's loop (its thread) and answer its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    _call = call

    def _reset(self) -> None:
        self.history: dict[str, dict[str, Any]] = {}
        self._pending: list[Item] = []
        self._running: Item | None = None
        self._interrupt = asyncio.Event()
        self._cached: dict[str, dict[str, Any]] = {}
        self._outputs_of: dict[str, list[str]] = {}
        self._wake = asyncio.Event()
        self._finished = 0
        self._number = 0

    async def _serve(self) -> None:
        app = web.Application()
        for prefix in ("", "/api"):
            app.router.add_get(prefix + "/object_info", self._object_info)
            app.router.add_get(prefix + "/object_info/{class}", self._object_info)
            app.router.add_post(prefix + "/prompt", self._prompt)
            app.router.add_get(prefix + "/history", self._history)
            app.router.add_get(prefix + "/history/{prompt_id}", self._history)
            app.router.add_get(prefix + "/queue", self._queue)
            app.router.add_post(prefix + "/queue", self._queue_change)
            app.router.add_post(prefix + "/interrupt", self._interrupt_route)
            app.router.add_post(prefix + "/upload/image", self._upload)
            app.router.add_get(prefix + "/view", self._view)
            app.router.add_post(prefix + "/free", self._free)
            app.router.add_get(prefix + "/system_stats", self._system_stats)
            if self.pack:
                app.router.add_get(prefix + "/provenance/status", self._status)
                app.router.add_get(prefix + "/provenance/hash", self._hash)
            for method, path, handler in self.routes:
                app.router.add_route(method, prefix + path, handler)
        if self.jobs_api:
            app.router.add_post("/api/jobs/{prompt_id}/cancel", self._cancel_job)
        self._runner = web.AppRunner(app, shutdown_timeout=0.0)
        await self._runner.setup()
        self._protocols: list[asyncio.BaseProtocol] = []
        self._listener = await asyncio.get_running_loop().create_server(
            self._protocol, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = int(self._listener.sockets[0].getsockname()[1])
        self._worker = asyncio.ensure_future(self._work())

    def _protocol(self) -> asyncio.BaseProtocol:
        """aiohttp's handler for a new connection, or one that cuts it once the server is gone."""
        if self._runner is None or self._runner.server is None:
            return _Cut()
        handler = self._runner.server()
        self._protocols.append(handler)
        return handler

    async def _shutdown(self) -> None:
        """A crash, not a graceful stop: every connection, open or new, is cut unanswered.

        The listener stays open (resetting whatever connects) until restart() or stop(): closing it
        while asyncio is accepting a connection would leak that socket unanswered (CPython 3.11).
        """
        self.events.append(("gone", None))
        self._worker.cancel()
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for handler in self._protocols:
            transport = getattr(handler, "transport", None)
            if transport is not None:
                transport.abort()
        await runner.cleanup()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            await listener.wait_closed()

    # -- routes ------------------------------------------------------------------------------
    async def _object_info(self, request: web.Request) -> web.Response:
        info = self.object_info
        if "LoadImage" in info:  # its combo lists the input folder's files now, as ComfyUI's INPUT_TYPES does
            entry = copy.deepcopy(info["LoadImage"])
            entry["input"]["required"]["image"][0] = sorted(n for k, s, n in self.files if k == "input" and not s)
            info = {**info, "LoadImage": entry}
        name = request.match_info.get("class")
        if name is None:
            return web.json_response(info)
        return web.json_response({name: info[name]} if name in info else {})

    async def _prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.posted.append(copy.deepcopy(body))
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, dict):
            return self._bad(error_body("no_prompt", "No prompt provided", "No prompt provided"))
        prompt_id = body.get("prompt_id")
        if prompt_id is None:
            prompt_id = str(uuid.uuid4())
        elif not isinstance(prompt_id, str) or not UUID.fullmatch(prompt_id):
            return self._bad(error_body("invalid_prompt_id", "prompt_id must be a valid UUID"))
        error, outputs, node_errors = validate(prompt, self.object_info, self._input_exists)
        if error is not None:
            return self._bad(error, node_errors)
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        extra["create_time"] = int(time.time() * 1000)
        number = self._number
        self._number += 1
        self._pending.append((number, prompt_id, prompt, extra))
        self._outputs_of[prompt_id] = outputs
        self.events.append(("queued", prompt_id))
        self._wake.set()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": {}})

    def _input_exists(self, name: str) -> bool:
        subfolder, _, filename = name.rpartition("/")
        return ("input", subfolder, filename) in self.files

    def _bad(self, error: dict[str, Any], node_errors: dict[str, Any] | None = None) -> web.Response:
        return web.json_response({"error": error, "node_errors": node_errors or {}}, status=400)

    async def _history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info.get("prompt_id")
        if prompt_id is None:
            return web.json_response(self.history)
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})

    async def _queue(self, request: web.Request) -> web.Response:
        def row(item: Item) -> list[Any]:
            return [item[0], item[1], item[2], item[3], self._outputs_of.get(item[1], [])]

        running = [row(self._running)] if self._running else []
        return web.json_response({"queue_running": running, "queue_pending": [row(i) for i in self._pending]})

    async def _queue_change(self, request: web.Request) -> web.Response:
        body = await request.json()
        doomed = set(body.get("delete") or []) if isinstance(body, dict) else set()
        for item in list(self._pending):
            if item[1] in doomed or (isinstance(body, dict) and body.get("clear")):
                self._pending.remove(item)
                self.events.append(("deleted", item[1]))
        return web.Response(status=200)

    async def _interrupt_route(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        wanted = body.get("prompt_id") if isinstance(body, dict) else None
        if self._running is not None and wanted in (None, self._running[1]):
            self._interrupt.set()
        return web.Response(status=200)

    async def _cancel_job(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        for item in self._pending:
            if item[1] == prompt_id:
                self._pending.remove(item)
                self.events.append(("deleted", prompt_id))
                return web.json_response({"cancelled": True})
        if self._running is not None and self._running[1] == prompt_id:
            self._interrupt.set()
            return web.json_response({"cancelled": True})
        return web.json_response({"cancelled": False})

    async def _upload(self, request: web.Request) -> web.Response:
        fields: dict[str, str] = {}
        image: tuple[str, bytes] | None = None
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                return web.Response(status=400)
            data = await part.read()
            if part.name == "image" and part.filename:
                image = (part.filename, bytes(data))
            elif part.name:
                fields[part.name] = bytes(data).decode("utf-8")
        if image is None:
            return web.Response(status=400)
        kind, subfolder = fields.get("type", "input"), fields.get("subfolder", "")
        name = image[0].rpartition("/")[2]
        if kind not in ("input", "temp", "output") or subfolder.startswith("/") or ".." in subfolder.split("/"):
            return web.Response(status=400)
        if fields.get("overwrite", "").lower() not in ("true", "1"):
            stem, dot, ext = name.rpartition(".")
            number = 1
            while (kind, subfolder, name) in self.files:
                name = f"{stem} ({number}){dot}{ext}" if dot else f"{ext} ({number})"
                number += 1
        self.files[(kind, subfolder, name)] = image[1]
        return web.json_response({"name": name, "subfolder": subfolder, "type": kind})

    async def _view(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        filename, subfolder, kind = query.get("filename", ""), query.get("subfolder", ""), query.get("type", "output")
        if not filename or filename.startswith("/") or ".." in filename or kind not in ("output", "input", "temp"):
            return web.Response(status=400)
        if subfolder.startswith("/") or ".." in subfolder.split("/"):
            return web.Response(status=403)
        data = self.files.get((kind, subfolder, filename))
        if data is None:
            return web.Response(status=404)
        return web.Response(
            body=data, content_type="image/png" if filename.endswith(".png") else "application/octet-stream"
        )

    async def _free(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.frees.append(body)
        self.events.append(("free", body))
        if body.get("free_memory") or body.get("unload_models"):
            self._cached.clear()  # the worker resets its caches before the next prompt
        return web.Response(status=200)

    async def _system_stats(self, request: web.Request) -> web.Response:
        system = {"os": "linux", "comfyui_version": self.comfyui_version, "python_version": "3.12", "argv": ["main.py"]}
        return web.json_response({"system": system, "devices": [{"name": "cpu", "type": "cpu", "index": None}]})

    async def _status(self, request: web.Request) -> web.Response:
        status = {"pack_version": self.pack_version, "comfyui_version": self.comfyui_version, "enabled_by_env": False}
        return web.json_response({**status, "installed": False, "active": False, "hooks": {}})

    async def _hash(self, request: web.Request) -> web.Response:
        folder, name = request.rel_url.query.get("folder", ""), request.rel_url.query.get("name", "")
        if name not in self.models.get(folder, []):
            return web.json_response({"error": "no such file"}, status=404)
        key = (folder, name)
        if self.hash_pending.get(key, 0) > 0 or key not in self.hashes:
            self.hash_pending[key] = max(0, self.hash_pending.get(key, 0) - 1)
            return web.json_response({"error": "not hashed yet"}, status=404)
        entry = {"size": 0, "mtime": 0.0, **self.hashes[key]}
        return web.json_response({"name": name, "folder": folder, **entry})

    # -- the worker --------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            item = self._running = self._pending.pop(0)
            if self.crash_after is not None and self._finished >= self.crash_after:
                asyncio.get_running_loop().create_task(self._shutdown())
                return
            self._interrupt.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._interrupt.wait(), self.delay)
            if self._interrupt.is_set():
                self.history[item[1]] = self._interrupted(item)
            else:
                self.history[item[1]] = await self._run(item)
            self._running = None
            self._finished += 1

    def _interrupted(self, item: Item) -> dict[str, Any]:
        number, prompt_id, prompt, extra = item
        self.events.append(("interrupted", prompt_id))
        interrupted: dict[str, Any] = {"prompt_id": prompt_id, "node_id": None, "node_type": None, "executed": []}
        messages: list[list[Any]] = [["execution_start", {"prompt_id": prompt_id, "timestamp": _ms()}]]
        messages.append(["execution_interrupted", {**interrupted, "timestamp": _ms()}])
        return {
            "prompt": [number, prompt_id, prompt, extra, self._outputs_of.get(prompt_id, [])],
            "meta": {},
            "outputs": {},
            "status": {"status_str": "error", "completed": False, "messages": messages},
        }

    async def _run(self, item: Item) -> dict[str, Any]:
        number, prompt_id, prompt, extra = item
        key = json.dumps(prompt, sort_keys=True)
        messages: list[list[Any]] = [["execution_start", {"prompt_id": prompt_id, "timestamp": _ms()}]]
        entry = {"prompt": [number, prompt_id, prompt, extra, self._outputs_of.get(prompt_id, [])], "meta": {}}
        if self.cache and key in self._cached:
            self.events.append(("cached", prompt_id))
            messages.append(["execution_cached", {"nodes": list(prompt), "prompt_id": prompt_id, "timestamp": _ms()}])
            messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": _ms()}])
            status = {"status_str": "success", "completed": True, "messages": messages}
            return {**entry, "outputs": copy.deepcopy(self._cached[key]), "status": status}
        self.current_prompt_id = prompt_id
        try:
            produced = await asyncio.get_running_loop().run_in_executor(None, self.execute, prompt, extra)
        except NodeError as err:
            self.events.append(("error", prompt_id))
            node = prompt.get(err.node_id) or {}
            failure = {"prompt_id": prompt_id, "node_id": err.node_id, "node_type": node.get("class_type")}
            failure.update({"executed": [], "exception_message": err.message, "exception_type": err.exception_type})
            failure.update({"traceback": [], "current_inputs": {}, "current_outputs": {}, "timestamp": _ms()})
            messages.append(["execution_error", failure])
            return {**entry, "outputs": {}, "status": {"status_str": "error", "completed": False, "messages": messages}}
        outputs: dict[str, Any] = {}
        for node_id, files in produced.items():
            for filename, subfolder, data in files:
                self.files[("output", subfolder, filename)] = data
                image = {"filename": filename, "subfolder": subfolder, "type": "output"}
                outputs.setdefault(str(node_id), {"images": []})["images"].append(image)
        self.executed.append(prompt_id)
        self.events.append(("executed", prompt_id))
        self._cached[key] = outputs
        messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": _ms()}])
        return {
            **entry,
            "outputs": outputs,
            "status": {"status_str": "success", "completed": True, "messages": messages},
        }


class _Cut(asyncio.Protocol):
    """A connection accepted as the server went away: reset at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


def _ms() -> int:
    return int(time.time() * 1000)

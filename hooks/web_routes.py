"""The web panel's routes (also under /api/, as ComfyUI mirrors routes); every answer JSON, every error
{"error": one line}. Thin: they call the library the CLI calls, off the event loop.

- GET /provenance/record?filename=&subfolder=&type=output|input|temp: {"file": {filename, subfolder,
  type, size, kind, mtime}, "record", "a1111", "workflow", "prompt", "view"} (metadata/inspect.py);
  400 a bad name, 403 outside the folder (links followed), 404 no such regular file, 413 over
  RECORD_MAX_BYTES, 422 the file does not read.
- POST /provenance/inspect?name=ORIGINAL_NAME, the file's bytes as the body: the same answer for a
  dropped file, "file": {filename, size, kind, "uploaded": true}, "view": null. Streamed to a private
  temp folder (413 past INSPECT_MAX_BYTES), read, deleted whatever happens: nothing is kept.
- GET /provenance/diff?a=&a_subfolder=&a_type=&b=&b_subfolder=&b_type=: {"a", "b" (file objects),
  "diff": what `provenance diff A B --json` prints, each side labelled `sub/name.png [output]`}.
- POST /provenance/reproduce {"filename", "subfolder", "type", "seed"?, "dry_run" (default true)}:
  `provenance reproduce` against this ComfyUI through its own HTTP API on loopback, so its own
  validation and queue apply; with dry_run false it returns once queued. {"report": ...}; 502 when
  the loopback call fails.

Registered with the status route (hooks/route.py) on a table that takes GET and POST routes.
ComfyUI's origin middleware refuses cross-site POSTs: nothing here adds CORS headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any

from ..metadata.errors import MetadataError
from .web_files import FileRefused, WebFile, resolve

logger = logging.getLogger(__name__)

RECORD_PATH = "/provenance/record"
INSPECT_PATH = "/provenance/inspect"
DIFF_PATH = "/provenance/diff"
REPRODUCE_PATH = "/provenance/reproduce"
RECORD_MAX_BYTES = 4 << 30  # the readers never load a file whole, but past this it is no one's render
INSPECT_MAX_BYTES = 512 << 20
BODY_MAX_BYTES = 64 << 10  # a reproduce request is a few names and flags
UPLOAD_BLOCK = 1 << 20  # bytes gathered before each write to the temp file (written off the event loop)
ERROR_MAX_CHARS = 500
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}$")

Answer = tuple[int, dict[str, Any]]
Handler = Callable[[Any], Awaitable[Any]]


def register(routes: Any, taken: Callable[[Any, str], bool]) -> list[str]:
    """Add the routes to an aiohttp RouteTableDef (each path once); the paths added."""
    if not (callable(getattr(routes, "get", None)) and callable(getattr(routes, "post", None))):
        logger.debug("provenance: the route table takes no POST routes; web panel routes not added")
        return []
    table: list[tuple[str, str, Handler]] = [
        ("get", RECORD_PATH, record_handler),
        ("post", INSPECT_PATH, inspect_handler),
        ("get", DIFF_PATH, diff_handler),
        ("post", REPRODUCE_PATH, reproduce_handler),
    ]
    added = []
    for method, path, handler in table:
        if not taken(routes, path):
            getattr(routes, method)(path)(handler)
            added.append(path)
    return added


# -- answers -----------------------------------------------------------------------------------------------------------
def one_line(err: BaseException) -> str:
    """`err` in words on one line: our readers' messages as they are, anything else named as an internal error."""
    from ..reproduce.client import ReproduceError

    if isinstance(err, MetadataError | ReproduceError):
        text = str(err)
    elif isinstance(err, OSError):
        text = (err.strerror or str(err)).lower()
    else:
        logger.debug("provenance: the traceback of the error below", exc_info=err)
        text = f"internal error ({type(err).__name__}: {err})"
    text = " ".join(text.split())
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


def _finite(value: Any) -> Any:
    """NaN and infinities as null: ComfyUI's executor writes `is_changed: [NaN]` into prompts, which JSON lacks."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(data: Any) -> str:
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(data), ensure_ascii=False, allow_nan=False)


def _response(status: int, text: str) -> Any:
    from aiohttp import web  # ComfyUI's server dependency: present whenever a request arrives

    return web.Response(text=text, status=status, content_type="application/json")


async def _in_thread(work: Callable[..., Answer], *args: Any) -> Any:
    """`work(*args)` on the loop's executor, its answer serialised there too (a record may hold megabytes)."""

    def run() -> tuple[int, str]:
        code, body = work(*args)
        return code, dumps(body)

    code, text = await asyncio.get_running_loop().run_in_executor(None, run)
    return _response(code, text)


def _error(status: int, message: str) -> Any:
    return _response(status, dumps({"error": message}))


def guarded(handler: Handler) -> Handler:
    """Never raise into ComfyUI: whatever goes wrong in our code is a 500 with one line, logged once here."""

    @wraps(handler)
    async def wrapper(request: Any) -> Any:
        try:
            return await handler(request)
        except Exception as err:
            logger.warning("provenance: %s %s failed", request.method, request.path, exc_info=True)
            return _error(500, one_line(err))

    return wrapper


def _folders() -> dict[str, Path]:
    from .. import compat

    return compat.file_directories()


def _named(filename: str, subfolder: str, kind: str) -> WebFile:
    return resolve(filename, subfolder, kind or "output", _folders(), RECORD_MAX_BYTES)


def _query(request: Any, name: str) -> str:
    return str(request.rel_url.query.get(name, ""))


# -- GET /provenance/record --------------------------------------------------------------------------------------------
@guarded
async def record_handler(request: Any) -> Any:
    names = (_query(request, "filename"), _query(request, "subfolder"), _query(request, "type"))
    return await _in_thread(record_answer, *names)


def record_answer(filename: str, subfolder: str, kind: str) -> Answer:
    from ..metadata.inspect import inspect  # the readers load with the first request, not with ComfyUI

    try:
        file = _named(filename, subfolder, kind)
    except FileRefused as err:
        return err.status, {"error": err.message}
    try:
        found_kind, body = inspect(file.path)
    except Exception as err:  # a damaged or hostile file: one line, never a traceback
        return 422, {"error": one_line(err)}
    return 200, {"file": file.as_json(found_kind), **body, "view": file.view()}


# -- POST /provenance/inspect ------------------------------------------------------------------------------------------
def upload_name(name: str) -> str:
    """The dropped file's own name, without any folder, control characters or excess length."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable())
    return base[:255]


@guarded
async def inspect_handler(request: Any) -> Any:
    name = upload_name(_query(request, "name"))
    length = request.content_length
    if length is not None and length > INSPECT_MAX_BYTES:
        return _error(413, f"the file is {length:,} bytes, over the {INSPECT_MAX_BYTES:,}-byte limit")
    folder = tempfile.mkdtemp(prefix="provenance-inspect-")  # private (0700): no sidecar can be planted beside it
    try:
        suffix = _SUFFIX.search(name)
        path = Path(folder) / ("upload" + (suffix.group(0).lower() if suffix else ""))
        size = await _receive(request, path)
        if size is None:
            return _error(413, f"the file is over the {INSPECT_MAX_BYTES:,}-byte limit")
        return await _in_thread(inspect_answer, path, name, size)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, folder, True)


async def _receive(request: Any, path: Path) -> int | None:
    """The body streamed into `path` (created here, 0600); its size, or None once it went past the limit."""
    loop = asyncio.get_running_loop()
    fd = await loop.run_in_executor(None, os.open, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    size, block = 0, bytearray()
    try:
        async for chunk in request.content.iter_chunked(UPLOAD_BLOCK):
            size += len(chunk)
            if size > INSPECT_MAX_BYTES:
                return None
            block += chunk
            if len(block) >= UPLOAD_BLOCK:
                await loop.run_in_executor(None, _write_all, fd, bytes(block))
                block.clear()
        if block:
            await loop.run_in_executor(None, _write_all, fd, bytes(block))
    finally:
        os.close(fd)
    return size


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def inspect_answer(path: Path, name: str, size: int) -> Answer:
    from ..metadata.inspect import inspect

    try:
        kind, body = inspect(path)
    except Exception as err:
        return 422, {"error": one_line(err)}
    file = {"filename": name, "size": size, "kind": kind, "uploaded": True}
    return 200, {"file": file, **body, "view": None}


# -- GET /provenance/diff ----------------------------------------------------------------------------------------------
@guarded
async def diff_handler(request: Any) -> Any:
    sides = [tuple(_query(request, f"{side}{part}") for part in ("", "_subfolder", "_type")) for side in "ab"]
    return await _in_thread(diff_answer, *sides)


def diff_answer(a: tuple[str, str, str], b: tuple[str, str, str]) -> Answer:
    """The two sides as `provenance diff A B --json` compares two files (reproduce/diff.py's diff_records)."""
    from ..metadata.inspect import kind_of
    from ..metadata.read import extract, read
    from ..reproduce.diff import diff_records

    files, kinds, records = [], [], []
    for side, (filename, subfolder, kind) in zip("ab", (a, b), strict=True):
        try:
            file = _named(filename, subfolder, kind)
        except FileRefused as err:
            return err.status, {"error": f"{side}: {err.message}"}
        try:
            records.append(read(file.path))
            kinds.append(kind_of(extract(file.path)))
        except Exception as err:
            return 422, {"error": f"{side}: {one_line(err)}"}
        files.append(file)
    result = diff_records(records[0], records[1])
    body = result.to_dict(files[0].label(), files[1].label())
    return 200, {"a": files[0].as_json(kinds[0]), "b": files[1].as_json(kinds[1]), "diff": body}


# -- POST /provenance/reproduce ----------------------------------------------------------------------------------------
@guarded
async def reproduce_handler(request: Any) -> Any:
    length = request.content_length
    if length is not None and length > BODY_MAX_BYTES:
        return _error(413, f"the request body is over {BODY_MAX_BYTES:,} bytes")
    raw = bytearray()
    async for chunk in request.content.iter_chunked(BODY_MAX_BYTES):
        raw += chunk
        if len(raw) > BODY_MAX_BYTES:
            return _error(413, f"the request body is over {BODY_MAX_BYTES:,} bytes")
    try:
        body = json.loads(bytes(raw))
    except (ValueError, RecursionError):
        return _error(400, 'the body must be a JSON object such as {"filename": "ComfyUI_00001_.png"}')
    return await _in_thread(reproduce_answer, body)


def reproduce_request(body: Any) -> tuple[tuple[str, str, str], int | None, bool]:
    """((filename, subfolder, type), seed, dry_run) of a reproduce body; FileRefused(400) naming what is wrong."""
    if not isinstance(body, dict):
        raise FileRefused(400, "the body must be a JSON object")
    unknown = sorted(set(body) - {"filename", "subfolder", "type", "seed", "dry_run"})
    if unknown:
        raise FileRefused(400, f"unknown field {unknown[0][:40]!r}; allowed: filename, subfolder, type, seed, dry_run")
    names = tuple(body.get(key, default) for key, default in (("filename", ""), ("subfolder", ""), ("type", "output")))
    if not all(isinstance(n, str) for n in names):
        raise FileRefused(400, "filename, subfolder and type must be strings")
    seed, dry_run = body.get("seed"), body.get("dry_run", True)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FileRefused(400, "seed must be a whole number or null")
    if not isinstance(dry_run, bool):
        raise FileRefused(400, "dry_run must be true or false")
    return (str(names[0]), str(names[1]), str(names[2])), seed, dry_run


def reproduce_answer(body: Any) -> Answer:
    from .. import compat
    from ..reproduce.client import ReproduceError
    from ..reproduce.run import Options, reproduce
    from ..reproduce.target import from_file

    try:
        names, seed, dry_run = reproduce_request(body)
        file = _named(*names)
    except FileRefused as err:
        return err.status, {"error": err.message}
    try:
        target = from_file(file.path)
    except ReproduceError as err:  # "<path>: why": the browser knows the file by its name, not the server's path
        return 422, {"error": one_line(err).replace(str(file.path), file.label())}
    except Exception as err:
        return 422, {"error": one_line(err)}
    target.label = file.label()
    server = compat.server_url()
    if server is None:
        return 502, {"error": "ComfyUI's own address is not known yet (its server has not started listening)"}
    options = Options(server=server, seed=seed, dry_run=dry_run, wait=False)

    def say(line: str) -> None:
        logger.info("provenance: reproduce %s: %s", file.label(), line)

    try:
        report = reproduce(target, options, say=say)
    except ReproduceError as err:
        return 502, {"error": one_line(err)}
    return 200, {"report": report.to_dict(with_prompt=False)}

"""GET /provenance/status, /hash and /search (also under /api/, as ComfyUI mirrors routes) as JSON.

/provenance/status is the hooks' state, the pack's version and "catalogue_enabled" (the effective
`catalogue` setting, the frontend's switch included).

/provenance/hash?folder=checkpoints&name=x.safetensors answers a model file's hashes from the pack's
hash cache: {"name", "folder", "sha256", "autov3" (safetensors), "size", "mtime"}; 404 {"error":
"no such file"} when no loader would find it, 404 {"error": "not hashed yet"} while it is queued on
the background hasher (asked again, it answers), 400 for a folder that is not a models folder or a
name that leaves it. A multi-GB file is never hashed inside the request, and no path is ever answered.

/provenance/search?text=&lora=&model=&seed=&sampler=&since=&until=&folder=&limit=&offset= is the
CLI's `provenance search` as JSON: {"results", "limit", "offset", "next_offset" (null on the last
page)}; each result also has "view": {"filename", "subfolder", "type"}, its name for ComfyUI's GET
/view. The catalogue is opened read-only; limit is at most 200; only files under ComfyUI's output,
input and temp folders are answered (a page may hold fewer than `limit` when others were left
out); a bad parameter is 400 {"error": one line}; no catalogue yet is 200 with no results and a note.

The web panel's routes (/provenance/record, /inspect, /diff, /reproduce) are hooks/web_routes.py's,
added here with the others. All are registered while ComfyUI imports the pack, on
PromptServer.instance.routes: ComfyUI ignores routes added after startup. Registered once per
process: a second copy of the pack must not add the same path again (aiohttp refuses a duplicate
route when ComfyUI adds its routes). With PROVENANCE_HOOKS_DEBUG=1 (tests only) it also serves
GET /provenance/debug/session/{prompt_id}: a session's snapshot, live or recently released.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..catalogue import CatalogueError, Query, open_catalogue
from ..catalogue.query import DEFAULT_LIMIT, QueryError
from ..catalogue.rows import absolute
from ..catalogue.writer import location
from ..metadata.hashing import ROLE_FOLDERS, shared_background, shared_cache
from ..metadata.hashing.locate import safe_name
from . import web_routes
from .session import REGISTRY
from .web_files import where

STATUS_PATH = "/provenance/status"
HASH_PATH = "/provenance/hash"
DEBUG_PATH = "/provenance/debug/session/{prompt_id}"
SEARCH_PATH = "/provenance/search"
SEARCH_MAX_LIMIT = 200
SEARCH_TEXT = ("text", "lora", "model", "sampler", "since", "until", "folder")
SEARCH_NUMBERS = ("seed", "limit", "offset")


def _json(data: Any, status: int = 200) -> Any:
    from aiohttp import web  # ComfyUI's server dependency: present whenever a request arrives

    return web.json_response(data, status=status)


def _taken(routes: Any, path: str) -> bool:
    try:
        return any(getattr(route, "path", None) == path for route in routes)
    except TypeError:  # not iterable: nothing to compare with
        return False


def register(routes: Any, status: Callable[[], dict[str, Any]], *, debug: bool = False) -> bool:
    """Add the routes to an aiohttp RouteTableDef; False when another copy of the pack already did."""
    if _taken(routes, STATUS_PATH):
        return False

    async def status_handler(request: Any) -> Any:
        return _json({**status(), "catalogue_enabled": catalogue_enabled()})

    routes.get(STATUS_PATH)(status_handler)
    if not _taken(routes, HASH_PATH):

        async def hash_handler(request: Any) -> Any:
            query = request.rel_url.query
            folder, name = str(query.get("folder", "")), str(query.get("name", ""))
            code, body = await asyncio.get_running_loop().run_in_executor(None, model_hash, folder, name)
            return _json(body, status=code)

        routes.get(HASH_PATH)(hash_handler)
    if not _taken(routes, SEARCH_PATH):

        async def search_handler(request: Any) -> Any:
            params = {str(k): str(v) for k, v in request.rel_url.query.items()}
            code, body = await asyncio.get_running_loop().run_in_executor(None, catalogue_search, params)
            return _json(body, status=code)

        routes.get(SEARCH_PATH)(search_handler)
    web_routes.register(routes, _taken)
    if debug and not _taken(routes, DEBUG_PATH):

        async def session_handler(request: Any) -> Any:
            found = REGISTRY.retained_snapshot(request.match_info["prompt_id"])
            if found is None:
                return _json({"error": "no session for this prompt_id"}, status=404)
            return _json(found)

        routes.get(DEBUG_PATH)(session_handler)
    return True


def model_hash(folder: str, name: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer) of GET /provenance/hash: the cache's entry, or the file queued for hashing."""
    from .. import compat

    roles = [role for role, folders in ROLE_FOLDERS.items() if folder in folders]
    if not roles:
        allowed = sorted({f for folders in ROLE_FOLDERS.values() for f in folders})
        return 400, {"error": f"unknown models folder {folder!r}; allowed: {', '.join(allowed)}"}
    if safe_name(name) is None:
        return 400, {"error": "name must be a file name inside the models folder"}
    path = compat.model_locator().locate(roles[0], name)
    if path is None or not path.is_file():
        return 404, {"error": "no such file", "name": name, "folder": folder}
    cache = shared_cache(compat.hash_cache_directory())
    found = cache.lookup(path)
    if found is None:
        shared_background(cache).submit(path)  # hashed on the pack's workers; the next ask may find it
        return 404, {"error": "not hashed yet", "name": name, "folder": folder}
    body: dict[str, Any] = {"name": name, "folder": folder, "sha256": found.sha256}
    if found.autov3:
        body["autov3"] = found.autov3
    body.update(size=found.size, mtime=(found.mtime_ns or 0) / 1e9)
    return 200, body


def catalogue_search(params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer) of GET /provenance/search: a page of the catalogue's matches under ComfyUI's folders."""
    from .. import compat

    try:
        query = _search_query(params)
    except (QueryError, ValueError) as err:
        return 400, {"error": " ".join(str(err).split())}
    page = {"limit": query.limit, "offset": query.offset}
    try:
        catalogue = open_catalogue(location(compat.user_directory()), readonly=True)
    except CatalogueError as err:
        return 200, {"results": [], **page, "next_offset": None, "note": " ".join(str(err).split())}
    try:  # one row more than asked says whether another page exists
        rows = catalogue.search(Query(**{**vars(query), "limit": query.limit + 1}))
    except CatalogueError as err:
        return 200, {"results": [], **page, "next_offset": None, "note": " ".join(str(err).split())}
    finally:
        catalogue.close()
    roots = [absolute(root) for root in compat.searchable_directories()]
    results = []
    for row in rows[: query.limit]:
        view = where(row["path"], [Path(root) for root in roots])
        if view is not None:
            results.append({**row, "view": view})
    more = len(rows) > query.limit
    return 200, {"results": results, **page, "next_offset": query.offset + query.limit if more else None}


def _search_query(params: dict[str, str]) -> Query:
    unknown = sorted(set(params) - {*SEARCH_TEXT, *SEARCH_NUMBERS})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; allowed: {', '.join((*SEARCH_TEXT, *SEARCH_NUMBERS))}")
    values: dict[str, Any] = {k: params[k] for k in SEARCH_TEXT if params.get(k, "").strip()}
    for name in SEARCH_NUMBERS:
        text = params.get(name, "").strip()
        if text:
            try:
                values[name] = int(text)
            except ValueError:
                raise ValueError(f"{name} must be a whole number, got {text!r}") from None
    limit = values.setdefault("limit", DEFAULT_LIMIT)
    if not 1 <= limit <= SEARCH_MAX_LIMIT:
        raise ValueError(f"limit must be 1..{SEARCH_MAX_LIMIT}, got {limit}")
    return Query(**values)


def catalogue_enabled() -> bool:
    """The effective `catalogue` setting (settings file, frontend switch, overrides) as the save nodes see it."""
    from ..metadata import settings

    return settings.current().catalogue

"""GET /provenance/status and /provenance/hash (also under /api/, as ComfyUI mirrors routes) as JSON.

/provenance/status is the hooks' state. /provenance/hash?folder=checkpoints&name=x.safetensors
answers a model file's hashes from the pack's hash cache: {"name", "folder", "sha256", "autov3"
(safetensors), "size", "mtime"}; 404 {"error": "no such file"} when no loader would find it, 404
{"error": "not hashed yet"} while it is queued on the background hasher (asked again, it answers),
400 for a folder that is not a models folder or a name that leaves it. A multi-GB file is never
hashed inside the request, and no path is ever answered.

Registered while ComfyUI imports the pack, on PromptServer.instance.routes: ComfyUI ignores
routes added after startup. Registered once per process: a second copy of the pack must not add
the same path again (aiohttp refuses a duplicate route when ComfyUI adds its routes). With
PROVENANCE_HOOKS_DEBUG=1 (tests only) it also serves GET /provenance/debug/session/{prompt_id}:
a session's snapshot, live or recently released.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..metadata.hashing import ROLE_FOLDERS, shared_background, shared_cache
from ..metadata.hashing.locate import safe_name
from .session import REGISTRY

STATUS_PATH = "/provenance/status"
HASH_PATH = "/provenance/hash"
DEBUG_PATH = "/provenance/debug/session/{prompt_id}"


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
        return _json(status())

    routes.get(STATUS_PATH)(status_handler)
    if not _taken(routes, HASH_PATH):

        async def hash_handler(request: Any) -> Any:
            query = request.rel_url.query
            folder, name = str(query.get("folder", "")), str(query.get("name", ""))
            code, body = await asyncio.get_running_loop().run_in_executor(None, model_hash, folder, name)
            return _json(body, status=code)

        routes.get(HASH_PATH)(hash_handler)
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

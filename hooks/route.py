"""GET /provenance/status (ComfyUI also serves it as /api/provenance/status): the hooks' state as JSON.

Registered while ComfyUI imports the pack, on PromptServer.instance.routes: ComfyUI ignores
routes added after startup. Registered once per process: a second copy of the pack must not add
the same path again (aiohttp refuses a duplicate route when ComfyUI adds its routes). With
PROVENANCE_HOOKS_DEBUG=1 (tests only) it also serves GET /provenance/debug/session/{prompt_id}:
a session's snapshot, live or recently released.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .session import REGISTRY

STATUS_PATH = "/provenance/status"
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
    if debug and not _taken(routes, DEBUG_PATH):

        async def session_handler(request: Any) -> Any:
            found = REGISTRY.retained_snapshot(request.match_info["prompt_id"])
            if found is None:
                return _json({"error": "no session for this prompt_id"}, status=404)
            return _json(found)

        routes.get(DEBUG_PATH)(session_handler)
    return True

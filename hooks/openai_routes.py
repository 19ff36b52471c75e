"""Mount the OpenAI-compatible image API (service/) on ComfyUI's own server, when it is switched on.

Off by default: `openai: true` in the settings file or PROVENANCE_OPENAI=1, read once at start-up.
Registered on PromptServer.instance.routes before ComfyUI adds its routes, so each path also answers
under /api/ (ComfyUI mirrors them); ComfyUI's origin checks stay in force. The service reaches
ComfyUI through its own HTTP API on loopback (compat.server_url), known once the server listens.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import compat
from ..metadata import settings

logger = logging.getLogger(__name__)


def register(routes: Any) -> bool:
    """Add the API's routes to `routes` when the setting is on; False when off or already there."""
    current = settings.current()
    if not current.openai:
        return False
    from ..service.api import Service
    from ..service.auth import digests

    if any(getattr(r, "path", None) == "/v1/models" for r in routes):
        logger.warning("Provenance: /v1/models is already registered (another pack?); the OpenAI API is not mounted")
        return False
    try:
        user_dir = compat.user_directory()
    except ImportError:  # not inside ComfyUI (a test mounting the routes): templates from openai_templates_dir only
        user_dir = None
    service = Service(compat.server_url, user_dir=user_dir)
    for method, path, handler in service.routes():
        (routes.get if method == "GET" else routes.post)(path)(handler)
    keys = len(digests(current.openai_keys))
    logger.info(
        "Provenance: OpenAI-compatible image API on /v1 (%d key%s%s)",
        keys,
        "" if keys == 1 else "s",
        "" if keys else ": every request is refused until openai_keys is set",
    )
    return True

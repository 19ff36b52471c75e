"""Runtime hooks: opt-in capture of what ComfyUI actually ran (PROVENANCE_HOOKS=1), per prompt.

Off by default. With PROVENANCE_HOOKS set to 1/true/on/yes (any case), or `"hooks": true` in the
settings file, when ComfyUI imports the pack (a process-start switch), `setup_in_comfyui` wraps four
points of ComfyUI's execution engine (hooks/comfyui.py); anything else leaves ComfyUI's objects
untouched. Save nodes read the result through `snapshot`/`mark_used` (hooks/session.py, the data
contract). GET /provenance/status says what is installed, skipped, in conflict or disabled, and why.

Conflicts with other packs: wrap on top of an existing wrapper and warn once (details in
hooks/safety.py). Failures of our own code never reach ComfyUI: each is logged once, and a hook
that failed 3 times turns itself off for the rest of the process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from ..metadata import settings
from ..metadata.settings_keys import env_name
from .safety import Hook
from .session import REGISTRY, hooks_active, mark_used, register_hooks, snapshot

__all__ = [
    "debug_enabled",
    "enabled_by_env",
    "hooks_active",
    "install",
    "installed_hooks",
    "mark_used",
    "setup_in_comfyui",
    "snapshot",
    "status",
    "uninstall",
]

logger = logging.getLogger(__name__)

# Read once when ComfyUI loads the pack (a process-start switch: the hooks patch ComfyUI for the whole process).
ENV = env_name("hooks")
DEBUG_ENV = env_name("hooks_debug")  # tests only: keep released snapshots, serve them on a debug route

_lock = threading.Lock()
_hooks: list[Hook] = []
_target: dict[str, Any] = {"execution": None}  # the module the current hooks patch


def enabled_by_env(environ: Mapping[str, str] | None = None) -> bool:
    """The `hooks` setting (PROVENANCE_HOOKS=1/true/on/yes, or the settings file); `environ` alone in tests."""
    return (settings.current() if environ is None else settings.load(environ=environ)).hooks


def debug_enabled(environ: Mapping[str, str] | None = None) -> bool:
    return (settings.current() if environ is None else settings.load(environ=environ)).hooks_debug


def install(execution: Any = None) -> bool:
    """Install every hook on `execution` (ComfyUI's module by default); True when at least one is active."""
    from .comfyui import build

    with _lock:
        if _hooks and execution is not None and _target["execution"] is not execution:
            _uninstall_locked()
            _hooks.clear()  # hooks of another module are of no use here, even detached ones
        if not _hooks:
            _hooks.extend(build(execution))
            _target["execution"] = execution
        for hook in _hooks:
            hook.install()
        register_hooks(_hooks)
        active = [h.key for h in _hooks if h.active]
    if active:
        logger.info("Provenance hooks: on (%s)", ", ".join(active))
    return bool(active)


def uninstall() -> bool:
    """Remove every hook (restoring the originals where ours is still the outermost wrapper), drop all sessions."""
    with _lock:
        return _uninstall_locked()


def _uninstall_locked() -> bool:
    restored = all([hook.uninstall() for hook in reversed(_hooks)])
    if restored:
        _hooks.clear()
        _target["execution"] = None
    # else: keep the hooks whose wrapper another pack holds, so a later install re-arms them in place
    register_hooks(_hooks)
    REGISTRY.clear()
    return restored


def installed_hooks() -> list[Hook]:
    with _lock:
        return list(_hooks)


def status() -> dict[str, Any]:
    """What GET /provenance/status answers."""
    from .. import __version__, compat
    from .comfyui import TARGETS

    enabled = enabled_by_env()
    hooks = {h.key: h.status() for h in installed_hooks()}
    if not hooks:
        reason = "hooks not installed" if enabled else f"{ENV} is not set to 1/true/on/yes (nor hooks in settings.json)"
        hooks = {
            key: {"target": target, "installed": False, "active": False, "skipped": reason}
            for key, target in TARGETS.items()
        }
    return {
        "pack_version": __version__,
        "comfyui_version": compat.comfyui_version(),
        "enabled_by_env": enabled,
        "installed": any(h.get("installed") for h in hooks.values()),
        "active": hooks_active(),
        "hooks": hooks,
        **REGISTRY.stats(),
        "catalogue": catalogue_status(),
    }


def catalogue_status() -> dict[str, Any]:
    """The save nodes' catalogue writers: per catalogue, what was indexed, skipped, dropped or failed."""
    try:
        from ..catalogue import writer
    except ImportError:  # a copy of the pack without the catalogue
        return {}
    return writer.status()


def setup_in_comfyui() -> None:
    """Called when ComfyUI imports the pack: the status route, the live node schemas and the model-hash
    prefetch always, the hooks only when enabled."""
    from . import comfyui, prefetch, route

    execution = comfyui.running_execution()
    if execution is None:
        return
    try:
        from .. import compat
        from ..metadata.parser.schemas import set_live_provider

        set_live_provider(compat.node_info)  # the save node infers rules from the classes ComfyUI loaded
    except Exception:  # without it the parser falls back on the workflow's and the bundled schemas
        logger.warning("Provenance: live node schemas not set up", exc_info=True)
    try:
        prefetch.register()
    except Exception:  # prefetch only saves time: without it the save hashes what it needs
        logger.warning("Provenance: model hash prefetch not set up", exc_info=True)
    REGISTRY.retain = debug_enabled()
    if enabled_by_env():
        install(execution)
    routes = comfyui.server_routes()
    if routes is not None:
        route.register(routes, status, debug=REGISTRY.retain)
        try:
            from . import openai_routes

            openai_routes.register(routes)
        except Exception:  # the API is optional: a failure here must never cost the user the save node
            logger.warning("Provenance: the OpenAI-compatible API was not mounted", exc_info=True)

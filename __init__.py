"""ComfyUI Provenance: save nodes whose files carry how they were made.

ComfyUI imports this file when the checkout sits in custom_nodes/ (under any directory name);
`pip install -e .` makes the same tree importable as `comfyui_provenance`. Nothing heavy happens
at import: node classes, and with them ComfyUI's own modules, load only when ComfyUI asks.
"""

from __future__ import annotations

import logging
import sys
from importlib.util import find_spec
from typing import Any

__version__ = "0.1.0"
# ComfyUI serves this folder's .js files to the browser (the web panel); nodes.py reads it before the nodes.
WEB_DIRECTORY = "./web"


def _has_module(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def comfy_entrypoint() -> Any:
    """V3 entry point: ComfyUI calls it when the module has no NODE_CLASS_MAPPINGS."""
    from .nodes.extension import ProvenanceExtension

    return ProvenanceExtension()


# A ComfyUI without comfy_api.latest (before 0.3.48) only knows the V1 mappings; 0.3.31-0.3.47
# already ship a bare comfy_api package but never call comfy_entrypoint. Defining the mappings
# anywhere else would hide the V3 entry point, because ComfyUI's loader prefers NODE_CLASS_MAPPINGS.
if not _has_module("comfy_api.latest") and _has_module("folder_paths"):
    from .nodes.v1 import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
else:
    __all__ = ["comfy_entrypoint"]


def _user_folder() -> None:
    """Inside ComfyUI: `<user directory>/provenance/` holds the settings file and the user's capture rules,
    and the frontend keeps its settings (the web panel's switches) in comfy.settings.json; all named here
    once for the whole process, never during a run."""
    try:
        from . import compat
        from .metadata import settings
        from .metadata.parser.rules import set_user_rules_dir

        folder = compat.user_directory() / "provenance"
        frontend = compat.frontend_settings_file()
    except ImportError:  # no folder_paths: not a real ComfyUI after all
        return
    except Exception:  # without it the defaults and PROVENANCE_* variables apply: never cost the user the node
        logging.getLogger(__name__).warning("Provenance: no user settings folder", exc_info=True)
        return
    settings.set_file(folder / settings.FILE_NAME)
    settings.set_frontend_file(frontend)
    set_user_rules_dir(folder / "rules")
    from .metadata.credentials.signer import set_input_resolver

    set_input_resolver(compat.input_image_path)  # a signed img2img output lists its input images as ingredients


def _log_level() -> None:
    """The `log_level` setting (PROVENANCE_LOG_LEVEL: DEBUG, INFO, ...) sets the pack's own log level,
    leaving ComfyUI's alone.

    ComfyUI (0.33) sets its console handler to --verbose's level (INFO by default), so below INFO
    the pack's records get a console handler of their own instead of going through ComfyUI's.
    """
    from .metadata import settings

    level = settings.current().log_level
    if not level:
        return
    pack = logging.getLogger(__name__)
    pack.setLevel(level)
    if logging.getLevelName(level) < logging.INFO and not pack.handlers:
        handler = logging.StreamHandler()  # ComfyUI's intercepted stderr: its console and log viewer
        handler.setFormatter(logging.Formatter("%(message)s"))
        pack.addHandler(handler)
        pack.propagate = False


def _start_runtime_hooks() -> None:
    """Inside ComfyUI: the status route, and the runtime hooks when PROVENANCE_HOOKS=1 (off by default)."""
    try:
        from .hooks import setup_in_comfyui

        setup_in_comfyui()
    except Exception:  # the hooks are optional: a failure here must never cost the user the save node
        logging.getLogger(__name__).warning("Provenance hooks: setup failed; running without them", exc_info=True)


# ComfyUI's main.py imports `execution` before it loads any pack; a plain `import comfyui_provenance` has not.
if "execution" in sys.modules:
    _user_folder()
_log_level()
if "execution" in sys.modules:
    _start_runtime_hooks()

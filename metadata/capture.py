"""From what a save node knows (prompt graph, extra_pnginfo, its id) to a record."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .parser.parse import WorkflowParser
from .record import Record, utc_now

logger = logging.getLogger(__name__)

# Keys ComfyUI uses for credentials; a record never carries them, wherever they appear.
SECRET_KEYS = frozenset({"auth_token_comfy_org", "api_key_comfy_org", "api_key", "auth_token"})
WARNING_MAX_CHARS = 500


@dataclass
class SaveContext:
    """The run as the save node sees it."""

    prompt: Mapping[str, Any] | None = None
    extra_pnginfo: Mapping[str, Any] | None = None
    save_node_id: str | None = None
    prompt_id: str | None = None
    comfyui_version: str | None = None

    @property
    def workflow(self) -> Mapping[str, Any] | None:
        wf = self.extra_pnginfo.get("workflow") if isinstance(self.extra_pnginfo, Mapping) else None
        return wf if isinstance(wf, Mapping) else None


def scrub(value: Any) -> Any:
    """A copy without credential keys, at any depth."""
    if isinstance(value, Mapping):
        return {k: scrub(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def short(message: str) -> str:
    return message if len(message) <= WARNING_MAX_CHARS else message[: WARNING_MAX_CHARS - 1] + "…"


def build_record(context: SaveContext, version: str | None, parser: WorkflowParser | None = None) -> Record:
    """Parse the prompt graph; a capture failure still yields a record that says so."""
    prompt = scrub(context.prompt) if isinstance(context.prompt, Mapping) else None
    workflow = scrub(context.workflow) if context.workflow is not None else None
    try:
        if prompt:
            record = (parser or WorkflowParser()).parse(prompt, context.save_node_id, workflow)
        else:
            record = Record(workflow=workflow)
            record.warn("no prompt graph reached the save node (API call without one?): nothing to parse")
    except Exception as err:  # a metadata failure never fails the save
        logger.warning("provenance: capture failed, saving with what is known: %s", err, exc_info=True)
        record = Record(prompt=prompt, workflow=workflow)
        record.warn(short(f"capture failed: {type(err).__name__}: {err}"))
    prov = record.provenance
    prov.capture_mode = "parser"
    prov.created = utc_now()
    prov.generator.version = version
    prov.comfyui_version = context.comfyui_version
    prov.prompt_id = context.prompt_id
    prov.save_node_id = context.save_node_id
    return record

"""From what a save node knows (prompt graph, extra_pnginfo, its id, the run's snapshot) to a record."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import runtime as runtime_merge
from .parser.parse import WorkflowParser
from .record import Image, Record, utc_now

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
    # Set by scrubbed(): core's text chunks (prompt, then each extra_pnginfo key) as JSON.
    chunks: list[tuple[str, str]] | None = None
    # What the save node adds to the record once it is built (the engine reports of the samplers upstream).
    amend: Callable[[Record], None] | None = None

    def scrubbed(self) -> SaveContext:
        """This context without credentials anywhere, with its JSON chunks made once.

        The graphs are serialized anyway (ComfyUI's own chunks), so the credential check is a
        substring test on that text; only a hit pays for walking and copying the graphs.
        """
        if self.chunks is not None:
            return self
        prompt = self.prompt if isinstance(self.prompt, Mapping) else None
        extra = dict(self.extra_pnginfo) if isinstance(self.extra_pnginfo, Mapping) else None
        chunks = _chunks(prompt, extra)
        if chunks is None or any(
            name in SECRET_KEYS or any(f'"{key}"' in text for key in SECRET_KEYS) for name, text in chunks
        ):
            prompt = scrub(prompt)
            extra = {k: scrub(v) for k, v in extra.items() if k not in SECRET_KEYS} if extra else extra
            chunks = _chunks(prompt, extra) or []
        return replace(self, prompt=prompt, extra_pnginfo=extra, chunks=chunks)

    @property
    def workflow(self) -> Mapping[str, Any] | None:
        wf = self.extra_pnginfo.get("workflow") if isinstance(self.extra_pnginfo, Mapping) else None
        return wf if isinstance(wf, Mapping) else None


def _chunks(prompt: Mapping[str, Any] | None, extra: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    """Exactly core's text: json.dumps of the prompt, then of each extra_pnginfo value."""
    try:
        out = [("prompt", json.dumps(prompt))] if prompt is not None else []
        out.extend((key, json.dumps(value)) for key, value in (extra or {}).items())
    except (TypeError, ValueError):
        return None
    return out


def graph_only(prompt: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt as a graph. ComfyUI's executor adds `is_changed` to each node it checked (`[NaN]`
    for a node that always re-runs, the usual idiom): an execution detail, not part of the graph,
    and not JSON, so the record never keeps it (core's own prompt chunk does)."""
    if not any(isinstance(node, Mapping) and "is_changed" in node for node in prompt.values()):
        return dict(prompt)
    return {
        key: {k: v for k, v in node.items() if k != "is_changed"} if isinstance(node, Mapping) else node
        for key, node in prompt.items()
    }


def scrub(value: Any) -> Any:
    """A copy of `value` without credential keys, at any depth."""
    if isinstance(value, Mapping):
        return {k: scrub(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def short(message: str) -> str:
    return message if len(message) <= WARNING_MAX_CHARS else message[: WARNING_MAX_CHARS - 1] + "…"


def build_record(
    context: SaveContext,
    version: str | None,
    parser: WorkflowParser | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> Record:
    """Parse the prompt graph, merged with the run's snapshot when there is one (metadata/runtime.py).

    A capture failure still yields a record that says so; a merge failure the parser's record.
    """
    context = context.scrubbed()
    prompt = graph_only(context.prompt) if context.prompt is not None else None
    workflow = dict(context.workflow) if context.workflow is not None else None
    mode = "parser"
    try:
        if prompt:
            parser = parser or WorkflowParser()
            record = parser.parse(prompt, context.save_node_id, workflow)
            if runtime is not None:
                record, mode = _merged(record, parser, context, runtime, prompt=prompt, workflow=workflow)
        else:
            record = Record(workflow=workflow)
            record.warn("no prompt graph reached the save node (API call without one?): nothing to parse")
    except Exception as err:  # a metadata failure never fails the save
        logger.warning("provenance: capture failed, saving with what is known: %s", err, exc_info=True)
        record = Record(prompt=prompt, workflow=workflow)
        record.warn(short(f"capture failed: {type(err).__name__}: {err}"))
    prov = record.provenance
    prov.capture_mode = mode
    prov.created = utc_now()
    prov.generator.version = version
    prov.comfyui_version = context.comfyui_version
    prov.prompt_id = context.prompt_id
    prov.save_node_id = context.save_node_id
    if context.amend is not None:
        try:
            context.amend(record)
        except Exception as err:  # what the save node adds is extra: the record stands without it
            logger.warning("provenance: amending the record failed: %s", err, exc_info=True)
            record.warn(short(f"amending the record failed: {type(err).__name__}: {err}"))
    return record


def _merged(
    record: Record,
    parser: WorkflowParser,
    context: SaveContext,
    runtime: Mapping[str, Any],
    *,
    prompt: dict[str, Any],
    workflow: dict[str, Any] | None,
) -> tuple[Record, str]:
    """The record merged with the snapshot (credentials scrubbed), or the parser's own and why not."""
    reason = runtime_merge.unusable(runtime, context.prompt_id)
    if reason is None:
        try:
            snapshot = scrub(runtime)
            merged = runtime_merge.merge(
                record, parser, prompt=prompt, save_node_id=context.save_node_id, workflow=workflow, snapshot=snapshot
            )
            return merged, runtime_merge.MODE
        except Exception as err:  # the parser's record is still a good record
            logger.warning("provenance: merging runtime capture failed: %s", err, exc_info=True)
            reason = f"merging it failed: {type(err).__name__}: {err}"
    record.warn(short(f"runtime capture not used: {reason}"))
    return record, "parser"


def stamp_media(record: Record, info: dict[str, Any], *, fmt: str, name: str | None) -> None:
    """The file's facts into the record; the graph's frames/fps kept beside them where they differ.

    `info` is what the file holds (describe(), or a reader's Embedded.media): a video's under
    image.video, a sound's under image.audio (a video's sound inside its video block).
    """
    width, height = info.get("width", record.image.width), info.get("height", record.image.height)
    record.image = Image(format=fmt, width=width, height=height, filename=name)
    kind = "video" if "frames" in info or "pix_fmt" in info else "audio"
    record.image.other[kind] = {k: v for k, v in info.items() if k not in ("width", "height")}
    gen = record.generation
    for field_name in ("frames", "fps"):
        held = info.get(field_name)
        graph = getattr(gen, field_name)
        if held is None:
            continue
        if graph is not None and abs(float(graph) - float(held)) > 1e-3:
            gen.other[f"{field_name}_in_graph"] = graph
        setattr(gen, field_name, held)
    if "padded_from" in info:
        w, h = info["padded_from"]
        record.warn(f"{w}x{h} is odd-sized and yuv420 needs even sizes: the last row/column was repeated")
    if info.get("alpha_dropped"):
        record.warn(
            "H.264 has no alpha channel: the frames' transparency was dropped (webm, webp, apng and gif keep it)"
        )

"""Key/value tags (QuickTime mdta, Matroska SimpleTag, Vorbis comments, ID3 TXXX) to what a file embeds.

Every video and audio reader collects its container's tags as (name, value) pairs, in file order,
and hands them here, so ours, core's and VideoHelperSuite's layouts are understood the same way
in every container:

- names are compared lower-cased (Matroska stores PROMPT, ID3 readers differ in case);
- `prompt`, `workflow` are ComfyUI's graphs; a value JSON-quoted twice (core's SaveVideo quotes a
  string again; VHS did until 2026-05) is unquoted once;
- `comfyui_provenance` is our record (whole, or a stub pointing at the JSON sidecar);
- a comment holding a JSON object with `prompt`/`workflow` is VHS's layout before 2026-01;
  a comment that reads as A1111 parameters is the infotext; any other comment is a comment.

The first occurrence of a name wins, so a container-level tag beats a stream-level one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..budget import Budget
from ..errors import ReadError
from .base import Embedded

RECORD_TAG = "comfyui_provenance"
GRAPH_TAGS = ("prompt", "workflow")
# Where containers keep a free-text comment: mp4 ©cmt (PyAV: "comment"), Matroska COMMENT,
# Vorbis COMMENT/DESCRIPTION, ID3 COMM.
COMMENT_TAGS = ("comment", "description")
# A1111 parameters always carry this field; a comment without it is someone's comment.
A1111_MARK = "Steps: "


def unquote(value: str, budget: Budget, what: str) -> str:
    """A JSON document that was JSON-quoted once more (a string holding it), unquoted once."""
    text = value.strip()
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return value
    try:
        inner = budget.json(text, what)
    except ReadError:
        return value
    return inner if isinstance(inner, str) else value


def _vhs_comment(value: str, budget: Budget) -> dict[str, str] | None:
    """VHS's old single `comment` tag: a JSON object of prompt/workflow/… values, or None."""
    if not value.lstrip().startswith("{"):
        return None
    try:
        data = budget.json(value, "the comment tag")
    except ReadError:
        return None
    if not isinstance(data, dict) or not any(k in data for k in GRAPH_TAGS):
        return None
    out = {}
    for key in GRAPH_TAGS:
        item = data.get(key)
        if isinstance(item, str):
            out[key] = unquote(item, budget, f"the comment's {key}")
        elif item is not None:
            out[key] = json.dumps(item)
    return out


def embedded_from_tags(
    fmt: str,
    pairs: Iterable[tuple[str, str]],
    budget: Budget,
    *,
    width: int | None = None,
    height: int | None = None,
    xmp: bytes | None = None,
    media: dict[str, Any] | None = None,
) -> Embedded:
    """What a container's tags carry, read the way every layout we know writes them."""
    found = Embedded(format=fmt, width=width, height=height, xmp=xmp, media=dict(media or {}))
    comments: list[str] = []
    for raw_name, value in pairs:
        name = raw_name.strip().lower()
        if name == RECORD_TAG:
            if found.record_json is None:
                found.record_json = unquote(value, budget, "the record tag")
        elif name in GRAPH_TAGS:
            found.comfy.setdefault(name, unquote(value, budget, f"the {name} tag"))
        elif name in COMMENT_TAGS:
            comments.append(value)
    for comment in comments:
        vhs = _vhs_comment(comment, budget)
        if vhs is not None:
            for key, text in vhs.items():
                found.comfy.setdefault(key, text)
        elif found.infotext is None and A1111_MARK in comment:
            found.infotext = comment
    return found

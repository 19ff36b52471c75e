"""One file as the web panel shows it: its record, A1111 parameters, workflow, prompt and kind (no ComfyUI).

`inspect(path)` is what GET /provenance/record and POST /provenance/inspect answer besides the file's
own facts: the record exactly as `provenance read --json` prints it, the A1111 "parameters" text the file
carries (or, when it carries none, the text our infotext writer makes from the record), and the UI
workflow and API prompt as dicts. The file is read with the same guarded readers as everything else:
a damaged or hostile file is one ReadError line, never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from . import infotext
from .budget import Budget
from .formats.base import FORMATS, Embedded
from .read import extract, read
from .record import Record

logger = logging.getLogger(__name__)

KINDS = ("image", "video", "audio")


def kind_of(found: Embedded) -> str:
    """image (PNG, JPEG, WEBP, GIF, animated ones too: the browser shows them as images), video or audio."""
    if found.format in FORMATS:
        return "image"
    media = found.media
    if found.width or "frames" in media or "codec" in media or "audio" not in media:
        return "video"
    return "audio"


def a1111_text(found: Embedded, record: Record) -> str | None:
    """The parameters the file embeds, else those our writer makes from the record (None when empty)."""
    if found.infotext:
        return found.infotext
    try:
        text = infotext.build(record)
    except Exception as err:  # a record read from a hostile file may hold anything: the text is optional
        logger.debug("provenance: no A1111 text for the record: %s", err)
        return None
    return text if text.strip() else None


def inspect(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(kind, {"record", "a1111", "workflow", "prompt"}) of a file; ReadError when it does not read."""
    path = Path(path)
    record = read(path)
    found = extract(path, Budget())  # read() keeps what it extracted to itself; this pass reads metadata only
    workflow = record.workflow if isinstance(record.workflow, dict) else None
    prompt = record.prompt if isinstance(record.prompt, dict) else None
    body = {"record": record.to_dict(), "a1111": a1111_text(found, record), "workflow": workflow, "prompt": prompt}
    return kind_of(found), body

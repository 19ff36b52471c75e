"""read(path) -> Record for our files, ComfyUI core files and A1111/Forge files.

The container is sniffed, its metadata pulled raw (no pixel decoding), then an ordered table
of readers, most specific and cheapest first, turns it into a record: our embedded record
(resolving what it stored elsewhere), our JSON sidecar, ComfyUI's prompt graph, A1111 infotext.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import infotext
from .errors import ReadError
from .formats import sidecar, xmp
from .formats.base import Embedded, sniffers
from .parser.parse import WorkflowParser
from .record import Record

SidecarReader = Callable[[], Record | None]
Reader = Callable[[Embedded, SidecarReader], Record | None]


def extract(path: str | Path) -> Embedded:
    """The raw metadata of a PNG, JPEG or WEBP file."""
    path = Path(path)
    try:
        with path.open("rb") as fp:
            head = fp.read(16)
            fmt = next((f for f in sniffers() if f.sniff(head)), None)
            if fmt is None:
                raise ReadError(f"{path.name}: not a PNG, JPEG or WEBP file")
            fp.seek(0)
            return fmt.read(fp)
    except OSError as err:
        raise ReadError(f"{path.name}: cannot open: {err.strerror or err}") from err


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        raise ReadError(f"{what} is not valid JSON: {err}") from err


def _embedded_record_json(found: Embedded) -> str | None:
    if found.record_json is not None:
        return found.record_json
    if found.xmp is not None:
        return xmp.parse(found.xmp).get("Record")
    return None


def from_record(found: Embedded, sidecar_record: SidecarReader) -> Record | None:
    text = _embedded_record_json(found)
    if text is None:
        return None
    data = _json(text, "the embedded provenance record")
    if not isinstance(data, dict):
        raise ReadError("the embedded provenance record is not a JSON object")
    refs = data.pop("$refs", {}) or {}
    if "*" in refs:
        full = sidecar_record()
        if full is not None:
            return full
        record = Record.from_dict(data)
        record.warn("the full record lives in the JSON sidecar, which is missing")
        if found.infotext:
            record.generation = infotext.to_record(infotext.parse(found.infotext)).generation
        return record
    record = Record.from_dict(data)
    for key, location in refs.items():
        value = _resolve(found, location, key, sidecar_record)
        setattr(record, key, value)
    return record


def _resolve(found: Embedded, location: str, key: str, sidecar_record: SidecarReader) -> Any:
    if location.startswith("sidecar:"):
        full = sidecar_record()
        return getattr(full, key) if full is not None else None
    text = found.comfy.get(key)
    return _json(text, f"the {key} chunk") if text is not None else None


def from_sidecar(found: Embedded, sidecar_record: SidecarReader) -> Record | None:
    return sidecar_record()


def from_comfyui(found: Embedded, sidecar_record: SidecarReader) -> Record | None:
    if "prompt" not in found.comfy:
        return None
    prompt = _json(found.comfy["prompt"], "the ComfyUI prompt")
    workflow = _json(found.comfy["workflow"], "the ComfyUI workflow") if "workflow" in found.comfy else None
    if not isinstance(prompt, dict):
        raise ReadError("the ComfyUI prompt is not a JSON object")
    record = WorkflowParser().parse(prompt, None, workflow if isinstance(workflow, dict) else None)
    record.provenance.capture_mode = "imported"
    record.provenance.other["imported_from"] = "comfyui"
    return record


def from_a1111(found: Embedded, sidecar_record: SidecarReader) -> Record | None:
    if not found.infotext:
        return None
    return infotext.to_record(infotext.parse(found.infotext))


READERS: list[Reader] = [from_record, from_sidecar, from_comfyui, from_a1111]


def read(path: str | Path) -> Record:
    """The record a file carries; ReadError when it is unreadable or carries none."""
    path = Path(path)
    found = extract(path)
    cache: list[Record | None] = []

    def sidecar_record() -> Record | None:
        if not cache:
            cache.append(sidecar.read_record(path))
        return cache[0]

    for reader in READERS:
        record = reader(found, sidecar_record)
        if record is not None:
            if record.provenance.capture_mode == "imported":
                record.image.format = record.image.format or found.format
                record.image.width = record.image.width or found.width
                record.image.height = record.image.height or found.height
            return record
    raise ReadError(f"{path.name}: no provenance, ComfyUI or A1111 metadata found")

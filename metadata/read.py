"""read(path) -> Record for our files, ComfyUI core files and A1111/Forge files.

The container is sniffed, its metadata pulled raw (no pixel decoding), then an ordered table
of readers, most specific and cheapest first, turns it into a record: our embedded record
(resolving what it stored elsewhere), our sidecars (JSON record, XMP packet), ComfyUI's prompt
graph, A1111 infotext (embedded, then the text sidecar), and last the XMP summary fields.
A runtime block that was over its inline budget is brought back from `<image>.runtime.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import infotext
from .errors import ReadError
from .formats import sidecar, xmp
from .formats.base import Embedded, sniffers
from .parser.parse import WorkflowParser
from .record import Generation, Model, Record


def extract(path: str | Path) -> Embedded:
    """The raw metadata of a PNG, JPEG or WEBP file."""
    path = Path(path)
    try:
        with path.open("rb") as fp:
            head = fp.read(16)
            fmt = next((f for f in sniffers() if f.sniff(head)), None)
            if fmt is None:
                raise ReadError("not a PNG, JPEG or WEBP file")
            fp.seek(0)
            return fmt.read(fp)
    except OSError as err:
        raise ReadError(f"cannot open: {err.strerror or err}") from err


@dataclass
class Source:
    """One file being read: what it embeds, plus its sidecars, each loaded at most once."""

    path: Path
    found: Embedded
    _cache: dict[str, Any] = field(default_factory=dict)

    def sidecar_record(self) -> Record | None:
        if "json" not in self._cache:
            self._cache["json"] = sidecar.read_record(self.path)
        return self._cache["json"]  # type: ignore[no-any-return]

    def sidecar_text(self, kind: str) -> str | None:
        if kind not in self._cache:
            data = sidecar.read_bytes(self.path, kind)
            self._cache[kind] = data.decode("utf-8", errors="replace") if data is not None else None
        return self._cache[kind]  # type: ignore[no-any-return]


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        raise ReadError(f"{what} is not valid JSON: {err}") from err


def _record_from_json(text: str, src: Source, what: str) -> Record:
    """A record as embedded: resolve what it stored elsewhere ($refs) in the file or sidecar."""
    data = _json(text, what)
    if not isinstance(data, dict):
        raise ReadError(f"{what} is not a JSON object")
    refs = data.pop("$refs", {}) or {}
    if "*" in refs:
        full = src.sidecar_record()
        if full is not None:
            return full
        record = Record.from_dict(data)
        record.warn("the full record lives in the JSON sidecar, which is missing")
        if src.found.infotext:
            record.generation = infotext.to_record(infotext.parse(src.found.infotext)).generation
        return record
    record = Record.from_dict(data)
    for key, location in refs.items():
        if location.startswith("sidecar:"):
            full = src.sidecar_record()
            value = getattr(full, key) if full is not None else None
        else:
            text_value = src.found.comfy.get(key)
            value = _json(text_value, f"the {key} chunk") if text_value is not None else None
        setattr(record, key, value)
    return record


def from_record(src: Source) -> Record | None:
    text = src.found.record_json
    if text is None and src.found.xmp is not None:
        text = xmp.parse(src.found.xmp).get("Record")
    return _record_from_json(text, src, "the embedded provenance record") if text is not None else None


def from_sidecar_json(src: Source) -> Record | None:
    return src.sidecar_record()


def from_sidecar_xmp(src: Source) -> Record | None:
    packet = src.sidecar_text("sidecar:xmp")
    if packet is None:
        return None
    text = xmp.parse(packet.encode("utf-8")).get("Record")
    return _record_from_json(text, src, "the XMP sidecar's record") if text is not None else None


def from_comfyui(src: Source) -> Record | None:
    comfy = src.found.comfy
    if "prompt" not in comfy:
        return None
    prompt = _json(comfy["prompt"], "the ComfyUI prompt")
    workflow = _json(comfy["workflow"], "the ComfyUI workflow") if "workflow" in comfy else None
    if not isinstance(prompt, dict):
        raise ReadError("the ComfyUI prompt is not a JSON object")
    record = WorkflowParser().parse(prompt, None, workflow if isinstance(workflow, dict) else None)
    record.provenance.capture_mode = "imported"
    record.provenance.other["imported_from"] = "comfyui"
    return record


def from_a1111(src: Source) -> Record | None:
    text = src.found.infotext or src.sidecar_text("sidecar:txt")
    return infotext.to_record(infotext.parse(text)) if text else None


def from_xmp_fields(src: Source) -> Record | None:
    """Our XMP summary alone (no record inside): the generation fields it names."""
    if src.found.xmp is None:
        return None
    fields = xmp.parse(src.found.xmp)
    if "Seed" not in fields and "Positive" not in fields:
        return None
    gen = Generation(
        positive=fields.get("Positive"),
        negative=fields.get("Negative"),
        seed=_number(fields.get("Seed"), int),
        steps=_number(fields.get("Steps"), int),
        cfg=_number(fields.get("CFGScale"), float),
        sampler=fields.get("Sampler"),
        scheduler=fields.get("Scheduler"),
        denoise=_number(fields.get("Denoise"), float),
        width=_number(fields.get("Width"), int),
        height=_number(fields.get("Height"), int),
        guidance=_number(fields.get("Guidance"), float),
    )
    record = Record(generation=gen)
    if fields.get("Checkpoint"):
        record.models.append(Model(role="checkpoint", name=fields["Checkpoint"]))
    record.models.extend(Model(role="lora", name=n.strip()) for n in fields.get("Loras", "").split(",") if n.strip())
    record.provenance.capture_mode = "imported"
    record.provenance.other["imported_from"] = "xmp"
    return record


def _number(text: str | None, kind: Callable[[str], Any]) -> Any:
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        return None


def _restore_runtime(src: Source, record: Record) -> None:
    """The runtime block from its sidecar where the record points to one; the pointer stays if it is gone."""
    ref = record.runtime.get("sidecar_ref") if isinstance(record.runtime, dict) else None
    if not isinstance(ref, str):
        return
    try:
        block = sidecar.read_runtime(src.path, ref)
    except ReadError as err:
        record.warn(f"the runtime block in {ref} does not read: {err}")
        return
    if block is None:
        record.warn(f"the runtime block lives in {ref}, which is missing")
    else:
        record.runtime = block


READERS: list[Callable[[Source], Record | None]] = [
    from_record,
    from_sidecar_json,
    from_sidecar_xmp,
    from_comfyui,
    from_a1111,
    from_xmp_fields,
]


def read(path: str | Path) -> Record:
    """The record a file carries; ReadError when it is unreadable or carries none."""
    path = Path(path)
    src = Source(path=path, found=extract(path))
    for reader in READERS:
        record = reader(src)
        if record is not None:
            _restore_runtime(src, record)
            if record.provenance.capture_mode == "imported":
                record.image.format = record.image.format or src.found.format
                record.image.width = record.image.width or src.found.width
                record.image.height = record.image.height or src.found.height
            return record
    raise ReadError("no provenance, ComfyUI or A1111 metadata found")

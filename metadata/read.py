"""read(path) -> Record for our files, ComfyUI core files and A1111/Forge files.

The container is sniffed, its metadata pulled raw (no pixel decoding), then an ordered table
of readers, most specific and cheapest first, turns it into a record: our embedded record
(resolving what it stored elsewhere), our sidecars (JSON record, XMP packet), ComfyUI's prompt
graph, A1111 infotext (embedded, then the text sidecar), and last the XMP summary fields.
A runtime block that was over its inline budget is brought back from `<image>.runtime.json`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import infotext
from .budget import Budget, open_regular
from .capture import stamp_media
from .errors import GraphTooLarge, ReadError
from .formats import sidecar, xmp
from .formats.base import GRAPH_KEYS, Embedded, sniffers
from .limits import READ_INFOTEXT_MAX
from .parser.parse import WorkflowParser, fill_size_from_pixels
from .record import Generation, Model, Record
from .shape import check_record, record_from_data
from .shape import warm as warm_shape

logger = logging.getLogger(__name__)
HEX = frozenset("0123456789abcdef")
NOT_OURS = "not a PNG, JPEG, WEBP, GIF, MP4/MOV, WebM/MKV, FLAC, MP3 or Ogg file"


def warm() -> None:
    """Load now what the first read loads lazily (readers, record schema, capture rules, node schemas).

    A process that forks readers calls it first, so every worker starts with them loaded.
    """
    from .parser import rules, schemas

    sniffers()
    warm_shape()
    rules.bundled()
    schemas.bundled()


def extract(path: str | Path, budget: Budget | None = None) -> Embedded:
    """The raw metadata of an image, video or audio file (a regular file; nothing else is opened)."""
    with open_regular(Path(path)) as fp:
        head = fp.read(16)
        fmt = next((f for f in sniffers() if f.sniff(head)), None)
        if fmt is None:
            raise ReadError(NOT_OURS)
        fp.seek(0)
        try:
            return fmt.read(fp, budget or Budget())
        except OSError as err:
            raise ReadError(f"cannot read: {(err.strerror or str(err)).lower()}") from err


@dataclass
class Source:
    """One file being read: what it embeds, plus its sidecars, each loaded at most once, on one budget."""

    path: Path
    found: Embedded
    budget: Budget = field(default_factory=Budget)
    _cache: dict[str, Any] = field(default_factory=dict)

    def sidecar_record(self) -> Record | None:
        if "json" not in self._cache:
            self._cache["json"] = sidecar.read_record(self.path, self.budget)
        return self._cache["json"]  # type: ignore[no-any-return]

    def sidecar_text(self, kind: str) -> str | None:
        if kind not in self._cache:
            data = sidecar.read_bytes(self.path, kind, self.budget)
            self._cache[kind] = data.decode("utf-8", errors="replace") if data is not None else None
        return self._cache[kind]  # type: ignore[no-any-return]


def _record_from_json(text: str, src: Source, what: str) -> Record:
    """A record as embedded: resolve what it stored elsewhere ($refs) in the file or sidecar."""
    data = src.budget.json(text, what)
    refs = data.pop("$refs", None) if isinstance(data, dict) else None
    if refs is not None and not (isinstance(refs, dict) and all(isinstance(v, str) for v in refs.values())):
        raise ReadError(f"{what} is malformed: $refs must map record keys to locations")
    refs = refs or {}
    if "*" in refs:
        try:
            full = src.sidecar_record()
        except ReadError as err:
            full = None
            stub_problem = f"the JSON sidecar holding the full record does not read: {err}"
        else:
            stub_problem = "the full record lives in the JSON sidecar, which is missing"
        if full is not None:
            return full
        record = record_from_data(data, what)
        record.warn(stub_problem)
        try:
            fallback = from_a1111(src)
        except ReadError:
            fallback = None
        if fallback is not None:
            record.generation = fallback.generation
        return record
    record = record_from_data(data, what)
    for key, location in refs.items():
        if key not in GRAPH_KEYS:
            record.warn(f"{what} refers its {key!r} to {location!r}: ignored (only graphs are stored elsewhere)")
            continue
        setattr(record, key, _referred(src, key, location, record))
    return record


def _referred(src: Source, key: str, location: str, record: Record) -> dict[str, Any] | None:
    """A graph the record stored elsewhere, or None (with a warning) when it is gone or unreadable."""
    try:
        if location.startswith("sidecar:"):
            full = src.sidecar_record()
            value = getattr(full, key) if full is not None else None
        else:
            text = src.found.comfy.get(key)
            value = src.budget.graph(text, f"the {key} chunk") if text is not None else None
    except ReadError as err:
        record.warn(f"the record's {key} (in {location}) does not read: {err}")
        return None
    if value is None:
        record.warn(f"the record's {key} lives in {location}, which is missing")
        return None
    if not isinstance(value, dict):
        record.warn(f"the record's {key} (in {location}) is not a JSON object: left out")
        return None
    return value


def from_record(src: Source) -> Record | None:
    text = src.found.record_json
    if text is None and src.found.xmp is not None:
        text = xmp.parse(src.found.xmp).get("Record")
    return _record_from_json(text, src, "the embedded provenance record") if text is not None else None


def from_sidecar_json(src: Source) -> Record | None:
    return src.sidecar_record()


def from_c2pa(src: Source) -> Record | None:
    """The record signed into the file's C2PA manifest (the `c2pa` target alone), with c2pa-python;
    only for a file our own readers walked soundly and that holds a manifest store."""
    from .credentials.verify import signed_record

    text = signed_record(src.path, src.found.format)
    return _record_from_json(text, src, "the C2PA manifest's record") if text is not None else None


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
    prompt = src.budget.graph(comfy["prompt"], "the ComfyUI prompt")
    if not isinstance(prompt, dict):
        raise ReadError("the ComfyUI prompt is not a JSON object")
    workflow = None
    if "workflow" in comfy:
        try:
            workflow = src.budget.graph(comfy["workflow"], "the ComfyUI workflow")
        except ReadError as err:
            logger.debug("provenance: the workflow chunk is left out: %s", err)
    try:
        record = WorkflowParser().parse(prompt, None, workflow if isinstance(workflow, dict) else None)
    except GraphTooLarge as err:
        raise ReadError(str(err)) from err
    except Exception as err:  # a hostile graph must end in a ReadError, whatever the parser trips on
        logger.debug("provenance: parsing the ComfyUI prompt failed", exc_info=True)
        raise ReadError(f"the ComfyUI prompt could not be parsed ({type(err).__name__}: {err})") from err
    record.provenance.capture_mode = "imported"
    record.provenance.other["imported_from"] = "comfyui"
    return record


def from_a1111(src: Source) -> Record | None:
    text = src.found.infotext or src.sidecar_text("sidecar:txt")
    if not text:
        return None
    if len(text) > READ_INFOTEXT_MAX:
        raise ReadError(f"the A1111 parameters are {len(text):,} characters, over the {READ_INFOTEXT_MAX:,} limit")
    return infotext.to_record(infotext.parse(text))


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
    record.models.extend(_xmp_loras(fields.get("Loras")))
    record.provenance.capture_mode = "imported"
    record.provenance.other["imported_from"] = "xmp"
    return record


def _xmp_loras(value: Any) -> list[Model]:
    """cprov:Loras as models: structures with strengths and hashes, or an older packet's name list."""
    if isinstance(value, str):
        return [Model(role="lora", name=n.strip()) for n in value.split(",") if n.strip()]
    models = []
    for item in value if isinstance(value, list) else []:
        if not item.get("Name"):
            continue
        pairs = (("sha256", item.get("SHA256")), ("autov3", item.get("AutoV3")))
        hashes = {k: v.lower() for k, v in pairs if v and len(v) == 64 and all(c in HEX for c in v.lower())}
        if "sha256" in hashes:
            hashes["autov2"] = hashes["sha256"][:10]
        model = Model(role="lora", name=item["Name"], hashes=hashes)
        model.strength_model = _number(item.get("StrengthModel"), float)
        model.strength_clip = _number(item.get("StrengthClip"), float)
        models.append(model)
    return models


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
        block = sidecar.read_runtime(src.path, ref, src.budget)
        if block is not None:
            check_record({"runtime": block}, f"the runtime block in {ref}")
    except ReadError as err:
        record.warn(f"the runtime block in {ref} does not read: {err}")
        return
    if block is None:
        record.warn(f"the runtime block lives in {ref}, which is missing")
    else:
        record.runtime = block


# Most specific and cheapest first; each says in words what it reads, for the warnings.
READERS: list[tuple[str, Callable[[Source], Record | None]]] = [
    ("the embedded provenance record", from_record),
    ("the JSON sidecar", from_sidecar_json),
    ("the XMP sidecar", from_sidecar_xmp),
    ("ComfyUI's prompt", from_comfyui),
    ("the A1111 parameters", from_a1111),
    ("the XMP fields", from_xmp_fields),
    ("the C2PA manifest's record", from_c2pa),
]


def read(path: str | Path) -> Record:
    """The record a file carries; ReadError when it is unreadable or carries none.

    A source that is damaged or hostile (a garbage sidecar, a malformed record) is skipped for the
    next one, and the record that is read says what was skipped and why.
    """
    path = Path(path)
    budget = Budget()
    src = Source(path=path, found=extract(path, budget), budget=budget)
    skipped: list[ReadError] = []
    for name, reader in READERS:
        try:
            record = reader(src)
        except ReadError as err:
            skipped.append(err)
            logger.debug("provenance: %s: %s skipped: %s", path.name, name, err)
            continue
        if record is None:
            continue
        for problem in skipped:
            record.warn(f"ignored while reading: {problem}")
        _restore_runtime(src, record)
        if record.provenance.capture_mode == "imported":
            record.image.format = record.image.format or src.found.format
            record.image.width = record.image.width or src.found.width
            record.image.height = record.image.height or src.found.height
            if src.found.media:
                stamp_media(record, src.found.media, fmt=src.found.format, name=record.image.filename)
            fill_size_from_pixels(record, src.found.width, src.found.height)
        return record
    if skipped:
        raise skipped[0]
    raise ReadError("no provenance, ComfyUI or A1111 metadata found")

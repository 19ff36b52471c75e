"""Retro-stamp files ComfyUI core wrote: the full metadata added, the pixels copied untouched.

A file's ComfyUI graph is read and parsed exactly as `read()` imports it; the save path's own
planning (`save.prepare`) decides what goes where; the format's `restamp` rewrites the container
around the untouched image data into a temporary file that replaces the destination only once it
is complete and reads back. ComfyUI's prompt/workflow text is carried over byte for byte.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from . import files
from .budget import Budget, open_regular
from .capture import SECRET_KEYS, SaveContext, stamp_media
from .credentials.signer import SealError
from .errors import MetadataError, ReadError
from .formats import sidecar, xmp
from .formats.base import A1111, COMFYUI, DEFAULT_TARGETS, FORMATS, Embedded, by_name, media_by_name
from .parser.parse import fill_size_from_pixels
from .read import NOT_OURS, Source, extract, from_comfyui, from_record
from .record import Image, Record, utc_now
from .save import Hasher, SaveOptions, hash_record, prepare, write_sidecars

logger = logging.getLogger(__name__)

CONVERTED, SKIPPED, FAILED = "converted", "skipped", "failed"
# sd-prompt-reader ignores UserComment on a WEBP with alpha; webp.py adds the copy it reads instead.
# Containers read under one name and restamped by another's writer (a MOV is rewritten as MP4
# boxes are; an Ogg Vorbis file is remuxed by the Ogg muxer, as Opus is).
MEDIA_OF = {"mov": "mp4", "ogg": "opus"}
ALPHA_NOTE = "has alpha (kept): the A1111 parameters also went to IFD0 Model as SwarmUI JSON, for sd-prompt-reader"


@dataclass
class Outcome:
    """What became of one file."""

    source: Path
    status: str  # CONVERTED, SKIPPED or FAILED
    reason: str | None = None
    dest: Path | None = None
    record: Record | None = None
    notes: list[str] = field(default_factory=list)
    sidecars: list[Path] = field(default_factory=list)


@dataclass
class Stamp:
    """Our record as the image itself carries it, and what the files around it still lack."""

    record: Record | None  # None when the embedded record needs a sidecar that does not read
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.record is not None and not self.missing


def convert_file(
    source: Path,
    dest: Path | None = None,
    targets: Iterable[str] = DEFAULT_TARGETS,
    *,
    force: bool = False,
    version: str | None = None,
    hasher: Hasher | None = None,
    lora_tags: bool = True,
) -> Outcome:
    """Stamp `source` into `dest` (default: in place). ComfyUI's own data is always kept, whatever `targets` say.

    `lora_tags` appends the LoRAs to the A1111 prompt as `<lora:name:w>` tags (the record keeps the literal prompt).
    """
    dest = source if dest is None else dest
    options = SaveOptions(format="png", targets=frozenset(targets) | {COMFYUI}, lora_tags=lora_tags)
    try:
        return _convert(source, dest, options, force=force, version=version, hasher=hasher)
    except (MetadataError, OSError, ValueError) as err:
        return Outcome(source, FAILED, _message(err, source), dest=dest)
    except Exception as err:  # a bug or a damaged file we did not foresee: report it, go on with the others
        logger.debug("provenance: converting %s failed", source, exc_info=True)
        return Outcome(source, FAILED, f"{type(err).__name__}: {err}", dest=dest)


def _message(err: Exception, source: Path) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return str(err).removeprefix(f"{source.name}: ")  # the summary names the file already


def _convert(
    source: Path, dest: Path, options: SaveOptions, *, force: bool, version: str | None, hasher: Hasher | None
) -> Outcome:
    try:
        found = extract(source)
    except ReadError as err:
        # A file of another kind in a walked folder is passed over; one that cannot be opened fails.
        if str(err) == NOT_OURS and source.suffix.lower() not in files.SAVED_SUFFIXES:
            return Outcome(source, SKIPPED, f"unsupported: {NOT_OURS}")
        raise
    dest.parent.mkdir(parents=True, exist_ok=True)
    files.sweep_once(dest.parent)
    src = Source(path=source, found=found)
    notes: list[str] = []
    if not force:
        stamp = stamp_of(src, hasher, notes)
        if stamp is not None:
            if stamp.complete or dest != source:
                return Outcome(source, SKIPPED, "already stamped: it carries a provenance record")
            notes.append(f"finishing an earlier run: {', '.join(stamp.missing)}")
            if stamp.record is not None:
                return _restamp(src, dest, stamp.record, options, hasher=hasher, notes=notes)
        elif dest != source and dest.exists():
            theirs = _dest_stamp(dest, hasher)
            if theirs is None or theirs.complete:
                what = "already converted" if theirs is not None else "the destination exists"
                return Outcome(source, SKIPPED, f"{what}: {dest} (--force overwrites it)")
            notes.append(f"finishing an earlier run: {', '.join(theirs.missing)}")
    chunks = _comfy_chunks(found)
    if not chunks:
        extra = " (A1111 parameters only)" if found.infotext else ""
        return Outcome(source, SKIPPED, f"no ComfyUI metadata{extra}", notes=notes)
    found.comfy = dict(chunks)
    record = from_comfyui(src)
    if record is None:  # _comfy_chunks found a prompt, so from_comfyui cannot miss it
        raise ReadError("no ComfyUI prompt graph")
    record.provenance.created = utc_now()
    record.provenance.generator.version = version
    if found.alpha and A1111 in options.targets:
        notes.append(ALPHA_NOTE)
    return _restamp(src, dest, record, options, hasher=hasher, notes=notes, chunks=chunks)


def _restamp(
    src: Source,
    dest: Path,
    record: Record,
    options: SaveOptions,
    *,
    hasher: Hasher | None,
    notes: list[str],
    chunks: list[tuple[str, str]] | None = None,
) -> Outcome:
    """Write `record` into a copy of the source's container at `dest`: the image first, then the sidecars.

    The image alone decides whether a file is stamped, so a run killed between the two leaves an
    image whose record lists sidecars that are missing, and the next run finishes them.
    """
    found, source = src.found, src.path
    fmt: Any = (
        by_name(found.format) if found.format in FORMATS else media_by_name(MEDIA_OF.get(found.format, found.format))
    )
    record.image = Image(format=found.format, width=found.width, height=found.height, filename=dest.name)
    if found.media:
        stamp_media(record, found.media, fmt=found.format, name=dest.name)
    fill_size_from_pixels(record, found.width, found.height)
    if hasher is not None:
        hash_record(record, hasher)
    comfy = chunks if chunks is not None else _comfy_chunks(found)
    payloads, plan = prepare(record, comfy, fmt, options.targets, lora_tags=options.lora_tags)
    if found.format in FORMATS:
        options = replace(options, format=fmt.name)

    def restamp(out: BinaryIO) -> None:
        with open_regular(source) as fp:
            fmt.restamp(fp, payloads, plan, options, out)

    def check(written: Path) -> None:
        extract(written)
        if found.format not in FORMATS:
            fmt.check(source, written)  # every packet the same: a remux, never a re-encode

    mode = stat.S_IMODE(source.stat().st_mode)
    seal = plan.seal
    try:
        files.replace_with(dest, seal.wrap(restamp) if seal else restamp, mode=mode, check=check, durable=True)
    except SealError as err:  # unsigned, never unconverted: the record says why
        seal.failed(err)
        notes.append(f"not signed: {err}")
        files.replace_with(dest, restamp, mode=mode, check=check, durable=True)
    written = write_sidecars(dest, record, payloads, plan)
    notes.extend(f"{p.location} not written: {p.reason}" for p in plan.placements if p.status == "failed")
    return Outcome(source, CONVERTED, dest=dest, record=record, notes=notes, sidecars=written)


def stamp_of(src: Source, hasher: Hasher | None = None, notes: list[str] | None = None) -> Stamp | None:
    """Our record if the image itself carries one (sidecars never decide), and what is missing around it.

    Missing: a sidecar its record lists as written, a record kept whole only in a sidecar that does
    not read, or (when `hasher` can fill them) hashes it recorded as pending.
    """
    text = src.found.record_json
    try:
        if text is None and src.found.xmp is not None:
            text = xmp.parse(src.found.xmp).get("Record")
        if text is None:
            return None
        data = src.budget.json(text, "the embedded provenance record")
    except ReadError as err:
        if notes is not None:
            notes.append(f"old provenance data that does not read was ignored ({err})")
        return None
    refs = data.get("$refs") if isinstance(data, dict) else None
    needs_sidecar = isinstance(refs, dict) and any(
        k == "*" or (isinstance(v, str) and v.startswith("sidecar:")) for k, v in refs.items()
    )
    try:
        record = from_record(src)
    except ReadError as err:
        if notes is not None:
            notes.append(f"old provenance data that does not read was ignored ({err})")
        return None
    if record is None:
        return None
    stamp = Stamp(record=record)
    for placement in record.provenance.embedding:
        listed = placement.status == "written" and placement.target.startswith("sidecar_")
        path = sidecar.path_for(src.path, placement.location) if listed else None
        if path is not None and not path.is_file():
            stamp.missing.append(f"{path.name} is missing")
    if needs_sidecar:
        try:
            whole = src.sidecar_record()
        except ReadError:
            whole = None
        if whole is None:
            stamp.record = None
            stamp.missing.append("the record kept whole in its JSON sidecar does not read")
    if hasher is not None and any(m.other.get("hash_pending") for m in record.models):
        stamp.missing.append("model hashes still pending")
    return stamp


def _dest_stamp(dest: Path, hasher: Hasher | None) -> Stamp | None:
    try:
        return stamp_of(Source(path=dest, found=extract(dest)), hasher)
    except ReadError:
        return None


def _comfy_chunks(found: Embedded) -> list[tuple[str, str]]:
    """ComfyUI's text as found, prompt first (core's order); none without a prompt. Credentials
    anywhere in it are scrubbed, as the save path does, which re-dumps that JSON."""
    comfy = found.comfy
    if "prompt" not in comfy:
        return []
    chunks = [("prompt", comfy["prompt"])] + [(k, v) for k, v in comfy.items() if k != "prompt"]
    if not any(name in SECRET_KEYS or any(f'"{key}"' in text for key in SECRET_KEYS) for name, text in chunks):
        return chunks
    budget = Budget()
    graphs = {name: budget.graph(text, f"the ComfyUI {name}") for name, text in chunks}
    prompt = graphs.pop("prompt")
    context = SaveContext(prompt=prompt if isinstance(prompt, dict) else None, extra_pnginfo=graphs).scrubbed()
    return context.chunks or []

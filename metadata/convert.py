"""Retro-stamp files ComfyUI core wrote: the full metadata added, the pixels copied untouched.

A file's ComfyUI graph is read and parsed exactly as `read()` imports it; the save path's own
planning (`save.prepare`) decides what goes where; the format's `restamp` rewrites the container
around the untouched image data into a temporary file that replaces the destination only once it
is complete and reads back. ComfyUI's prompt/workflow text is carried over byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import logging
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .capture import SECRET_KEYS, SaveContext
from .errors import MetadataError, ReadError
from .formats import sidecar
from .formats.base import COMFYUI, DEFAULT_TARGETS, EXTENSIONS, GRAPH_KEYS, Embedded, by_name, sniffers
from .read import Source, extract, from_comfyui, from_record, from_sidecar_json, from_sidecar_xmp
from .record import Image, Record, utc_now
from .save import Hasher, SaveOptions, hash_record, prepare, write_sidecars

logger = logging.getLogger(__name__)

CONVERTED, SKIPPED, FAILED = "converted", "skipped", "failed"
ALPHA_NOTE = "has alpha: sd-prompt-reader ignores EXIF on a WEBP with alpha (kept: pixels are not re-encoded)"
# Our own: a file carrying one of these (or a sidecar) is already stamped.
STAMP_READERS: tuple[Callable[[Source], Record | None], ...] = (from_record, from_sidecar_json, from_sidecar_xmp)


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


def convert_file(
    source: Path,
    dest: Path | None = None,
    targets: Iterable[str] = DEFAULT_TARGETS,
    *,
    force: bool = False,
    version: str | None = None,
    hasher: Hasher | None = None,
) -> Outcome:
    """Stamp `source` into `dest` (default: in place). ComfyUI's own data is always kept, whatever `targets` say."""
    dest = source if dest is None else dest
    try:
        return _convert(source, dest, frozenset(targets) | {COMFYUI}, force=force, version=version, hasher=hasher)
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
    source: Path, dest: Path, targets: frozenset[str], *, force: bool, version: str | None, hasher: Hasher | None
) -> Outcome:
    try:
        found = extract(source)
    except ReadError:
        if source.suffix.lower() not in EXTENSIONS and not _sniffs(source):
            return Outcome(source, SKIPPED, "unsupported: not a PNG, JPEG or WEBP file")
        raise
    src = Source(path=source, found=found)
    notes: list[str] = []
    if not force:
        if _stamped(src, notes):
            return Outcome(source, SKIPPED, "already stamped: it carries a provenance record")
        if dest != source and dest.exists():
            what = "already converted" if _dest_stamped(dest) else "the destination exists"
            return Outcome(source, SKIPPED, f"{what}: {dest} (--force overwrites it)")
    chunks = _comfy_chunks(found)
    if not chunks:
        extra = " (A1111 parameters only)" if found.infotext else ""
        return Outcome(source, SKIPPED, f"no ComfyUI metadata{extra}")
    found.comfy = dict(chunks)
    record = from_comfyui(src)
    if record is None:  # _comfy_chunks found a prompt, so from_comfyui cannot miss it
        raise ReadError("no ComfyUI prompt graph")
    fmt = by_name(found.format)
    record.provenance.created = utc_now()
    record.provenance.generator.version = version
    record.image = Image(format=fmt.name, width=found.width, height=found.height, filename=dest.name)
    if hasher is not None:
        hash_record(record, hasher)
    if found.alpha:
        notes.append(ALPHA_NOTE)
        record.warn(ALPHA_NOTE)
    payloads, plan = prepare(record, chunks, fmt, targets)
    options = SaveOptions(format=fmt.name, targets=targets)

    def restamp(out: BinaryIO) -> None:
        with source.open("rb") as fp:
            fmt.restamp(fp, payloads, plan, options, out)

    dest.parent.mkdir(parents=True, exist_ok=True)
    written = write_sidecars(dest, record, payloads, plan)
    notes.extend(f"{p.location} not written: {p.reason}" for p in plan.placements if p.status == "failed")
    try:
        sidecar.replace_with(dest, restamp, mode=stat.S_IMODE(source.stat().st_mode), check=extract, durable=True)
    except BaseException:
        for path in written:  # a failed convert leaves no trace, sidecars included
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return Outcome(source, CONVERTED, dest=dest, record=record, notes=notes, sidecars=written)


def _sniffs(path: Path) -> bool:
    with contextlib.suppress(OSError), path.open("rb") as fp:
        head = fp.read(16)
        return any(f.sniff(head) for f in sniffers())
    return False


def _stamped(src: Source, notes: list[str]) -> bool:
    """Whether the file carries our record (embedded or in a sidecar); an unreadable one is replaced."""
    for reader in STAMP_READERS:
        try:
            if reader(src) is not None:
                return True
        except ReadError as err:
            notes.append(f"old provenance data that does not read was ignored ({err})")
    return False


def _dest_stamped(dest: Path) -> bool:
    try:
        return _stamped(Source(path=dest, found=extract(dest)), [])
    except ReadError:
        return False


def _comfy_chunks(found: Embedded) -> list[tuple[str, str]]:
    """ComfyUI's text as found, prompt first (core's order); none without a prompt. Credentials
    anywhere in it are scrubbed, as the save path does, which re-dumps that JSON."""
    comfy = found.comfy
    if "prompt" not in comfy:
        return []
    chunks = [("prompt", comfy["prompt"])] + [(k, v) for k, v in comfy.items() if k != "prompt"]
    if not any(name in SECRET_KEYS or any(f'"{key}"' in text for key in SECRET_KEYS) for name, text in chunks):
        return chunks
    try:
        graphs = {name: json.loads(text) for name, text in chunks}
    except ValueError as err:
        raise ReadError(f"the ComfyUI {'/'.join(GRAPH_KEYS)} text is not valid JSON: {err}") from err
    prompt = graphs.pop("prompt")
    context = SaveContext(prompt=prompt if isinstance(prompt, dict) else None, extra_pnginfo=graphs).scrubbed()
    return context.chunks or []

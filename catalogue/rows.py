"""A file and its record as catalogue rows: the file, its generation, models, LoRAs and provenance."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from ..metadata.budget import open_regular
from ..metadata.files import IMAGE_SUFFIXES
from ..metadata.record import Record

AUDIO_SUFFIXES = (".flac", ".mp3", ".opus", ".ogg")
# Extensions a model name is typed with or without: `epiNoiseoffset_v2` is `loras/epiNoiseoffset_v2.safetensors`.
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
HEX_LENGTHS = {10: "autov2", 12: "autov3", 64: "sha256"}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
CHUNK = 1 << 20


@dataclass(frozen=True)
class FileRow:
    """What the file system says about one file: where it is, its size, time and content digest."""

    path: str
    folder: str
    size: int
    mtime: float
    digest: str
    kind: str  # image, video or audio


@dataclass(frozen=True)
class ModelRow:
    role: str
    name: str
    norm: str
    sha256: str | None = None
    autov2: str | None = None
    autov3: str | None = None
    strength_model: float | None = None
    strength_clip: float | None = None


@dataclass
class RecordRows:
    """What the record says: the generation, the models (LoRAs among them), provenance and the record itself."""

    format: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    prompt: str | None = None
    negative: str | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    passes: str = "[]"  # JSON text: made where the file is read, so a worker hands over one string
    models: list[ModelRow] = field(default_factory=list)
    capture_mode: str | None = None
    created: str | None = None
    comfyui_version: str | None = None
    pack_version: str | None = None
    prompt_id: str | None = None
    record: str = "{}"  # the whole record as JSON text


def media_kind(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return "audio" if suffix in AUDIO_SUFFIXES else "video"


def digest_of(path: str | Path) -> str:
    """The SHA-256 of the file's bytes (a regular file only: a FIFO or device is never opened)."""
    sha = hashlib.sha256()
    with open_regular(Path(path)) as fp:
        for block in iter(lambda: fp.read(CHUNK), b""):
            sha.update(block)
    return sha.hexdigest()


def absolute(path: str | Path) -> str:
    """The path the catalogue keys a file by: absolute and normalised, symbolic links kept as named."""
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def file_row(path: str | Path, digest: str | None = None) -> FileRow:
    name = absolute(path)
    info = os.stat(name)
    return FileRow(
        path=name,
        folder=os.path.dirname(name),
        size=info.st_size,
        mtime=info.st_mtime,
        digest=digest if digest is not None else digest_of(name),
        kind=media_kind(name),
    )


def normalized(name: str) -> str:
    """A model name as users type it: no folder, no model extension, lower case."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    lower = base.lower()
    for suffix in MODEL_SUFFIXES:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return lower[: -len(suffix)]
    return lower


def hash_kind(text: str) -> str | None:
    """autov2, autov3 or sha256 for a hex string of 10, 12 or 64 digits; None for anything else."""
    kind = HEX_LENGTHS.get(len(text))
    return kind if kind is not None and _HEX.match(text) else None


def _hex(value: Any, length: int) -> str | None:
    return value.lower() if isinstance(value, str) and len(value) == length and _HEX.match(value) else None


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return kind(value)
    except (OverflowError, ValueError):
        return None


def seed_to_db(value: Any) -> int | None:
    """A seed as SQL's signed 64-bit integer: ComfyUI's run 0..2**64 - 1, so the upper half wraps below zero.

    Anything else (A1111's -1, a hostile record's 2**100) is no seed a file was made with: None.
    """
    number: int | None = _number(value, int)
    if number is None or not 0 <= number < 2**64:
        return None
    return number - 2**64 if number >= 2**63 else number


def seed_from_db(value: int | None) -> int | None:
    return value + 2**64 if value is not None and value < 0 else value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def model_rows(record: Record) -> list[ModelRow]:
    out = []
    for model in record.models:
        if not isinstance(model.name, str) or not model.name:
            continue
        hashes = model.hashes if isinstance(model.hashes, dict) else {}
        sha256 = _hex(hashes.get("sha256"), 64)
        out.append(
            ModelRow(
                role=str(model.role),
                name=model.name,
                norm=normalized(model.name),
                sha256=sha256,
                autov2=_hex(hashes.get("autov2"), 10) or (sha256[:10] if sha256 else None),
                autov3=_hex(hashes.get("autov3"), 12),
                strength_model=_number(model.strength_model, float),
                strength_clip=_number(model.strength_clip, float),
            )
        )
    return out


def record_rows(record: Record) -> RecordRows:
    gen, image, prov = record.generation, record.image, record.provenance
    return RecordRows(
        format=_text(image.format),
        width=_number(image.width, int) or _number(gen.width, int),
        height=_number(image.height, int) or _number(gen.height, int),
        frames=_number(gen.frames, int),
        prompt=_text(gen.positive),
        negative=_text(gen.negative),
        seed=seed_to_db(gen.seed),
        steps=_number(gen.steps, int),
        cfg=_number(gen.cfg, float),
        sampler=_text(gen.sampler),
        scheduler=_text(gen.scheduler),
        passes=json_text([p.to_dict() for p in record.passes]),
        models=model_rows(record),
        capture_mode=_text(prov.capture_mode),
        created=_text(prov.created),
        comfyui_version=_text(prov.comfyui_version),
        pack_version=_text(prov.generator.version),
        prompt_id=_text(prov.prompt_id),
        record=json_text(record.to_dict()),
    )


def json_text(value: Any) -> str:
    """Compact JSON as the catalogue stores it (non-ASCII kept as is)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse_time(text: str) -> datetime | None:
    """An ISO date or date-time (`Z` or an offset; none means UTC) as an aware datetime, or None."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def stamp(when: datetime) -> str:
    """The catalogue's time format: `YYYY-MM-DDTHH:MM:SSZ`, UTC, so times compare as text."""
    return when.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def made(rows: RecordRows, mtime: float) -> str:
    """When the file was made: the record's time, else the file's modification time."""
    when = parse_time(rows.created) if rows.created else None
    return stamp(when or datetime.fromtimestamp(mtime, timezone.utc))

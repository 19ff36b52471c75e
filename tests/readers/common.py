"""What every reader adapter shares: the normalized reading, availability, field extraction."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

from . import infotext

FIELDS = ("prompt", "negative_prompt", "seed", "steps", "cfg", "sampler", "scheduler", "model", "width", "height")
MODEL_EXTS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
# Our XMP namespace (a public contract: a rename must show up here).
NS_CPROV = "https://github.com/comfyui-provenance/ns/1.0/"
# Local names of our XMP properties -> normalized fields.
XMP_FIELDS = {
    "Negative": "negative_prompt",
    "Seed": "seed",
    "Steps": "steps",
    "CFGScale": "cfg",
    "Sampler": "sampler",
    "Scheduler": "scheduler",
    "Checkpoint": "model",
    "Width": "width",
    "Height": "height",
}

# Where a reading came from, which decides how a value is spelled (A1111 label or ComfyUI name).
INFOTEXT = "infotext"  # A1111 text, parsed by tests.readers.infotext
XMP = "xmp"  # our XMP properties and dc:description
GRAPH = "graph"  # ComfyUI's API prompt, walked by tests.readers.graph
NATIVE = "native"  # the reader's own parser (sd-prompt-reader, sd-parsers)


@dataclass
class Reading:
    """One reader's view of one file: normalized fields (None when absent), raw tags, source."""

    reader: str
    source: str | None = None
    fields: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(FIELDS))
    raw: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    @property
    def found(self) -> bool:
        return self.source is not None


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose reader is missing; in CI (PROVENANCE_REQUIRE_READERS=1) that is a failure."""
    if os.environ.get("PROVENANCE_REQUIRE_READERS") == "1":
        pytest.fail(f"{reason} (PROVENANCE_REQUIRE_READERS=1 requires every external reader)")
    pytest.skip(reason)


def stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    for ext in MODEL_EXTS:
        if base.lower().endswith(ext):
            return base[: -len(ext)]
    return base


def _number(value: Any, kind: type) -> Any:
    try:
        number = float(str(value).strip())
    except ValueError:
        return str(value).strip()
    return int(number) if kind is int else number


def normalize(fields: dict[str, Any]) -> dict[str, Any]:
    """Strings stripped ("" is absent), numbers typed, model names reduced to the file stem."""
    out: dict[str, Any] = dict.fromkeys(FIELDS)
    for key in FIELDS:
        value = fields.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key in ("seed", "steps", "width", "height"):
            out[key] = _number(value, int)
        elif key == "cfg":
            out[key] = _number(value, float)
        elif key == "model":
            out[key] = stem(str(value))
        else:
            out[key] = str(value).replace("\r\n", "\n").strip()
    return out


def from_texts(
    reader: str, raw: dict[str, Any], infotext_candidates: list[Any], xmp_props: dict[str, Any] | None = None
) -> Reading:
    """A reading from the first candidate that parses as A1111 infotext, else from our XMP fields."""
    for text in infotext_candidates:
        parsed = infotext.parse(text) if isinstance(text, str) else None
        if parsed is not None:
            return Reading(reader, INFOTEXT, normalize(infotext.fields(parsed)), raw)
    if xmp_props:
        fields = {name: xmp_props.get(prop) for prop, name in XMP_FIELDS.items()}
        fields["prompt"] = xmp_props.get("description") or xmp_props.get("Positive")
        if any(v is not None for v in fields.values()):
            return Reading(reader, XMP, normalize(fields), raw)
    return Reading(reader, None, raw=raw)


def decode_user_comment(value: Any) -> str | None:
    """EXIF UserComment bytes as the A1111 ecosystem decodes them (UNICODE = UTF-16BE, no BOM)."""
    if not isinstance(value, (bytes, bytearray)) or len(value) < 8:
        return None
    prefix, body = bytes(value[:8]), bytes(value[8:])
    if prefix == b"UNICODE\x00":
        return body.decode("utf-16-be", errors="replace")
    if prefix == b"ASCII\x00\x00\x00":
        return body.decode("ascii", errors="replace").rstrip("\x00")
    return body.decode("utf-8", errors="replace").rstrip("\x00")

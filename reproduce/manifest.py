"""Run manifests (V2): the snapshot that regenerates a batch, one entry per image; checked, written, read back.

{"snapshot": {version "2.0", timestamp, runtime_info {comfyui_version, pack_version, models},
resolved_template, generation_params {mode, seed_mode, base_seed, num_images, total_combinations},
api_params, variations}, "images": [{filename, subfolder, seed, prompt, negative,
applied_variations, record_digest, api_prompt}]}. A manifest is always replaced whole
(metadata/files.py), so a reader sees the old one or the new one, never a torn file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema

from ..metadata import files
from ..metadata.budget import Budget
from ..metadata.errors import MetadataError, ReadError
from ..metadata.limits import READ_JSON_MAX
from ..metadata.manifest_log import record_digest
from ..metadata.record import Record, utc_now

logger = logging.getLogger(__name__)

VERSION = "2.0"
FILE_NAME = "manifest.json"

_TEXT = {"type": ["string", "null"]}
_INT = {"type": ["integer", "null"]}
_OBJECT = {"type": ["object", "null"]}
_MODEL = {
    "type": "object",
    "required": ["role", "name", "hashes"],
    "properties": {"role": {"type": "string"}, "name": {"type": "string"}, "hashes": {"type": "object"}},
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["snapshot", "images"],
    "properties": {
        "snapshot": {
            "type": "object",
            "required": [
                "version",
                "timestamp",
                "runtime_info",
                "resolved_template",
                "generation_params",
                "api_params",
                "variations",
            ],
            "properties": {
                "version": {"const": VERSION},
                "timestamp": {"type": "string"},
                "runtime_info": {
                    "type": "object",
                    "required": ["comfyui_version", "pack_version", "models"],
                    "properties": {
                        "comfyui_version": _TEXT,
                        "pack_version": _TEXT,
                        "models": {"type": "array", "items": _MODEL},
                    },
                },
                "resolved_template": _OBJECT,
                "generation_params": {
                    "type": "object",
                    "required": ["mode", "seed_mode", "base_seed", "num_images", "total_combinations"],
                    "properties": {
                        "mode": {"enum": ["combinatorial", "random", None]},
                        "seed_mode": {"enum": ["fixed", "progressive", "random", None]},
                        "base_seed": _INT,
                        "num_images": _INT,
                        "total_combinations": _INT,
                    },
                },
                "api_params": _OBJECT,
                "variations": {"type": ["object", "null"], "additionalProperties": {"type": "array"}},
            },
        },
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "filename",
                    "subfolder",
                    "seed",
                    "prompt",
                    "negative",
                    "applied_variations",
                    "record_digest",
                    "api_prompt",
                ],
                "properties": {
                    "filename": {"type": "string", "minLength": 1},
                    "subfolder": {"type": "string"},
                    "seed": _INT,
                    "prompt": _TEXT,
                    "negative": _TEXT,
                    "applied_variations": {"type": "object", "additionalProperties": {"type": "string"}},
                    "record_digest": {"type": ["string", "null"], "pattern": "^sha256:[0-9a-f]{64}$"},
                    "api_prompt": _OBJECT,
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class ManifestError(MetadataError):
    """Not a V2 run manifest, or not a valid one; the message says where."""


def snapshot(
    *,
    runtime_info: dict[str, Any],
    resolved_template: dict[str, Any] | None,
    generation_params: dict[str, Any],
    api_params: dict[str, Any] | None,
    variations: dict[str, list[str]] | None,
) -> dict[str, Any]:
    return {
        "version": VERSION,
        "timestamp": utc_now(),
        "runtime_info": runtime_info,
        "resolved_template": resolved_template,
        "generation_params": generation_params,
        "api_params": api_params,
        "variations": variations,
    }


def runtime_info(comfyui_version: str | None, pack_version: str | None, records: list[Record]) -> dict[str, Any]:
    """Versions, and every model the records name (first seen first), with the hashes they carry."""
    models: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        for model in record.models:
            entry = models.setdefault((model.role, model.name), {"role": model.role, "name": model.name, "hashes": {}})
            entry["hashes"] = entry["hashes"] or dict(model.hashes)
    return {"comfyui_version": comfyui_version, "pack_version": pack_version, "models": list(models.values())}


def generation_params(
    mode: str | None, seed_mode: str | None, base_seed: int | None, num_images: int | None, total: int | None
) -> dict[str, Any]:
    return {
        "mode": mode,
        "seed_mode": seed_mode,
        "base_seed": base_seed,
        "num_images": num_images,
        "total_combinations": total,
    }


def image_entry(
    filename: str,
    subfolder: str,
    record: Record | None,
    *,
    api_prompt: dict[str, Any] | None,
    applied: dict[str, str] | None = None,
    planned: tuple[int | None, str | None, str | None] = (None, None, None),
    digest: str | None = None,
) -> dict[str, Any]:
    """One image: seed, prompt and negative from the saved file's record where it has them, else as `planned`."""
    gen = record.generation if record is not None else None
    seed, prompt, negative = planned
    return {
        "filename": filename,
        "subfolder": subfolder,
        "seed": gen.seed if gen is not None and gen.seed is not None else seed,
        "prompt": gen.positive if gen is not None and gen.positive is not None else prompt,
        "negative": gen.negative if gen is not None and gen.negative is not None else negative,
        "applied_variations": dict(applied or {}),
        "record_digest": digest or (record_digest(record) if record is not None else None),
        "api_prompt": api_prompt,
    }


def shape(data: Any) -> dict[str, Any]:
    """`data` as a run manifest's two parts, a snapshot object and a list of images; the rest unchecked."""
    if not isinstance(data, dict) or not isinstance(data.get("snapshot"), dict) or "images" not in data:
        raise ManifestError("not a run manifest (expected a JSON object with a snapshot and images)")
    if not isinstance(data["images"], list):
        raise ManifestError("the manifest's images is not a list")
    return data


def check(data: Any) -> dict[str, Any]:
    """`data` as a V2 manifest; ManifestError naming the first place that is wrong."""
    manifest = shape(data)
    version = manifest["snapshot"].get("version")
    if version != VERSION:
        raise ManifestError(f"a run manifest of version {version!r}; this provenance reads version {VERSION}")
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(manifest))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the manifest"
        raise ManifestError(f"invalid run manifest at {where}: {' '.join(error.message.split())[:200]}")
    return manifest


def write(path: Path, manifest: dict[str, Any]) -> None:
    """Replace `path` with `manifest`, atomically: a crash leaves the old manifest or the new one."""
    check(manifest)
    text = json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    files.write_atomic(path, text.encode("utf-8"))


def read(path: Path, *, schema: bool = True) -> dict[str, Any]:
    """A manifest read within the readers' limits; ReadError/ManifestError in one line that does not name it.

    `schema=False` checks only its shape: `diff` and `reproduce` read any field defensively, so a manifest
    written by hand or by another version still serves them."""
    budget = Budget(metadata_max=READ_JSON_MAX)
    raw = budget.read_file(path, "the manifest")
    if raw is None:
        raise ReadError("cannot open: no such file or directory")
    data = budget.json(raw.removeprefix(b"\xef\xbb\xbf"), "the manifest")
    return check(data) if schema else shape(data)


def split_entry(spec: str) -> tuple[Path, int] | None:
    """(manifest, index) for `MANIFEST.json#3` (0-based, as in its images[]); None for anything else, a file
    whose exact name holds a `#` included: one that exists is always that file."""
    head, sep, tail = spec.rpartition("#")
    if not sep or not (tail.isascii() and tail.isdigit()) or Path(spec).exists():
        return None
    return Path(head), int(tail)


def entry_file(folder: Path, item: Mapping[str, Any]) -> Path | None:
    """<folder>/<subfolder>/<filename> when that file exists; a name that climbs out of the folder (`..`, an
    absolute path, a link that leads outside) is not followed."""
    name, subfolder = item.get("filename"), item.get("subfolder") or ""
    if not isinstance(name, str) or not name or not isinstance(subfolder, str):
        return None
    relative = PurePosixPath(subfolder.replace("\\", "/"), name.replace("\\", "/"))
    candidate = folder / relative
    try:
        inside = not relative.is_absolute() and ".." not in relative.parts
        inside = inside and folder.resolve() in candidate.resolve().parents
        if not inside:
            logger.debug("provenance: the manifest names %s, outside its folder: not read", relative)
            return None
        return candidate if candidate.is_file() else None
    except (OSError, RuntimeError, ValueError):  # a name too long, a loop of links, a NUL: no file to read
        return None

"""Sidecars beside the image: <image>.json (record), <image>.xmp (XMP), <image>.txt (infotext),
<image>.runtime.json (the record's runtime block, when it is over its inline budget).

Named after the full image file name (`x.png.json`, the darktable/digiKam convention), so two
images never share a sidecar; they are written through metadata/files.py, never in place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..budget import Budget, BudgetExceeded
from ..errors import ReadError
from ..limits import READ_SIDECAR_MAX
from ..record import Record
from ..shape import record_from_data

SUFFIXES = {"sidecar:json": ".json", "sidecar:xmp": ".xmp", "sidecar:txt": ".txt", "sidecar:runtime": ".runtime.json"}


def path_for(image: Path, kind: str) -> Path:
    return image.with_name(image.name + SUFFIXES[kind])


def record_bytes(record: Record) -> bytes:
    """The record as JSON, one top-level key per line: readable, and written by the C encoder."""
    return json_bytes(record.to_dict())


def json_bytes(data: dict[str, Any]) -> bytes:
    """A JSON object, one top-level key per line."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, allow_nan=False)}" for k, v in data.items()]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


def read_bytes(image: Path, kind: str, budget: Budget | None = None) -> bytes | None:
    """A sidecar's bytes (a regular file, read within the budget), or None when there is none."""
    return _read_capped(path_for(image, kind), budget)


def _read_capped(path: Path, budget: Budget | None) -> bytes | None:
    budget = budget or Budget()
    room = min(READ_SIDECAR_MAX, budget.metadata_max - budget.metadata)
    # A sidecar's own cap applies on top of the file's: a sub-budget that charges the file's.
    capped = Budget(metadata_max=room)
    try:
        data = capped.read_file(path)
    except BudgetExceeded as err:
        raise BudgetExceeded(f"{path.name} is over the {room:,}-byte read limit (refused)") from err
    if data is not None:
        budget.load(len(data), path.name)
    return data


def read_record(image: Path, budget: Budget | None = None) -> Record | None:
    """The JSON sidecar's record, or None when there is none; ReadError naming the field when it is malformed."""
    budget = budget or Budget()
    name = path_for(image, "sidecar:json").name
    data = read_bytes(image, "sidecar:json", budget)
    if data is None:
        return None
    return record_from_data(budget.json(data, name), name)


def read_runtime(image: Path, ref: str, budget: Budget | None = None) -> dict[str, Any] | None:
    """The runtime block a record points to (`ref`, a file name beside the image), or None when it is missing.

    A `ref` that is not a bare `*.runtime.json` file name is never followed; the image's own runtime
    sidecar is tried instead, as it is when the image was renamed together with its sidecars.
    """
    budget = budget or Budget()
    bare = ref == Path(ref).name and ref.endswith(SUFFIXES["sidecar:runtime"])
    paths = [image.with_name(ref)] if bare else []
    paths.append(path_for(image, "sidecar:runtime"))
    for path in dict.fromkeys(paths):
        data = _read_capped(path, budget)
        if data is None:
            continue
        block = budget.json(data, path.name)
        if not isinstance(block, dict):
            raise ReadError(f"{path.name} is not a JSON object")
        return block
    return None

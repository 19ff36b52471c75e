"""Sidecars beside the image: <image>.json (record), <image>.xmp (XMP), <image>.txt (infotext),
<image>.runtime.json (the record's runtime block, when it is over its inline budget).

Named after the full image file name (`x.png.json`, the darktable/digiKam convention), so two
images never share a sidecar; every write goes to a temporary file that is renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ReadError
from ..limits import READ_SIDECAR_MAX
from ..record import Record

SUFFIXES = {"sidecar:json": ".json", "sidecar:xmp": ".xmp", "sidecar:txt": ".txt", "sidecar:runtime": ".runtime.json"}


def path_for(image: Path, kind: str) -> Path:
    return image.with_name(image.name + SUFFIXES[kind])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Files get the permissions a plain open() would give them, not mkstemp's private 0600.
FILE_MODE = 0o666 & ~_umask()


def replace_with(
    path: Path,
    write: Callable[[BinaryIO], Any],
    *,
    mode: int | None = None,
    check: Callable[[Path], Any] | None = None,
    durable: bool = False,
) -> None:
    """Let `write` fill a temporary file beside `path`, then rename it over `path` (atomic).

    `check` sees the finished temporary file and may refuse it by raising; `durable` flushes it
    to disk before the rename, so a crash leaves the old file or the new one, never a torn one.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE if mode is None else mode)
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, data: bytes) -> None:
    replace_with(path, lambda handle: handle.write(data))


def record_bytes(record: Record) -> bytes:
    """The record as JSON, one top-level key per line: readable, and written by the C encoder."""
    return json_bytes(record.to_dict())


def json_bytes(data: dict[str, Any]) -> bytes:
    """A JSON object, one top-level key per line."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, allow_nan=False)}" for k, v in data.items()]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


def read_bytes(image: Path, kind: str) -> bytes | None:
    """A sidecar's bytes (size-capped), or None when there is none."""
    return _read_capped(path_for(image, kind))


def _read_capped(path: Path) -> bytes | None:
    try:
        size = path.stat().st_size
        if size > READ_SIDECAR_MAX:
            raise ReadError(f"{path.name} is {size:,} bytes, over the {READ_SIDECAR_MAX:,}-byte read limit")
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ReadError(f"{path.name}: cannot read: {err.strerror or err}") from err


def read_record(image: Path) -> Record | None:
    """The JSON sidecar's record, or None when there is none."""
    data = read_bytes(image, "sidecar:json")
    if data is None:
        return None
    try:
        return Record.from_json(data)
    except ValueError as err:
        raise ReadError(f"{image.name}.json is not a provenance record: {err}") from err


def read_runtime(image: Path, ref: str) -> dict[str, Any] | None:
    """The runtime block a record points to (`ref`, a file name beside the image), or None when it is missing.

    A `ref` that is not a bare `*.runtime.json` file name is never followed; the image's own runtime
    sidecar is tried instead, as it is when the image was renamed together with its sidecars.
    """
    bare = ref == Path(ref).name and ref.endswith(SUFFIXES["sidecar:runtime"])
    paths = [image.with_name(ref)] if bare else []
    paths.append(path_for(image, "sidecar:runtime"))
    for path in dict.fromkeys(paths):
        data = _read_capped(path)
        if data is None:
            continue
        try:
            block = json.loads(data)
        except ValueError as err:
            raise ReadError(f"{path.name} is not valid JSON: {err}") from err
        if not isinstance(block, dict):
            raise ReadError(f"{path.name} is not a JSON object")
        return block
    return None

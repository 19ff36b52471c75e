"""manifest.jsonl: one line per saved file, appended under a lock by every save that names the `manifest` target.

Each line is {"filename", "subfolder", "record_digest", "saved_at", "record"}, written with one
`os.write` on an O_APPEND descriptor while the file itself is locked (fcntl.flock on POSIX,
msvcrt.locking on Windows), so concurrent savers, threads or processes, never interleave lines.
A writer killed mid-line leaves a torn last line: the next writer starts on a fresh line, and
the reader skips the torn one with a warning. The digest is the same one batch manifests give
(`record_digest`), so a line and a manifest entry of the same file agree.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .formats import sidecar
from .formats.base import MANIFEST
from .record import Record, utc_now

if TYPE_CHECKING:
    from .save import SavedFile

logger = logging.getLogger(__name__)

NAME = "manifest.jsonl"
# A record bigger than this is not copied into the line: the line points at the file holding it.
INLINE_RECORD_MAX = 1 << 20
# The reader's cap on one line: a line past it is not ours (records over the cap are pointers).
READ_LINE_MAX = 4 * INLINE_RECORD_MAX


def record_digest(record: Record) -> str:
    """`sha256:<hex>` of the record's canonical JSON (Record.to_json()), as read() returns it from the file."""
    return "sha256:" + hashlib.sha256(record.to_json().encode("ascii")).hexdigest()


def note(saved: SavedFile, targets: frozenset[str]) -> None:
    """Append `saved`'s line when the save asked for the manifest; a failure is a warning, never a failed save."""
    if MANIFEST not in targets or saved.record is None:
        return
    try:
        append(saved.path.parent, entry_for(saved))
    except Exception as err:  # the file is saved; the manifest is a log of it, not a condition for it
        logger.warning("provenance: could not add %s to %s: %s", saved.path.name, NAME, err)


def entry_for(saved: SavedFile) -> dict[str, Any]:
    """The line of one saved file: its names, the record's digest and the record (or where it lives)."""
    record = saved.record
    assert record is not None
    stored = record.to_json()
    digest = record_digest(_as_read(record, saved)) if _spilled(record) else record_digest(record)
    body: Any = record.to_dict()
    if len(stored) > INLINE_RECORD_MAX:
        json_sidecar = sidecar.path_for(saved.path, "sidecar:json")
        body = {"$ref": json_sidecar.name if json_sidecar in saved.sidecars else saved.path.name}
    return {
        "filename": saved.path.name,
        "subfolder": saved.subfolder,
        "record_digest": digest,
        "saved_at": utc_now(),
        "record": body,
    }


def _spilled(record: Record) -> bool:
    return isinstance(record.runtime, dict) and "sidecar_ref" in record.runtime


def _as_read(record: Record, saved: SavedFile) -> Record:
    """The record with its spilled runtime block back in place, as read() gives it (for the digest)."""
    block = sidecar.read_runtime(saved.path, str(record.runtime["sidecar_ref"]))  # type: ignore[index]
    if block is None:
        return record
    restored = Record.from_dict(record.to_dict())
    restored.runtime = block
    return restored


def append(folder: Path, entry: dict[str, Any]) -> None:
    """One line at the end of `folder`/manifest.jsonl, whole, under the file's lock."""
    line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
    fd = os.open(folder / NAME, flags, 0o666)
    try:
        with _locked(fd):
            size = os.fstat(fd).st_size
            # A writer killed mid-line left no newline: start on a fresh line, so only its line is torn.
            if size and _last_byte(fd, size) != b"\n":
                line = b"\n" + line
            _write_all(fd, line)
    finally:
        os.close(fd)


def _last_byte(fd: int, size: int) -> bytes:
    os.lseek(fd, size - 1, os.SEEK_SET)  # O_APPEND still writes at the end, wherever this leaves it
    return os.read(fd, 1)


def _write_all(fd: int, data: bytes) -> None:
    # One write holds the whole line on a local disk; a short write (full disk, signal) continues under the lock.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    if os.name == "nt":
        import msvcrt

        # Byte 0 stands for the whole file (Windows locks ranges, and one past the end is allowed).
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@dataclass
class Log:
    """What one manifest.jsonl holds: its entries in order, and a warning per line it skipped."""

    path: Path
    entries: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_log(path: Path) -> Log:
    """Every whole line of a manifest.jsonl; a torn or foreign line is skipped with a warning."""
    log = Log(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            problem = _problem(raw)
            if problem is None:
                log.entries.append(json.loads(raw))
                continue
            log.warnings.append(f"{path.name} line {number}: {problem}: skipped")
            logger.warning("provenance: %s line %d: %s: skipped", path, number, problem)
    return log


def _problem(raw: bytes) -> str | None:
    """Why a line is not a manifest entry, or None when it is one."""
    if len(raw) > READ_LINE_MAX:
        return f"over the {READ_LINE_MAX:,}-byte line limit"
    torn = "torn (a save was interrupted mid-line)" if not raw.endswith(b"\n") else "not valid JSON"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return torn
    if not isinstance(data, dict) or not isinstance(data.get("filename"), str):
        return "not a manifest entry"
    if data["filename"] in ("", ".", "..") or any(c in data["filename"] for c in "/\\\0"):
        return "names no plain file"
    if not isinstance(data.get("record"), dict):
        return "has no record"
    return None

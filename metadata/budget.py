"""What one file may cost to read: bytes, inflation, counts and JSON depth, checked before allocating.

Every reader treats the file as hostile. One `Budget` per file (its sidecars included) is spent
by the container walkers, the EXIF parser, the text inflater and the JSON decoder; a file that
would go over any limit is a ReadError that says which limit, never an allocation, a hang or a
traceback. Files are opened only when they are regular files (a FIFO, a device or a folder is
refused without blocking), and read up to the budget, whatever their size claims.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ReadError
from .limits import (
    READ_CHUNKS_MAX,
    READ_EXIF_ENTRIES_MAX,
    READ_GRAPH_MAX,
    READ_INFLATE_TOTAL_MAX,
    READ_JSON_DEPTH_MAX,
    READ_JSON_MAX,
    READ_METADATA_MAX,
)

READ_BLOCK = 1 << 20
# Up to this recursion limit, the C JSON decoder's recursion guard stops a bomb long before the
# C stack (even a 512 KiB thread stack) runs out; past it, JSON nesting is measured first.
TRUSTED_RECURSION_LIMIT = 4000
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


class BudgetExceeded(ReadError):
    """A file asks for more than the read budget allows (a bomb, or a damaged length)."""


@dataclass
class Budget:
    """The limits for one file and what has been spent of them; every check comes before the work."""

    metadata_max: int = READ_METADATA_MAX
    inflate_max: int = READ_INFLATE_TOTAL_MAX
    chunks_max: int = READ_CHUNKS_MAX
    exif_entries_max: int = READ_EXIF_ENTRIES_MAX
    json_max: int = READ_JSON_MAX
    json_depth_max: int = READ_JSON_DEPTH_MAX
    metadata: int = 0
    inflated: int = 0
    chunks: int = 0
    exif_entries: int = 0

    def load(self, size: int, what: str) -> None:
        """About to hold `size` bytes of metadata (a chunk, a segment, a sidecar) in memory."""
        if size < 0 or self.metadata + size > self.metadata_max:
            raise BudgetExceeded(
                f"{what} ({size:,} bytes) would take the file's metadata past the {self.metadata_max:,}-byte read limit"
            )
        self.metadata += size

    def inflate_room(self) -> int:
        """How many more bytes this file's compressed text may inflate to."""
        return self.inflate_max - self.inflated

    def inflated_by(self, size: int) -> None:
        self.inflated += size

    def chunk(self, what: str) -> None:
        """One more chunk or segment walked."""
        self.chunks += 1
        if self.chunks > self.chunks_max:
            raise BudgetExceeded(f"more than {self.chunks_max:,} {what}s in one file (refused)")

    def exif_entry(self, count: int) -> None:
        """About to walk an EXIF directory of `count` entries."""
        self.exif_entries += count
        if self.exif_entries > self.exif_entries_max:
            raise BudgetExceeded(f"more than {self.exif_entries_max:,} EXIF entries in one file (refused)")

    def json(self, text: str | bytes, what: str) -> Any:
        """`text` decoded as JSON within the size and depth limits; ReadError (in words) otherwise."""
        return loads(text, what, max_size=self.json_max, max_depth=self.json_depth_max)

    def graph(self, text: str | bytes, what: str) -> Any:
        """A ComfyUI graph's JSON, refused unread past the graph size limit (decoding and parsing one
        costs several times its size)."""
        if len(text) > READ_GRAPH_MAX:
            raise BudgetExceeded(
                f"{what} is {len(text):,} bytes, over the {READ_GRAPH_MAX:,}-byte limit for graphs (not parsed)"
            )
        return self.json(text, what)

    def read_file(self, path: Path, what: str | None = None) -> bytes | None:
        """A whole regular file, or None when it does not exist; charged to this budget."""
        label = what or path.name
        try:
            handle = open_regular(path)
        except ReadError as err:
            if isinstance(err.__cause__, FileNotFoundError):
                return None
            raise ReadError(f"{label}: {err}") from err
        with handle:
            return self.read_all(handle, label)

    def read_all(self, handle: BinaryIO, what: str) -> bytes:
        """Everything left in `handle`, never more than the budget allows (whatever the size claims)."""
        parts: list[bytes] = []
        while True:
            room = self.metadata_max - self.metadata
            block = handle.read(min(READ_BLOCK, room + 1))
            if not block:
                return b"".join(parts)
            self.load(len(block), what)
            parts.append(block)


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading only if it is a regular file: a FIFO never blocks, a device is refused."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError as err:
        raise ReadError(f"cannot open: {_reason(err)}") from err
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "it is a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, pipe or socket)"
            raise ReadError(f"cannot open: {kind}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _reason(err: OSError) -> str:
    return (err.strerror or str(err)).lower()


# -- JSON -------------------------------------------------------------------------------------------
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_PAIR = re.compile(r"[\[{][\]}]")
_OPEN = re.compile(r"[\[{]")


def nesting(text: str, limit: int) -> int:
    """How deep arrays and objects nest in JSON text, exactly up to `limit` and at least `limit + 1` past
    it, measured without decoding: strings dropped, then the innermost bracket pairs removed once per
    level, each pass a C-speed regex. Unmatched openers (a `[[[[` bomb) count as levels too."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    levels = 0
    while brackets and levels <= limit:
        reduced = _PAIR.sub("", brackets)
        if len(reduced) == len(brackets):
            break
        brackets, levels = reduced, levels + 1
    return levels + len(_OPEN.findall(brackets))


def loads(text: str | bytes, what: str, *, max_size: int = READ_JSON_MAX, max_depth: int = READ_JSON_DEPTH_MAX) -> Any:
    """JSON decoded only when it is at most `max_size` bytes, and refused (not crashed on) when too deep.

    The C decoder guards its own recursion with Python's recursion limit, so a `[[[[…` bomb ends in
    a RecursionError there, turned into a ReadError. Where the host raised that limit so far that
    the guard no longer protects the C stack, the nesting is measured before decoding instead.
    """
    if len(text) > max_size:
        raise BudgetExceeded(f"{what} is {len(text):,} bytes of JSON, over the {max_size:,}-byte read limit")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ReadError(f"{what} is not UTF-8 text (byte {err.start:,})") from err
    if (
        sys.getrecursionlimit() > TRUSTED_RECURSION_LIMIT
        and text.count("[") + text.count("{") > max_depth
        and nesting(text, max_depth) > max_depth
    ):
        raise BudgetExceeded(f"{what} nests deeper than {max_depth} levels (refused)")
    try:
        return json.loads(text)
    except RecursionError as err:
        raise BudgetExceeded(f"{what} nests too deeply to decode (refused)") from err
    except ValueError as err:
        raise ReadError(f"{what} is not valid JSON ({_where(err)})") from err


def _where(err: ValueError) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"line {err.lineno}, column {err.colno}"
    return str(err)

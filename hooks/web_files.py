"""A file the browser names as ComfyUI's /view does ({filename, subfolder, type}), resolved safely.

The names come from a request, so they are hostile: an absolute path, a `..` segment, a NUL, a
backslash or a percent-encoded separator left over after aiohttp decoded the query (a double-encoded
`%252e%252e` arrives as `%2e%2e`) is refused before the file system is asked anything (400). What is
left is resolved with every link followed and must stay inside the chosen folder (403), be a regular
file (404: a FIFO, a device or a folder is never opened) and be at most the caller's limit (413).
ComfyUI's folders are given by the caller (web_routes asks compat): nothing here touches ComfyUI.
"""

from __future__ import annotations

import os
import re
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE_TYPES = ("output", "input", "temp")  # the order of compat.searchable_directories()
NAME_MAX_CHARS = 4096
# Separators, dots and NUL percent-encoded (%25 itself too: a triple encoding), still there after decoding.
_ENCODED = re.compile(r"%(2e|2f|5c|00|25)", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")


class FileRefused(Exception):
    """Why a named file is not answered: an HTTP status and one line for the browser."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class WebFile:
    """A resolved file: where it is, and how the browser names it."""

    path: Path
    filename: str
    subfolder: str
    type: str
    size: int
    mtime: float

    def as_json(self, kind: str) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "subfolder": self.subfolder,
            "type": self.type,
            "size": self.size,
            "kind": kind,
            "mtime": self.mtime,
        }

    def view(self) -> str:
        return view_url(self.filename, self.subfolder, self.type)

    def label(self) -> str:
        """ComfyUI's annotated name (`sub/name.png [output]`): what a diff calls this side."""
        name = f"{self.subfolder}/{self.filename}" if self.subfolder else self.filename
        return f"{name} [{self.type}]"


def view_url(filename: str, subfolder: str, kind: str) -> str:
    """ComfyUI's GET /view for the file (the browser prefixes its API base)."""
    return "/view?" + urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})


def check_name(value: str, what: str, *, folder: bool) -> None:
    """400 for anything in `value` that could leave the folder or mean something else once decoded again."""
    if len(value) > NAME_MAX_CHARS:
        raise FileRefused(400, f"{what} is longer than {NAME_MAX_CHARS} characters")
    if "\x00" in value:
        raise FileRefused(400, f"{what} contains a NUL character")
    if "\\" in value:
        raise FileRefused(400, f"{what} contains a backslash; separate folders with /")
    if _ENCODED.search(value):
        raise FileRefused(400, f"{what} contains a percent-encoded separator, dot or NUL")
    if value.startswith("/") or os.path.isabs(value) or _DRIVE.match(value):
        raise FileRefused(400, f"{what} must be relative to ComfyUI's folder, not an absolute path")
    if not folder and "/" in value:
        raise FileRefused(400, f"{what} must be a file name; name its folder in subfolder")
    if ".." in value.split("/"):
        raise FileRefused(400, f"{what} must not contain '..'")


def resolve(filename: str, subfolder: str, kind: str, folders: dict[str, Path], max_bytes: int) -> WebFile:
    """The regular file `folders[kind]/subfolder/filename`, links followed and kept inside; FileRefused otherwise."""
    if not filename:
        raise FileRefused(400, "filename is missing")
    if kind not in FILE_TYPES:
        raise FileRefused(400, f"type must be one of {', '.join(FILE_TYPES)}, got {kind[:40]!r}")
    check_name(filename, "filename", folder=False)
    check_name(subfolder, "subfolder", folder=True)
    if filename in (".", ".."):
        raise FileRefused(400, "filename must be a file name")
    root = os.path.realpath(folders[kind])
    real = os.path.realpath(os.path.join(root, subfolder, filename))
    if os.path.commonpath([root, real]) != root or real == root:
        raise FileRefused(403, f"the file is outside ComfyUI's {kind} folder")
    try:
        st = os.stat(real)  # stat, never open: a FIFO or a device is looked at, not touched
    except OSError:
        raise FileRefused(404, "no such file") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(404, "no such file (not a regular file)")
    if st.st_size > max_bytes:
        raise FileRefused(413, f"the file is {st.st_size:,} bytes, over the {max_bytes:,}-byte limit")
    return WebFile(Path(real), filename, subfolder.strip("/"), kind, st.st_size, st.st_mtime)


def where(path: str, folders: list[Path]) -> dict[str, str] | None:
    """{filename, subfolder, type} of an absolute path inside one of ComfyUI's folders (in FILE_TYPES order)."""
    for kind, folder in zip(FILE_TYPES, folders, strict=False):
        root = str(folder).rstrip(os.sep)
        if path.startswith(root + os.sep):
            relative = path[len(root) + 1 :].split(os.sep)
            return {"filename": relative[-1], "subfolder": "/".join(relative[:-1]), "type": kind}
    return None

"""What the CLI says when something goes wrong: one line, in words, never Python's own wording."""

from __future__ import annotations

import json
import logging
import sys

from ..metadata.errors import MetadataError

logger = logging.getLogger(__name__)


class CliError(Exception):
    """A failure the user can act on; main() prints it as one line and exits with `status`."""

    def __init__(self, message: str, *, path: object = None, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.status = status


# What in_words() describes in the user's terms; anything else is a bug, worth a traceback under -v.
FORESEEN = (CliError, json.JSONDecodeError, UnicodeDecodeError, OSError, MetadataError)


def json_words(err: json.JSONDecodeError) -> str:
    if not err.doc.strip():
        return "empty, not JSON"
    return f"not valid JSON (line {err.lineno}, column {err.colno})"


def in_words(err: BaseException) -> str:
    """A one-line description of `err` that a user can read without knowing Python."""
    if isinstance(err, CliError):
        return err.message
    if isinstance(err, json.JSONDecodeError):
        return json_words(err)
    if isinstance(err, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(err, OSError):
        what = err.strerror or str(err)
        return f"{what}: {err.filename}" if err.filename else what
    if isinstance(err, MetadataError):
        return str(err)  # the library's messages are written for users and never name the file
    # Not in FORESEEN: a bug. Name it, on one line, so a bug report can quote it.
    text = " ".join(str(err).split())
    return f"internal error ({type(err).__name__}: {text}); run with -v to see where"


def report(err: BaseException, path: object = None) -> None:
    """`err` as one line on stderr; the traceback of an unforeseen one only at debug level (-v)."""
    if not isinstance(err, FORESEEN):
        logger.debug("the traceback of the error below", exc_info=err)
    # A message about a file starts with the file (once: library messages never name it).
    where = path if path is not None else getattr(err, "path", None)
    print(f"{where}: {in_words(err)}" if where is not None else f"provenance: {in_words(err)}", file=sys.stderr)

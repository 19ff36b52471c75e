"""--object-info FILE and --server URL: node schemas from a ComfyUI's /object_info, for classes with no rule.

The file is a saved GET /object_info answer (or a snapshot `provenance rules snapshot` wrote); the
server is asked for it once: 10 s to connect and between reads, 60 s for the whole answer. Either
is read like every other input: hostile until proven otherwise, within the JSON read limits
(metadata/budget.py), and every failure is one line.
"""

from __future__ import annotations

import argparse
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..metadata.budget import Budget
from ..metadata.errors import ReadError
from ..metadata.limits import READ_JSON_MAX
from ..metadata.parser.schemas import SchemaSet, from_json, set_user_schemas
from .errors import CliError

TIMEOUT_S = 10.0  # to connect, and between two reads of the answer
TOTAL_S = 60.0  # for the whole answer: a server that drips bytes is given up on
WHAT = "the /object_info"


def add_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument(
        "--object-info",
        metavar="FILE",
        help="a saved /object_info answer of your ComfyUI: node schemas for classes no rule covers",
    )
    where.add_argument(
        "--server",
        metavar="URL",
        help="a running ComfyUI (http://127.0.0.1:8188) whose /object_info gives those schemas",
    )


def load(args: argparse.Namespace) -> SchemaSet | None:
    """The schemas --object-info or --server name, or None when neither is given."""
    if args.object_info:
        return from_file(args.object_info)
    if args.server:
        return from_server(args.server)
    return None


@contextmanager
def user_schemas(args: argparse.Namespace) -> Iterator[SchemaSet | None]:
    """The named schemas set process-wide for the parses inside (read and convert parse deep in the library)."""
    schemas = load(args)
    set_user_schemas(schemas)
    try:
        yield schemas
    finally:
        set_user_schemas(None)


def from_file(path: str) -> SchemaSet:
    try:
        raw = Budget(metadata_max=READ_JSON_MAX).read_file(Path(path), "the file")
    except ReadError as err:
        raise CliError(str(err).removeprefix("the file: "), path=path) from err
    if raw is None:
        raise CliError("cannot open: no such file or directory", path=path)
    return decoded(raw, path, "object_info")


def from_server(url: str) -> SchemaSet:
    base = server_url(url)
    return decoded(fetch(f"{base}/object_info", url), url, "server")


def server_url(url: str) -> str:
    """`url` without a trailing slash, http:// assumed; only http(s) is asked (never file:, ftp:)."""
    text = url.strip()
    if "://" not in text:
        text = f"http://{text}"
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError("--server: give the ComfyUI address as http://HOST:PORT", path=url, status=2)
    return text.rstrip("/")


def fetch(address: str, shown: str) -> bytes:
    """GET `address` within the time and size limits; a CliError naming the server otherwise."""
    request = urllib.request.Request(address, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return read_answer(response, address)
    except urllib.error.HTTPError as err:
        raise CliError(f"{address} answered HTTP {err.code} ({err.reason})", path=shown) from err
    except urllib.error.URLError as err:
        raise CliError(f"cannot reach {address}: {reason(err.reason)}", path=shown) from err
    except ReadError as err:
        raise CliError(str(err), path=shown) from err
    except (OSError, ValueError) as err:  # a timeout, a connection reset mid-answer, a malformed reply
        raise CliError(f"cannot read {address}: {reason(err)}", path=shown) from err


def read_answer(response: Any, address: str) -> bytes:
    """The body, never more than the JSON read limit, and never for longer than TOTAL_S."""
    budget = Budget(metadata_max=READ_JSON_MAX)
    deadline = time.monotonic() + TOTAL_S
    parts: list[bytes] = []
    while block := response.read1(1 << 20):
        budget.load(len(block), f"{WHAT} answer")
        parts.append(block)
        if time.monotonic() > deadline:
            raise ReadError(f"{address} did not finish answering within {TOTAL_S:g} s")
    return b"".join(parts)


def reason(err: Any) -> str:
    if isinstance(err, TimeoutError):
        return f"no answer within {TIMEOUT_S:g} s"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return " ".join(str(err).split()) or type(err).__name__


def decoded(raw: bytes, where: str, source: str) -> SchemaSet:
    """The schemas in an /object_info (or snapshot) document; refused when it holds none."""
    try:
        data = Budget().json(raw.removeprefix(b"\xef\xbb\xbf"), WHAT)
    except ReadError as err:
        raise CliError(str(err), path=where) from err
    if not isinstance(data, dict):
        raise CliError(f"{WHAT} is not a JSON object of node classes", path=where)
    schemas = from_json(data, source)
    if not schemas:
        raise CliError(f"{WHAT} describes no node class (is it ComfyUI's GET /object_info answer?)", path=where)
    return schemas

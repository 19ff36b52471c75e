"""A small blocking client for a ComfyUI server's HTTP API: /object_info, /prompt, /history, /view, /free."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8188"
HTTP_TIMEOUT_S = 30.0
MAX_JSON = 256 << 20  # /object_info of a big install is tens of MB; anything past this is not ComfyUI
MAX_VIEW = 1 << 30
POLL_S = 0.25


class ReproduceError(Exception):
    """Why a file cannot be reproduced, in one line for the user."""


class ServerError(ReproduceError):
    """The server could not be reached, or answered something ComfyUI would not."""


# (elapsed seconds, state: "queued", "running" or "done") while a prompt is awaited.
Progress = Callable[[float, str], None]


class Client:
    """One ComfyUI server; every call is bounded by `timeout` seconds."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = HTTP_TIMEOUT_S) -> None:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ReproduceError(f"{url!r} is not a server URL (http://host:port)")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.timeout = timeout

    # -- transport ---------------------------------------------------------------------------
    def request(
        self, path: str, query: Mapping[str, str] | None = None, body: Any = None, limit: int = MAX_JSON
    ) -> tuple[int, bytes]:
        """(HTTP status, body bytes); ServerError when there is no answer at all."""
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return resp.status, _bounded(resp, limit, url)
        except urllib.error.HTTPError as err:
            return err.code, _bounded(err, limit, url)
        except urllib.error.URLError as err:
            raise ServerError(f"cannot reach ComfyUI at {self.url}: {_reason(err.reason)}") from err
        except TimeoutError as err:
            raise ServerError(f"ComfyUI at {self.url} did not answer {path} within {self.timeout:g} s") from err
        except (OSError, ValueError) as err:  # reset mid-answer, malformed reply
            raise ServerError(f"ComfyUI at {self.url} broke off {path}: {_reason(err)}") from err

    def json(self, path: str, query: Mapping[str, str] | None = None, body: Any = None) -> tuple[int, Any]:
        status, raw = self.request(path, query, body)
        if not raw.strip():
            return status, None
        try:
            return status, json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            if status >= 400:
                return status, None  # a plain-text error page (aiohttp's "404: Not Found")
            raise ServerError(f"{self.url}{path} did not answer JSON: is this a ComfyUI server?") from None

    def get_ok(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        status, data = self.json(path, query)
        if status != 200:
            raise ServerError(f"{self.url}{path} answered HTTP {status}: is this a ComfyUI server?")
        return data

    # -- ComfyUI's routes --------------------------------------------------------------------
    def object_info(self) -> dict[str, Any]:
        data = self.get_ok("/object_info")
        if not isinstance(data, dict):
            raise ServerError(f"{self.url}/object_info is not a node list: is this a ComfyUI server?")
        return data

    def comfyui_version(self) -> str | None:
        data = self.get_ok("/system_stats")
        system = data.get("system") if isinstance(data, dict) else None
        version = system.get("comfyui_version") if isinstance(system, dict) else None
        return str(version) if version is not None else None

    def pack_status(self) -> dict[str, Any] | None:
        """GET /provenance/status; None when the server does not run this pack."""
        status, data = self.json("/provenance/status")
        return data if status == 200 and isinstance(data, dict) else None

    def model_hash(self, folder: str, name: str) -> tuple[int, dict[str, Any]]:
        status, data = self.json("/provenance/hash", {"folder": folder, "name": name})
        return status, data if isinstance(data, dict) else {}

    def free(self) -> None:
        """POST /free: the worker drops its caches (and models) before the next prompt, so it really runs."""
        status, _ = self.request("/free", body={"free_memory": True, "unload_models": True})
        if status != 200:
            raise ServerError(f"{self.url}/free answered HTTP {status}: the caches could not be cleared")

    def queue(self, prompt: Mapping[str, Any], prompt_id: str, extra_data: Mapping[str, Any]) -> dict[str, Any]:
        """POST /prompt; ReproduceError with ComfyUI's own reasons when it refuses the prompt."""
        body = {"prompt": wrapped(prompt), "prompt_id": prompt_id, "client_id": "provenance", "extra_data": extra_data}
        status, data = self.json("/prompt", body=body)
        if status == 200 and isinstance(data, dict) and "prompt_id" in data:
            return data
        raise ReproduceError(f"ComfyUI refused the prompt: {refusal(data) if isinstance(data, dict) else status}")

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        data = self.get_ok(f"/history/{urllib.parse.quote(prompt_id)}")
        entry = data.get(prompt_id) if isinstance(data, dict) else None
        return entry if isinstance(entry, dict) else None

    def wait(self, prompt_id: str, timeout: float, progress: Progress | None = None) -> dict[str, Any]:
        """The /history entry once the prompt finished (success or error)."""
        started = time.monotonic()
        while True:
            entry = self.history(prompt_id)
            elapsed = time.monotonic() - started
            status = entry.get("status") if entry else None
            if isinstance(status, dict) and status.get("completed") is not None:
                if progress:
                    progress(elapsed, "done")
                return entry  # type: ignore[return-value]
            if elapsed > timeout:
                raise ReproduceError(f"prompt {prompt_id} did not finish within {timeout:g} s; it may still be running")
            if progress:
                progress(elapsed, self.state(prompt_id))
            time.sleep(POLL_S)

    def state(self, prompt_id: str) -> str:
        status, data = self.json("/queue")
        if status != 200 or not isinstance(data, dict):
            return "waiting"
        if any(isinstance(i, list) and len(i) > 1 and i[1] == prompt_id for i in data.get("queue_running") or []):
            return "running"
        ahead = [i for i in data.get("queue_pending") or [] if isinstance(i, list) and len(i) > 1]
        return f"queued ({len(ahead) - 1} ahead)" if len(ahead) > 1 else "queued"

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        status, data = self.request(
            "/view", {"filename": filename, "subfolder": subfolder, "type": kind}, limit=MAX_VIEW
        )
        if status != 200:
            where = f"{subfolder}/{filename}" if subfolder else filename
            raise ServerError(f"{self.url}/view could not serve {where} (HTTP {status})")
        return data


def wrapped(prompt: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt as ComfyUI takes it back: a list input that is not a link becomes {"__value__": list}.

    ComfyUI's validation unwraps such values in place, so the prompt a file carries holds a
    multi-select's choice (`targets`) as a bare list, which /prompt would read as a broken link.
    """
    out: dict[str, Any] = {}
    for node_id, node in prompt.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            out[node_id] = node
            continue
        fixed = {
            name: {"__value__": value} if isinstance(value, list) and not _links(value, prompt) else value
            for name, value in inputs.items()
        }
        out[node_id] = {**node, "inputs": fixed}
    return out


def _links(value: list[Any], prompt: Mapping[str, Any]) -> bool:
    return len(value) == 2 and str(value[0]) in prompt and isinstance(value[1], int) and not isinstance(value[1], bool)


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one: answers and records are read defensively."""
    return value if isinstance(value, Mapping) else {}


def refusal(data: Mapping[str, Any]) -> str:
    """ComfyUI's 400 answer to /prompt in one line: the error and each node's reasons."""
    error = data.get("error")
    text = str(error.get("message") or error.get("type")) if isinstance(error, dict) else str(error)
    reasons = []
    nodes = data.get("node_errors")
    for node_id, entry in (nodes if isinstance(nodes, dict) else {}).items():
        for item in entry.get("errors") or [] if isinstance(entry, dict) else []:
            if isinstance(item, dict):
                reasons.append(f"node {node_id}: {item.get('message')}: {item.get('details')}")
    if isinstance(error, dict) and error.get("type") == "missing_node_type":
        reasons.append(str(error.get("details") or ""))
    return "; ".join([text, *filter(None, reasons)])


def _bounded(resp: Any, limit: int, url: str) -> bytes:
    data: bytes = resp.read(limit + 1)
    if len(data) > limit:
        raise ServerError(f"{url} answered more than {limit >> 20} MiB; not a ComfyUI answer")
    return data


def _reason(reason: Any) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    text = " ".join(str(reason).split()) or type(reason).__name__
    return text[:1].lower() + text[1:]

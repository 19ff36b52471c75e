"""ComfyUI as the service sees it: its public HTTP API, reached on loopback from inside its own process.

Going through `/prompt` rather than the queue object keeps ComfyUI's own validation, on-prompt
handlers and history exactly as for any client, on every ComfyUI version the pack supports:
`POST /prompt`, `GET /history/{id}`, `GET /object_info`, `POST /upload/image`, `GET /view`, and a
cancel that is `POST /api/jobs/{id}/cancel` where ComfyUI has it (0.33), else `/queue` delete and
`/interrupt`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp

from .errors import ApiError, bad_request, server_error

logger = logging.getLogger(__name__)

OBJECT_INFO_TTL_S = 60.0
POLL_FIRST_S, POLL_MAX_S = 0.05, 1.0
RESPONSE_MAX_BYTES = 512 << 20
UPLOAD_SUBFOLDER = "provenance-openai"


class ComfyClient:
    """An aiohttp client of one ComfyUI server; one session, opened on first use."""

    def __init__(self, base_url: str, *, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._object_info: tuple[float, dict[str, Any]] | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            async with self.session().request(method, self.base_url + path, **kwargs) as response:
                body = await _read_all(response)
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
            raise server_error(f"ComfyUI did not answer ({type(err).__name__})", code="backend_unavailable") from err
        try:
            return status, json.loads(body) if body.strip() else None
        except ValueError:
            return status, None

    async def object_info(self) -> dict[str, Any]:
        cached = self._object_info
        if cached is not None and time.monotonic() - cached[0] < OBJECT_INFO_TTL_S:
            return cached[1]
        status, data = await self._json("GET", "/object_info")
        if status != 200 or not isinstance(data, dict):
            raise server_error(f"ComfyUI's /object_info answered {status}", code="backend_error")
        self._object_info = (time.monotonic(), data)
        return data

    async def submit(self, prompt: Mapping[str, Any], extra_data: Mapping[str, Any]) -> str:
        """Queue `prompt` as any client does; a graph ComfyUI refuses is a 400 with its reason."""
        prompt_id = str(uuid.uuid4())
        body = {"prompt": prompt, "prompt_id": prompt_id, "extra_data": dict(extra_data)}
        status, data = await self._json("POST", "/prompt", json=body)
        if status == 200 and isinstance(data, dict):
            return str(data.get("prompt_id") or prompt_id)
        if status == 400 and isinstance(data, dict):
            raise bad_request(f"ComfyUI refused the workflow: {refusal(data)}", param="model", code="invalid_workflow")
        raise server_error(f"ComfyUI's /prompt answered {status}", code="backend_error")

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        status, data = await self._json("GET", f"/history/{prompt_id}")
        if status != 200 or not isinstance(data, dict):
            return None
        entry = data.get(prompt_id)
        return entry if isinstance(entry, dict) else None

    async def wait(self, prompt_id: str, deadline: float, alive: Any = None) -> dict[str, Any]:
        """The prompt's history entry once it finished; TimeoutError past `deadline` (monotonic), or
        ConnectionResetError when `alive()` says the client went away."""
        pause = POLL_FIRST_S
        while True:
            entry = await self.history(prompt_id)
            if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                return entry
            if alive is not None and not alive():
                raise ConnectionResetError("the client went away")
            if time.monotonic() >= deadline:
                raise TimeoutError(prompt_id)
            await asyncio.sleep(pause)
            pause = min(POLL_MAX_S, pause * 1.5)

    async def cancel(self, prompt_id: str) -> None:
        """Take the prompt off the queue, or interrupt it if it runs; never raises."""
        try:
            status, _ = await self._json("POST", f"/api/jobs/{prompt_id}/cancel")
            if status == 200:
                return
            await self._json("POST", "/queue", json={"delete": [prompt_id]})
            status, queue = await self._json("GET", "/queue")
            running = [
                row[1] for row in (queue or {}).get("queue_running", []) if isinstance(row, list) and len(row) > 1
            ]
            if prompt_id in running:
                await self._json("POST", "/interrupt", json={"prompt_id": prompt_id})
        except ApiError as err:
            logger.debug("provenance openai: cancelling %s failed: %s", prompt_id, err)

    async def upload(self, name: str, data: bytes) -> str:
        """An input image, as LoadImage names it (`provenance-openai/<name>`)."""
        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type="application/octet-stream")
        form.add_field("subfolder", UPLOAD_SUBFOLDER)
        form.add_field("type", "input")
        status, answer = await self._json("POST", "/upload/image", data=form)
        if status != 200 or not isinstance(answer, dict) or not answer.get("name"):
            raise server_error(f"ComfyUI's /upload/image answered {status}", code="backend_error")
        sub = answer.get("subfolder") or ""
        return f"{sub}/{answer['name']}" if sub else str(answer["name"])

    async def view(self, image: Mapping[str, Any]) -> bytes:
        params = {"filename": str(image.get("filename", "")), "subfolder": str(image.get("subfolder", ""))}
        params["type"] = str(image.get("type", "output"))
        try:
            async with self.session().get(self.base_url + "/view", params=params) as response:
                data = await _read_all(response)
                if response.status != 200:
                    raise server_error(f"ComfyUI's /view answered {response.status}", code="backend_error")
                return data
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
            raise server_error(f"ComfyUI did not answer ({type(err).__name__})", code="backend_unavailable") from err


async def _read_all(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, up to RESPONSE_MAX_BYTES (a 500 past it: ComfyUI never sends that much)."""
    chunks, total = [], 0
    async for chunk in response.content.iter_chunked(1 << 16):
        total += len(chunk)
        if total > RESPONSE_MAX_BYTES:
            raise server_error(f"ComfyUI's answer is over {RESPONSE_MAX_BYTES:,} bytes", code="backend_error")
        chunks.append(chunk)
    return b"".join(chunks)


def refusal(data: Mapping[str, Any]) -> str:
    """ComfyUI's 400 in one line: its error message, then the first node error."""
    found = data.get("error")
    error: Mapping[str, Any] = found if isinstance(found, dict) else {}
    parts = [str(error.get("message") or "invalid prompt")]
    for node_id, node in (data.get("node_errors") or {}).items():
        errors = node.get("errors") if isinstance(node, dict) else None
        if errors:
            first = errors[0]
            parts.append(f"node {node_id} ({node.get('class_type')}): {first.get('message')}: {first.get('details')}")
            break
    return "; ".join(parts)[:500]

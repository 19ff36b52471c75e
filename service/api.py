"""The handlers: auth, rate and queue limits, one prompt per request (or per image), answers in OpenAI's shapes.

Every request: the Bearer key is checked first (a request without a valid one gets 401 and touches
nothing), then its key's rate, then the body; the template is filled and queued through ComfyUI's own
/prompt; the handler waits for the history entry (`openai_timeout_s`), sending JSON whitespace every
`openai_keepalive_s` once the answer is slow so proxies keep the connection open; a client that goes
away, or a timeout, cancels its prompts. One log line per request: its id, key id, model, images,
status and time; never a key or a prompt.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..metadata import settings
from ..reproduce.check import combo_options, input_specs
from . import auth, requests, templates
from .backend import ComfyClient
from .errors import ApiError, bad_request, server_error

logger = logging.getLogger(__name__)

MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
OWNER = "comfyui-provenance"
SEED_MAX = 2**32 - 1
JSON_BODY_MAX = 1 << 20
CLIENT_ID = "provenance-openai"  # ComfyUI's websocket messages for these prompts go to nobody
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Late(Exception):
    """An error once the 200 and keep-alive whitespace went out: the stream it cut, and the error."""

    def __init__(self, error: ApiError, stream: web.StreamResponse) -> None:
        super().__init__(error.message)
        self.error, self.stream = error, stream


@dataclass
class Outcome:
    """What one request got: the images (ComfyUI's output refs), and the seeds they were made with."""

    images: list[dict[str, Any]] = field(default_factory=list)
    prompt_ids: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


class Service:
    """The API over one ComfyUI (its HTTP API at `comfy_url`)."""

    def __init__(self, comfy_url: str | Callable[[], str | None], *, user_dir: Path | None = None) -> None:
        self._url = comfy_url
        self._comfy: ComfyClient | None = None
        self.user_dir = user_dir
        self.in_flight = 0
        self.lock = asyncio.Lock()
        self.limiter = auth.RateLimiter(settings.current().openai_rate_per_min)
        self._templates: tuple[Any, dict[str, templates.Template]] | None = None
        self.durations: list[float] = []

    @property
    def comfy(self) -> ComfyClient:
        """The client of ComfyUI's own API, made on first use (in ComfyUI its port is known only once it listens)."""
        if self._comfy is None:
            url = self._url() if callable(self._url) else self._url
            if not url:
                raise server_error("ComfyUI's own address is not known yet.", code="backend_unavailable")
            self._comfy = ComfyClient(url)
        return self._comfy

    # -- configuration ----------------------------------------------------------------------------------------------
    def keys(self) -> auth.KeyRing:
        return auth.KeyRing(auth.digests(settings.current().openai_keys))

    def templates_dir(self) -> Path | None:
        folder = settings.current().openai_templates_dir
        if folder is None and self.user_dir is not None:
            folder = self.user_dir / "provenance" / "openai"
        return folder

    async def available(self) -> dict[str, templates.Template]:
        """Bundled templates whose model files ComfyUI has (or that the settings point at one it has), then
        the user's; reloaded when the user's folder or the settings change."""
        folder = self.templates_dir()
        current = settings.current()
        stamp = (folder, _folder_stamp(folder), tuple(sorted(current.openai_checkpoints.items())))
        if self._templates is not None and self._templates[0] == stamp:
            return self._templates[1]
        info = await self.comfy.object_info()
        found = {}
        for tid, template in templates.bundled().items():
            if self._model_present(template, info, current.openai_checkpoints):
                found[tid] = template
        if folder is not None:
            found.update(templates.load_folder(folder, source=str(folder), object_info=info))
        self._templates = (stamp, found)
        return found

    def _model_present(self, template: templates.Template, info: dict[str, Any], chosen: dict[str, str]) -> bool:
        for class_type, input_name, bundled_name in template.checkpoints():
            name = chosen.get(template.id) or chosen.get(template.family) or bundled_name
            options = combo_options(input_specs(info.get(class_type)).get(input_name))
            if name not in (options or []):
                return False
        return True

    # -- routes -----------------------------------------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/v1/models", self.guard(self.list_models)),
            ("GET", "/v1/models/{model}", self.guard(self.get_model)),
            ("POST", "/v1/images/generations", self.guard(self.generations)),
            ("POST", "/v1/images/edits", self.guard(self.edits)),
            ("POST", "/v1/chat/completions", self.guard(self.chat)),
        ]

    def guard(self, handler: Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]) -> Handler:
        """Auth, rate limit, the log line, and OpenAI's error shape for whatever goes wrong."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            started = time.monotonic()
            log: dict[str, Any] = {"id": "req_" + secrets.token_hex(8), "key": "-", "model": "-", "images": 0}
            status = 500
            try:
                log["key"] = self.keys().check(request.headers.get("Authorization"))
                self.limiter.per_minute = settings.current().openai_rate_per_min
                self.limiter.take(log["key"])
                response = await handler(request, log)
                status = response.status
                return response
            except ApiError as err:
                status = err.status
                log["error"] = err.code or err.type
                return error_response(err, log["id"])
            except _Late as late:  # the status went out before the error: the connection was cut
                status = late.error.status
                log["error"] = f"{late.error.code or late.error.type}, after the keep-alive began"
                return late.stream
            except (ConnectionResetError, asyncio.CancelledError):  # the client went away: its prompts were cancelled
                status = 499
                log["error"] = "client gone"
                raise
            except Exception as err:  # a bug: the client gets a 500 in OpenAI's shape, the log the traceback
                logger.exception("provenance openai: %s failed", log["id"])
                return error_response(server_error(f"Internal error ({type(err).__name__})."), log["id"])
            finally:
                logger.info(
                    "provenance openai: %s %s %s key=%s model=%s images=%s -> %s in %.2f s%s",
                    log["id"],
                    request.method,
                    request.path,
                    log["key"],
                    log["model"],
                    log["images"],
                    status,
                    time.monotonic() - started,
                    f" ({log['error']})" if log.get("error") else "",
                )

        return wrapped

    async def list_models(self, request: web.Request, log: dict[str, Any]) -> web.StreamResponse:
        found = await self.available()
        return web.json_response({"object": "list", "data": [_model(t) for t in found.values()]})

    async def get_model(self, request: web.Request, log: dict[str, Any]) -> web.StreamResponse:
        found = await self.available()
        log["model"] = _shown(request.match_info["model"])
        template = templates.require(found, request.match_info["model"], None)
        return web.json_response(_model(template))

    async def generations(self, request: web.Request, log: dict[str, Any]) -> web.StreamResponse:
        body = await _json_body(request)
        image_request = requests.generation(body)
        return await self._images(request, log, image_request)

    async def edits(self, request: web.Request, log: dict[str, Any]) -> web.StreamResponse:
        fields, files = await _multipart(request, int(settings.current().openai_max_upload_mb * (1 << 20)))
        image_request = requests.edit(fields, files)
        return await self._images(request, log, image_request)

    async def chat(self, request: web.Request, log: dict[str, Any]) -> web.StreamResponse:
        chat_request = requests.chat(await _json_body(request))
        assert chat_request.image is not None
        found = await self.available()
        log["model"] = _shown(chat_request.model)
        template = templates.require(found, chat_request.model, _default(found, "txt2img"))
        log["model"] = template.id

        async def answer() -> dict[str, Any]:
            outcome = await self._run(request, template, chat_request.image)  # type: ignore[arg-type]
            log["images"] = len(outcome.images)
            data = await self._data(request, chat_request.image, outcome)  # type: ignore[arg-type]
            lines = []
            for i, item in enumerate(data, 1):
                src = item.get("url") or f"data:{MIME[chat_request.image.output_format]};base64,{item['b64_json']}"  # type: ignore[union-attr]
                lines.append(f"![image {i}]({src})")
            return _completion(template.id, "\n\n".join(lines))

        if chat_request.stream:
            return await _sse(request, answer)
        return await self._respond(request, answer)

    async def _images(
        self, request: web.Request, log: dict[str, Any], image_request: requests.ImageRequest
    ) -> web.StreamResponse:
        found = await self.available()
        wanted = "inpaint" if image_request.mask else "img2img" if image_request.images else "txt2img"
        log["model"] = _shown(image_request.model)
        template = templates.require(found, image_request.model, _default(found, wanted))
        log["model"] = template.id

        async def answer() -> dict[str, Any]:
            outcome = await self._run(request, template, image_request)
            log["images"] = len(outcome.images)
            return {
                "created": int(time.time()),
                "data": await self._data(request, image_request, outcome),
                "background": "opaque",
                "output_format": image_request.output_format,
                "quality": image_request.quality,
                "size": image_request.size_text,
                "usage": _usage(),
            }

        return await self._respond(request, answer)

    # -- running ----------------------------------------------------------------------------------------------------
    async def _run(
        self, request: web.Request, template: templates.Template, image_request: requests.ImageRequest
    ) -> Outcome:
        current = settings.current()
        size = templates.check_size(template, image_request.size, current.openai_max_side)
        if not image_request.images and "image" in template.bindings:
            raise bad_request(f"Model '{template.id}' edits an image: call images.edit with an image.", param="model")
        if image_request.images and "image" not in template.bindings:
            raise bad_request(f"Model '{template.id}' does not edit images: it takes no 'image'.", param="image")
        if image_request.mask and "mask" not in template.bindings:
            raise bad_request(f"Model '{template.id}' takes no 'mask'.", param="mask")
        batched = "batch_size" in template.bindings
        prompts = 1 if batched else image_request.n
        await self._reserve(prompts, current.openai_queue_limit)
        outcome = Outcome()
        try:
            uploads = await self._uploads(image_request)
            seed = image_request.seed if image_request.seed is not None else random.randint(0, SEED_MAX)
            checkpoint = current.openai_checkpoints.get(template.id) or current.openai_checkpoints.get(template.family)
            for i in range(prompts):
                filled = templates.fill(
                    template,
                    image_request,
                    seed=seed + i,
                    batch=image_request.n if batched else 1,
                    size=size,
                    uploads=uploads,
                    checkpoint=checkpoint,
                    prefix=f"openai/{template.id}",
                )
                outcome.prompt_ids.append(await self.comfy.submit(filled.prompt, {"client_id": CLIENT_ID}))
                outcome.seeds.append(seed + i)
            deadline = time.monotonic() + current.openai_timeout_s
            for prompt_id in outcome.prompt_ids:
                entry = await self.comfy.wait(prompt_id, deadline, alive=lambda: _alive(request))
                outcome.images.extend(_images_of(entry, template.save_node, prompt_id))
        except TimeoutError as err:
            await self._cancel(outcome)
            raise ApiError(
                500,
                f"The image was not ready within {current.openai_timeout_s:g} s (openai_timeout_s); "
                "its prompt was cancelled.",
                type="server_error",
                code="timeout",
            ) from err
        except (ConnectionResetError, asyncio.CancelledError):
            await self._cancel(outcome)
            raise
        finally:
            await self._release(prompts)
        return outcome

    async def _reserve(self, prompts: int, limit: int) -> None:
        async with self.lock:
            if self.in_flight + prompts > limit:
                typical = sorted(self.durations)[len(self.durations) // 2] if self.durations else 10.0
                retry = max(1, math.ceil(typical))
                raise ApiError(
                    429,
                    f"The queue is full ({self.in_flight} of {limit} prompts waiting or running); retry later.",
                    type="requests",
                    code="queue_full",
                    retry_after=retry,
                )
            self.in_flight += prompts

    async def _release(self, prompts: int) -> None:
        async with self.lock:
            self.in_flight -= prompts

    async def _cancel(self, outcome: Outcome) -> None:
        for prompt_id in outcome.prompt_ids:
            await asyncio.shield(self.comfy.cancel(prompt_id))

    async def _uploads(self, image_request: requests.ImageRequest) -> dict[str, str]:
        uploads: dict[str, str] = {}
        if image_request.images:
            name, data = image_request.images[0]
            uploads["image"] = await self.comfy.upload(_upload_name(name, data), data)
        if image_request.mask is not None:
            name, data = image_request.mask
            uploads["mask"] = await self.comfy.upload(_upload_name(name, data), data)
        return uploads

    async def _data(
        self, request: web.Request, image_request: requests.ImageRequest, outcome: Outcome
    ) -> list[dict[str, Any]]:
        out = []
        for index, image in enumerate(outcome.images):
            item: dict[str, Any] = {"revised_prompt": None}
            if image_request.response_format == "url":
                item["url"] = _view_url(request, image)
            else:
                item["b64_json"] = base64.b64encode(await self.comfy.view(image)).decode("ascii")
            seed = outcome.seeds[min(index, len(outcome.seeds) - 1)] if outcome.seeds else None
            item["provenance"] = {
                "filename": image.get("filename"),
                "subfolder": image.get("subfolder"),
                "type": image.get("type", "output"),
                "prompt_id": image.get("prompt_id"),
                "seed": seed,
            }
            out.append(item)
        return out

    async def _respond(
        self, request: web.Request, answer: Callable[[], Awaitable[dict[str, Any]]]
    ) -> web.StreamResponse:
        """The JSON answer; when it is slow, the status and headers go first and whitespace keeps the line open."""
        keepalive = settings.current().openai_keepalive_s
        started = time.monotonic()
        stream: web.StreamResponse | None = None
        task = asyncio.ensure_future(answer())
        try:
            while True:
                timeout = keepalive if keepalive > 0 else None
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if done:
                    break
                if stream is None:
                    stream = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
                    await stream.prepare(request)
                await stream.write(b" ")
            try:
                body = task.result()
            except Exception as err:
                if stream is None:
                    raise
                late = err if isinstance(err, ApiError) else server_error(f"Internal error ({type(err).__name__}).")
                if not isinstance(err, ApiError):
                    logger.error("provenance openai: failed after the keep-alive began", exc_info=err)
                # The 200 went out already: write the error object, then cut the connection before the body
                # ends, so a client raises (a connection error) instead of reading a success without images.
                await stream.write(json.dumps(late.body()).encode())
                if request.transport is not None:
                    request.transport.close()
                raise _Late(late, stream) from err
            self.durations = [*self.durations, time.monotonic() - started][-50:]
            if stream is None:
                return web.json_response(body)
            await stream.write(json.dumps(body).encode())
            await stream.write_eof()
            return stream
        except (ConnectionResetError, asyncio.CancelledError):
            task.cancel()
            raise


def _shown(model: str | None) -> str:
    """A requested model id as the log line shows it: as given when it is an id, else `?` (no log injection)."""
    if model is None:
        return "-"
    return model if templates.ID.match(model) else "?"


def error_response(err: ApiError, request_id: str) -> web.Response:
    headers = {"x-request-id": request_id}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
    return web.json_response(err.body(), status=err.status, headers=headers)


def _alive(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


async def _json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > JSON_BODY_MAX:
        raise bad_request(f"The request body is over {JSON_BODY_MAX:,} bytes.", code="request_too_large")
    raw = await request.content.read(JSON_BODY_MAX + 1)
    if len(raw) > JSON_BODY_MAX:
        raise bad_request(f"The request body is over {JSON_BODY_MAX:,} bytes.", code="request_too_large")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request("We could not parse the JSON body of your request.", code="invalid_json") from None


async def _multipart(request: web.Request, limit: int) -> tuple[dict[str, str], dict[str, list[tuple[str, bytes]]]]:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"The upload is over {limit:,} bytes (openai_max_upload_mb).", code="request_too_large")
    if not request.content_type.startswith("multipart/"):
        raise bad_request("images.edit takes multipart/form-data.", code="invalid_content_type")
    fields: dict[str, str] = {}
    files: dict[str, list[tuple[str, bytes]]] = {}
    total = 0
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            break
        name = getattr(part, "name", None) or ""
        chunks = []
        while chunk := await part.read_chunk(1 << 16):  # type: ignore[union-attr]
            total += len(chunk)
            if total > limit:
                raise ApiError(
                    413, f"The upload is over {limit:,} bytes (openai_max_upload_mb).", code="request_too_large"
                )
            chunks.append(chunk)
        data = b"".join(chunks)
        filename = getattr(part, "filename", None)
        if filename is not None or name in ("image", "image[]", "mask"):
            files.setdefault(name, []).append((filename or name, data))
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


def _upload_name(name: str, data: bytes) -> str:
    suffix = ".png" if data.startswith(b"\x89PNG") else ".jpg" if data.startswith(b"\xff\xd8") else ".webp"
    return f"{secrets.token_hex(8)}{suffix}"


def _view_url(request: web.Request, image: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    query = urlencode(
        {
            "filename": image.get("filename", ""),
            "subfolder": image.get("subfolder", ""),
            "type": image.get("type", "output"),
        }
    )
    return f"{request.scheme}://{request.host}/view?{query}"


def _images_of(entry: dict[str, Any], save_node: str, prompt_id: str) -> list[dict[str, Any]]:
    status = entry.get("status") or {}
    if status.get("status_str") != "success":
        message = "the workflow failed"
        for event, data in status.get("messages") or []:
            if event == "execution_error" and isinstance(data, dict):
                message = f"node {data.get('node_id')} ({data.get('node_type')}): {data.get('exception_message')}"
        raise server_error(
            f"ComfyUI could not make the image: {' '.join(str(message).split())[:400]}", code="workflow_failed"
        )
    images = ((entry.get("outputs") or {}).get(save_node) or {}).get("images") or []
    return [{**i, "prompt_id": prompt_id} for i in images if isinstance(i, dict)]


def _folder_stamp(folder: Path | None) -> tuple[Any, ...]:
    if folder is None or not folder.is_dir():
        return ()
    stats = ((p.name, p.stat()) for p in folder.glob("*.json"))
    return tuple(sorted((name, st.st_mtime_ns, st.st_size) for name, st in stats))


def _default(found: dict[str, templates.Template], kind: str) -> str | None:
    return next((t.id for t in found.values() if t.kind == kind), next(iter(found), None))


def _model(template: templates.Template) -> dict[str, Any]:
    return {"id": template.id, "object": "model", "created": template.created, "owned_by": OWNER}


def _usage() -> dict[str, Any]:
    return {
        "input_tokens": 0,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
        "output_tokens": 0,
        "total_tokens": 0,
    }


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


async def _sse(request: web.Request, answer: Callable[[], Awaitable[dict[str, Any]]]) -> web.StreamResponse:
    """stream=true: Server-Sent Events, a comment every keep-alive period, then the message as one chunk."""
    stream = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    keepalive = settings.current().openai_keepalive_s or 15.0
    task = asyncio.ensure_future(answer())
    await stream.prepare(request)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=keepalive)
            if done:
                break
            await stream.write(b": keep-alive\n\n")
        try:
            completion = task.result()
        except ApiError as err:
            await stream.write(f"data: {json.dumps(err.body())}\n\n".encode())
            await stream.write(b"data: [DONE]\n\n")
            return stream
        message = completion["choices"][0]["message"]
        base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
        first = base | {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": message["content"]}, "finish_reason": None}
            ]
        }
        last = base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        for chunk in (first, last):
            await stream.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await stream.write(b"data: [DONE]\n\n")
        await stream.write_eof()
        return stream
    except (ConnectionResetError, asyncio.CancelledError):
        task.cancel()
        raise

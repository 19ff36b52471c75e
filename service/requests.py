"""The requests the API takes, typed and validated as OpenAI validates them: one 400 naming the parameter.

OpenAI's fields (images.generate / images.edit / chat.completions.create, SDK 3.63) plus ours:
`negative_prompt`, `seed`, `steps`, `cfg` (and `strength` for edits: how far from the input image).
An unknown field is refused as OpenAI refuses it ("Unrecognized request argument supplied"), so a
typo never silently does nothing; chat requests, whose clients send many sampling fields, are lenient.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, bad_request

PROMPT_MAX_CHARS = 32_000
N_MAX = 10
SEED_MAX = 2**64 - 1
STEPS_MAX = 150
CFG_MAX = 30.0
SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
QUALITIES = ("auto", "low", "medium", "high", "standard", "hd", "xhigh", "max")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
RESPONSE_FORMATS = ("url", "b64_json")
# Accepted for compatibility and not used: what they ask is not something a diffusion graph does.
IGNORED = ("moderation", "style", "user", "safety_identifier", "partial_images", "input_fidelity")
COMMON = (
    "prompt",
    "model",
    "n",
    "size",
    "quality",
    "response_format",
    "output_format",
    "output_compression",
    "background",
    "stream",
    "negative_prompt",
    "seed",
    "steps",
    "cfg",
    *IGNORED,
)
EDIT_ONLY = ("image", "image[]", "mask", "strength")


@dataclass
class ImageRequest:
    """What a generation or an edit asks for, checked; None where the template's own value stays."""

    prompt: str
    model: str | None = None
    n: int = 1
    size: tuple[int, int] | None = None  # None: "auto", the template's size
    quality: str = "auto"
    response_format: str = "b64_json"
    output_format: str = "png"
    output_compression: int | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    strength: float | None = None
    # Edits: the uploaded images (name, bytes) and mask, in the order sent.
    images: list[tuple[str, bytes]] = field(default_factory=list)
    mask: tuple[str, bytes] | None = None

    @property
    def size_text(self) -> str:
        return f"{self.size[0]}x{self.size[1]}" if self.size else "auto"


def generation(body: Any) -> ImageRequest:
    """POST /v1/images/generations's JSON body."""
    if not isinstance(body, Mapping):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    unknown = [k for k in body if k not in COMMON]
    if unknown:
        raise bad_request(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0], code=None)
    return _image_request(body)


def edit(fields: Mapping[str, Any], files: Mapping[str, list[tuple[str, bytes]]]) -> ImageRequest:
    """POST /v1/images/edits's multipart form: text fields, and the files of `image`/`image[]` and `mask`."""
    unknown = [k for k in [*fields, *files] if k not in COMMON and k not in EDIT_ONLY]
    if unknown:
        raise bad_request(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0], code=None)
    request = _image_request({k: _form_value(k, v) for k, v in fields.items()})
    images = [*files.get("image", []), *files.get("image[]", [])]
    if not images:
        raise bad_request("Missing required parameter: 'image'.", param="image", code="missing_required_parameter")
    if len(images) > 16:
        raise bad_request("At most 16 images can be edited at once.", param="image")
    request.images = images
    masks = files.get("mask", [])
    if len(masks) > 1:
        raise bad_request("Only one mask can be given.", param="mask")
    request.mask = masks[0] if masks else None
    if "strength" in fields:
        request.strength = _number(fields["strength"], "strength", 0.0, 1.0)
    return request


def _form_value(name: str, value: Any) -> Any:
    """Multipart sends every field as text: numbers and booleans read back as JSON would have sent them."""
    if not isinstance(value, str) or name in ("prompt", "negative_prompt", "model", "size", "user"):
        return value
    text = value.strip()
    if name in ("n", "seed", "steps", "output_compression") and re.fullmatch(r"-?\d+", text):
        return int(text)
    if name == "cfg" and re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    if name == "stream" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


def _image_request(body: Mapping[str, Any]) -> ImageRequest:
    prompt = body.get("prompt")
    if prompt is None:
        raise bad_request("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request("Invalid 'prompt': a non-empty string is required.", param="prompt")
    if len(prompt) > PROMPT_MAX_CHARS:
        raise bad_request(f"Invalid 'prompt': longer than {PROMPT_MAX_CHARS} characters.", param="prompt")
    if body.get("stream"):
        raise bad_request("Streaming is not supported by this server.", param="stream", code="unsupported_value")
    background = body.get("background", "auto")
    if background not in ("auto", "opaque", "transparent", None):
        raise bad_request(f"Invalid 'background': {background!r}.", param="background")
    if background == "transparent":
        raise bad_request(
            "Transparent backgrounds are not supported by this model.", param="background", code="unsupported_value"
        )
    request = ImageRequest(prompt=prompt)
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise bad_request("Invalid 'model': a model id (string) is required.", param="model")
    request.model = model.strip() if isinstance(model, str) else None
    request.n = _integer(body.get("n", 1), "n", 1, N_MAX)
    request.size = _size(body.get("size", "auto"))
    request.quality = _choice(body.get("quality", "auto"), "quality", QUALITIES)
    request.response_format = _choice(body.get("response_format", "b64_json"), "response_format", RESPONSE_FORMATS)
    request.output_format = _choice(body.get("output_format", "png"), "output_format", OUTPUT_FORMATS)
    if body.get("output_compression") is not None:
        request.output_compression = _integer(body["output_compression"], "output_compression", 0, 100)
    negative = body.get("negative_prompt")
    if negative is not None and (not isinstance(negative, str) or len(negative) > PROMPT_MAX_CHARS):
        raise bad_request("Invalid 'negative_prompt': a string is required.", param="negative_prompt")
    request.negative_prompt = negative
    if body.get("seed") is not None:
        request.seed = _integer(body["seed"], "seed", 0, SEED_MAX)
    if body.get("steps") is not None:
        request.steps = _integer(body["steps"], "steps", 1, STEPS_MAX)
    if body.get("cfg") is not None:
        request.cfg = _number(body["cfg"], "cfg", 0.0, CFG_MAX)
    return request


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"Invalid type for '{name}': expected an integer, but got {_kind(value)}.", param=name)
    if not low <= value <= high:
        raise bad_request(f"Invalid '{name}': {value} is outside {low}..{high}.", param=name)
    return value


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"Invalid type for '{name}': expected a number, but got {_kind(value)}.", param=name)
    if not low <= value <= high:
        raise bad_request(f"Invalid '{name}': {value} is outside {low:g}..{high:g}.", param=name)
    return float(value)


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        listed = ", ".join(f"'{a}'" for a in allowed)
        raise bad_request(f"Invalid value for '{name}': {value!r}. Supported values are: {listed}.", param=name)
    return str(value)


def _size(value: Any) -> tuple[int, int] | None:
    if value in (None, "auto"):
        return None
    match = SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise bad_request(
            f"Invalid value for 'size': {value!r}. Give 'auto' or WIDTHxHEIGHT, such as '1024x1024'.", param="size"
        )
    return int(match[1]), int(match[2])


def _kind(value: Any) -> str:
    return {bool: "a boolean", str: "a string", float: "a number", int: "an integer"}.get(
        type(value), type(value).__name__
    )


@dataclass
class ChatRequest:
    """A chat completion asking for an image: the last user message's text is the prompt."""

    model: str | None
    prompt: str
    stream: bool = False
    image: ImageRequest | None = None


def chat(body: Any) -> ChatRequest:
    if not isinstance(body, Mapping):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    text = None
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            text = _message_text(message.get("content"))
            break
    if not text:
        raise bad_request("No user message with text to draw.", param="messages")
    extras = {
        k: body[k] for k in ("n", "size", "negative_prompt", "seed", "steps", "cfg", "output_format") if k in body
    }
    model = body.get("model")
    image = _image_request({"prompt": text, "model": model, **extras})
    fmt = body.get("image_response_format", "b64_json")
    image.response_format = _choice(fmt, "image_response_format", RESPONSE_FORMATS)
    return ChatRequest(model=image.model, prompt=text, stream=bool(body.get("stream")), image=image)


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content.strip() or None
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        joined = "\n".join(p for p in parts if isinstance(p, str)).strip()
        return joined or None
    return None


__all__ = ["ApiError", "ChatRequest", "ImageRequest", "chat", "edit", "generation"]

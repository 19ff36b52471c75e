"""Turn the values a node received or produced into small JSON values: scalars kept, the rest summarized."""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_STRING = 8192  # characters; a longer string becomes {"type": "str", "length": n}
MAX_LIST = 64  # items; a longer list becomes {"type": "list", "shape": [n]}
MAX_INPUTS = 128  # inputs kept per node

# Inputs ComfyUI fills itself (hidden) or that carry credentials: never captured, whatever the node.
HIDDEN_INPUTS = frozenset(
    {"prompt", "extra_pnginfo", "unique_id", "dynprompt", "auth_token_comfy_org", "api_key_comfy_org"}
)
_CREDENTIAL = re.compile(r"(^|_)(api_?key|auth_?token|access_?token|password|secret)($|_)", re.IGNORECASE)
# The extra_data keys ComfyUI treats as sensitive (execution.SENSITIVE_EXTRA_DATA_KEYS in 0.33).
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
_SALT = os.urandom(16)


@functools.lru_cache(maxsize=4096)  # input names repeat across nodes and prompts
def skipped_input(name: str) -> bool:
    return name in HIDDEN_INPUTS or _CREDENTIAL.search(name) is not None


def secret_digest(text: str) -> tuple[int, bytes]:
    """(length, keyed digest): lets a value be recognised as a secret without keeping the secret."""
    return len(text), hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=_SALT, digest_size=16).digest()


def secrets_of(extra_data: Any) -> frozenset[tuple[int, bytes]]:
    if not isinstance(extra_data, Mapping):
        return frozenset()
    return frozenset(
        secret_digest(extra_data[k]) for k in SENSITIVE_EXTRA_DATA_KEYS if isinstance(extra_data.get(k), str)
    )


class Summarizer:
    """summarize(value) → a JSON value; counts the characters it kept against a budget."""

    __slots__ = ("_secret_lengths", "budget", "over_budget", "secrets")

    def __init__(self, secrets: Iterable[tuple[int, bytes]] = (), budget: int = 1 << 20) -> None:
        self.secrets = frozenset(secrets)
        self._secret_lengths = frozenset(n for n, _ in self.secrets)
        self.budget = budget
        self.over_budget = False

    def is_secret(self, text: str) -> bool:
        return len(text) in self._secret_lengths and secret_digest(text) in self.secrets

    def summarize(self, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else {"type": "float", "repr": repr(float(value))}
        if isinstance(value, str):
            return self._string(value)
        shape = getattr(value, "shape", None)
        dtype = getattr(value, "dtype", None)
        if shape is not None and dtype is not None:
            if shape == () and type(value).__module__ == "numpy" and hasattr(value, "item"):
                return self.summarize(value.item())  # a numpy scalar
            try:
                dims = [int(d) for d in shape]
            except (TypeError, ValueError):
                dims = []
            return {"type": type(value).__name__, "shape": dims, "dtype": str(dtype)}
        if isinstance(value, (list, tuple)):
            if len(value) <= MAX_LIST and all(_plain(v) for v in value):
                return [self.summarize(v) for v in value]
            return {"type": type(value).__name__, "shape": [len(value)]}
        return {"type": type(value).__name__}

    def per_call(self, values: Any) -> Any:
        """An input_data_all entry or an output slot: a list of per-call values."""
        if isinstance(values, (list, tuple)) and len(values) == 1:
            return self.summarize(values[0])
        return self.summarize(values)

    def _string(self, text: str) -> Any:
        if self.is_secret(text):
            return {"type": "str", "redacted": True}
        if len(text) > MAX_STRING:
            return {"type": "str", "length": len(text)}
        if len(text) > self.budget:
            self.over_budget = True  # the session's memory budget, not this string, is the limit
            return {"type": "str", "length": len(text)}
        self.budget -= len(text)
        return str(text)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def is_scalar_capture(value: Any) -> bool:
    """A captured value that is a scalar or a list of scalars (not a summary dict)."""
    return not isinstance(value, dict)

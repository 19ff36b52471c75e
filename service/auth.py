"""API keys and rate limits: keys kept only as hashes, compared in constant time, limited per key.

A key is `sk-...` text the client sends as `Authorization: Bearer <key>`. The settings file holds
`sha256:<hex>` digests (`provenance openai key` prints one); PROVENANCE_OPENAI_KEYS may hold plain
keys, hashed as soon as they are read. A key's id in logs is the first 8 hex digits of its digest:
never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable

from .errors import ApiError, rate_limited, unauthorized

PREFIX = "sha256:"


def hash_key(key: str) -> str:
    return PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh API key (32 random bytes, URL-safe)."""
    return "sk-prov-" + secrets.token_urlsafe(32)


def digests(entries: Iterable[str]) -> tuple[str, ...]:
    """Settings entries as digests: `sha256:<hex>` kept, anything else is a plain key, hashed now."""
    out = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        if text.startswith(PREFIX) and len(text) == len(PREFIX) + 64:
            out.append(text.lower())
        else:
            out.append(hash_key(text))
    return tuple(dict.fromkeys(out))


class KeyRing:
    """Which digests may call; `check` answers the caller's key id or raises a 401 ApiError."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = tuple(allowed)

    def check(self, header: str | None) -> str:
        if not self.allowed:
            raise ApiError(401, "No API key is configured on this server (openai_keys).", code="invalid_api_key")
        scheme, _, key = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise unauthorized("You didn't provide an API key. Send it as `Authorization: Bearer <key>`.")
        given = hash_key(key.strip()).encode()
        match = None
        for digest in self.allowed:  # every digest compared, each in constant time
            if hmac.compare_digest(given, digest.encode()):
                match = digest
        if match is None:
            raise unauthorized()
        return match[len(PREFIX) : len(PREFIX) + 8]


class RateLimiter:
    """A token bucket per key: `per_minute` requests, refilled continuously; 429 with Retry-After beyond."""

    def __init__(self, per_minute: float, clock: object = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, key_id: str) -> None:
        if self.per_minute <= 0:
            return
        now = self.clock()  # type: ignore[operator]
        rate = self.per_minute / 60.0
        with self.lock:
            tokens, last = self.buckets.get(key_id, (self.per_minute, now))
            tokens = min(self.per_minute, tokens + (now - last) * rate)
            if tokens < 1:
                self.buckets[key_id] = (tokens, now)
                wait = (1 - tokens) / rate
                raise rate_limited(f"Rate limit reached: {self.per_minute:g} requests per minute for this key.", wait)
            self.buckets[key_id] = (tokens - 1, now)

"""Every setting as data: its type check, its PROVENANCE_* variable, and whether a run may override it."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MetadataError
from .formats.base import DEFAULT_TARGETS, TARGETS, parse_targets
from .limits import KIB, RUNTIME_INLINE_MAX

logger = logging.getLogger(__name__)

DEFAULT_TARGET_ORDER = tuple(t for t in TARGETS if t in DEFAULT_TARGETS)
# How long a save waits for hashes still being computed before it records them as pending.
DEFAULT_HASH_WAIT_S = 5.0
# One hashing thread: hashing is bound by the disk, and two readers thrash it.
DEFAULT_HASH_WORKERS = 1
DEFAULT_RUNTIME_INLINE_KB = RUNTIME_INLINE_MAX / KIB
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TRUE = frozenset({"1", "true", "on", "yes"})
FALSE = frozenset({"0", "false", "off", "no"})


class SettingsError(MetadataError, ValueError):
    """A setting the pack does not know, or a value it does not allow: one line naming the key and what it allows."""


Check = Callable[[str, Any], Any]
FromEnv = Callable[[str], Any]


@dataclass(frozen=True)
class Key:
    """One setting. `check` turns a JSON value (file, override) into the setting's value or raises
    SettingsError; `from_env` reads the variable the way the pack always has, ValueError if unusable."""

    name: str
    check: Check
    env: str | None = None
    from_env: FromEnv | None = None
    per_run: bool = True  # False: read once at process start, so an override could not take effect
    in_file: bool = True  # False: a test switch, taken from the environment only


# -- checks (file and overrides: strict) ------------------------------------------------------------------------------
def _fail(name: str, allowed: str, value: Any) -> SettingsError:
    return SettingsError(f"{name} must be {allowed}, got {value!r}")


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(name, "true or false", value)
    return value


def check_number(lowest: float) -> Check:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < lowest:
            raise _fail(name, f"a number >= {lowest:g}", value)
        return float(value)

    return check


def check_count(lowest: int) -> Check:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise _fail(name, f"a whole number >= {lowest}", value)
        return value

    return check


def check_targets(name: str, value: Any) -> tuple[str, ...]:
    """A list of targets (or a comma-separated string, as the V1 node takes them), in TARGETS order."""
    if not isinstance(value, str | list | tuple) or not all(isinstance(t, str) for t in value):
        raise _fail(name, f"a list of targets from {', '.join(TARGETS)}", value)
    try:
        chosen = parse_targets(value)
    except ValueError as err:
        raise SettingsError(f"{name}: {err}") from None
    return tuple(t for t in TARGETS if t in chosen)


def check_level(name: str, value: Any) -> str:
    level = value.strip().upper() if isinstance(value, str) else None
    if level is None or level not in ("", *LOG_LEVELS):
        raise _fail(name, f"one of {', '.join(LOG_LEVELS)} (or empty: ComfyUI's level)", value)
    return level


def check_folder(name: str, value: Any) -> Path | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str | Path):
        raise _fail(name, "a folder path (a string)", value)
    return Path(value).expanduser()


def check_file(name: str, value: Any) -> Path | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str | Path):
        raise _fail(name, "a file path (a string)", value)
    return Path(value).expanduser()


def check_names_map(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _fail(name, "an object of names to names (strings)", value)
    return {k.strip(): v.strip() for k, v in value.items() if k.strip() and v.strip()}


def check_url(name: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _fail(name, "a catalogue path or URL (a string)", value)
    return value.strip()


def check_names(name: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise _fail(name, "a list of names (or a comma-separated string)", value)
    return tuple(i.strip() for i in items if i.strip())


# -- the variables (lenient, as each was read before the settings layer existed) ---------------------------------------
def env_flag(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE or word in FALSE:
        return word in TRUE
    raise ValueError(f"not one of {'/'.join(sorted(TRUE))} or {'/'.join(sorted(FALSE))}")


def env_number(lowest: float, clamp: bool) -> FromEnv:
    """A number; below `lowest` it is clamped (the hash wait: -3 means no wait) or refused (a size)."""

    def read(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isnan(number) or (not clamp and (number < lowest or math.isinf(number))):
            raise ValueError(f"not a number >= {lowest:g}")
        return max(lowest, number)

    return read


def env_count(text: str) -> int:
    return int(env_number(1, clamp=True)(text))


def env_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"not one of {', '.join(LOG_LEVELS)}")
    return level


def env_folder(text: str) -> Path | None:
    return Path(text).expanduser()


def env_url(text: str) -> str | None:
    return text.strip()


def env_names(text: str) -> tuple[str, ...]:
    return check_names("", text)


def _seconds(lowest: float) -> FromEnv:
    return env_number(lowest, clamp=True)


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("targets", check_targets),
        Key("lora_tags", check_bool),
        Key("prefer_runtime", check_bool),
        Key("hash_wait_s", check_number(0), "PROVENANCE_HASH_WAIT_S", env_number(0, clamp=True)),
        Key("runtime_inline_kb", check_number(0), "PROVENANCE_RUNTIME_INLINE_KB", env_number(0, clamp=False)),
        Key("rules_dir", check_folder, "PROVENANCE_RULES_DIR", env_folder),
        Key("catalogue", check_bool),
        # Where the save nodes' background writer indexes (None: <user directory>/provenance/catalogue.sqlite).
        Key("catalogue_url", check_url, "PROVENANCE_CATALOGUE_URL", env_url, per_run=False),
        Key("hash_prefetch", check_bool, "PROVENANCE_HASH_PREFETCH", env_flag, per_run=False),
        Key("hash_workers", check_count(1), "PROVENANCE_HASH_WORKERS", env_count, per_run=False),
        Key("log_level", check_level, "PROVENANCE_LOG_LEVEL", env_level, per_run=False),
        # Content Credentials (metadata/credentials): the signer's PEM chain and key, the trust anchors
        # `verify` checks signers against, and an RFC 3161 time-stamp authority (none: no network at save).
        Key("c2pa_cert", check_file, "PROVENANCE_C2PA_CERT", env_folder),
        Key("c2pa_key", check_file, "PROVENANCE_C2PA_KEY", env_folder),
        Key("c2pa_trust", check_file, "PROVENANCE_C2PA_TRUST", env_folder),
        Key("c2pa_tsa_url", check_url, "PROVENANCE_C2PA_TSA_URL", env_url),
        # The OpenAI-compatible image API (service/): off unless switched on; its keys kept as sha256 digests.
        Key("openai", check_bool, "PROVENANCE_OPENAI", env_flag, per_run=False),
        Key("openai_keys", check_names, "PROVENANCE_OPENAI_KEYS", env_names, per_run=False),
        Key(
            "openai_timeout_s", check_number(1), "PROVENANCE_OPENAI_TIMEOUT_S", env_number(1, clamp=True), per_run=False
        ),
        Key(
            "openai_keepalive_s",
            check_number(0),
            "PROVENANCE_OPENAI_KEEPALIVE_S",
            env_number(0, clamp=True),
            per_run=False,
        ),
        Key("openai_queue_limit", check_count(1), "PROVENANCE_OPENAI_QUEUE_LIMIT", env_count, per_run=False),
        Key(
            "openai_rate_per_min",
            check_number(0),
            "PROVENANCE_OPENAI_RATE_PER_MIN",
            env_number(0, clamp=True),
            per_run=False,
        ),
        Key("openai_templates_dir", check_folder, "PROVENANCE_OPENAI_TEMPLATES_DIR", env_folder, per_run=False),
        Key("openai_max_upload_mb", check_number(1), per_run=False),
        Key("openai_max_side", check_count(64), per_run=False),
        Key("openai_checkpoints", check_names_map, per_run=False),
        Key("hooks", check_bool, "PROVENANCE_HOOKS", env_flag, per_run=False),
        Key("hooks_debug", check_bool, "PROVENANCE_HOOKS_DEBUG", env_flag, per_run=False, in_file=False),
        Key("hooks_fault", check_names, "PROVENANCE_HOOKS_FAULT", env_names, per_run=False, in_file=False),
    )
}
ENV_NAMES = tuple(k.env for k in KEYS.values() if k.env)


def env_name(key: str) -> str:
    """The variable that sets `key` (a permanent name: scripts and service files use it)."""
    name = KEYS[key].env
    assert name is not None, key
    return name


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings the PROVENANCE_* variables set; an empty one sets nothing, an unusable one is a warning."""
    values: dict[str, Any] = {}
    for key in KEYS.values():
        text = environ.get(key.env) if key.env else None
        if text is None or not text.strip() or key.from_env is None:
            continue
        try:
            values[key.name] = key.from_env(text)
        except ValueError as err:
            logger.warning("provenance: %s=%r ignored: %s", key.env, text, err)
    return values

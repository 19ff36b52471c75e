"""The pack's settings: built-in defaults ← the user's settings file ← the frontend's settings ← PROVENANCE_*
variables ← per-run overrides.

Everything reads them through `current()`. `override(**values)` changes what the code inside its
`with` block sees, and nothing else: the overlay lives in a ContextVar, so another thread, another
asyncio task or another prompt running at the same time keeps its own view, code in tasks and
`copy_context().run` threads started inside inherits it, and leaving the block (by an exception
too) restores the view before. The settings file is named once at process start (`set_file`: in
ComfyUI `<user directory>/provenance/settings.json`, from the CLI `--settings FILE`) and re-read
when it changes; the library itself never asks ComfyUI where it is. The frontend's settings are what the
browser stored through ComfyUI's /settings API (`set_frontend_file`: `<user directory>/default/
comfy.settings.json`, a flat object of setting id -> value): only the ids in FRONTEND_KEYS are read, each
only when present, and the file is treated as hostile (size cap, bad JSON ignored with one warning).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import settings_keys as keys
from .settings_keys import KEYS, SettingsError

__all__ = [
    "KEYS",
    "PER_RUN",
    "Settings",
    "SettingsError",
    "check_overrides",
    "current",
    "load",
    "overridden",
    "override",
    "parse_overrides",
    "read_file",
    "set_file",
    "set_frontend_file",
    "settings_file",
    "update_file",
]

logger = logging.getLogger(__name__)

FILE_NAME = "settings.json"
# The node's `options` input is typed into a text box: anything longer is not a settings object.
OPTIONS_MAX_CHARS = 64 * 1024
OPTIONS_EXAMPLE = '{"targets": ["a1111", "record"], "hash_wait_s": 0}'
PER_RUN = tuple(k.name for k in KEYS.values() if k.per_run)
# The frontend's setting ids (web/, stored in comfy.settings.json) the pack reads, and the setting each one sets.
FRONTEND_KEYS = {"Provenance.Catalogue.Enabled": "catalogue"}
FRONTEND_MAX_BYTES = 1 << 20  # comfy.settings.json holds every frontend setting; far past this it is not one


@dataclass(frozen=True)
class Settings:
    """One resolved view of every setting (see settings_keys.KEYS for each one's meaning and source)."""

    targets: tuple[str, ...] = keys.DEFAULT_TARGET_ORDER
    lora_tags: bool = True
    prefer_runtime: bool = True
    hash_wait_s: float = keys.DEFAULT_HASH_WAIT_S
    runtime_inline_kb: float = keys.DEFAULT_RUNTIME_INLINE_KB
    rules_dir: Path | None = None
    catalogue: bool = True  # the save nodes index what they write (catalogue.writer, off the save's path)
    catalogue_url: str | None = None
    hash_prefetch: bool = True
    hash_workers: int = keys.DEFAULT_HASH_WORKERS
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None
    c2pa_trust: Path | None = None
    c2pa_tsa_url: str | None = None
    openai: bool = False
    openai_keys: tuple[str, ...] = ()
    openai_timeout_s: float = 600.0
    openai_keepalive_s: float = 15.0
    openai_queue_limit: int = 16
    openai_rate_per_min: float = 60.0
    openai_templates_dir: Path | None = None
    openai_max_upload_mb: float = 32.0
    openai_max_side: int = 2048
    openai_checkpoints: dict[str, str] = dataclasses.field(default_factory=dict)
    log_level: str = ""  # "" leaves the pack's log level alone
    hooks: bool = False
    hooks_debug: bool = False
    hooks_fault: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what a settings file holding every key would say."""
        values = dataclasses.asdict(self)
        values["targets"] = list(self.targets)
        values["hooks_fault"] = list(self.hooks_fault)
        values["openai_keys"] = list(self.openai_keys)
        values["openai_checkpoints"] = dict(self.openai_checkpoints)
        for name in ("rules_dir", "c2pa_cert", "c2pa_key", "c2pa_trust", "openai_templates_dir"):
            path = getattr(self, name)
            values[name] = str(path) if path is not None else None
        return values


# The overlay of the overrides active in this context: immutable, replaced (never changed) by override().
_overlay: ContextVar[Mapping[str, Any]] = ContextVar("provenance_settings_overlay", default=MappingProxyType({}))


class _Process:
    """The settings file of this process: named once at start-up, never during a run."""

    file: Path | None = None
    frontend: Path | None = None


def set_file(path: str | Path | None) -> None:
    """Name this process's settings file (None: none); called at start-up (ComfyUI's pack load, the CLI)."""
    _Process.file = Path(path).expanduser() if path else None


def set_frontend_file(path: str | Path | None) -> None:
    """Name the frontend's settings file (ComfyUI's comfy.settings.json; None: none), at ComfyUI's pack load."""
    _Process.frontend = Path(path).expanduser() if path else None


def settings_file() -> Path | None:
    return _Process.file


def current() -> Settings:
    """The settings as the code running now sees them: the base layers with this context's overrides on top."""
    file, frontend = _Process.file, _Process.frontend
    env = tuple((name, os.environ.get(name)) for name in keys.ENV_NAMES)
    base = _base(file, _stamp(file), frontend, _stamp(frontend), env)
    overlay = _overlay.get()
    return dataclasses.replace(base, **overlay) if overlay else base


def overridden() -> frozenset[str]:
    """The keys an override active in this context sets (they win over a node's own inputs)."""
    return frozenset(_overlay.get())


@contextmanager
def override(**values: Any) -> Iterator[Settings]:
    """Inside the block, `current()` answers `values` on top of what it answered before; restored on exit.

    Only per-run keys (PER_RUN): the others are read once at process start. Raises SettingsError
    (a ValueError) naming the key and what it allows before anything changes.
    """
    checked = check_overrides(values)
    token = _overlay.set(MappingProxyType({**_overlay.get(), **checked}))
    try:
        yield current()
    finally:
        _overlay.reset(token)


def check_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` validated as per-run overrides; SettingsError for an unknown key, a process-start key or a bad value."""
    checked: dict[str, Any] = {}
    for name, value in values.items():
        key = KEYS.get(name)
        if key is None:
            raise SettingsError(f"unknown setting {name!r}; allowed: {', '.join(PER_RUN)}")
        if not key.per_run:
            raise SettingsError(f"{name} is read once at process start, not per run; allowed: {', '.join(PER_RUN)}")
        checked[name] = key.check(name, value)
    return checked


def parse_overrides(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """A save node's `options` input (a JSON object of per-run settings, or that object; empty: none), validated.

    SettingsError (a ValueError) naming what is wrong and the allowed keys, so the node fails with a
    clear message rather than saving with settings the user did not ask for.
    """
    allowed = f"allowed: {', '.join(PER_RUN)}"
    data: Any = text
    if isinstance(text, str):
        if len(text) > OPTIONS_MAX_CHARS:
            raise SettingsError(f"options is longer than {OPTIONS_MAX_CHARS:,} characters; {allowed}")
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as err:
            where = f"{err.msg} at line {err.lineno} column {err.colno}"
            raise SettingsError(
                f"options is not JSON ({where}); write an object such as {OPTIONS_EXAMPLE}; {allowed}"
            ) from err
        except (ValueError, RecursionError) as err:
            raise SettingsError(
                f"options is not JSON ({err}); write an object such as {OPTIONS_EXAMPLE}; {allowed}"
            ) from err
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SettingsError(f"options must be a JSON object such as {OPTIONS_EXAMPLE}; {allowed}")
    try:
        return check_overrides(data)
    except SettingsError as err:
        raise SettingsError(f"options: {err}") from None


# -- the base layers ---------------------------------------------------------------------------------------------------
def load(
    file: str | Path | None = None, environ: Mapping[str, str] | None = None, frontend: str | Path | None = None
) -> Settings:
    """Defaults ← `file` (when given and present) ← the frontend's settings file `frontend` (likewise) ← the
    PROVENANCE_* variables of `environ` (os.environ by default)."""
    values: dict[str, Any] = {}
    if file is not None:
        values.update(read_file(file))
    if frontend is not None:
        values.update(read_frontend_file(frontend))
    values.update(keys.from_environ(os.environ if environ is None else environ))
    return Settings(**values)


def update_file(path: str | Path, values: Mapping[str, Any], *, private: bool = False) -> None:
    """Set `values` in the settings file at `path` (created if missing), keeping every other key it holds.

    SettingsError when the file exists but is not a JSON object (nothing is written then). The new file
    replaces the old one atomically; `private` makes it readable by its owner only (it names keys).
    """
    from . import files

    path = Path(path)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            found = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError) as err:
            raise SettingsError(f"{path}: the settings file does not read ({err}); fix or remove it first") from err
        if not isinstance(found, dict):
            raise SettingsError(f"{path}: the settings file must hold a JSON object")
        data = found
    data.update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    mode = 0o600 if private else None
    files.replace_with(path, lambda handle: handle.write(text), mode=mode, durable=True)


def read_file(path: str | Path, strict: bool = False) -> dict[str, Any]:
    """The valid settings a JSON file holds. A missing file holds none; an unknown key is a warning.

    Lenient (the default, what ComfyUI's saves use): a damaged file, or a bad value, is a warning and
    the layers below apply (a typo never costs a save its metadata). Strict (`provenance --settings`):
    SettingsError, one line naming the file, the key and what it allows.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if strict:
            raise SettingsError(f"{path}: no such settings file") from None
        return {}
    except (OSError, UnicodeDecodeError) as err:
        return _damaged(path, f"cannot be read ({err})", strict)
    try:
        data = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as err:
        return _damaged(path, f"is not JSON ({err})", strict)
    if not isinstance(data, dict):
        return _damaged(path, f"must hold a JSON object, not {type(data).__name__}", strict)
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = KEYS.get(name)
        if key is None or not key.in_file:
            allowed = ", ".join(k.name for k in KEYS.values() if k.in_file)
            logger.warning("provenance: settings file %s: unknown setting %r ignored; allowed: %s", path, name, allowed)
            continue
        try:
            values[name] = key.check(name, value)
        except SettingsError as err:
            if strict:
                raise SettingsError(f"{path}: {err}") from None
            logger.warning("provenance: settings file %s: %s; using the default", path, err)
    return values


def _damaged(path: Path, why: str, strict: bool) -> dict[str, Any]:
    if strict:
        raise SettingsError(f"{path}: {why}")
    logger.warning("provenance: settings file %s %s; using the defaults", path, why)
    return {}


def read_frontend_file(path: str | Path) -> dict[str, Any]:
    """The pack's settings the frontend stored (FRONTEND_KEYS) in ComfyUI's comfy.settings.json; a missing,
    oversized, unreadable or non-JSON file, or a value of the wrong type, is a warning and sets nothing."""
    from .budget import open_regular
    from .errors import ReadError

    path = Path(path)
    try:
        with open_regular(path) as fp:  # never blocks on a FIFO planted at the path
            data = fp.read(FRONTEND_MAX_BYTES + 1)
    except ReadError as err:
        if isinstance(err.__cause__, FileNotFoundError):
            return {}
        logger.warning("provenance: frontend settings %s ignored: %s", path, err)
        return {}
    except OSError as err:
        logger.warning("provenance: frontend settings %s ignored: %s", path, err.strerror or err)
        return {}
    if len(data) > FRONTEND_MAX_BYTES:
        logger.warning("provenance: frontend settings %s ignored: over %d bytes", path, FRONTEND_MAX_BYTES)
        return {}
    try:
        found = json.loads(data) if data.strip() else {}
    except (ValueError, RecursionError) as err:
        logger.warning("provenance: frontend settings %s ignored: not JSON (%s)", path, " ".join(str(err).split()))
        return {}
    if not isinstance(found, dict):
        logger.warning("provenance: frontend settings %s ignored: not a JSON object", path)
        return {}
    values: dict[str, Any] = {}
    for setting_id, name in FRONTEND_KEYS.items():
        if setting_id not in found:
            continue
        try:
            values[name] = KEYS[name].check(setting_id, found[setting_id])
        except SettingsError as err:
            logger.warning("provenance: frontend settings %s: %s; ignored", path, err)
    return values


def _stamp(file: Path | None) -> tuple[int, int, int] | None:
    """What says the file changed (an edit while ComfyUI runs takes effect at the next save)."""
    if file is None:
        return None
    try:
        st = file.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@lru_cache(maxsize=32)
def _base(
    file: Path | None,
    stamp: tuple[int, int, int] | None,
    frontend: Path | None,
    frontend_stamp: tuple[int, int, int] | None,
    env: tuple[tuple[str, str | None], ...],
) -> Settings:
    # Keyed by the files' stamps and the variables' values: each change is read (and warned about) once.
    present = file if stamp is not None else None
    front = frontend if frontend_stamp is not None else None
    return load(present, {name: value for name, value in env if value is not None}, front)

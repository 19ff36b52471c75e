"""The Hook base: one safely removable wrapper around one attribute of a host module or class.

Modelled on OpenTelemetry instrumentors and Sentry integrations. A hook:

- installs and uninstalls idempotently, under one process-wide lock;
- checks before patching that the target exists and has the parameters the hook reads
  (`inspect.signature`, which follows `__wrapped__` through well-behaved wrappers); otherwise it
  does not install and records why (`skipped`);
- marks its wrapper (`MARKER` attribute holding this hook's token, plus `__wrapped__`) and on
  uninstall restores the original only while its own wrapper is still the attribute's value
  (checked by identity: `functools.wraps` copies the marker onto any wrapper made over ours);
- runs every call through one wrapper shape: gate (inactive → the original, nothing else);
  `before` inside a guard; the original called exactly once, outside any guard; `after` in
  `finally`, also guarded. The host's exceptions pass through unchanged (same object, same
  traceback); ours are caught, counted, logged once per distinct error, and after
  `MAX_FAILURES` the hook turns itself off (`disabled_reason`).

Conflict policy (another pack already wrapped the target, seen as a `__wrapped__` attribute or a
function defined outside the target's home module): wrap on top and log one warning; the other
wrapper keeps working and ours calls it exactly once per call. If another pack later wraps on top
of ours, uninstall cannot restore without dropping theirs: our wrapper then stays in their chain,
gated off for good, and a later install re-activates it instead of wrapping twice. Another copy of
this pack (the same marker with a foreign token) is never wrapped over: the hook is skipped.

PROVENANCE_HOOKS_FAULT=<hook key>.<before|after>[,...] makes those stages raise: a switch for the
fault-injection tests only.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..metadata import settings
from ..metadata.settings_keys import env_name

logger = logging.getLogger(__name__)

MARKER = "__comfyui_provenance_hook__"
MAX_FAILURES = 3
FAULT_ENV = env_name("hooks_fault")

# One lock for every patch: install/uninstall of different hooks may touch the same owner.
_PATCH_LOCK = threading.RLock()
_SKIP = object()


class InjectedFault(RuntimeError):
    """Raised by a stage named in PROVENANCE_HOOKS_FAULT (tests only)."""


class ArgReader:
    """Reads named arguments of a call by the positions `inspect.signature` gave at install time."""

    __slots__ = ("_slots",)

    def __init__(self, signature: inspect.Signature, names: Sequence[str]) -> None:
        positional = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        self._slots: dict[str, tuple[int, Any]] = {}
        for name in names:
            param = signature.parameters[name]
            index = positional.index(name) if name in positional else 1 << 30
            default = None if param.default is inspect.Parameter.empty else param.default
            self._slots[name] = (index, default)

    def get(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str) -> Any:
        index, default = self._slots[name]
        if index < len(args):
            return args[index]
        return kwargs.get(name, default)


def _describe(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _chain(fn: Any) -> list[Any]:
    """fn, fn.__wrapped__, ... (bounded: a cyclic chain must not hang install)."""
    seen: list[Any] = []
    while fn is not None and len(seen) < 64:
        seen.append(fn)
        fn = getattr(fn, "__wrapped__", None)
    return seen


class Hook:
    """Wraps `owner.<attr>`; subclasses name the parameters they read and define before/after.

    `before(args, kwargs)` returns a state object (or None); `after(state, args, kwargs, result,
    error)` gets the original's return value, or the exception it raised (which still propagates).
    When `before` fails, `after` is not called for that call.
    """

    key: str = "hook"  # short id used in status and in PROVENANCE_HOOKS_FAULT
    params: tuple[str, ...] = ()

    def __init__(self, owner: Any, attr: str, *, home_module: str | None = None) -> None:
        self.owner = owner
        self.attr = attr
        self.name = f"{getattr(owner, '__name__', type(owner).__name__)}.{attr}"
        self.home_module = home_module
        self.token = object()
        self.active = False  # the gate, read on every call
        self.installed = False
        self.detached = False
        self.original: Any = None
        self.wrapper: Any = None
        self.reader: ArgReader | None = None
        self.failures = 0
        self.disabled_reason: str | None = None
        self.skipped: str | None = None
        self.conflict: str | None = None
        self._had_own = False
        self._logged: set[str] = set()
        self._faults = frozenset(settings.current().hooks_fault)

    # --- the parts subclasses write ---------------------------------------------------------------

    def before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return None

    def after(self, state: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, error: Any) -> None:
        return None

    def failed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Called (guarded) after one of our stages raised: e.g. flag the prompt's capture as partial."""

    # --- install / uninstall ----------------------------------------------------------------------

    def install(self) -> bool:
        """Patch the target; True when our wrapper is (now or already) in place and active."""
        with _PATCH_LOCK:
            current = getattr(self.owner, self.attr, None)
            if current is None or not callable(current):
                return self._skip(f"{self.name} not found")
            if isinstance(inspect.getattr_static(self.owner, self.attr, None), (staticmethod, classmethod)):
                return self._skip(f"{self.name} is a {type(inspect.getattr_static(self.owner, self.attr)).__name__}")
            if self.installed and current is self.wrapper:
                self._warn("twice", f"Provenance hooks: {self.name} is already hooked; install ignored")
                return True
            if self.wrapper is not None and any(fn is self.wrapper for fn in _chain(current)):
                # detached earlier, still inside another pack's chain
                self.installed, self.detached, self.active = True, False, self.disabled_reason is None
                self._warn("reattach", f"Provenance hooks: {self.name} re-activated inside another pack's wrapper")
                return True
            if any(getattr(fn, MARKER, None) is not None for fn in _chain(current)):
                return self._skip(f"{self.name} is already hooked by another copy of this pack")
            try:
                signature = inspect.signature(current)
            except (TypeError, ValueError) as err:
                return self._skip(f"{self.name}: no readable signature ({err})")
            missing = [p for p in self.params if p not in signature.parameters]
            if missing:
                return self._skip(f"{self.name}{signature} lacks {', '.join(missing)}: unsupported ComfyUI version")
            foreign = hasattr(current, "__wrapped__") or (
                self.home_module is not None and getattr(current, "__module__", None) != self.home_module
            )
            if foreign:
                self.conflict = f"already wrapped by {_describe(current)}; wrapped on top"
                self._warn("conflict", f"Provenance hooks: {self.name} is {self.conflict}")
            self.reader = ArgReader(signature, self.params)
            self._had_own = self.attr in vars(self.owner)
            self.original = current
            self.wrapper = self._wrap(current)
            setattr(self.owner, self.attr, self.wrapper)
            self.installed, self.detached, self.skipped = True, False, None
            self.failures, self.disabled_reason = 0, None
            self.active = True
            return True

    def uninstall(self) -> bool:
        """Restore the original if our wrapper is still the attribute; True when restored."""
        with _PATCH_LOCK:
            if not self.installed:
                return False
            self.active = False
            self.installed = False
            current = getattr(self.owner, self.attr, None)
            # Identity, not the marker: functools.wraps copies our marker onto a wrapper made over ours.
            if current is not self.wrapper:
                self.detached = True
                self._warn(
                    "detached",
                    f"Provenance hooks: {self.name} was wrapped again by {_describe(current)}; "
                    "our wrapper stays in its chain, switched off",
                )
                return False
            if self._had_own:
                setattr(self.owner, self.attr, self.original)
            else:
                delattr(self.owner, self.attr)
            self.original = self.wrapper = None
            return True

    def status(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "installed": self.installed,
            "active": self.active,
            "disabled": self.disabled_reason is not None,
            "disabled_reason": self.disabled_reason,
            "failures": self.failures,
            "conflict": self.conflict,
            "skipped": self.skipped,
            "detached": self.detached,
        }

    # --- the wrapper ------------------------------------------------------------------------------

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hook = self

        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if not hook.active:
                    return await original(*args, **kwargs)
                state = hook._before(args, kwargs)
                result = error = None
                try:
                    result = await original(*args, **kwargs)
                    return result
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    if state is not _SKIP:
                        hook._after(state, args, kwargs, result, error)
                    error = None  # no frame ↔ traceback cycle

            wrapper: Callable[..., Any] = async_wrapper
        else:

            @functools.wraps(original)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                if not hook.active:
                    return original(*args, **kwargs)
                state = hook._before(args, kwargs)
                result = error = None
                try:
                    result = original(*args, **kwargs)
                    return result
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    if state is not _SKIP:
                        hook._after(state, args, kwargs, result, error)
                    error = None

            wrapper = sync_wrapper
        setattr(wrapper, MARKER, self.token)
        return wrapper

    def _before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            if self._faults and f"{self.key}.before" in self._faults:
                raise InjectedFault(f"injected fault in {self.key}.before")
            return self.before(args, kwargs)
        except Exception as exc:
            self._failed("before", exc, args, kwargs)
            return _SKIP

    def _after(self, state: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, error: Any) -> None:
        try:
            if self._faults and f"{self.key}.after" in self._faults:
                raise InjectedFault(f"injected fault in {self.key}.after")
            self.after(state, args, kwargs, result, error)
        except Exception as exc:
            self._failed("after", exc, args, kwargs)

    # --- failures ---------------------------------------------------------------------------------

    def _failed(self, stage: str, exc: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with _PATCH_LOCK:
            self.failures += 1
            count = self.failures
            if count >= MAX_FAILURES and self.disabled_reason is None:
                self.disabled_reason = f"{count} failures; last in {stage}: {type(exc).__name__}: {exc}"[:500]
                self.active = False
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""
        self._warn(
            f"{stage}:{type(exc).__name__}:{exc}"[:300],
            f"Provenance hooks: {self.name} failed in {stage}: {type(exc).__name__}: {exc}{where}; "
            f"the prompt goes on without it (failure {count}; the hook turns itself off after "
            f"{MAX_FAILURES}, see GET /provenance/status)",
        )
        try:
            self.failed(args, kwargs)
        except Exception:  # the failure path must never raise into the host
            logger.debug("failure handler of %s raised", self.name, exc_info=True)

    def _skip(self, reason: str) -> bool:
        self.skipped = reason
        self._warn("skip:" + reason, f"Provenance hooks: not hooking {reason}")
        return False

    def _warn(self, key: str, message: str) -> None:
        """Log `message` once per distinct key for the life of this hook."""
        with _PATCH_LOCK:
            if key in self._logged:
                return
            self._logged.add(key)
        logger.warning(message)

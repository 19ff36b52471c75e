"""The runtime hooks on ComfyUI's execution engine: the only hooks module that touches ComfyUI.

Four wrappers, each the narrowest point that sees what it captures (checked against ComfyUI 0.33.0,
commit 783545f6; signatures as in research/real-comfyui.md §5):

- `executor`: `PromptExecutor.execute_async` (`execute` where no async driver exists): the whole
  prompt, once, in the worker thread.
- `execute`: module `execution.execute`: each staged node, its start/end, whether it ran or was
  answered from the cache, PENDING re-entries, errors.
- `inputs`: module `execution.get_input_data`: the resolved inputs of the node being executed
  (a loader's model file is also queued for hashing then: hooks/prefetch.py).
- `outputs`: module `execution.get_output_from_returns`: the node's merged outputs, also for
  async nodes.

`execute`, `get_input_data` and `get_output_from_returns` are looked up as module globals at
call time, so rebinding them takes effect. Node code never raises through the inputs/outputs
wrappers (they wrap pure helpers, not the call into the node), and `execute` catches node
exceptions inside itself, so the tracebacks ComfyUI reports in `execution_error` hold none of
our frames: errors read exactly as without hooks. (Wrapping `get_output_data` would have put a
frame of ours into every node traceback.) `get_input_data` also runs during validation and
IS_CHANGED on other threads; it captures only inside the `execute` call for the same node,
which a context variable marks.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from .. import compat
from . import prefetch
from .safety import Hook
from .session import REGISTRY, HookSession

# (session, node id) while execution.execute runs a node: asyncio gives each prompt one task.
_NODE: ContextVar[tuple[HookSession, str] | None] = ContextVar("comfyui_provenance_node", default=None)


def _arg(hook: Hook, args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    assert hook.reader is not None
    return hook.reader.get(args, kwargs, name)


def _flag_fault(session: HookSession | None) -> None:
    if session is not None:
        with REGISTRY.lock:
            session.faulted = True


class ExecutorHook(Hook):
    """Patches `PromptExecutor.execute_async` (or `execute`): opens the prompt's session before the
    first node and closes it after the last, in `finally`, whatever happened.

    Why: the single call per prompt that has the graph, prompt_id and extra_data.
    Captures: a reference to the prompt graph, start/end times, an exception escaping the driver.
    extra_data is read only to recognise its credentials later (keyed digests), never stored.
    Tested: ComfyUI 0.33.0; `(self, prompt, prompt_id, extra_data={}, execute_outputs=[])`.
    """

    key = "executor"
    params = ("prompt", "prompt_id", "extra_data")

    def before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        prompt_id = _arg(self, args, kwargs, "prompt_id")
        if prompt_id is None:
            return None
        prompt = _arg(self, args, kwargs, "prompt")
        return REGISTRY.open(str(prompt_id), prompt, _arg(self, args, kwargs, "extra_data"))

    def after(self, state: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, error: Any) -> None:
        if state is not None:
            REGISTRY.close(state, error)

    def failed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        _flag_fault(REGISTRY.get(_arg(self, args, kwargs, "prompt_id")))


class NodeHook(Hook):
    """Patches module-level `execution.execute`, called once per staged node (again on PENDING).

    Why: the only point that sees every node ComfyUI schedules, in order, with the `executed` set
    that tells a real run (the id is added) from a cached output node (early SUCCESS return).
    Captures: first start and final end time, executed/cached, the error of a FAILURE result.
    Tested: ComfyUI 0.33.0; `(server, dynprompt, caches, current_item, extra_data, executed,
    prompt_id, execution_list, pending_subgraph_results, pending_async_nodes, ui_outputs)`.
    """

    key = "execute"
    params = ("dynprompt", "current_item", "executed", "prompt_id")

    def before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        session = REGISTRY.get(_arg(self, args, kwargs, "prompt_id"))
        if session is None:
            return None
        node_id = _arg(self, args, kwargs, "current_item")
        executed = _arg(self, args, kwargs, "executed")
        try:
            class_type = _arg(self, args, kwargs, "dynprompt").get_node(node_id).get("class_type")
        except Exception:  # an unknown node: ComfyUI itself reports it
            class_type = None
        was = node_id in executed
        key = str(node_id)
        with REGISTRY.lock:
            session.enter(key, class_type, time.perf_counter())
        token = _NODE.set((session, key))
        return session, key, node_id, executed, was, token

    def after(self, state: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, error: Any) -> None:
        if state is None:
            return
        session, key, node_id, executed, was, token = state
        _NODE.reset(token)
        now = time.perf_counter()
        outcome, text = "FAILURE", None
        if error is not None:
            text = f"{type(error).__name__}: {error}"
        elif isinstance(result, tuple) and len(result) >= 3:
            outcome = str(getattr(result[0], "name", result[0]))
            if outcome == "FAILURE":
                text = _error_text(result[1], result[2])
        with REGISTRY.lock:
            session.leave(key, now, outcome, not was and node_id in executed, text)

    def failed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        _flag_fault(REGISTRY.get(_arg(self, args, kwargs, "prompt_id")))


def _error_text(details: Any, exception: Any) -> str:
    if isinstance(details, dict) and details.get("exception_type"):
        return f"{details['exception_type']}: {str(details.get('exception_message', '')).strip()}"
    return type(exception).__name__ if exception is not None else "failed"


class InputsHook(Hook):
    """Patches module-level `execution.get_input_data`, which resolves a node's inputs before it runs.

    Why: its result holds the values the node is called with, links already resolved (a switch's
    pick, a computed number), including values from nodes ComfyUI served from its cache.
    Captures: for each input the prompt graph gave the node, the per-call value(s), scalars kept and
    tensors/objects summarized; hidden inputs (prompt, extra_pnginfo, unique_id, credentials) never.
    Tested: ComfyUI 0.33.0; `(inputs, class_def, unique_id, execution_list=None, dynprompt=None,
    extra_data={})` → `(input_data_all, missing_keys, v3_data)` (0.3.64 had `outputs` 4th: unused here).
    """

    key = "inputs"
    params = ("inputs", "unique_id")

    def __init__(self, owner: Any, attr: str, *, home_module: str | None, node_hook: Hook) -> None:
        super().__init__(owner, attr, home_module=home_module)
        self.node_hook = node_hook  # which marks the node being executed

    def before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        current = _NODE.get() if self.node_hook.active else None
        if current is None or current[1] != str(_arg(self, args, kwargs, "unique_id")):
            return None  # validation, IS_CHANGED, or another pack's call
        return current[0], current[1], _arg(self, args, kwargs, "inputs")

    def after(self, state: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, error: Any) -> None:
        if state is None or error is not None or not isinstance(result, tuple) or len(result) < 2:
            return
        session, key, declared = state
        if isinstance(declared, dict) and isinstance(result[0], dict):
            with REGISTRY.lock:
                session.capture_inputs(key, declared, result[0], result[1])
                node = session.nodes.get(key)
            if node is not None:
                prefetch.loader_ran(node.class_type, result[0])

    def failed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        current = _NODE.get()
        _flag_fault(current[0] if current else None)


class OutputsHook(Hook):
    """Patches module-level `execution.get_output_from_returns`, which merges a node's return values.

    Why: called for every node that produced outputs, synchronously (also when an async node's
    tasks are resolved on re-entry), with no node code below it.
    Captures: one value per output slot, kept when some slot holds scalars.
    Tested: ComfyUI 0.33.0; `(return_values, obj)` → `(output, ui, has_subgraph)`; expansions skipped.
    """

    key = "outputs"
    params = ("return_values", "obj")

    def __init__(self, owner: Any, attr: str, *, home_module: str | None, node_hook: Hook) -> None:
        super().__init__(owner, attr, home_module=home_module)
        self.node_hook = node_hook

    def before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # Only under a working execute hook: its mark of the current node is then fresh.
        return _NODE.get() if self.node_hook.active else None

    def after(self, state: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, error: Any) -> None:
        if state is None or error is not None or not isinstance(result, tuple) or len(result) < 3 or result[2]:
            return
        session, key = state
        with REGISTRY.lock:
            session.capture_outputs(key, result[0])

    def failed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        current = _NODE.get()
        _flag_fault(current[0] if current else None)


# Status keys and the targets they patch on ComfyUI 0.33 (listed even while the hooks are off).
TARGETS = {
    "executor": "PromptExecutor.execute_async",
    "execute": "execution.execute",
    "inputs": "execution.get_input_data",
    "outputs": "execution.get_output_from_returns",
}


def build(execution: Any = None) -> list[Hook]:
    """The hooks for an `execution` module: ComfyUI's by default, or a fake with the same shape."""
    if execution is None:
        execution = compat.execution_module()
    executor = getattr(execution, "PromptExecutor", None)
    driver = "execute_async" if hasattr(executor, "execute_async") else "execute"
    home = getattr(execution, "__name__", None)
    node = NodeHook(execution, "execute", home_module=home)
    return [
        ExecutorHook(executor, driver, home_module=getattr(executor, "__module__", home)),
        node,
        InputsHook(execution, "get_input_data", home_module=home, node_hook=node),
        OutputsHook(execution, "get_output_from_returns", home_module=home, node_hook=node),
    ]


def running_execution() -> Any:
    """ComfyUI's execution module when ComfyUI is running in this process (imported by main.py), else None."""
    return compat.loaded_execution_module()


def server_routes() -> Any:
    """PromptServer.instance.routes, or None before (or without) ComfyUI's server."""
    return compat.prompt_server_routes()

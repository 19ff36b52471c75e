"""A small stand-in for ComfyUI's `execution` module, shaped like ComfyUI 0.33.0's (commit 783545f6).

The signatures the hooks wrap, the return tuples and the behaviours they rely on are the real
ones, and tests/test_comfyui_hooks.py checks them against a real ComfyUI:

- `PromptExecutor.execute(prompt, prompt_id, extra_data={}, execute_outputs=[])` runs
  `asyncio.run(self.execute_async(...))`; afterwards `success`, `status_messages`, `history_result`.
- module `execute(server, dynprompt, caches, current_item, extra_data, executed, prompt_id,
  execution_list, pending_subgraph_results, pending_async_nodes, ui_outputs)` →
  `(ExecutionResult, error_details | None, exception | None)`; node exceptions become FAILURE;
  a cached output node returns SUCCESS at once without joining `executed`; lazy and async nodes
  return PENDING and are entered again.
- `get_input_data(inputs, class_def, unique_id, execution_list=None, dynprompt=None, extra_data={})`
  → `(input_data_all, missing_keys, v3_data)`, hidden inputs filled for V1 classes.
- `get_output_data(prompt_id, unique_id, obj, input_data_all, execution_block_cb=None,
  pre_execute_cb=None, v3_data=None)` → `(output, ui, has_subgraph, has_pending_task)`.
- `get_output_from_returns(return_values, obj)` → `(output, ui, has_subgraph)`.
- Output caching by input signature: cached non-output nodes are never staged at all.

All three module functions are looked up as globals at call time, as in ComfyUI.
No torch: images are numpy arrays.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import json
import sys
import time
import traceback
from enum import Enum
from typing import Any, NamedTuple

import numpy as np

SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


class ExecutionResult(Enum):
    SUCCESS = 0
    FAILURE = 1
    PENDING = 2


class CacheEntry(NamedTuple):
    ui: Any
    outputs: Any


class ExecutionContext(NamedTuple):
    prompt_id: str
    node_id: str
    list_index: int | None


_context: contextvars.ContextVar[ExecutionContext | None] = contextvars.ContextVar("fake_ctx", default=None)


def get_executing_context() -> ExecutionContext | None:
    return _context.get()


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


# --- nodes --------------------------------------------------------------------------------------


class Int:
    FUNCTION = "run"
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT",)}}

    def run(self, value: int) -> tuple[int]:
        return (value,)


class Text:
    FUNCTION = "run"
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"text": ("STRING",)}}

    def run(self, text: str) -> tuple[str]:
        return (text,)


class Add:
    FUNCTION = "run"
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"a": ("INT",), "b": ("INT",)}}

    def run(self, a: int, b: int) -> tuple[int]:
        return (a + b,)


class Concat:
    FUNCTION = "run"
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"a": ("STRING",), "b": ("STRING",)}}

    def run(self, a: str, b: str) -> tuple[str]:
        return (a + b,)


class Switch:
    """Picks one of two values; checks laziness once (PENDING, then entered again), like core switches."""

    FUNCTION = "run"
    RETURN_TYPES = ("*",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"select": ("BOOLEAN",), "on_true": ("*", {"lazy": True}), "on_false": ("*", {"lazy": True})}
        }

    def check_lazy_status(self, select: bool, on_true: Any = None, on_false: Any = None) -> list[str]:
        return ["on_true" if select else "on_false"]

    def run(self, select: bool, on_true: Any = None, on_false: Any = None) -> tuple[Any]:
        return (on_true if select else on_false,)


class Loader:
    """Stands for a checkpoint loader: a name in, an object out."""

    FUNCTION = "load"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"ckpt_name": ("STRING",)}}

    def load(self, ckpt_name: str) -> tuple[Any]:
        return (Model(ckpt_name),)


class Model:
    def __init__(self, name: str) -> None:
        self.name = name


class Sampler:
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model": ("MODEL",), "seed": ("INT",), "frames": ("INT",), "text": ("STRING",)}}

    def sample(self, model: Model, seed: int, frames: int, text: str) -> tuple[Any]:
        return (np.full((frames, 8, 8, 3), seed % 251, dtype=np.float32),)


class AsyncDouble:
    FUNCTION = "run"
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT",)}}

    async def run(self, value: int) -> tuple[int]:
        await asyncio.sleep(0.001)
        return (value * 2,)


class Boom:
    FUNCTION = "run"
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT",)}}

    def run(self, value: int) -> tuple[int]:
        raise ValueError(f"boom {value}")


class ApiNode:
    """A node with a credential-looking widget and ComfyUI's hidden credentials."""

    FUNCTION = "run"
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"text": ("STRING",), "api_key": ("STRING",)},
            "hidden": {"auth_token_comfy_org": "AUTH_TOKEN_COMFY_ORG", "api_key_comfy_org": "API_KEY_COMFY_ORG"},
        }

    def run(self, text: str, api_key: str, auth_token_comfy_org: Any = None, api_key_comfy_org: Any = None) -> Any:
        return (f"{text}:{'signed-in' if auth_token_comfy_org else 'anonymous'}",)


SAVED: list[dict[str, Any]] = []  # what Save nodes were called with (tests clear it)
ON_SAVE: list[Any] = []  # callbacks(prompt_id, unique_id) run inside Save, as the real save node would


class Save:
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {"images": ("IMAGE",), "filename_prefix": ("STRING",)},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def save(
        self, images: Any, filename_prefix: str, prompt: Any = None, extra_pnginfo: Any = None, unique_id: Any = None
    ) -> Any:
        context = get_executing_context()
        prompt_id = context.prompt_id if context else None
        SAVED.append(
            {"prompt_id": prompt_id, "node": unique_id, "shape": list(images.shape), "prefix": filename_prefix}
        )
        for callback in list(ON_SAVE):
            callback(prompt_id, unique_id)
        return {"ui": {"images": [{"filename": f"{filename_prefix}.png"}]}, "result": ()}


NODE_CLASS_MAPPINGS: dict[str, type] = {
    "Int": Int,
    "Text": Text,
    "Add": Add,
    "Concat": Concat,
    "Switch": Switch,
    "Loader": Loader,
    "Sampler": Sampler,
    "AsyncDouble": AsyncDouble,
    "Boom": Boom,
    "ApiNode": ApiNode,
    "Save": Save,
    "ProvenanceSaveImage": Save,
}


# --- the graph and caches -----------------------------------------------------------------------


class DynamicPrompt:
    def __init__(self, original_prompt: dict[str, Any]) -> None:
        self.original_prompt = original_prompt
        self.ephemeral_prompt: dict[str, Any] = {}

    def get_node(self, node_id: str) -> dict[str, Any]:
        if node_id in self.ephemeral_prompt:
            return self.ephemeral_prompt[node_id]  # type: ignore[no-any-return]
        if node_id in self.original_prompt:
            return self.original_prompt[node_id]  # type: ignore[no-any-return]
        raise KeyError(f"Node {node_id} not found")

    def has_node(self, node_id: str) -> bool:
        return node_id in self.original_prompt or node_id in self.ephemeral_prompt

    def get_display_node_id(self, node_id: str) -> str:
        return node_id

    def get_original_prompt(self) -> dict[str, Any]:
        return self.original_prompt


class OutputCache:
    """Entries by input signature (class, constants, ancestors), kept across prompts."""

    def __init__(self) -> None:
        self.entries: dict[str, CacheEntry] = {}
        self.keys: dict[str, str] = {}

    def set_prompt(self, dynprompt: DynamicPrompt) -> None:
        self.keys = {}
        for node_id in dynprompt.original_prompt:
            self.keys[node_id] = self._signature(dynprompt, node_id)

    def _signature(self, dynprompt: DynamicPrompt, node_id: str) -> str:
        if node_id in self.keys:
            return self.keys[node_id]
        node = dynprompt.get_node(node_id)
        parts: list[Any] = [node["class_type"]]
        for name in sorted(node["inputs"]):
            value = node["inputs"][name]
            if is_link(value):
                parts.append([name, self._signature(dynprompt, value[0]), value[1]])
            else:
                parts.append([name, value, None])
        self.keys[node_id] = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        return self.keys[node_id]

    async def get(self, node_id: str) -> CacheEntry | None:
        return self.entries.get(self.keys.get(node_id, ""))

    def get_local(self, node_id: str) -> CacheEntry | None:
        return self.entries.get(self.keys.get(node_id, ""))

    async def set(self, node_id: str, value: CacheEntry) -> None:
        self.entries[self.keys[node_id]] = value


class CacheSet:
    def __init__(self, cache_type: Any = None, cache_args: Any = None) -> None:
        self.outputs = OutputCache()
        self.objects: dict[str, Any] = {}
        self.all = [self.outputs]


class ExecutionList:
    """Topological staging of the nodes the outputs need, cached ones left out (as add_node does)."""

    def __init__(self, dynprompt: DynamicPrompt, output_cache: OutputCache) -> None:
        self.dynprompt = dynprompt
        self.output_cache = output_cache
        self.queue: list[str] = []
        self.staged: Any = None
        self.results: dict[str, CacheEntry] = {}

    def add_node(self, node_id: str, output: bool = True) -> None:
        if node_id in self.queue or (not output and self.output_cache.get_local(node_id) is not None):
            return
        node = self.dynprompt.get_node(node_id)
        declared = NODE_CLASS_MAPPINGS[node["class_type"]].INPUT_TYPES()["required"]
        for name, value in node["inputs"].items():
            lazy = len(declared.get(name, ())) > 1 and declared[name][1].get("lazy", False)
            if is_link(value) and not lazy:
                self.add_node(value[0], output=False)
        self.queue.append(node_id)

    def is_empty(self) -> bool:
        return not self.queue

    def stage(self) -> str:
        """The first queued node whose queued upstream nodes are all done (as the real one stages)."""
        for node_id in self.queue:
            links = [v[0] for v in self.dynprompt.get_node(node_id)["inputs"].values() if is_link(v)]
            if not [u for u in links if u in self.queue]:
                self.staged = node_id
                return node_id
        raise RuntimeError("dependency cycle")

    def unstage_node_execution(self) -> None:
        self.staged = None

    def complete_node_execution(self) -> None:
        self.queue.remove(self.staged)
        self.staged = None

    def get_cache(self, from_node_id: str, to_node_id: str) -> CacheEntry | None:
        return self.results.get(from_node_id) or self.output_cache.get_local(from_node_id)

    def cache_update(self, node_id: str, value: CacheEntry) -> None:
        self.results[node_id] = value


# --- the module functions the hooks wrap --------------------------------------------------------


def get_input_data(inputs, class_def, unique_id, execution_list=None, dynprompt=None, extra_data={}):
    valid_inputs = class_def.INPUT_TYPES()
    input_data_all: dict[str, Any] = {}
    missing_keys: dict[str, bool] = {}
    for name, value in inputs.items():
        if is_link(value):
            cached = execution_list.get_cache(value[0], unique_id) if execution_list is not None else None
            if cached is None or cached.outputs is None or value[1] >= len(cached.outputs):
                missing_keys[name] = True
                input_data_all[name] = (None,)
                continue
            input_data_all[name] = cached.outputs[value[1]]
        else:
            input_data_all[name] = [value]
    for name, kind in valid_inputs.get("hidden", {}).items():
        if kind == "PROMPT":
            input_data_all[name] = [dynprompt.get_original_prompt() if dynprompt is not None else {}]
        elif kind == "EXTRA_PNGINFO":
            input_data_all[name] = [extra_data.get("extra_pnginfo", None)]
        elif kind == "UNIQUE_ID":
            input_data_all[name] = [unique_id]
        elif kind == "AUTH_TOKEN_COMFY_ORG":
            input_data_all[name] = [extra_data.get("auth_token_comfy_org", None)]
        elif kind == "API_KEY_COMFY_ORG":
            input_data_all[name] = [extra_data.get("api_key_comfy_org", None)]
    return input_data_all, missing_keys, {"hidden_inputs": {}}


async def _async_map_node_over_list(
    prompt_id,
    unique_id,
    obj,
    input_data_all,
    func,
    allow_interrupt=False,
    execution_block_cb=None,
    pre_execute_cb=None,
    v3_data=None,
):
    count = max((len(v) for v in input_data_all.values()), default=0)
    results: list[Any] = []
    for index in range(max(count, 1)):
        args = {k: v[index if len(v) > index else -1] for k, v in input_data_all.items()}
        f = getattr(obj, func)
        token = _context.set(ExecutionContext(prompt_id, unique_id, index))
        try:
            if inspect.iscoroutinefunction(f):
                task = asyncio.create_task(f(**args))
                await asyncio.sleep(0)
                results.append(task.result() if task.done() else task)
            else:
                results.append(f(**args))
        finally:
            _context.reset(token)
    return results


async def get_output_data(
    prompt_id, unique_id, obj, input_data_all, execution_block_cb=None, pre_execute_cb=None, v3_data=None
):
    return_values = await _async_map_node_over_list(
        prompt_id,
        unique_id,
        obj,
        input_data_all,
        obj.FUNCTION,
        allow_interrupt=True,
        execution_block_cb=execution_block_cb,
        pre_execute_cb=pre_execute_cb,
        v3_data=v3_data,
    )
    if any(isinstance(r, asyncio.Task) and not r.done() for r in return_values):
        return return_values, {}, False, True
    output, ui, has_subgraph = get_output_from_returns(return_values, obj)
    return output, ui, has_subgraph, False


def get_output_from_returns(return_values, obj):
    results, uis = [], []
    for r in return_values:
        if isinstance(r, dict):
            if "ui" in r:
                uis.append(r["ui"])
            results.append(r.get("result", ()))
        else:
            results.append(r)
    output = [[o[i] for o in results] for i in range(len(results[0]))] if results and results[0] else []
    ui = {k: [y for x in uis for y in x[k]] for k in uis[0]} if uis else {}
    return output, ui, False


async def execute(
    server,
    dynprompt,
    caches,
    current_item,
    extra_data,
    executed,
    prompt_id,
    execution_list,
    pending_subgraph_results,
    pending_async_nodes,
    ui_outputs,
):
    unique_id = current_item
    node = dynprompt.get_node(unique_id)
    class_type = node["class_type"]
    class_def = NODE_CLASS_MAPPINGS[class_type]  # an unknown class raises out of execute, as in ComfyUI
    cached = await caches.outputs.get(unique_id)
    if cached is not None:
        if cached.ui is not None:
            ui_outputs[unique_id] = cached.ui
        execution_list.cache_update(unique_id, cached)
        return (ExecutionResult.SUCCESS, None, None)
    input_data_all = None
    try:
        if unique_id in pending_async_nodes:
            results = [r.result() if isinstance(r, asyncio.Task) else r for r in pending_async_nodes.pop(unique_id)]
            output_data, output_ui, _ = get_output_from_returns(results, class_def)
        else:
            input_data_all, missing_keys, v3_data = get_input_data(
                node["inputs"], class_def, unique_id, execution_list, dynprompt, extra_data
            )
            obj = caches.objects.get(unique_id)
            if obj is None:
                obj = caches.objects[unique_id] = class_def()
            if hasattr(obj, "check_lazy_status"):
                needed = obj.check_lazy_status(**{k: v[0] for k, v in input_data_all.items()})
                if [n for n in needed if n in missing_keys]:
                    for name in needed:
                        execution_list.add_node(node["inputs"][name][0], output=False)
                    return (ExecutionResult.PENDING, None, None)
            output_data, output_ui, _, pending = await get_output_data(
                prompt_id, unique_id, obj, input_data_all, v3_data=v3_data
            )
            if pending:
                pending_async_nodes[unique_id] = output_data
                await asyncio.gather(*[t for t in output_data if isinstance(t, asyncio.Task)], return_exceptions=True)
                return (ExecutionResult.PENDING, None, None)
        if output_ui:
            ui_outputs[unique_id] = {"meta": {"node_id": unique_id}, "output": output_ui}
        entry = CacheEntry(ui=ui_outputs.get(unique_id), outputs=output_data)
        execution_list.cache_update(unique_id, entry)
        await caches.outputs.set(unique_id, entry)
    except Exception as ex:
        typ, _, tb = sys.exc_info()
        formatted = {k: [str(x) for x in v] for k, v in (input_data_all or {}).items()}
        error_details = {
            "node_id": unique_id,
            "exception_message": f"{ex}\n",
            "exception_type": f"{typ.__module__}.{typ.__qualname__}" if typ else "",
            "traceback": traceback.format_tb(tb),
            "current_inputs": formatted,
        }
        return (ExecutionResult.FAILURE, error_details, ex)
    executed.add(unique_id)
    return (ExecutionResult.SUCCESS, None, None)


class PromptExecutor:
    def __init__(self, server, cache_type=False, cache_args=None):
        self.server = server
        self.cache_type = cache_type
        self.cache_args = cache_args
        self.reset()

    def reset(self) -> None:
        self.caches = CacheSet(cache_type=self.cache_type, cache_args=self.cache_args)
        self.status_messages: list[tuple[str, dict[str, Any]]] = []
        self.success = True

    def add_message(self, event: str, data: dict[str, Any], broadcast: bool) -> None:
        self.status_messages.append((event, {**data, "timestamp": int(time.time() * 1000)}))

    def execute(self, prompt, prompt_id, extra_data={}, execute_outputs=[]):
        asyncio.run(self.execute_async(prompt, prompt_id, extra_data, execute_outputs))

    async def execute_async(self, prompt, prompt_id, extra_data={}, execute_outputs=[]):
        self.status_messages = []
        self.add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)
        dynamic_prompt = DynamicPrompt(prompt)
        self.caches.outputs.set_prompt(dynamic_prompt)
        cached = [n for n in prompt if self.caches.outputs.get_local(n) is not None]
        self.add_message("execution_cached", {"nodes": cached, "prompt_id": prompt_id}, broadcast=False)
        executed: set[str] = set()
        ui_node_outputs: dict[str, Any] = {}
        pending_subgraph_results: dict[str, Any] = {}
        pending_async_nodes: dict[str, Any] = {}
        execution_list = ExecutionList(dynamic_prompt, self.caches.outputs)
        for node_id in execute_outputs:
            execution_list.add_node(node_id)
        while not execution_list.is_empty():
            node_id = execution_list.stage()
            result, error, _ex = await execute(
                self.server,
                dynamic_prompt,
                self.caches,
                node_id,
                extra_data,
                executed,
                prompt_id,
                execution_list,
                pending_subgraph_results,
                pending_async_nodes,
                ui_node_outputs,
            )
            self.success = result != ExecutionResult.FAILURE
            if result == ExecutionResult.FAILURE:
                assert error is not None
                self.add_message(
                    "execution_error",
                    {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": prompt[node_id]["class_type"],
                        "executed": sorted(executed),
                        **{k: error[k] for k in ("exception_message", "exception_type", "traceback", "current_inputs")},
                    },
                    broadcast=False,
                )
                break
            if result == ExecutionResult.PENDING:
                execution_list.unstage_node_execution()
            else:
                execution_list.complete_node_execution()
        else:
            self.add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)
        self.history_result = {
            "outputs": {k: v["output"] for k, v in ui_node_outputs.items() if "output" in v},
            "meta": {},
        }


# --- helpers for the tests ------------------------------------------------------------------------


def sample_prompt(seed: int = 42, select: bool = True, a: int = 5, b: int = 7, text: str = "hello") -> dict[str, Any]:
    """Two checkpoint names behind a switch, a frame count computed by Add → AsyncDouble, a seed, a save."""
    return {
        "1": {"class_type": "Int", "inputs": {"value": a}},
        "2": {"class_type": "Int", "inputs": {"value": b}},
        "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
        "4": {"class_type": "Text", "inputs": {"text": "ckpt_a.safetensors"}},
        "5": {"class_type": "Text", "inputs": {"text": "ckpt_b.safetensors"}},
        "6": {"class_type": "Switch", "inputs": {"select": select, "on_true": ["4", 0], "on_false": ["5", 0]}},
        "7": {"class_type": "Loader", "inputs": {"ckpt_name": ["6", 0]}},
        "8": {"class_type": "Int", "inputs": {"value": seed}},
        "9": {"class_type": "AsyncDouble", "inputs": {"value": ["3", 0]}},
        "10": {
            "class_type": "Sampler",
            "inputs": {"model": ["7", 0], "seed": ["8", 0], "frames": ["9", 0], "text": text},
        },
        "11": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["10", 0], "filename_prefix": f"s{seed}"}},
    }


def run(
    executor: PromptExecutor, prompt: dict[str, Any], prompt_id: str, extra_data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Execute the prompt's output nodes as main.py's worker does; what /history would hold, minus timestamps."""
    outputs = [k for k, v in prompt.items() if getattr(NODE_CLASS_MAPPINGS.get(v["class_type"]), "OUTPUT_NODE", False)]
    executor.execute(prompt, prompt_id, extra_data or {}, outputs)
    messages = [
        (event, {k: v for k, v in data.items() if k != "timestamp"}) for event, data in executor.status_messages
    ]
    return {"success": executor.success, "messages": messages, "outputs": executor.history_result["outputs"]}

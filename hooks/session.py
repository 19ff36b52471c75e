"""HookSession: what the runtime hooks saw of one prompt, kept per prompt_id until its save nodes used it.

DATA CONTRACT (consumed by metadata/runtime.py; change only together with it)::

    snapshot(prompt_id: str | None) -> dict | None   # None when hooks are off or no session exists
    mark_used(prompt_id: str, save_node_id: str) -> None   # a save node has consumed the session
    hooks_active() -> bool                            # installed and not all disabled

    {"prompt_id": str, "started": "ISO-8601Z", "ended": "ISO-8601Z" | None, "complete": bool,
     "order": [node_id, ...],          # nodes that really executed, in the order they finished
     "nodes": {node_id: {"class_type": str | None, "cached": bool,
                         "start_ms": float | None, "duration_ms": float | None,
                         "inputs": {name: scalar | summary | [scalars...]},
                         "outputs": [scalar | summary | None, ...] | None,
                         "error": str | None}},
     "errors": [str, ...]}

- The dict is JSON-serializable and a fresh copy; it never holds tensors, objects or secrets.
- `inputs`: the per-call values ComfyUI passed for the inputs the prompt graph gave the node
  (hidden inputs and credential-like names are never captured); a one-element list is stored as
  its element. Large values are summaries: `{"type", "shape", "dtype"}` for arrays and tensors,
  `{"type"}` for other objects, `{"type": "str", "length"}` / `{"type": "list", "shape"}` past the
  caps, `{"type": "str", "redacted": true}` for a value equal to a credential in extra_data.
- `outputs`: one entry per output slot, only for nodes where some slot holds scalars
  (primitives, switches, math); otherwise None.
- `start_ms` is relative to the session start; `duration_ms` spans first entry to final exit
  (lazy and async nodes re-enter). Nodes ComfyUI served from its cache have `cached: true` and
  carry what the same computation captured in an earlier prompt (hooks/carry.py), with null times
  unless ComfyUI staged them (cached output nodes). The carried values come from the same
  computation run earlier in this prompt (another node with the same signature) or in an
  earlier prompt.
- `complete`: no hook failed or was off, no cap was hit, and every cached node whose output an
  executed node consumed has carried-over values.

Release: a session ends with its prompt; it is dropped once ended and every consumer node
(`CONSUMER_CLASSES`) that really executed has called mark_used, else after `SESSION_TTL_S`, and
at most `MAX_SESSIONS` are kept (least recently used first out). All state is guarded by one
RLock: ComfyUI's worker thread writes, the server's main thread reads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol

from .carry import Carried, CarryStore, computation_keys, is_link
from .values import MAX_INPUTS, Summarizer, is_scalar_capture, secrets_of, skipped_input

MAX_SESSIONS = 32
MAX_NODES = 4096
MAX_ERRORS = 64
MAX_ERROR_CHARS = 1000
SESSION_TTL_S = 600.0  # an ended session nobody consumed
OPEN_TTL_S = 6 * 3600.0  # a session whose end we never saw (its prompt cannot still be running)
SESSION_BUDGET = 1 << 20  # characters of captured strings per session
RETAINED = 64
NODE_FIELDS = ("class_type", "cached", "start_ms", "duration_ms", "inputs", "outputs", "error")
# Save nodes that consume a session (they call mark_used); a session waits for those that ran.
CONSUMER_CLASSES: set[str] = {"ProvenanceSaveImage"}


class SupportsActive(Protocol):
    active: bool


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class NodeRecord:
    __slots__ = ("cached", "class_type", "cost", "end", "error", "executed", "inputs", "outputs", "start")

    def __init__(self, class_type: str | None, start: float | None) -> None:
        self.class_type = class_type
        self.start = start
        self.end: float | None = None
        self.cached = False
        self.executed = False
        self.inputs: dict[str, Any] = {}
        self.outputs: list[Any] | None = None
        self.error: str | None = None
        self.cost = 0  # rough size of inputs + outputs, for the carry-over store's budget


def _carried(record: NodeRecord) -> Carried:
    return Carried(record.class_type, record.inputs, record.outputs, record.cost)


class HookSession:
    """One prompt's capture. Mutated only under the registry lock."""

    def __init__(self, prompt_id: str, prompt: Any, extra_data: Any, degraded: bool) -> None:
        self.prompt_id = prompt_id
        # A reference, not a copy: ComfyUI keeps the same dict (and writes is_changed into it).
        self.graph: Mapping[str, Any] = prompt if isinstance(prompt, Mapping) else {}
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.ended_wall: float | None = None
        self.touched = 0.0  # Registry.clock() time of the last use
        self.order: list[str] = []
        self.executed: set[str] = set()
        self.nodes: dict[str, NodeRecord] = {}
        self.errors: list[str] = []
        self.used: set[str] = set()
        self.cached_used: set[str] = set()
        self.keys: dict[str, str | None] = {}
        self.summarizer = Summarizer(secrets_of(extra_data), SESSION_BUDGET)
        self.faulted = degraded
        self.truncated = False

    # --- writes from the hooks --------------------------------------------------------------------

    def enter(self, node_id: str, class_type: str | None, now: float) -> NodeRecord | None:
        record = self.nodes.get(node_id)
        if record is None:
            if len(self.nodes) >= MAX_NODES:
                self.truncated = True
                return None
            record = self.nodes[node_id] = NodeRecord(class_type, now)
        return record

    def leave(self, node_id: str, now: float, outcome: str, ran: bool, error: str | None) -> None:
        record = self.nodes.get(node_id)
        if record is None or outcome == "PENDING":
            return
        record.end = now
        if ran:
            record.executed = True
            self.executed.add(node_id)
            self.order.append(node_id)
        elif outcome == "SUCCESS":
            record.cached = True
        if error is not None:
            record.error = error[:MAX_ERROR_CHARS]
            self.add_error(f"node {node_id} ({record.class_type}): {record.error}")

    def capture_inputs(self, node_id: str, declared: Mapping[str, Any], data: Mapping[str, Any], missing: Any) -> None:
        record = self.nodes.get(node_id)
        if record is None:
            return
        summarize = self.summarizer.per_call
        budget = self.summarizer.budget
        captured: dict[str, Any] = {}
        for name, given in declared.items():
            if name not in data or skipped_input(name) or (missing and name in missing):
                continue
            if len(captured) >= MAX_INPUTS:
                self.truncated = True
                break
            captured[name] = summarize(data[name])
            if is_link(given) and str(given[0]) not in self.executed:
                self.cached_used.add(str(given[0]))
        record.inputs = captured
        record.cost = 16 * len(captured) + budget - self.summarizer.budget
        self.truncated = self.truncated or self.summarizer.over_budget

    def capture_outputs(self, node_id: str, output: Any) -> None:
        record = self.nodes.get(node_id)
        if record is None or not isinstance(output, (list, tuple)):
            return
        budget = self.summarizer.budget
        slots = [self.summarizer.per_call(slot) for slot in output[:MAX_INPUTS]]
        record.outputs = slots if any(v is not None and is_scalar_capture(v) for v in slots) else None
        record.cost += 16 * len(slots) + budget - self.summarizer.budget

    def add_error(self, text: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(text[:MAX_ERROR_CHARS])

    # --- reads ------------------------------------------------------------------------------------

    def pending_consumers(self) -> set[str]:
        ran = {n for n in self.order if self.nodes[n].class_type in CONSUMER_CLASSES}
        return ran - self.used

    def carry_out(self, store: CarryStore) -> None:
        """Remember what each real (non-ephemeral) node that ran without error captured."""
        done = [n for n in self.order if n in self.graph and self.nodes[n].error is None]
        computation_keys(self.graph, done, self.keys)
        for node_id in done:
            key = self.keys.get(node_id)
            if key is not None:
                store.put(key, _carried(self.nodes[node_id]))

    def to_dict(self, store: CarryStore, hooks_whole: bool) -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        for node_id, record in self.nodes.items():
            nodes[node_id] = self._node_dict(record)
        # Not run here: absent, or staged only to be answered from ComfyUI's cache (output nodes).
        missing = [n for n in self.graph if n not in self.nodes or self.nodes[n].cached]
        if not missing:
            return self._dict(nodes, hooks_whole)
        ran_here = [n for n in self.order if n in self.graph and self.nodes[n].error is None]
        computation_keys(self.graph, missing + ran_here, self.keys)
        here = {self.keys[n]: self.nodes[n] for n in ran_here if self.keys.get(n) is not None}
        for node_id in missing:
            key = self.keys.get(node_id)
            if key is None:
                continue
            carried = _carried(here[key]) if key in here else store.get(key)
            if carried is None:
                continue
            entry = nodes.setdefault(node_id, {"class_type": carried.class_type, "start_ms": None, "duration_ms": None})
            entry.update(cached=True, inputs=_copy(carried.inputs), outputs=_copy(carried.outputs), error=None)
            nodes[node_id] = {k: entry[k] for k in NODE_FIELDS}
        return self._dict(nodes, hooks_whole)

    def _dict(self, nodes: dict[str, Any], hooks_whole: bool) -> dict[str, Any]:
        complete = hooks_whole and not self.faulted and not self.truncated and all(n in nodes for n in self.cached_used)
        return {
            "prompt_id": self.prompt_id,
            "started": _iso(self.started_wall),
            "ended": _iso(self.ended_wall) if self.ended_wall is not None else None,
            "complete": complete,
            "order": list(self.order),
            "nodes": nodes,
            "errors": list(self.errors),
        }

    def _node_dict(self, record: NodeRecord) -> dict[str, Any]:
        start = end = None
        if record.start is not None:
            start = round((record.start - self.started) * 1000.0, 3)
            if record.end is not None:
                end = round((record.end - record.start) * 1000.0, 3)
        return {
            "class_type": record.class_type,
            "cached": record.cached,
            "start_ms": start,
            "duration_ms": end,
            "inputs": _copy(record.inputs),
            "outputs": _copy(record.outputs),
            "error": record.error,
        }


class Registry:
    """Every live session, the carry-over store and the installed hooks, behind one RLock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.sessions: OrderedDict[str, HookSession] = OrderedDict()
        self.store = CarryStore()
        self.hooks: list[SupportsActive] = []
        self.retain = False  # keep released snapshots (PROVENANCE_HOOKS_DEBUG, tests only)
        self.retained: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.clock: Callable[[], float] = time.monotonic

    def hooks_whole(self) -> bool:
        return bool(self.hooks) and all(h.active for h in self.hooks)

    def open(self, prompt_id: str, prompt: Any, extra_data: Any) -> HookSession:
        session = HookSession(prompt_id, prompt, extra_data, degraded=not self.hooks_whole())
        session.touched = self.clock()
        with self.lock:
            self._evict()
            self.sessions.pop(prompt_id, None)
            self.sessions[prompt_id] = session
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        return session

    def get(self, prompt_id: Any) -> HookSession | None:
        if prompt_id is None:
            return None
        with self.lock:
            return self.sessions.get(str(prompt_id))

    def close(self, session: HookSession, error: BaseException | None) -> None:
        with self.lock:
            session.ended_wall = time.time()
            session.touched = self.clock()
            if error is not None:
                session.add_error(f"prompt: {type(error).__name__}: {error}")
            session.carry_out(self.store)
            if not session.pending_consumers():
                self._release(session)

    def mark_used(self, prompt_id: str, save_node_id: str) -> None:
        with self.lock:
            session = self.sessions.get(str(prompt_id))
            if session is None:
                return
            session.used.add(str(save_node_id))
            session.touched = self.clock()
            if session.ended_wall is not None and not session.pending_consumers():
                self._release(session)

    def snapshot(self, prompt_id: Any) -> dict[str, Any] | None:
        with self.lock:
            session = self.get(prompt_id)
            if session is None:
                return None
            session.touched = self.clock()
            self.sessions.move_to_end(session.prompt_id)
            return session.to_dict(self.store, self.hooks_whole())

    def retained_snapshot(self, prompt_id: str) -> dict[str, Any] | None:
        with self.lock:
            live = self.snapshot(prompt_id)
            return live if live is not None else _copy(self.retained.get(prompt_id))

    def clear(self) -> None:
        with self.lock:
            self.sessions.clear()
            self.store.clear()
            self.retained.clear()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"sessions": len(self.sessions), "carry_over_entries": len(self.store)}

    def _release(self, session: HookSession) -> None:
        if self.sessions.get(session.prompt_id) is session:
            del self.sessions[session.prompt_id]
        if self.retain:
            self.retained[session.prompt_id] = session.to_dict(self.store, self.hooks_whole())
            while len(self.retained) > RETAINED:
                self.retained.popitem(last=False)

    def _evict(self) -> None:
        now = self.clock()
        for prompt_id, session in list(self.sessions.items()):
            ttl = SESSION_TTL_S if session.ended_wall is not None else OPEN_TTL_S
            if now - session.touched > ttl:
                del self.sessions[prompt_id]


REGISTRY = Registry()


def snapshot(prompt_id: str | None) -> dict[str, Any] | None:
    """The runtime capture of a prompt (see the module docstring), or None."""
    return REGISTRY.snapshot(prompt_id)


def mark_used(prompt_id: str, save_node_id: str) -> None:
    """A save node has consumed the session; the session goes once its prompt ended and all consumers ran."""
    REGISTRY.mark_used(prompt_id, save_node_id)


def hooks_active() -> bool:
    """True while some runtime hook is installed and not disabled."""
    with REGISTRY.lock:
        return any(h.active for h in REGISTRY.hooks)


def register_hooks(hooks: Iterable[SupportsActive]) -> None:
    with REGISTRY.lock:
        REGISTRY.hooks = list(hooks)

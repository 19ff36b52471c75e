"""What a sampler node did, kept where a save node finds it even when ComfyUI served the sampler from its cache.

A sampler node files its report (engine, plan, stage timings, peak memory) under a digest of its place in
the prompt graph: its class, its id and its prompt inputs, each link replaced by the digest of the node it
points at, recursively. That is what ComfyUI's cache key is made of, so a rerun that ComfyUI answers from its
cache (the sampler does not execute) still finds the report of the run that made the cached latent, by
recomputing the digest from the prompt the save node receives. The store is process-wide, thread-safe and
bounded. Nothing here raises into the sampler or the save: reporting is extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..metadata.record import Record

logger = logging.getLogger(__name__)

REPORTS_MAX = 256
# Where a record keeps the reports of the sampler nodes upstream of its save node.
EXTRA_KEY = "engines"
# field_sources value of a field the engine report set: "engine:<sampler node id>".
SOURCE_PREFIX = "engine:"
# The plan's parameter name -> the record's field name.
RECORD_FIELDS = {
    "seed": "seed",
    "steps": "steps",
    "cfg": "cfg",
    "sampler_name": "sampler",
    "scheduler": "scheduler",
    "denoise": "denoise",
}
DIGEST_DEPTH_MAX = 10_000
_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


# -- digest -------------------------------------------------------------------------------------------------------
def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def prompt_digest(prompt: Mapping[str, Any], node_id: str, memo: dict[str, str] | None = None) -> str | None:
    """The digest of `node_id`'s class, id and inputs, its links replaced by their nodes' digests (ancestors are
    keyed by content only, as ComfyUI's cache keys them); None when the node is not in the prompt.

    `memo` shares the ancestors' digests between calls on the same prompt (one save, several samplers)."""
    memo = {} if memo is None else memo
    node = prompt.get(node_id)
    if not isinstance(node, Mapping):
        return None
    return hashlib.sha256(f"{node_id}\0{_content(prompt, node_id, memo, set())}".encode()).hexdigest()


def _content(prompt: Mapping[str, Any], node_id: str, memo: dict[str, str], walking: set[str]) -> str:
    """A node's class and inputs as canonical JSON, links as {"@": upstream content digest, "slot": n}."""
    if node_id in memo:
        return memo[node_id]
    node = prompt.get(node_id)
    if not isinstance(node, Mapping) or node_id in walking or len(walking) > DIGEST_DEPTH_MAX:
        return json.dumps(["missing" if not isinstance(node, Mapping) else "cycle", node_id])
    walking.add(node_id)
    inputs = node.get("inputs")
    items = inputs.items() if isinstance(inputs, Mapping) else ()
    canonical = {
        str(name): ({"@": _content(prompt, value[0], memo, walking), "slot": value[1]} if _is_link(value) else value)
        for name, value in items
    }
    walking.discard(node_id)
    text = json.dumps([node.get("class_type"), canonical], sort_keys=True, default=repr, separators=(",", ":"))
    memo[node_id] = hashlib.sha256(text.encode()).hexdigest()
    return memo[node_id]


# -- store --------------------------------------------------------------------------------------------------------
class ReportStore:
    """The last REPORTS_MAX reports by digest (least recently used dropped first), and the node classes that
    ever reported, so a save only digests the nodes that can have a report."""

    def __init__(self, limit: int = REPORTS_MAX) -> None:
        self.limit = limit
        self._reports: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._classes: set[str] = set()
        self._lock = threading.Lock()

    def put(self, digest: str, report: dict[str, Any]) -> None:
        with self._lock:
            self._reports[digest] = report
            self._reports.move_to_end(digest)
            self._classes.add(str(report.get("class_type")))
            while len(self._reports) > self.limit:
                self._reports.popitem(last=False)

    def get(self, digest: str) -> dict[str, Any] | None:
        with self._lock:
            report = self._reports.get(digest)
            if report is not None:
                self._reports.move_to_end(digest)
            return report

    def classes(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._classes)

    def clear(self) -> None:
        with self._lock:
            self._reports.clear()
            self._classes.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._reports)


STORE = ReportStore()


def file_report(prompt: Mapping[str, Any] | None, node_id: Any, report: dict[str, Any]) -> str | None:
    """Keep `report` under the digest of `node_id` in `prompt`; the digest, or None when it could not be kept."""
    try:
        if not isinstance(prompt, Mapping) or node_id is None:
            return None
        digest = prompt_digest(prompt, str(node_id))
        if digest is not None:
            STORE.put(digest, report)
        return digest
    except Exception as err:  # a report is extra: the sampler's latent is what matters
        logger.warning("provenance: engine report not kept: %s", err)
        return None


def find_reports(
    prompt: Mapping[str, Any] | None, save_node_id: str | None, prompt_id: str | None = None
) -> list[dict[str, Any]]:
    """The reports of the reporting nodes upstream of `save_node_id` (all of the prompt's without one), in
    node id order; each a copy naming the node as this prompt has it and whether it came from an earlier
    prompt (`cached`: ComfyUI served the sampler from its cache). Never raises."""
    try:
        if not isinstance(prompt, Mapping):
            return []
        classes = STORE.classes()
        if not classes:
            return []
        memo: dict[str, str] = {}
        found = []
        for node_id in sorted(_upstream(prompt, save_node_id), key=_id_order):
            node = prompt.get(node_id)
            if not isinstance(node, Mapping) or node.get("class_type") not in classes:
                continue
            digest = prompt_digest(prompt, node_id, memo)
            report = STORE.get(digest) if digest is not None else None
            if report is not None:
                found.append(_as_found(report, node_id, prompt_id))
        return found
    except Exception as err:
        logger.warning("provenance: engine reports not looked up: %s", err)
        return []


def _as_found(report: dict[str, Any], node_id: str, prompt_id: str | None) -> dict[str, Any]:
    found = dict(report)
    found["node_id"] = node_id
    ran_in = report.get("prompt_id")
    found["cached"] = bool(prompt_id and ran_in and ran_in != prompt_id)
    return found


def _id_order(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _upstream(prompt: Mapping[str, Any], save_node_id: str | None) -> set[str]:
    if save_node_id is None or save_node_id not in prompt:
        return {str(k) for k in prompt}
    seen, todo = set(), [save_node_id]
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = prompt.get(node_id)
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if isinstance(inputs, Mapping):
            todo.extend(v[0] for v in inputs.values() if _is_link(v) and v[0] not in seen)
    seen.discard(save_node_id)
    return seen


# -- the record ---------------------------------------------------------------------------------------------------
def amender(
    prompt: Mapping[str, Any] | None, save_node_id: str | None, prompt_id: str | None
) -> Callable[[Record], None] | None:
    """What a save applies to its record: the reports upstream of it (None when there are none)."""
    reports = find_reports(prompt, save_node_id, prompt_id)
    if not reports:
        return None
    return lambda record: apply_reports(record, reports)


def apply_reports(record: Record, reports: list[dict[str, Any]]) -> None:
    """record.extra["engines"] = the reports; each reporting node's pass, and the generation when its base pass
    is one, take the plan's effective seed/steps/cfg/sampler/scheduler/denoise where the record has no value or
    has the node's own widget (which may say "auto" or 0); a value linked from another node stays. The pass's
    `sources` and provenance.field_sources name the report ("engine:<node id>") for each field set. Never raises."""
    try:
        record.extra[EXTRA_KEY] = reports
        by_node = {str(r.get("node_id")): r for r in reports}
        for entry in record.passes:
            report = by_node.get(entry.node_id)
            params = _params(report)
            if not params:
                continue
            sources = entry.other.setdefault("sources", {})
            for key, field in RECORD_FIELDS.items():
                if key in params and (getattr(entry, field) is None or _widget(record, entry.node_id, key)):
                    setattr(entry, field, params[key])
                    sources[field] = SOURCE_PREFIX + entry.node_id
        if record.passes and record.passes[0].node_id in by_node:
            _generation(record, record.passes[0].node_id, _params(by_node[record.passes[0].node_id]))
    except Exception as err:
        logger.warning("provenance: engine reports not applied to the record: %s", err)
        record.warn(f"engine reports not applied: {type(err).__name__}: {err}")


def _generation(record: Record, node_id: str, params: dict[str, Any]) -> None:
    gen, sources = record.generation, record.provenance.field_sources
    for key, field in RECORD_FIELDS.items():
        if key in params and (getattr(gen, field) is None or _widget(record, node_id, key)):
            setattr(gen, field, params[key])
            sources[field] = SOURCE_PREFIX + node_id


def _widget(record: Record, node_id: str, name: str) -> bool:
    """Whether the node's input `name` is its own widget value in the record's prompt (not a link)."""
    node = record.prompt.get(node_id) if isinstance(record.prompt, Mapping) else None
    inputs = node.get("inputs") if isinstance(node, Mapping) else None
    return isinstance(inputs, Mapping) and name in inputs and not _is_link(inputs[name])


def _params(report: Mapping[str, Any] | None) -> dict[str, Any]:
    plan = report.get("plan") if isinstance(report, Mapping) else None
    params = plan.get("params") if isinstance(plan, Mapping) else None
    return dict(params) if isinstance(params, Mapping) else {}


# -- stage timings and peak memory --------------------------------------------------------------------------------
class Stages:
    """Per-stage wall time (ms) and peak memory: on CUDA the allocator's peak and the device's usage after the
    stage; on CPU the peak RSS of the stage (/proc/self/clear_refs "5" resets VmHWM, Linux ≥ 4.0), else the
    process's lifetime peak (ru_maxrss) with a note. Measuring never raises."""

    def __init__(self, device: Any = None) -> None:
        self.device = device
        self.timings_ms: dict[str, float | None] = {}
        self.peak_memory: dict[str, Any] = {}
        self._cuda = _cuda(device)
        self._resettable = True

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._reset()
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings_ms[name] = round((time.perf_counter() - started) * 1000, 3)
            self.peak_memory[name] = self._peak()

    def _reset(self) -> None:
        try:
            if self._cuda is not None:
                self._cuda.reset_peak_memory_stats(self.device)
            elif self._resettable:
                with open(_CLEAR_REFS, "w") as handle:
                    handle.write("5")
        except Exception:  # not permitted here (a container, another OS): lifetime peak instead
            self._resettable = False

    def _peak(self) -> dict[str, Any]:
        try:
            if self._cuda is not None:
                free, total = self._cuda.mem_get_info(self.device)
                return {
                    "device": str(self.device),
                    "allocated_peak_bytes": int(self._cuda.max_memory_allocated(self.device)),
                    "device_used_bytes": int(total - free),
                    "device_total_bytes": int(total),
                    "note": "allocated_peak_bytes is PyTorch's allocator; weights ComfyUI keeps outside it "
                    "(dynamic VRAM) count only in device_used_bytes, read after the stage",
                }
            hwm = _vm_hwm() if self._resettable else None
            if hwm is not None:
                return {"device": "cpu", "rss_peak_bytes": hwm}
            kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return {"device": "cpu", "rss_peak_bytes": kib * 1024, "note": "process lifetime peak (ru_maxrss)"}
        except Exception as err:
            return {"error": f"{type(err).__name__}: {err}"}


def _vm_hwm() -> int | None:
    with open(_STATUS, "rb") as handle:
        for line in handle:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def _cuda(device: Any) -> Any:
    """torch.cuda when `device` is a CUDA device and torch is already loaded (never imported from here)."""
    torch = sys.modules.get("torch")
    if torch is None or getattr(device, "type", None) != "cuda":
        return None
    return torch.cuda

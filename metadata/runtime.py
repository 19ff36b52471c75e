"""Runtime capture merged into the parser's record: parser baseline, runtime overrides, both kept.

A hook session's snapshot (hooks/session.py) says what really ran. The merge parses the prompt a
second time with a RuntimeView of it, so every value the graph links (a seed from a custom
node, a switch's selector, a math node's inputs, a prompt built at run time) is the one that
flowed, and static evaluation fills in the rest. Comparing that record with the static one
field by field gives `provenance.disagreements` (both had a value, they differ; the runtime
value is kept) and `provenance.filled_at_runtime` (the parser had none, or only candidates).
Inputs the static parse listed as unresolved and the run settled move from
`provenance.unresolved` to `provenance.resolved_at_runtime`. The `runtime` block keeps the
executed nodes upstream of the save node, their timings and resolved inputs and outputs; past
the inline budget it moves to `<image>.runtime.json` and the record keeps a pointer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from . import settings
from .limits import KIB
from .parser.parse import WorkflowParser
from .parser.runtime_view import RuntimeView
from .record import Generation, Record
from .settings_keys import env_name

logger = logging.getLogger(__name__)

MODE = "parser+hooks"
TARGET = "runtime"
SIDECAR = "sidecar:runtime"
ENV_INLINE_KB = env_name("runtime_inline_kb")
SKIP_GENERATION = frozenset({"other", "api_node"})
PASS_FIELDS = (
    *("seed", "steps", "cfg", "sampler", "scheduler", "denoise", "start_step", "end_step", "positive"),
    *("negative", "model", "width", "height", "add_noise", "guidance", "shift", "frames"),
)
# The base pass is what `generation` reports; only what generation does not repeat is compared there.
BASE_PASS_FIELDS = ("start_step", "end_step", "model", "add_noise")
# Hidden inputs that carry the whole graph, which the record holds already.
GRAPH_INPUTS = frozenset({"prompt", "extra_pnginfo", "dynprompt"})
MAX_DEPTH = 8


def unusable(snapshot: Any, prompt_id: str | None) -> str | None:
    """Why a snapshot cannot be merged into the save of `prompt_id`, or None when it can."""
    if not isinstance(snapshot, Mapping) or not isinstance(snapshot.get("nodes"), Mapping):
        return "the snapshot has no nodes"
    theirs = snapshot.get("prompt_id")
    if prompt_id is not None and theirs is not None and str(theirs) != prompt_id:
        return f"the snapshot is of prompt {theirs}, not {prompt_id}"
    return None


def merge(
    static: Record,
    parser: WorkflowParser,
    *,
    prompt: Mapping[str, Any],
    save_node_id: str | None,
    workflow: Mapping[str, Any] | None,
    snapshot: Mapping[str, Any],
) -> Record:
    """The runtime-aware record: `static` is the parser's own reading of the same prompt, left as it was."""
    analysis = parser.analyse(prompt, save_node_id, workflow, RuntimeView(snapshot))
    record = analysis.record
    record.runtime = seen = block(snapshot, analysis.upstream, save_node_id)
    _compare(static, record)
    prov = record.provenance
    before = static.provenance.other.get("unresolved") or []
    after = prov.other.get("unresolved") or []
    resolved = [u for u in before if u not in after]
    if resolved:
        prov.other["resolved_at_runtime"] = resolved
    prov.capture_mode = MODE
    if seen["errors"]:
        record.warn(f"runtime capture reported {len(seen['errors'])} error(s); see runtime.errors")
    return record


# -- the runtime block ------------------------------------------------------------------------------
def block(snapshot: Mapping[str, Any], upstream: Collection[str], save_node_id: str | None) -> dict[str, Any]:
    """The snapshot cut down to the nodes upstream of the save node, as strict JSON."""
    nodes = snapshot.get("nodes")
    by_id = {str(k): v for k, v in nodes.items()} if isinstance(nodes, Mapping) else {}
    order = snapshot.get("order")
    listed = [str(i) for i in order if isinstance(i, (str, int))] if isinstance(order, list) else []
    ran = [i for i in dict.fromkeys(listed) if i != save_node_id and _upstream(i, upstream)]
    # Cached nodes are in `nodes` only (they did not run); they follow the nodes that ran.
    ids = dict.fromkeys([*ran, *(i for i in by_id if i != save_node_id and _upstream(i, upstream))])
    entries = {i: _entry(by_id[i]) for i in ids if i in by_id}
    durations = [e["duration_ms"] for e in entries.values() if not e.get("cached") and _number(e.get("duration_ms"))]
    errors = snapshot.get("errors")
    return {
        "prompt_id": _text(snapshot.get("prompt_id")),
        "started": _text(snapshot.get("started")),
        "ended": _text(snapshot.get("ended")),
        "complete": bool(snapshot.get("complete")),
        "order": ran,
        "total_ms": round(float(sum(durations)), 3),
        "nodes": entries,
        "errors": [str(e) for e in errors] if isinstance(errors, list) else [],
    }


def _upstream(node_id: str, upstream: Collection[str]) -> bool:
    # Nodes a node expanded into at run time are named "<its id>.<call>.<graph>.<n>" by ComfyUI's GraphBuilder.
    return node_id in upstream or node_id.partition(".")[0] in upstream


def _entry(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        return {}
    entry = {str(k): _clean(v) for k, v in raw.items() if k not in ("inputs", "outputs")}
    inputs = raw.get("inputs")
    if isinstance(inputs, Mapping):
        entry["inputs"] = {
            str(k): _clean(v)
            for k, v in inputs.items()
            if not (k in GRAPH_INPUTS and isinstance(v, Mapping) and "shape" not in v)
        }
    outputs = raw.get("outputs")
    entry["outputs"] = [_clean(v) for v in outputs] if isinstance(outputs, (list, tuple)) else None
    entry["cached"] = bool(raw.get("cached"))
    return entry


def _clean(value: Any, depth: int = 0) -> Any:
    """Strict JSON: non-finite numbers become null, unknown objects their type name, depth is capped."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, Mapping):
        return {str(k): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value]
    return f"<{type(value).__name__}>"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


# -- parser against runtime, field by field ------------------------------------------------------------
Slot = tuple[Any, str]  # (a record part or its `other` dict, attribute or key)


def _slots(record: Record) -> dict[str, Slot]:
    gen = record.generation
    slots: dict[str, Slot] = {
        f"generation.{f.name}": (gen, f.name) for f in dataclasses.fields(Generation) if f.name not in SKIP_GENERATION
    }
    slots.update({f"generation.{k}": (gen.other, k) for k, v in gen.other.items() if _scalar(v)})
    for index, entry in enumerate(record.passes):
        names = BASE_PASS_FIELDS if index == 0 else PASS_FIELDS
        slots.update({f"passes[{index}].{name}": (entry, name) for name in names})
    return slots


def _get(slot: Slot) -> Any:
    holder, key = slot
    return holder.get(key) if isinstance(holder, dict) else getattr(holder, key)


def _put(slot: Slot, value: Any) -> None:
    holder, key = slot
    if isinstance(holder, dict):
        holder[key] = value
    else:
        setattr(holder, key, value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


def _same(a: Any, b: Any) -> bool:
    """Equal, and not merely as True == 1."""
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _compare(static: Record, record: Record) -> None:
    """Fill `record`'s disagreements and filled fields; where the run gave nothing, the parser's value stays."""
    disagreements: list[dict[str, Any]] = []
    filled: list[str] = []
    static_slots = _slots(static)
    index_of = {p.node_id: i for i, p in enumerate(static.passes)}
    slots = _slots(record)
    for path, slot in static_slots.items():  # extras only the parser found stay
        if path not in slots and slot[0] is static.generation.other and _get(slot) is not None:
            record.generation.other[slot[1]] = _get(slot)
    for path, slot in slots.items():
        ours = _static_path(path, record, index_of)
        if ours is None:
            continue  # a pass the static reading does not have: the pass list below reports it
        theirs = static_slots.get(ours)
        before, after = (_get(theirs) if theirs is not None else None), _get(slot)
        if _same(before, after):
            continue
        if after is None:
            _put(slot, before)  # the run said nothing the rules could use: the parser's value stands
        elif before is None:
            filled.append(path)
        else:
            disagreements.append({"field": path, "parser": before, "runtime": after})
    for path, before, after in (
        ("passes", [p.node_id for p in static.passes], [p.node_id for p in record.passes]),
        ("models", _models(static, candidates=True), _models(record)),
        ("generation.input_images", static.generation.input_images or [], record.generation.input_images or []),
    ):
        if before == after:
            continue
        if not before or set(after) <= set(before):  # nothing known, or candidates the run narrowed down
            filled.append(path)
        else:
            disagreements.append({"field": path, "parser": before, "runtime": after})
    record.provenance.disagreements = disagreements
    record.provenance.filled_at_runtime = filled


def _static_path(path: str, record: Record, index_of: Mapping[str, int]) -> str | None:
    """The same field in the static record: passes are matched by their sampler's node id."""
    if not path.startswith("passes["):
        return path
    index, _, rest = path[len("passes[") :].partition("].")
    static_index = index_of.get(record.passes[int(index)].node_id)
    if static_index is None or (static_index == 0) != (index == "0"):
        return None
    return f"passes[{static_index}].{rest}"


def _models(record: Record, *, candidates: bool = False) -> list[str]:
    """role:name of the record's models; with `candidates`, also those it could not decide on (behind an
    unresolved switch), which the run may narrow down to."""
    found = [f"{m.role}:{m.name}" for m in record.models]
    if candidates:
        found += [f"{m.get('role')}:{m.get('name')}" for m in record.provenance.other.get("candidate_models") or []]
    return found


# -- the inline budget -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spill:
    """A runtime block too big to stay inline: the block, its sidecar's name, and why it moved."""

    block: dict[str, Any]
    name: str
    reason: str


def inline_budget() -> int:
    """Bytes the runtime block may take inline: the `runtime_inline_kb` setting (PROVENANCE_RUNTIME_INLINE_KB;
    default limits.RUNTIME_INLINE_MAX)."""
    return int(settings.current().runtime_inline_kb * KIB)


def spill(record: Record, sidecar_name: str) -> Spill | None:
    """Past the inline budget, swap the record's runtime block for a pointer to `sidecar_name`."""
    full = record.runtime
    if not isinstance(full, dict) or "sidecar_ref" in full:
        return None
    size = len(json.dumps(full, separators=(",", ":"), allow_nan=False))
    limit = inline_budget()
    if size <= limit:
        return None
    nodes = full.get("nodes")
    record.runtime = {
        "sidecar_ref": sidecar_name,
        "prompt_id": full.get("prompt_id"),
        "complete": full.get("complete"),
        "node_count": len(nodes) if isinstance(nodes, Mapping) else 0,
        "total_ms": full.get("total_ms"),
        "bytes": size,
    }
    return Spill(full, sidecar_name, f"runtime block ({size:,} bytes) exceeds the {limit:,}-byte inline budget")

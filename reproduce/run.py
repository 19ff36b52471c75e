"""Reproduce one file on a ComfyUI server: rebuild the prompt, check the server, queue, fetch, compare.

Exit codes: 0 identical pixels, 1 the pixels differ, 2 cannot reproduce (refused, failed, unreachable).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .check import Checks, check
from .client import Client, Progress, ReproduceError, mapping
from .compare import Comparison, compare
from .pin import Pin, pin, rename, set_seed, trim
from .target import Target, load

logger = logging.getLogger(__name__)

IDENTICAL, DIFFERS, CANNOT = 0, 1, 2
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_HASH_WAIT_S = 120.0

# Says what is being done, one line at a time (the CLI prints these on stderr).
Say = Callable[[str], None]


@dataclass
class Options:
    server: str
    out: Path | None = None
    seed: int | None = None
    dry_run: bool = False
    timeout: float = DEFAULT_TIMEOUT_S
    hash_wait: float = DEFAULT_HASH_WAIT_S
    # False: return as soon as the prompt is queued (status "queued"), nothing fetched or compared (the web panel).
    wait: bool = True


@dataclass
class Report:
    target: str
    server: str
    status: str = "failed"
    exit_code: int = CANNOT
    prompt: dict[str, Any] = field(default_factory=dict)
    pins: list[Pin] = field(default_factory=list)
    seed_set: str | None = None
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: Checks = field(default_factory=Checks)
    freed: bool = False
    prompt_id: str | None = None
    output: dict[str, str] | None = None
    comparison: Comparison | None = None

    def to_dict(self, *, with_prompt: bool = False) -> dict[str, Any]:
        data = {
            "target": self.target,
            "server": self.server,
            "status": self.status,
            "exit_code": self.exit_code,
            "pinned": [p.to_dict() for p in self.pins],
            "seed_set": self.seed_set,
            "dropped_nodes": self.dropped,
            "notes": self.notes,
            "checks": self.checks.to_dict(),
            "freed_caches": self.freed,
            "prompt_id": self.prompt_id,
            "output": self.output,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }
        if with_prompt:
            data["prompt"] = self.prompt
        return data


def rebuild(target: Target, seed: int | None, report: Report, object_info: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt to queue: pinned, seeded, cut down to the save node, with a prefix of its own."""
    prompt, report.pins, warnings = pin(target.prompt, target.record.runtime)
    report.notes += warnings
    if seed is not None:
        report.seed_set = set_seed(prompt, target.record, seed)
    save = target.save_node_id if target.save_node_id in prompt else None
    roots = [save] if save else [k for k, v in prompt.items() if _is_output(v, object_info)]
    prompt, report.dropped = trim(prompt, roots)
    stem = target.original.name if target.original else None
    for node_id in roots:
        if "filename_prefix" in (prompt[node_id].get("inputs") or {}):
            rename(prompt, node_id, stem)
    if save is None:
        report.notes.append("the saving node is unknown: every output node runs, under the reproduce/ prefix")
    return prompt


def _is_output(node: Any, object_info: Mapping[str, Any]) -> bool:
    return bool(mapping(object_info.get(str(mapping(node).get("class_type")))).get("output_node"))


def reproduce(spec: str | Target, options: Options, say: Say, progress: Progress | None = None) -> Report:
    """Everything `provenance reproduce` does, for a spec or a Target already loaded; ReproduceError when it
    cannot even get to a report."""
    target = spec if isinstance(spec, Target) else load(spec)
    client = Client(options.server)
    report = Report(target=target.label, server=client.url, notes=list(target.notes))
    object_info = client.object_info()
    report.prompt = prompt = rebuild(target, options.seed, report, object_info)
    report.checks = check(client, prompt, target, object_info, hash_wait=options.hash_wait)
    if options.out is not None:
        _write_prompt(options.out, prompt)
    if report.checks.differences:
        report.status = "refused"
        return report
    if options.dry_run:
        report.status, report.exit_code = "dry-run", IDENTICAL
        return report
    client.free()
    report.freed = True
    say("cleared the server's caches (POST /free), so the prompt really runs again")
    report.prompt_id = str(uuid.uuid4())
    workflow = target.workflow
    extra = {"extra_pnginfo": {"workflow": workflow}} if isinstance(workflow, dict) else {}
    client.queue(prompt, report.prompt_id, extra)
    say(f"queued prompt {report.prompt_id} on {client.url}")
    if not options.wait:
        report.status, report.exit_code = "queued", IDENTICAL  # so far so good: the run's outcome is not awaited
        return report
    entry = client.wait(report.prompt_id, options.timeout, progress)
    _raise_for_error(entry)
    report.output = _pick_output(entry, target)
    data = client.view(report.output["filename"], report.output["subfolder"], report.output["type"])
    if target.original is None:
        report.status, report.exit_code = "ran", CANNOT  # it ran, but nothing shows it came out the same
        report.notes.append("no original file to compare with: the result cannot be shown identical")
        return report
    report.comparison = compare(target.original, data, report.output["filename"], target.record)
    identical = report.comparison.identical
    report.status, report.exit_code = ("identical", IDENTICAL) if identical else ("differs", DIFFERS)
    return report


def _write_prompt(path: Path, prompt: Mapping[str, Any]) -> None:
    try:
        path.write_text(json.dumps(prompt, indent=2, ensure_ascii=False) + "\n", "utf-8")
    except OSError as err:
        raise ReproduceError(f"{path}: cannot write the prompt: {err.strerror or err}") from err


def _raise_for_error(entry: Mapping[str, Any]) -> None:
    status = mapping(entry.get("status"))
    if status.get("status_str") == "success":
        return
    for message in status.get("messages") or []:
        if isinstance(message, list) and len(message) == 2 and message[0] == "execution_error":
            detail = mapping(message[1])
            text = " ".join(str(detail.get("exception_message", "")).split())
            node = f"node {detail.get('node_id')} ({detail.get('node_type')})"
            raise ReproduceError(f"ComfyUI failed running the prompt: {node}: {text or detail.get('exception_type')}")
    raise ReproduceError(f"ComfyUI ended the prompt with status {status.get('status_str')!r}")


def _pick_output(entry: Mapping[str, Any], target: Target) -> dict[str, str]:
    """The save node's image at the original's batch index (its only one when there is one)."""
    outputs = mapping(entry.get("outputs"))
    node = mapping(outputs.get(target.save_node_id or ""))
    if not node:
        node = next((mapping(v) for v in outputs.values() if mapping(v).get("images")), {})
    images = [i for i in node.get("images") or [] if isinstance(i, Mapping) and i.get("filename")]
    if not images:
        raise ReproduceError("the run finished without saving an image")
    image = images[min(target.batch_index, len(images) - 1)]
    return {k: str(image.get(k) or d) for k, d in (("filename", ""), ("subfolder", ""), ("type", "output"))}

"""`provenance batch`: run a template's jobs on a ComfyUI server, collect the files, keep manifest.json current.

One job at a time: queue it (a new prompt_id), wait for its history, fetch each output through
/view (with the sidecars its record names), read the file's record, and rewrite manifest.json
atomically. A server that goes away stops the batch with every finished image in the manifest;
`--resume` plans the same jobs again (the manifest's resolved template fixes every seed and draw)
and queues only those whose exact graph no image of the manifest was made from.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..metadata import files
from ..metadata.errors import ReadError
from ..metadata.formats import sidecar
from ..metadata.read import read
from ..metadata.record import Record
from . import jobgraph, manifest, ui_workflow
from .client import Client, ReproduceError
from .template import Job, Template, expand, load, settle, workflow_path

logger = logging.getLogger(__name__)

IMAGE_TIMEOUT_S = 1800.0
Say = Callable[[str], None]


class BatchRefused(ReproduceError):
    """--out cannot take this batch (a manifest there already, a foreign file) or --resume cannot continue."""


class BatchStopped(ReproduceError):
    """The batch stopped before its last image; the manifest holds every image finished so far."""


@dataclass
class Plan:
    """A settled template, the batch's API graph (overrides applied) and the inputs each job sets."""

    template: Template
    graph: jobgraph.Graph
    targets: jobgraph.Targets
    jobs: list[Job]
    ui: dict[str, Any] | None = None  # the UI workflow, sent along with each job (its widgets set)
    object_info: dict[str, Any] | None = None

    def job_prompt(self, job: Job) -> jobgraph.Graph:
        return jobgraph.job_graph(self.graph, self.targets, job)

    def extra_data(self, job: Job) -> dict[str, Any]:
        if self.ui is None or self.object_info is None:
            return {}
        values: dict[tuple[str, str], Any] = {(s.node, s.input): job.prompt for s in self.targets.prompt}
        values.update({(s.node, s.input): job.seed for s in self.targets.seed})
        if job.negative is not None:
            values.update({(s.node, s.input): job.negative for s in self.targets.negative})
        return {"extra_pnginfo": {"workflow": ui_workflow.with_values(self.ui, self.object_info, values)}}


def plan(template_file: Path, client: Client, *, drawn: dict[str, Any] | None = None) -> Plan:
    """Load, convert, override, locate and expand; `drawn` are the seeds a manifest already settled on."""
    template = load(template_file)
    workflow = jobgraph.load_workflow(workflow_path(template, template_file.parent))
    info: dict[str, Any] | None = None
    if ui_workflow.is_ui(workflow):
        info = client.object_info()
    graph = jobgraph.apply_overrides(jobgraph.api_graph(workflow, lambda: info or {}), template.overrides)
    graph = jobgraph.apply_options(graph, template.options)
    targets = jobgraph.locate(graph, template)
    if drawn:
        template = _with_drawn(template, drawn)
    template = settle(template, jobgraph.workflow_seed(graph, targets))
    ui = workflow if ui_workflow.is_ui(workflow) else None
    return Plan(template, graph, targets, expand(template), ui, info)


def _with_drawn(template: Template, drawn: dict[str, Any]) -> Template:
    """The seeds settle() drew when the batch started, where the template still leaves them open."""

    def pick(key: str) -> int | None:
        mine, theirs = getattr(template, key), drawn.get(key)
        return theirs if mine is None and isinstance(theirs, int) else mine

    return replace(template, base_seed=pick("base_seed"), variation_seed=pick("variation_seed"))


@dataclass
class Batch:
    """One run of a plan into `out`; `images` grows as jobs finish, and manifest.json with it."""

    plan: Plan
    client: Client
    out: Path
    say: Say
    timeout_s: float = IMAGE_TIMEOUT_S
    snapshot: dict[str, Any] = field(default_factory=dict)
    images: list[dict[str, Any]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    @property
    def manifest_path(self) -> Path:
        return self.out / manifest.FILE_NAME

    def save(self) -> None:
        manifest.write(self.manifest_path, {"snapshot": self.snapshot, "images": self.images})

    def pending(self) -> list[Job]:
        done = {_key(i.get("api_prompt")) for i in self.images}
        return [job for job in self.plan.jobs if _key(self.plan.job_prompt(job)) not in done]

    def run(self) -> int:
        """Run every pending job; the number of images written. BatchStopped when the server fails us."""
        todo = self.pending()
        total = len(self.plan.jobs)
        repeats = total - len({_key(self.plan.job_prompt(job)) for job in self.plan.jobs})
        if repeats:  # a fixed seed with num_images > 1: the same graph again
            self.say(f"{repeats} job(s) repeat an earlier job's exact graph: ComfyUI answers them from its cache")
        if len(todo) < total:
            self.say(f"{total - len(todo)} of {total} jobs already done; {len(todo)} to go")
        written = 0
        for job in todo:
            try:
                written += self._one(job, total)
            except (ReproduceError, OSError, ReadError) as err:
                raise BatchStopped(
                    f"stopped at job {job.index + 1} of {total} ({err}); the manifest holds {len(self.images)} "
                    f"image(s): run again with --resume --out {self.out} to finish"
                ) from err
        return written

    def _one(self, job: Job, total: int) -> int:
        started = time.monotonic()
        prompt = self.plan.job_prompt(job)
        self.say(f"[{job.index + 1}/{total}] seed {job.seed}: {_short(job.prompt)}")
        prompt_id = str(uuid.uuid4())
        self.client.queue(prompt, prompt_id, self.plan.extra_data(job))
        shown: list[str] = []

        def progress(elapsed: float, state: str) -> None:
            if not shown or shown[-1] != state:
                shown.append(state)
                logger.info("provenance: job %d: %s (%.1f s)", job.index + 1, state, elapsed)

        entry = self.client.wait(prompt_id, self.timeout_s, progress)
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            raise ReproduceError(f"prompt {prompt_id} failed: {_failure(status)}")
        outputs = _outputs(entry)
        if not outputs:
            raise ReproduceError(f"prompt {prompt_id} saved no file (no save node wrote to the output folder?)")
        for filename, subfolder in outputs:
            record = self._fetch(filename, subfolder)
            planned = (job.seed, job.prompt, job.negative)
            item = manifest.image_entry(
                filename, subfolder, record, api_prompt=prompt, applied=job.applied, planned=planned
            )
            self.images.append(item)
            if record is not None:
                self.records.append(record)
            info = self.snapshot["runtime_info"]  # the models, with hashes, as the records name them
            self.snapshot["runtime_info"] = manifest.runtime_info(
                info["comfyui_version"], info["pack_version"], self.records
            )
            self.save()
            self.say(
                f"[{job.index + 1}/{total}] saved {_local(subfolder, filename)} ({time.monotonic() - started:.1f} s)"
            )
        return len(outputs)

    def _fetch(self, filename: str, subfolder: str) -> Record | None:
        """Download a file (and the sidecars its record names) into `out`; its record, or None with a warning."""
        target = self.out / _local(subfolder, filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(target, self.client.view(filename, subfolder))
        try:
            record = read(target)
        except ReadError as err:
            logger.warning("provenance: %s carries no record (%s); the manifest keeps the planned values", target, err)
            return None
        fetched = False
        for placement in record.provenance.embedding:
            suffix = sidecar.SUFFIXES.get(placement.location)
            if suffix is None or placement.status == "failed":
                continue
            try:
                files.write_atomic(target.with_name(filename + suffix), self.client.view(filename + suffix, subfolder))
                fetched = True
            except ReproduceError as err:
                logger.warning("provenance: sidecar %s%s not fetched: %s", filename, suffix, err)
        return read(target) if fetched else record


def start(plan_: Plan, client: Client, out: Path, say: Say, timeout_s: float = IMAGE_TIMEOUT_S) -> Batch:
    """A new batch in `out` (created); its manifest is written at once, with no image yet."""
    path = out / manifest.FILE_NAME
    if path.exists():
        try:
            manifest.read(path)
        except (ReadError, manifest.ManifestError) as err:
            raise BatchRefused(f"{path} is there and is not a batch manifest ({err}); choose another --out") from err
        raise BatchRefused(f"{path} holds a batch already: finish it with --resume, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    comfyui_version, pack_version = _versions(client)
    t = plan_.template
    batch = Batch(plan_, client, out, say, timeout_s)
    batch.snapshot = manifest.snapshot(
        runtime_info=manifest.runtime_info(comfyui_version, pack_version, []),
        resolved_template=t.resolved(),
        generation_params=manifest.generation_params(
            t.mode, t.seed_mode, t.base_seed, t.num_images, t.total_combinations()
        ),
        api_params=plan_.graph,
        variations=t.used(),
    )
    batch.save()
    return batch


def resume(template_file: Path, client: Client, out: Path, say: Say, timeout_s: float = IMAGE_TIMEOUT_S) -> Batch:
    """The batch `out`/manifest.json started, planned again; refused when the template or workflow changed."""
    path = out / manifest.FILE_NAME
    if not path.exists():
        raise BatchRefused(f"--resume: no {manifest.FILE_NAME} in {out} (start the batch without --resume)")
    try:
        existing = manifest.read(path)
    except (ReadError, manifest.ManifestError) as err:
        raise BatchRefused(f"--resume: {path} is not a batch manifest: {err}") from err
    snapshot = existing["snapshot"]
    before = snapshot.get("resolved_template")
    if not isinstance(before, dict):
        raise BatchRefused(f"--resume: {path} was not written by a batch (built from a log?)")
    plan_ = plan(template_file, client, drawn=before)
    changed = next((k for k, v in plan_.template.resolved().items() if before.get(k) != v), None)
    if changed is not None:
        raise BatchRefused(f"--resume: the template's {changed} changed since the batch started; use another --out")
    if snapshot.get("api_params") != plan_.graph:
        raise BatchRefused("--resume: the workflow (or its overrides) changed since the batch started")
    batch = Batch(plan_, client, out, say, timeout_s, snapshot=snapshot, images=list(existing["images"]))
    for item in batch.images:
        local = out / _local(item["subfolder"], item["filename"])
        try:
            batch.records.append(read(local))
        except (ReadError, OSError) as err:
            logger.debug("provenance: %s not read again: %s", local, err)
    return batch


def _versions(client: Client) -> tuple[str | None, str | None]:
    status = client.pack_status()
    if status is not None and status.get("comfyui_version"):
        pack = status.get("pack_version")
        return str(status["comfyui_version"]), str(pack) if pack is not None else None
    return client.comfyui_version(), None


def _outputs(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """(filename, subfolder) of each file the prompt saved to the output folder, in node order."""
    found = []
    for node_output in (entry.get("outputs") or {}).values():
        for items in (node_output or {}).values() if isinstance(node_output, dict) else ():
            for item in items if isinstance(items, list) else ():
                if isinstance(item, dict) and item.get("type") == "output" and isinstance(item.get("filename"), str):
                    found.append((item["filename"], str(item.get("subfolder") or "")))
    return found


def _local(subfolder: str, filename: str) -> Path:
    """Where a server file goes under --out; a name that would leave it is refused."""
    parts = [p for p in subfolder.replace("\\", "/").split("/") if p] + [filename]
    if any(p in (".", "..") or "/" in p or "\\" in p or "\0" in p for p in parts) or subfolder.startswith("/"):
        raise ReproduceError(f"the server named a file outside its output folder: {subfolder}/{filename}")
    return Path(*parts)


def _failure(status: dict[str, Any]) -> str:
    for message in status.get("messages") or []:
        if isinstance(message, list) and len(message) == 2 and message[0] == "execution_error":
            data = message[1] if isinstance(message[1], dict) else {}
            text = " ".join(str(data.get("exception_message", "")).split())[:300]
            return f"node {data.get('node_id')} ({data.get('node_type')}): {text or 'an error'}"
    return "the server reported an error"


def _key(graph: Any) -> str:
    return json.dumps(graph, sort_keys=True, separators=(",", ":"))


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"

"""WorkflowParser: a static reading of an API prompt into a record, driven by capture rules.

Only what lies upstream of the save node counts, and only the inputs a switch selects. The
samplers (and cloud API nodes) in the output's latent/pixel ancestry become passes, ordered by
that ancestry (base first); `generation` is the base pass, as A1111 reports it. Samplers that
only feed conditioning (a depth map, a reference image) are listed as auxiliary. Values the
rules cannot evaluate statically are never guessed: they stay null and are listed under
provenance.other["unresolved"] with the node they depend on, for runtime capture to fill.
Given a RuntimeView (what the executor saw), the same reading consults the run's values where
the graph has them, and only falls back to static evaluation where it does not.
"""

from __future__ import annotations

import heapq
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import GraphTooLarge
from ..limits import GRAPH_NODES_MAX
from ..record import COMPOSITE, TRAINED, Generation, Model, Record
from .auxiliary import purposes
from .graph import Graph, Node, sort_key
from .infer import with_inferred
from .loras import loras_of
from .passes import PassBuilder, PassInfo, normalized
from .rules import RuleSet, default_rules
from .runtime_view import ABSENT, RuntimeView
from .schemas import SchemaSet
from .values import Values
from .walks import GENERATORS, Walker, merge_fields

MODEL_ROLE_ORDER = (
    "checkpoint",
    "unet",
    "clip",
    "vae",
    "lora",
    "embedding",
    "upscaler",
    "controlnet",
    "clip_vision",
    "style_model",
    "gligen",
    "prompt_writer",
)
# The role of a model that only writes a prompt (an LLM feeding TextGenerate), never the image's encoder.
PROMPT_WRITER = "prompt_writer"
RE_EMBEDDING = re.compile(r"embedding:([^\s,()]+?)(?::[\d.]+)?(?=[\s,()]|$)")
SKIP_NAMES = frozenset({"", "None", "none", "Baked VAE"})
NOT_EXTRAS = frozenset({"sources", "batch_size", "clip_skip", "leftover_noise"})
# Nodes between a generator and the save node that leave the pixel size as the generator made it.
SIZE_KEEPING = frozenset({*GENERATORS, "output", "decode", "switch"})
# field_sources value: the field is the saved pixels' (filled at save time, see fill_size_from_pixels).
PIXELS = "pixels"


@dataclass(frozen=True)
class Analysis:
    """A parse and the nodes it found upstream of the save node (switches followed as they chose)."""

    record: Record
    upstream: frozenset[str]


class WorkflowParser:
    """Pure: reads the prompt (and the runtime view), never mutates them; unknown nodes are data, not errors.

    Without explicit rules it uses the bundled ones plus the user's rules folder (see rules.py).
    """

    def __init__(self, rules: RuleSet | None = None, schemas: SchemaSet | None = None) -> None:
        self.rules = rules if rules is not None else default_rules()
        # Schemas the caller knows (an /object_info file or server); live, workflow and snapshot ones are added.
        self.schemas = schemas

    def parse(
        self,
        prompt: Mapping[str, Any],
        save_node_id: str | None = None,
        workflow: Mapping[str, Any] | None = None,
        runtime: RuntimeView | None = None,
    ) -> Record:
        return self.analyse(prompt, save_node_id, workflow, runtime).record

    def analyse(
        self,
        prompt: Mapping[str, Any],
        save_node_id: str | None = None,
        workflow: Mapping[str, Any] | None = None,
        runtime: RuntimeView | None = None,
    ) -> Analysis:
        if len(prompt) > GRAPH_NODES_MAX:
            raise GraphTooLarge(f"the prompt graph has {len(prompt):,} nodes, over the parser's {GRAPH_NODES_MAX:,}")
        inference = with_inferred(self.rules, prompt, workflow, self.schemas)
        run = _Run(inference.rules, Graph(prompt), runtime)
        record = run.record(prompt, save_node_id, workflow)
        if inference.inferred:  # the record says which classes were read by inference, from which schema
            record.provenance.other["inferred_rules"] = inference.inferred
        for dispute in inference.disputes:
            record.provenance.other.setdefault("rule_disputes", []).append(dispute)
            record.warn(
                f"the rule for {dispute['class_type']} passes output {dispute['output']} on as the {dispute['rule']}"
                f" prompt, but its schema names it {dispute['schema']}: that prompt is not recorded"
            )
        return Analysis(record, frozenset(run.upstream))


class _Run:
    """One parse: the graph, its rules, and what could not be resolved."""

    def __init__(self, rules: RuleSet, graph: Graph, runtime: RuntimeView | None = None) -> None:
        self.graph = graph
        self.values = Values(graph, rules, runtime)
        self.walker = Walker(graph, self.values)
        self.builder = PassBuilder(self.walker)
        self.upstream: dict[str, Node] = {}

    def record(self, prompt: Mapping[str, Any], save_node_id: str | None, workflow: Mapping[str, Any] | None) -> Record:
        rec = Record(prompt=dict(prompt), workflow=dict(workflow) if workflow else None)
        rec.provenance.save_node_id = save_node_id
        if save_node_id is not None and save_node_id in self.graph:
            roots = [save_node_id]
        else:
            if save_node_id is not None:
                rec.warn(f"save node {save_node_id} is not in the prompt; reading every output instead")
            roots = self.graph.sinks()
        upstream = {r: n for r in roots if (n := self.graph.get(r)) is not None}
        self.upstream = self.walker.upstream(roots)
        upstream.update(self.upstream)
        # Nodes reached only through a switch nobody can resolve statically shaped the output or not:
        # their models are candidates, never recorded as used.
        switches = self.values.rules.switches
        unsure = any(n.class_type in switches and not self.walker.switch_resolved(n) for n in self.upstream.values())
        sure = set(upstream) & ({*roots, *self.walker.upstream(roots, sure=True)}) if unsure else set(upstream)
        output, output_sources, terminals, used, direct = self._output(roots)
        passes = _ordered(self._passes(terminals))
        rec.passes = [p.entry for p in passes]
        rec.models, excluded = self._models({i: n for i, n in upstream.items() if i in sure}, passes, used)
        candidates, _ = self._models({i: n for i, n in upstream.items() if i not in sure}, [], [])
        if candidates:
            rec.provenance.other["candidate_models"] = [
                {**m.to_dict(), "reason": "behind a switch whose choice is not known statically"} for m in candidates
            ]
        if passes:
            self._generation(rec, passes, output, output_sources)
            rec.generation.input_images = self._input_images(upstream.values())
            if direct and len(passes) == 1:
                _size_from_pixels(rec)
        else:
            rec.warn("no sampler upstream of the save node: generation fields are unknown")
        self._prompt_writers(rec, roots, upstream)
        self._provenance(rec, upstream, passes, excluded)
        self._ambiguous(rec, passes)
        return rec

    def _prompt_writers(self, rec: Record, roots: list[str], upstream: dict[str, Node]) -> None:
        """Language models that write a prompt at run time: their models are recorded as prompt writers
        (never the image's text encoder) when nothing else uses them, with the instruction they got."""
        llms = self.values.rules.llms
        writers = [n for n in upstream.values() if n.class_type in llms]
        if not writers:
            return
        beside = self.walker.upstream(roots, stop={n.id for n in writers})
        only_theirs = set(upstream) - set(beside) - set(roots)
        for model in rec.models:
            if model.node_id in only_theirs:
                model.other["loaded_as"], model.role = model.role, PROMPT_WRITER
        entries = []
        for node in sorted(writers, key=lambda n: sort_key(n.id)):
            rule = self.values.rule(node)
            assert rule is not None
            entry: dict[str, Any] = {"node_id": node.id, "class_type": node.class_type}
            for name, spec in rule.fields.items():
                value = self.values.field(node, spec)
                if value is not None:
                    entry[name] = value
            runtime = self.values.runtime
            written = runtime.output(node.id, 0) if runtime is not None else ABSENT
            if isinstance(written, str):
                entry["written"] = written  # what it wrote, as the runtime hooks saw it
            feeding = self.walker.upstream([node.id])
            entry["models"] = [m.name for m in rec.models if m.node_id in feeding]
            entries.append(entry)
        rec.generation.other["prompt_writers"] = entries

    def _ambiguous(self, rec: Record, passes: list[PassInfo]) -> None:
        """Fields left empty because two readings disagreed, with both candidates (never one of them)."""
        index = {info.node.id: i for i, info in enumerate(passes)}
        found = []
        for entry in self.walker.ambiguous:
            position = index.get(entry.get("sampler", ""))
            if position is None:
                continue
            field = f"{'generation' if position == 0 else f'passes[{position}]'}.{entry['polarity']}"
            found.append({"field": field, "candidates": entry["candidates"], "node_id": entry["sampler"]})
        if found:
            rec.provenance.other["ambiguous"] = found

    # -- what the save node is made of ----------------------------------------------------------
    def _output(self, roots: list[str]) -> tuple[dict[str, Any], dict[str, str], list[Node], list[str], bool]:
        """Fields of the output nodes (fps), the generators that made the output, the VAEs decoding it,
        and whether the saved pixels come straight from a generator (decoded at most: same size)."""
        fields: dict[str, Any] = {}
        sources: dict[str, str] = {}
        terminals: list[Node] = []
        used: list[str] = []
        direct = True
        for node, out, _ in self.walker.lineage([(r, 0) for r in roots]):
            rule = self.values.rule(node)
            role = rule.role if rule else None
            direct = direct and role in SIZE_KEEPING
            if role in GENERATORS:
                terminals.append(node)
            elif role == "output":
                merge_fields(self.values, fields, sources, node, out)
            elif role == "decode" and rule is not None:
                for vae, _ in self.walker.chain(node.link(rule.input("vae")), "vae"):
                    vae_rule = self.values.rule(vae)
                    if vae_rule is not None and vae_rule.role == "loader":
                        used.append(vae.id)
                        break
        return fields, sources, terminals, used, direct and len(terminals) == 1

    def _passes(self, terminals: list[Node]) -> list[PassInfo]:
        built: dict[str, PassInfo] = {}
        queue = deque(terminals)
        while queue:
            node = queue.popleft()
            rule = self.values.rule(node)
            if node.id in built or rule is None:
                continue
            info = self.builder.build(node, rule)
            built[node.id] = info
            queue.extend(n for a in sorted(info.after, key=sort_key) if (n := self.graph.get(a)) is not None)
        return list(built.values())

    # -- models ------------------------------------------------------------------------------------
    def _models(
        self, upstream: dict[str, Node], passes: list[PassInfo], used: list[str]
    ) -> tuple[list[Model], list[dict[str, Any]]]:
        ranks: dict[str, int] = {}
        for info in passes:
            for node_id in (*info.used, *(u.node_id for u in info.loras)):
                ranks.setdefault(node_id, len(ranks))
        for node_id in used:
            ranks.setdefault(node_id, len(ranks))
        found: list[tuple[Model, int]] = []
        excluded: list[dict[str, Any]] = []
        for node in upstream.values():
            rule = self.values.rule(node)
            if rule is None or not (rule.models or rule.loras):
                continue
            for index, spec in enumerate(rule.models):
                name = self.values.get(node, spec.name) if spec.role != "lora" else None
                if isinstance(name, str) and name not in SKIP_NAMES:
                    found.append((Model(role=spec.role, name=name, node_id=node.id), index))
            for index, use in enumerate(loras_of(self.values, node, rule)):
                if use.excluded:
                    excluded.append(use.to_dict())
                    continue
                model = Model(role="lora", name=use.name, node_id=node.id)
                model.strength_model, model.strength_clip = use.strength_model, use.strength_clip
                if use.source != "loader":
                    model.other["source"] = use.source
                found.append((model, 100 + index))
        seen: set[str] = set()
        for text in (t for info in passes for t in info.texts):
            for name in RE_EMBEDDING.findall(text):
                if name not in seen:
                    seen.add(name)
                    found.append((Model(role="embedding", name=name), len(found)))
        rank = {role: i for i, role in enumerate(MODEL_ROLE_ORDER)}
        far = len(ranks) + 1

        def key(item: tuple[Model, int]) -> tuple[Any, ...]:
            model, index = item
            node_id = model.node_id or ""
            return (rank.get(model.role, len(rank)), ranks.get(node_id, far), sort_key(node_id), index)

        return [m for m, _ in sorted(found, key=key)], excluded

    def _input_images(self, upstream: Iterable[Node]) -> list[str]:
        names = []
        classes = self.values.rules.images
        images = [n for n in upstream if n.class_type in classes]
        for node in sorted(images, key=lambda n: sort_key(n.id)):
            rule = self.values.rule(node)
            spec = rule.fields.get("image") if rule is not None else None
            value = self.values.field(node, spec) if spec else None
            if isinstance(value, str) and value:
                names.append(value)
        return names

    # -- generation and provenance -------------------------------------------------------------
    def _generation(
        self, rec: Record, passes: list[PassInfo], output: dict[str, Any], output_sources: dict[str, str]
    ) -> None:
        base = passes[0]
        p, fields = base.entry, base.fields
        gen = Generation(
            positive=p.positive,
            negative=p.negative,
            seed=p.seed,
            steps=p.steps,
            cfg=p.cfg,
            sampler=p.sampler,
            scheduler=p.scheduler,
            denoise=p.denoise,
            width=p.width,
            height=p.height,
        )
        gen.guidance, gen.shift = p.guidance, p.shift
        # The output's length: the base pass's, else that of the pass that made the video (image -> video).
        gen.frames = next((i.entry.frames for i in passes if i.entry.frames is not None), None)
        gen.batch_size = _int(fields.get("batch_size"))
        gen.clip_skip = _int(fields.get("clip_skip"))
        fps = output.get("fps")
        gen.fps = float(fps) if isinstance(fps, (int, float)) and not isinstance(fps, bool) else None
        if base.api_options is not None:
            gen.api_node = {"node_id": p.node_id, "class_type": p.class_type, "options": base.api_options}
        gen.other.update({k: v for k, v in p.other.items() if k not in NOT_EXTRAS})
        rec.generation = gen
        sources = {k: v for k, v in base.sources.items() if k not in ("positive", "negative")}
        sources.update(p.other.get("sources", {}))
        if gen.fps is not None and "fps" in output_sources:
            sources["fps"] = output_sources["fps"]
        rec.provenance.field_sources = sources
        in_passes = {x.node.id for x in passes}
        bases = [i for i in passes if not (i.after & in_passes)]
        if len(bases) > 1:
            ids = ", ".join(i.node.id for i in bases)
            rec.warn(f"independent sampler chains ({ids}) reach the save node; generation reports node {base.node.id}")

    def _provenance(
        self, rec: Record, upstream: dict[str, Node], passes: list[PassInfo], excluded: list[dict[str, Any]]
    ) -> None:
        in_passes = {i.node.id for i in passes}
        auxiliary = sorted(
            (i for i, n in upstream.items() if i not in in_passes and _role(self.values, n) in GENERATORS),
            key=sort_key,
        )
        other = rec.provenance.other
        if auxiliary:
            other["auxiliary_samplers"] = auxiliary
            other["auxiliary"] = purposes(self.graph, self.values, upstream, auxiliary)
        if excluded:
            other["excluded_loras"] = excluded
        rec.provenance.digital_source_type = COMPOSITE if any(i.composite for i in passes) else TRAINED
        if self.values.unresolved:
            other["unresolved"] = self.values.unresolved


def _ordered(infos: list[PassInfo]) -> list[PassInfo]:
    """Base first: a pass comes after the passes its latent was made from; ties by node id.

    Kahn's order with the smallest ready id first; on a cycle, the smallest id still waiting.
    """
    by_id = {i.node.id: i for i in infos}
    waits = {i.node.id: set(i.after) & by_id.keys() for i in infos}
    dependents: dict[str, list[str]] = {}
    for node_id, deps in waits.items():
        for dep in deps:
            dependents.setdefault(dep, []).append(node_id)
    ready = [(sort_key(n), n) for n, deps in waits.items() if not deps]
    heapq.heapify(ready)
    queue = iter(sorted(by_id, key=sort_key))  # for cycles: the smallest id not placed yet
    ordered: list[PassInfo] = []
    placed: set[str] = set()
    while len(ordered) < len(infos):
        if ready:
            node_id = heapq.heappop(ready)[1]
            if node_id in placed:
                continue
        else:
            node_id = next(n for n in queue if n not in placed)
        placed.add(node_id)
        ordered.append(by_id[node_id])
        for dependent in dependents.get(node_id, ()):
            deps = waits[dependent]
            deps.discard(node_id)
            if not deps and dependent not in placed:
                heapq.heappush(ready, (sort_key(dependent), dependent))
    return ordered


def _size_from_pixels(rec: Record) -> None:
    """Where the graph leaves the generation size open but the output is the generator's pixels,
    decoded at most, the saved pixel size is the generation size: the save fills it from the image
    (field_sources says "pixels"), never a size the pixels got from an upscale."""
    sources = rec.provenance.field_sources
    for name in ("width", "height"):
        if getattr(rec.generation, name) is None:
            sources[name] = PIXELS


def fill_size_from_pixels(record: Record, width: int | None, height: int | None) -> None:
    """The generation size from the saved pixels, where the parser found them to be the same."""
    sources = record.provenance.field_sources
    for name, value in (("width", width), ("height", height)):
        if sources.get(name) == PIXELS and getattr(record.generation, name) is None and value:
            setattr(record.generation, name, value)
            if record.passes and getattr(record.passes[0], name) is None:
                setattr(record.passes[0], name, value)


def _role(values: Values, node: Node) -> str | None:
    rule = values.rule(node)
    return rule.role if rule else None


def _int(value: Any) -> int | None:
    return normalized("frames", value) if value is not None else None


def parse(
    prompt: Mapping[str, Any],
    save_node_id: str | None = None,
    workflow: Mapping[str, Any] | None = None,
    runtime: RuntimeView | None = None,
) -> Record:
    """Parse with the bundled rules (and the user's rules folder)."""
    return WorkflowParser().parse(prompt, save_node_id, workflow, runtime)

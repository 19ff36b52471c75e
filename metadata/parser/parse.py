"""WorkflowParser: a static reading of an API prompt into a record, driven by capture rules.

Only what lies upstream of the save node counts. Every sampler there becomes a pass, ordered
by latent dependency (base first); `generation` is the base pass, as A1111 reports it. Values
that are links the rules cannot evaluate statically are never guessed: they stay null and are
listed under provenance.unresolved with the node they depend on, for runtime capture to fill.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..record import COMPOSITE, TRAINED, Generation, Model, Pass, Record
from .graph import Graph, Node, is_link, sort_key
from .rules import NodeRule, RuleSet, bundled

# Conventional input names followed through nodes that have no rule.
FALLBACK_INPUTS = {
    "model": ("model",),
    "latent": ("samples", "latent_image", "latent"),
}
# Roles that end a conditioning walk: they never pass conditioning through.
OPAQUE_ROLES = frozenset({"sampler", "loader", "lora", "latent", "encode", "decode", "constant"})
MODEL_ROLE_ORDER = ("checkpoint", "unet", "clip", "vae", "lora", "embedding", "upscaler", "controlnet")
RE_EMBEDDING = re.compile(r"embedding:([^\s,()]+?)(?::[\d.]+)?(?=[\s,()]|$)")
MAX_CONSTANT_DEPTH = 16


@dataclass
class _PassInfo:
    node: Node
    entry: Pass
    after: set[str] = field(default_factory=set)
    composite: bool = False
    batch_size: int | None = None


class WorkflowParser:
    """Pure: reads the prompt, never mutates it; unknown nodes are data, not errors."""

    def __init__(self, rules: RuleSet | None = None) -> None:
        self.rules = rules or bundled()

    def parse(
        self,
        prompt: Mapping[str, Any],
        save_node_id: str | None = None,
        workflow: Mapping[str, Any] | None = None,
    ) -> Record:
        return _Run(self.rules, Graph(prompt)).record(prompt, save_node_id, workflow)


class _Run:
    """One parse: the graph, its rules, and what could not be resolved."""

    def __init__(self, rules: RuleSet, graph: Graph) -> None:
        self.rules = rules
        self.graph = graph
        self.unresolved: list[dict[str, str]] = []

    def rule(self, node: Node | None) -> NodeRule | None:
        return self.rules.get(node.class_type) if node else None

    def record(self, prompt: Mapping[str, Any], save_node_id: str | None, workflow: Mapping[str, Any] | None) -> Record:
        rec = Record(prompt=dict(prompt), workflow=dict(workflow) if workflow else None)
        rec.provenance.save_node_id = save_node_id
        if save_node_id is not None and save_node_id in self.graph.nodes:
            roots = [save_node_id]
        else:
            if save_node_id is not None:
                rec.warn(f"save node {save_node_id} is not in the prompt; reading every output instead")
            roots = self.graph.sinks()
        upstream = self._upstream(roots)
        passes = self._passes([n for n in upstream if (r := self.rule(n)) and r.role == "sampler"])
        rec.passes = [p.entry for p in passes]
        rec.models = self._models(upstream, rec.passes)
        if passes:
            self._fill_generation(rec, passes[0])
        else:
            rec.warn("no sampler upstream of the save node: generation fields are unknown")
        if any(p.composite for p in passes):
            rec.provenance.digital_source_type = COMPOSITE
        else:
            rec.provenance.digital_source_type = TRAINED
        if self.unresolved:
            rec.provenance.other["unresolved"] = self.unresolved
        return rec

    def _upstream(self, roots: list[str]) -> list[Node]:
        seen: dict[str, Node] = {}
        for root in roots:
            for node in self.graph.upstream(root):
                seen.setdefault(node.id, node)
        return list(seen.values())

    # -- values ---------------------------------------------------------------------------
    def value(self, node: Node, field_name: str) -> Any:
        """The constant in the input the node's rule names for `field_name`, else None."""
        rule = self.rule(node)
        input_name = rule.fields.get(field_name) if rule else None
        if input_name is None or input_name not in node.inputs:
            return None
        return self._constant(node, input_name, 0)

    def _constant(self, node: Node, input_name: str, depth: int) -> Any:
        raw = node.inputs.get(input_name)
        if not is_link(raw):
            return raw
        src = self.graph.get(str(raw[0]))
        rule = self.rule(src)
        if src is not None and rule is not None and rule.role == "constant" and depth < MAX_CONSTANT_DEPTH:
            inner = rule.fields.get("value")
            if inner is not None and inner in src.inputs:
                return self._constant(src, inner, depth + 1)
        self.unresolved.append({"node_id": node.id, "input": input_name, "depends_on": str(raw[0])})
        return None

    # -- chains ---------------------------------------------------------------------------
    def chain(self, start: str | None, via: str) -> Iterator[Node]:
        """Follow one link role (model, latent, ...) upstream, one input per node."""
        seen: set[str] = set()
        node = self.graph.get(start)
        while node is not None and node.id not in seen:
            seen.add(node.id)
            yield node
            rule = self.rule(node)
            if rule is not None:
                name = rule.inputs.get(via)
                node = self.graph.get(node.link(name))
            else:
                names = FALLBACK_INPUTS.get(via, (via,))
                node = self.graph.get(next((n.link(x) for n in [node] for x in names if n.link(x)), None))

    def text(self, link: Any) -> tuple[str | None, str | None]:
        """Nearest text encoder upstream of a conditioning link: (text, node id).

        A node whose rule maps outputs to inputs is followed through the input behind the
        output the link comes from (ControlNetApplyAdvanced's negative stays negative); a node
        without a rule is searched through every link, nearest first.
        """
        queue = deque([link] if is_link(link) else [])
        seen: set[tuple[str, int]] = set()
        while queue:
            src, out = str(queue[0][0]), queue.popleft()[1]
            node = self.graph.get(src)
            if node is None or (src, out) in seen:
                continue
            seen.add((src, out))
            rule = self.rule(node)
            if rule is not None and rule.role == "text":
                value = self.value(node, "text")
                return (value if isinstance(value, str) else None), node.id
            if rule is None:
                queue.extend(v for v in node.inputs.values() if is_link(v))
            elif rule.outputs:
                if out < len(rule.outputs) and is_link(node.inputs.get(rule.outputs[out])):
                    queue.append(node.inputs[rule.outputs[out]])
            elif rule.role not in OPAQUE_ROLES and is_link(node.inputs.get(rule.inputs.get("conditioning", ""))):
                queue.append(node.inputs[rule.inputs["conditioning"]])
        return None, None

    # -- passes ---------------------------------------------------------------------------
    def _passes(self, samplers: list[Node]) -> list[_PassInfo]:
        infos = {n.id: self._pass(n) for n in sorted(samplers, key=lambda n: sort_key(n.id))}
        ordered: list[_PassInfo] = []
        placed: set[str] = set()
        while len(ordered) < len(infos):
            ready = [i for i in infos.values() if i.node.id not in placed and i.after <= placed | _absent(i, infos)]
            nxt = ready[0] if ready else next(i for i in infos.values() if i.node.id not in placed)
            ordered.append(nxt)
            placed.add(nxt.node.id)
        return ordered

    def _pass(self, node: Node) -> _PassInfo:
        rule = self.rule(node)
        assert rule is not None
        entry = Pass(node_id=node.id, class_type=node.class_type)
        for name in ("seed", "steps", "cfg", "sampler", "scheduler", "denoise", "start_step", "end_step"):
            setattr(entry, name, self.value(node, name))
        for extra in sorted(set(rule.fields) - set(entry.to_dict())):
            value = self.value(node, extra)
            if value is not None:
                entry.other[extra] = value
        entry.positive, pos_src = self.text(node.inputs.get(rule.inputs.get("positive", "")))
        entry.negative, neg_src = self.text(node.inputs.get(rule.inputs.get("negative", "")))
        entry.other["sources"] = {k: v for k, v in (("positive", pos_src), ("negative", neg_src)) if v}
        info = _PassInfo(node=node, entry=entry)
        for model_node in self.chain(node.link(rule.inputs.get("model")), "model"):
            model_rule = self.rule(model_node)
            if model_rule and model_rule.role == "loader":
                names = [self._constant(model_node, s.name, 0) for s in model_rule.models]
                entry.model = next((n for n in names if isinstance(n, str)), None)
                break
        self._latent(info, node.link(rule.inputs.get("latent")))
        return info

    def _latent(self, info: _PassInfo, start: str | None) -> None:
        sized = False
        for node in self.chain(start, "latent"):
            rule = self.rule(node)
            role = rule.role if rule else None
            if role == "sampler":
                info.after.add(node.id)
                return
            if role == "encode":
                info.composite = True
                return
            if rule is not None and "width" in rule.fields and not sized:
                width, height = self.value(node, "width"), self.value(node, "height")
                if width is not None or height is not None:
                    info.entry.width, info.entry.height, sized = width, height, True
                info.batch_size = info.batch_size or self.value(node, "batch_size")

    # -- models and generation ----------------------------------------------------------
    def _models(self, upstream: list[Node], passes: list[Pass]) -> list[Model]:
        found: list[Model] = []
        for node in sorted(upstream, key=lambda n: sort_key(n.id)):
            rule = self.rule(node)
            for spec in rule.models if rule else ():
                name = self._constant(node, spec.name, 0)
                if not isinstance(name, str):
                    continue
                model = Model(role=spec.role, name=name, node_id=node.id)
                if spec.strength_model:
                    model.strength_model = _float(self._constant(node, spec.strength_model, 0))
                if spec.strength_clip:
                    model.strength_clip = _float(self._constant(node, spec.strength_clip, 0))
                found.append(model)
        texts = [t for p in passes for t in (p.positive, p.negative) if t]
        seen_embeddings: set[str] = set()
        for text in texts:
            for name in RE_EMBEDDING.findall(text):
                if name not in seen_embeddings:
                    seen_embeddings.add(name)
                    found.append(Model(role="embedding", name=name))
        rank = {role: i for i, role in enumerate(MODEL_ROLE_ORDER)}
        return sorted(found, key=lambda m: rank.get(m.role, len(rank)))

    def _fill_generation(self, rec: Record, base: _PassInfo) -> None:
        p = base.entry
        rec.generation = Generation(
            positive=p.positive,
            negative=p.negative,
            seed=p.seed,
            steps=p.steps,
            cfg=_float(p.cfg),
            sampler=p.sampler,
            scheduler=p.scheduler,
            denoise=_float(p.denoise),
            width=p.width,
            height=p.height,
            batch_size=base.batch_size,
        )
        sources = {k: p.node_id for k in ("seed", "steps", "cfg", "sampler", "scheduler", "denoise")}
        sources.update(p.other.get("sources", {}))
        rec.provenance.field_sources = sources


def _absent(info: _PassInfo, infos: Mapping[str, _PassInfo]) -> set[str]:
    """Dependencies on samplers outside the parsed set never block ordering."""
    return {a for a in info.after if a not in infos}


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def parse(
    prompt: Mapping[str, Any], save_node_id: str | None = None, workflow: Mapping[str, Any] | None = None
) -> Record:
    """Parse with the bundled rules."""
    return WorkflowParser().parse(prompt, save_node_id, workflow)

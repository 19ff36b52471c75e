"""One sampling stage read from the graph: the sampler, its parts, and the chains feeding it.

Precedence of a field, nearest to the sampler first: the sampler's own inputs, its parts
(noise, guider, sampler, sigmas, pipe settings), the latent it starts from, the model chain
(LoRAs, ModelSampling* shift), the positive conditioning path (FluxGuidance, text-encoder
extras), and the CLIP chain (CLIPSetLastLayer). Values already known are never overwritten.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..record import Pass
from .graph import Link, Node
from .loras import LoraUse, loras_of, stack_links
from .rules import NodeRule
from .values import constants
from .walks import GENERATORS, Walker, merge_fields

MODEL_ROLES = ("checkpoint", "unet")
PASS_FIELDS = ("seed", "steps", "cfg", "sampler", "scheduler", "denoise", "start_step", "end_step")
FLOATS = frozenset({"cfg", "denoise", "guidance", "shift"})
INTS = frozenset({"seed", "steps", "start_step", "end_step", "width", "height", "frames"})
NUMBERS = FLOATS | INTS
# Fields with a place of their own in Pass or Generation; everything else lands in `other`.
PLACED = frozenset({*PASS_FIELDS, "add_noise", "width", "height", "guidance", "shift", "frames", "model"})
TEXT_KEYS = frozenset({"text", "negative", "positive"})
UPSCALE_KEYS = {"upscale_method": "method", "width": "width", "height": "height", "scale": "scale"}


@dataclass
class PassInfo:
    node: Node
    entry: Pass
    fields: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    after: set[str] = field(default_factory=set)
    composite: bool = False
    loras: list[LoraUse] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    upscale: dict[str, Any] | None = None
    api_options: dict[str, Any] | None = None
    lora_keys: set[tuple[str, str]] = field(default_factory=set)


class PassBuilder:
    def __init__(self, walker: Walker) -> None:
        self.walker = walker
        self.values = walker.values

    def build(self, node: Node, rule: NodeRule) -> PassInfo:
        info = PassInfo(node=node, entry=Pass(node_id=node.id, class_type=node.class_type))
        links: dict[str, Link] = {}
        pipe_models: list[tuple[Node, int]] = []
        self._take(info, links, node, 0)
        for part in rule.parts:
            for part_node, out in self.walker.chain(links.get(part), part):
                part_rule = self.values.rule(part_node)
                if part_node is not node and part_rule is not None and part_rule.role in GENERATORS:
                    info.after.add(part_node.id)
                    break
                self._take(info, links, part_node, out)
                if part_rule is not None and part_rule.role in ("loader", "lora"):
                    pipe_models.append((part_node, out))
        if rule.role == "api":
            info.api_options = constants(node, _used_inputs(rule))
        self._lineage(info, [link for role in ("latent", "image") if (link := links.get(role))])
        model_chain = self.walker.chain(links.get("model"), "model") if "model" in links else iter(pipe_models)
        self._models(info, model_chain)
        self._texts(info, links)
        self._finish(info)
        return info

    def _take(self, info: PassInfo, links: dict[str, Link], node: Node, out: int) -> None:
        merge_fields(self.values, info.fields, info.sources, node, out)
        rule = self.values.rule(node)
        for role, names in rule.inputs.items() if rule else ():
            link = next((lk for n in names if (lk := node.link(n)) is not None), None)
            if link is not None:
                links.setdefault(role, link)

    def _lineage(self, info: PassInfo, start: list[Link]) -> None:
        for node, out, hops in self.walker.lineage(start):
            rule = self.values.rule(node)
            role = rule.role if rule else None
            if role in GENERATORS:
                info.after.add(node.id)
            elif role == "image":
                info.composite = True
            elif role == "upscale":
                self._upscale(info, node, out, hops)
            elif hops == 0 and rule is not None and rule.fields:
                merge_fields(self.values, info.fields, info.sources, node, out)
        if not info.after:
            info.upscale = None

    def _upscale(self, info: PassInfo, node: Node, out: int, hops: int) -> None:
        got: dict[str, Any] = {}
        merge_fields(self.values, got, {}, node, out)
        if hops == 0:
            for key in ("width", "height"):
                if info.fields.get(key) is None and got.get(key) is not None:
                    info.fields[key], info.sources[key] = got[key], node.id
        # The nearest resize names the step; model, method and scale of the others fill what it leaves out.
        upscale = info.upscale = info.upscale or {"node_id": node.id, "class_type": node.class_type}
        for key, value in got.items():
            if key in UPSCALE_KEYS and value is not None:
                upscale.setdefault(UPSCALE_KEYS[key], value)
        rule = self.values.rule(node)
        link = node.link(rule.input("upscale_model")) if rule else None
        for loader, _ in self.walker.chain(link, "upscale_model"):
            name = self._loaded_name(loader)
            if name is not None:
                upscale.setdefault("model", name)
                info.used.append(loader.id)
                break

    def _models(self, info: PassInfo, chain: Iterable[tuple[Node, int]]) -> None:
        for node, out in chain:
            rule = self.values.rule(node)
            if rule is None:
                continue
            if rule.role in GENERATORS:
                continue
            if rule.role not in ("loader", "text"):
                merge_fields(self.values, info.fields, info.sources, node, out)
            self._loras(info, node, rule)
            if rule.role == "loader":
                info.entry.model = self._loaded_name(node, MODEL_ROLES)
                info.used.append(node.id)
                if rule.fields:
                    merge_fields(self.values, info.fields, info.sources, node, out)
                return

    def _loras(self, info: PassInfo, node: Node, rule: NodeRule) -> None:
        """LoRAs the node applies, and those of the stacks linked into it (inputs.loras)."""
        seen = info.lora_keys
        stack = [(node, rule)]
        visited = {node.id}
        while stack:
            current, current_rule = stack.pop()
            for use in loras_of(self.values, current, current_rule):
                if (use.node_id, use.name) not in seen and not use.excluded:
                    seen.add((use.node_id, use.name))
                    info.loras.append(use)
            for src in stack_links(current, current_rule):
                src_node = self.walker.graph.get(src)
                src_rule = self.values.rule(src_node)
                if src_node is not None and src_rule is not None and src not in visited:
                    visited.add(src)
                    stack.append((src_node, src_rule))

    def _loaded_name(self, node: Node, roles: tuple[str, ...] = ()) -> str | None:
        rule = self.values.rule(node)
        specs = [s for s in rule.models if s.role != "lora"] if rule else []
        specs.sort(key=lambda s: 0 if s.role in roles else 1)
        for spec in specs:
            name = self.values.get(node, spec.name)
            if isinstance(name, str) and name not in ("", "None", "Baked VAE"):
                return name
        return None

    def _texts(self, info: PassInfo, links: dict[str, Link]) -> None:
        sources = {}
        for polarity in ("positive", "negative"):
            mark, regional_mark = len(self.walker.ambiguous), len(self.walker.regional_prompts)
            found = self.walker.text(links.get(polarity), polarity)
            for entry in self.walker.ambiguous[mark:]:
                entry["sampler"] = info.node.id
            for entry in self.walker.regional_prompts[regional_mark:]:
                prompts = info.entry.other.setdefault("regional_prompts", [])
                prompts.extend(entry["prompts"])
            setattr(info.entry, polarity, found.text)
            if found.source:
                sources[polarity] = found.source
            if found.text is not None:
                info.texts.append(found.text)
            if found.node is None or polarity != "positive":
                continue
            for node, out in found.path():
                merge_fields(self.values, info.fields, info.sources, node, out)
            rule = self.values.rule(found.node)
            assert rule is not None
            extras = {k: s for k, s in rule.fields.items() if k not in TEXT_KEYS and info.fields.get(k) is None}
            for key, spec in extras.items():
                value = self.values.field(found.node, spec)
                if value is not None:
                    info.fields[key], info.sources[key] = value, found.node.id
            self._loras(info, found.node, rule)
            for clip_node, out in self.walker.chain(found.node.link(rule.input("clip")), "clip"):
                clip_rule = self.values.rule(clip_node)
                if clip_rule is not None and clip_rule.role not in GENERATORS:
                    merge_fields(self.values, info.fields, info.sources, clip_node, out)
                    if clip_rule.role == "loader":
                        info.used.append(clip_node.id)
        for polarity in ("positive", "negative"):
            if getattr(info.entry, polarity) is None and isinstance(info.fields.get(polarity), str):
                setattr(info.entry, polarity, info.fields[polarity])
                sources[polarity] = info.sources.get(polarity, info.node.id)
        info.entry.other["sources"] = sources

    def _finish(self, info: PassInfo) -> None:
        entry, fields = info.entry, info.fields
        for name in (*PASS_FIELDS, "width", "height", "guidance", "shift", "frames"):
            setattr(entry, name, normalized(name, fields.get(name)))
        entry.add_noise = fields.get("add_noise")
        if entry.model is None:
            entry.model = _str(fields.get("model"))
        entry.loras = [u.to_dict() for u in info.loras]
        if info.upscale is not None:
            entry.other["upscale"] = info.upscale
        for name in sorted(fields):
            if name not in PLACED and name not in TEXT_KEYS and fields[name] is not None and finite(fields[name]):
                entry.other[name] = fields[name]


def normalized(name: str, value: Any) -> Any:
    """Numbers as the record types them: ints for counts and sizes, floats for scales."""
    if value is None or isinstance(value, bool):
        return None if isinstance(value, bool) and name in NUMBERS else value
    if name in FLOATS:
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    if name in INTS:
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, float) and value.is_integer() else None
    return value


def finite(value: Any) -> bool:
    """Not a NaN or an infinity: the record is strict JSON."""
    return not isinstance(value, float) or math.isfinite(value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _used_inputs(rule: NodeRule) -> set[str]:
    """Inputs an API node's fields already account for; the rest are its options."""
    names = {s.input for s in rule.fields.values() if s.input}
    return names | {n for names_ in rule.inputs.values() for n in names_}

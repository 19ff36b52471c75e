"""Capture rules: frozen, per-node-class records loaded from JSON data files.

A rule says what a node is for the parser (`role`), which record fields sit in which of its
inputs (`fields`), which models it loads (`models`), and which of its inputs carry a link role
upstream (`inputs`: model, clip, positive, negative, latent, image, vae, conditioning), and, for a
node that passes conditioning through, which input each output carries (`outputs`). Adding a
node is adding data; the parser has no branch per class.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import MetadataError

logger = logging.getLogger(__name__)

ROLES = frozenset({"sampler", "loader", "lora", "text", "latent", "encode", "decode", "constant", "passthrough"})


@dataclass(frozen=True)
class ModelSpec:
    """One model a loader node loads: the record role and the inputs naming it."""

    role: str
    name: str
    strength_model: str | None = None
    strength_clip: str | None = None


@dataclass(frozen=True)
class NodeRule:
    class_type: str
    role: str
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    inputs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    models: tuple[ModelSpec, ...] = ()
    outputs: tuple[str, ...] = ()


class RuleError(MetadataError):
    """A rules file is malformed; the message names the file and the node class."""


def _rule(class_type: str, data: Any, origin: str) -> NodeRule:
    if not isinstance(data, dict):
        raise RuleError(f"{origin}: rule for {class_type!r} must be an object")
    role = data.get("role")
    if role not in ROLES:
        raise RuleError(f"{origin}: {class_type!r} has role {role!r}; allowed: {', '.join(sorted(ROLES))}")
    for key in ("fields", "inputs"):
        value = data.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise RuleError(f"{origin}: {class_type!r}.{key} must map names to input names")
    outputs = data.get("outputs", [])
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise RuleError(f"{origin}: {class_type!r}.outputs must list input names by output index")
    models = []
    for spec in data.get("models", []):
        if not isinstance(spec, dict) or not {"role", "name"} <= spec.keys():
            raise RuleError(f"{origin}: {class_type!r}.models entries need 'role' and 'name'")
        keys = ("role", "name", "strength_model", "strength_clip")
        models.append(ModelSpec(**{k: spec[k] for k in keys if k in spec}))
    return NodeRule(
        class_type=class_type,
        role=role,
        fields=MappingProxyType(dict(data.get("fields", {}))),
        inputs=MappingProxyType(dict(data.get("inputs", {}))),
        models=tuple(models),
        outputs=tuple(outputs),
    )


def parse_rules(data: Any, origin: str) -> dict[str, NodeRule]:
    """Validate one rules document ({"nodes": {class_type: rule}}) into NodeRules."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        raise RuleError(f"{origin}: a rules file is an object with a 'nodes' object")
    return {str(k): _rule(str(k), v, origin) for k, v in data["nodes"].items()}


class RuleSet:
    """Rules by class_type; later sources override earlier ones class by class."""

    def __init__(self, rules: Mapping[str, NodeRule]) -> None:
        self._rules = dict(rules)

    def get(self, class_type: str | None) -> NodeRule | None:
        return self._rules.get(class_type or "")

    def __len__(self) -> int:
        return len(self._rules)

    def extended(self, more: Mapping[str, NodeRule]) -> RuleSet:
        return RuleSet({**self._rules, **more})

    @classmethod
    def from_files(cls, paths: Iterable[Path], base: RuleSet | None = None) -> RuleSet:
        rules = dict(base._rules) if base else {}
        for path in paths:
            try:
                data = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError) as err:
                raise RuleError(f"{path}: cannot read rules: {err}") from err
            rules.update(parse_rules(data, str(path)))
        return cls(rules)


@cache
def bundled() -> RuleSet:
    """The rules shipped in metadata/rules/ (core nodes)."""
    folder = resources.files(__package__.rsplit(".", 1)[0]).joinpath("rules")
    text = folder.joinpath("core.json").read_text("utf-8")
    return RuleSet(parse_rules(json.loads(text), "core.json"))

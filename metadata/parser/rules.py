"""Capture rules: frozen, per-node-class records loaded from JSON data files.

A rules file is {"version": 1, "nodes": {class_type: rule}}; a rule has a `role` and any of:

- `fields`: record field -> input name, or {"input" | "const", "regex"/"group", "map", "cast",
  "replace"/"strip"/"if", "ignore", "round", "fallback"}; links are evaluated statically.
- `inputs`: link role (model, clip, vae, positive, negative, conditioning, latent, image, loras,
  noise, guider, sampler, sigmas, pipe, upscale_model) -> input name(s) the walk follows.
- `outputs`: by output index, the input that output passes through unchanged (or null);
  `output_fields` and `texts` add fields / name the prompt input per output index.
- `models` (files a loader loads), `loras` (stacks: dict `items`, a `list`, numbered `slots`,
  `inline` <lora:...> text; `enabled`, `when`/`unless`, `requires_links`).
- `parts`: link roles whose nodes contribute to a sampler (noise, guider, sampler, sigmas, pipe).
- `switch` (a `selector` with `choices`/`pattern`, or `first_present`), `math` (an expression
  over `prefix`-named or listed variables), `combine` (joined conditionings), `unresolved_values`,
  `regional` (fields describing the area, mask or timestep range a conditioning is restricted to).

Adding a node is adding data; the parser has no branch per class. `ruledata`/`rulespecs`
validate the JSON strictly; this module holds the frozen records and the rule sets.

Rule sources, later overriding earlier class by class: the bundled files in metadata/rules/
(core.json first, then the third-party packs by name), then the user's folder: the directory in
the `rules_dir` setting (the PROVENANCE_RULES_DIR environment variable, metadata/settings.py), else the
one the host registered with `set_user_rules_dir` (in ComfyUI: `<user directory>/provenance/rules/`).
Check a file with `provenance rules check FILE`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .. import settings
from ..errors import MetadataError
from ..settings_keys import env_name
from .schemas import SNAPSHOT

logger = logging.getLogger(__name__)

ENV_RULES_DIR = env_name("rules_dir")
MISSING: Any = object()
_EMPTY: Mapping[Any, Any] = MappingProxyType({})


class RuleError(MetadataError):
    """A rules file is malformed; the message names the file and the node class."""


@dataclass(frozen=True)
class FieldSpec:
    """Where a value comes from: an input (optionally parsed or cleaned), or a constant."""

    input: str | None = None
    const: Any = MISSING
    regex: re.Pattern[str] | None = None
    group: int = 1
    cast: str | None = None
    replace: tuple[tuple[str, str], ...] = ()
    strip: bool = False
    only_if: str | None = None
    mapping: Mapping[str, Any] | None = None
    ignore: tuple[Any, ...] = ()
    round_to: int | None = None
    fallback: FieldSpec | None = None

    @property
    def plain(self) -> bool:
        """Just an input's value, untransformed: the parser's fast path."""
        plain = self.__dict__.get("_plain")
        if plain is None:
            plain = self.input is not None and self == FieldSpec(input=self.input)
            object.__setattr__(self, "_plain", plain)
        return bool(plain)


@dataclass(frozen=True)
class ModelSpec:
    """One model a loader node loads: the record role and the inputs naming it."""

    role: str
    name: str
    strength_model: str | None = None
    strength_clip: str | None = None


@dataclass(frozen=True)
class LoraStack:
    """LoRAs listed inside one node: dict entries, a list input, numbered slots, or inline tags.

    `slots` names are str.format templates of `i` ("lora_name_{i}", "lora_{i:02d}"); `inline` is
    an input whose text carries `<lora:name:weight[:clip_weight]>` tags the node itself applies.
    `when`/`unless` compare constant inputs; `requires_links` are inputs that must be connected.
    """

    name: str = "name"
    items: re.Pattern[str] | None = None
    inline: str | None = None
    list_input: str | None = None
    slots: tuple[int, int] | None = None
    count: str | None = None
    strength_model: str | None = None
    strength_clip: str | None = None
    clip_from_model: bool = False
    enabled: str | None = None
    enabled_values: tuple[Any, ...] = (True, "On", "on", "enable", "enabled", "true", "True")
    when: tuple[tuple[str, Any], ...] = ()
    unless: tuple[tuple[str, Any], ...] = ()
    requires_links: tuple[str, ...] = ()


@dataclass(frozen=True)
class SwitchSpec:
    """How a switch node picks the input its output carries."""

    selector: str | None = None
    choices: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    pattern: str | None = None
    first_present: re.Pattern[str] | None = None
    output: int = 0


@dataclass(frozen=True)
class MathSpec:
    """A math-expression node: the expression input, its variables, and each output's type."""

    expression: str
    prefix: str | None = None
    variables: tuple[str, ...] = ()
    defaults: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    outputs: tuple[str, ...] = ("float",)


@dataclass(frozen=True)
class CombineSpec:
    """Conditionings merged into one: their texts are joined with `separator`."""

    inputs: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    separator: str = " AND "
    separator_field: FieldSpec | None = None


@dataclass(frozen=True)
class NodeRule:
    class_type: str
    role: str
    fields: Mapping[str, FieldSpec] = field(default_factory=lambda: _EMPTY)
    inputs: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _EMPTY)
    outputs: tuple[str | None, ...] = ()
    output_fields: Mapping[int, Mapping[str, FieldSpec]] = field(default_factory=lambda: _EMPTY)
    texts: Mapping[int, FieldSpec] = field(default_factory=lambda: _EMPTY)
    models: tuple[ModelSpec, ...] = ()
    loras: tuple[LoraStack, ...] = ()
    parts: tuple[str, ...] = ()
    switch: SwitchSpec | None = None
    math: MathSpec | None = None
    combine: CombineSpec | None = None
    unresolved_values: tuple[Any, ...] = ()
    # Restricts conditioning to a region (area, mask, timestep range): combined with others, its prompt
    # is a regional one, listed apart with these fields, never the positive.
    regional: Mapping[str, FieldSpec] | None = None
    # Outputs whose routing the class's schema contradicts (see infer.with_inferred): not followed.
    disputed: frozenset[int] = frozenset()
    origin: str = ""

    def input(self, role: str) -> str | None:
        """The first input carrying link role `role`."""
        names = self.inputs.get(role)
        return names[0] if names else None

    def passes(self, output: int) -> str | None:
        """The input that output `output` passes through unchanged, if any."""
        return self.outputs[output] if 0 <= output < len(self.outputs) else None


class RuleSet:
    """Rules by class_type; later sources override earlier ones class by class."""

    def __init__(self, rules: Mapping[str, NodeRule]) -> None:
        self._rules = dict(rules)
        self.switches = frozenset(c for c, r in self._rules.items() if r.role == "switch")
        self.llms = frozenset(c for c, r in self._rules.items() if r.role == "llm")
        self.images = frozenset(c for c, r in self._rules.items() if r.role == "image")
        # Classes whose rule passes an output on as the positive or negative prompt (checked against
        # the class's schema where one is known: infer.with_inferred).
        self.routed = frozenset(c for c, r in self._rules.items() if {"positive", "negative"} & set(r.outputs))

    def get(self, class_type: str | None) -> NodeRule | None:
        return self._rules.get(class_type) if class_type is not None else None

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._rules

    def classes(self) -> list[str]:
        return sorted(self._rules)

    def extended(self, more: Mapping[str, NodeRule]) -> RuleSet:
        return RuleSet({**self._rules, **more})

    @classmethod
    def from_files(cls, paths: Iterable[Path], base: RuleSet | None = None) -> RuleSet:
        """`base` plus every file in order; a malformed file raises RuleError naming it."""
        from .ruledata import load_file

        rules = dict(base._rules) if base else {}
        for path in paths:
            rules.update(load_file(path))
        return cls(rules)


def _rules_folder() -> Path:
    return Path(__file__).resolve().parent.parent / "rules"


def bundled_files() -> list[Path]:
    """core.json first, then each third-party pack; a1111_names.json is not a rules file."""
    folder = _rules_folder()
    packs = sorted(p for p in folder.glob("*.json") if p.name not in ("core.json", "a1111_names.json", SNAPSHOT))
    return [folder / "core.json", *packs]


@cache
def bundled() -> RuleSet:
    """The rules shipped in metadata/rules/: core nodes and the popular third-party packs."""
    return RuleSet.from_files(bundled_files())


class _UserRules:
    """Process-wide: the folder the host registered, and the rule set last built from it."""

    folder: Path | None = None
    cached: tuple[tuple[tuple[str, int, int], ...], RuleSet] | None = None


def set_user_rules_dir(folder: str | Path | None) -> None:
    """Where the host (ComfyUI: `<user>/provenance/rules/`) keeps user rules, once at start-up; the setting wins."""
    _UserRules.folder = Path(folder) if folder else None


def user_rules_dir() -> Path | None:
    chosen = settings.current().rules_dir
    return chosen if chosen is not None else _UserRules.folder


def user_rule_files(folder: Path | None = None) -> list[Path]:
    folder = folder if folder is not None else user_rules_dir()
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if p.is_file())


def default_rules() -> RuleSet:
    """Bundled rules with the user's files on top, reloaded when a user file changes.

    A broken user file is logged and skipped: a typo in a rule never costs a saved image its
    metadata. `provenance rules check FILE` reports what is wrong with it.
    """
    files = user_rule_files()
    stamp = tuple((str(p), *_stat(p)) for p in files)
    if _UserRules.cached is not None and _UserRules.cached[0] == stamp:
        return _UserRules.cached[1]
    rules = bundled()
    for path in files:
        try:
            rules = RuleSet.from_files([path], rules)
        except RuleError as err:
            logger.warning("provenance: ignoring user rules file: %s", err)
    _UserRules.cached = (stamp, rules)
    return rules


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)

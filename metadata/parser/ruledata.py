"""Strict validation of rules files: JSON in, frozen NodeRules out, every mistake named.

A rules file is {"version": 1, "nodes": {class_type: rule}} plus optional "pack", "source",
"sources", "about" and "_comment"-style keys. Every problem is reported with the file and the
node class, and all of a file's problems are reported at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .rules import NodeRule, RuleError
from .rulespecs import Err, by_output, combine, field, fields, listed, lora, math_spec, model, outputs, strings, switch

ROLES = frozenset(
    {
        "sampler",  # makes a pass: its fields, parts and links describe one sampling stage
        "api",  # a cloud node that generates remotely: a pass of its own, options recorded
        "part",  # a sampler component (noise, guider, sampler, sigmas, pipe settings)
        "loader",  # loads models named in `models`
        "lora",  # applies LoRAs to a model/clip it passes on
        "text",  # encodes a prompt
        "latent",  # makes or reshapes a latent (size, frames)
        "encode",  # pixels -> latent
        "decode",  # latent -> pixels
        "upscale",  # resizes a latent or image between passes
        "image",  # an input image file
        "output",  # saves or assembles the output (fps)
        "constant",  # a value node
        "switch",  # picks one input by a selector
        "math",  # computes a number from an expression
        "passthrough",  # passes conditioning/model/latent on, maybe adding fields
        "terminal",  # conditioning with no prompt text behind it (zeroed, image-only)
        "llm",  # writes text with a language model (a prompt writer): known only at run time
    }
)
LINK_ROLES = frozenset(
    {
        "model",
        "clip",
        "vae",
        "positive",
        "negative",
        "conditioning",
        "latent",
        "image",
        "loras",
        "noise",
        "guider",
        "sampler",
        "sigmas",
        "pipe",
        "upscale_model",
    }
)
RULE_KEYS = frozenset(
    {
        "role",
        "fields",
        "inputs",
        "outputs",
        "output_fields",
        "texts",
        "models",
        "loras",
        "parts",
        "switch",
        "math",
        "combine",
        "unresolved_values",
        "regional",
    }
)
FILE_KEYS = frozenset({"version", "nodes", "pack", "source", "sources", "about"})


class _Errors(list[str]):
    def at(self, where: str) -> Callable[[str], None]:
        return lambda message: self.append(f"{where}: {message}")


def load_file(path: Path) -> dict[str, NodeRule]:
    """The rules in one file; RuleError lists everything wrong with it."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RuleError(f"{path}: cannot read rules: {err}") from err
    return parse_rules(data, str(path))


def parse_rules(data: Any, origin: str) -> dict[str, NodeRule]:
    """Validate one rules document into NodeRules; RuleError names the file and every bad class."""
    errors = _Errors()
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        raise RuleError(f"{origin}: a rules file is an object with a 'nodes' object")
    unknown = [k for k in data if k not in FILE_KEYS and not k.startswith("_")]
    if unknown:
        errors.append(f"{origin}: unknown top-level keys {unknown}; allowed: {', '.join(sorted(FILE_KEYS))}")
    if data.get("version", 1) != 1:
        errors.append(f"{origin}: version {data.get('version')!r} is not supported (only 1)")
    rules: dict[str, NodeRule] = {}
    for class_type, raw in data["nodes"].items():
        rule = _rule(str(class_type), raw, origin, errors.at(f"{origin}: {class_type!r}"))
        if rule is not None:
            rules[str(class_type)] = rule
    if errors:
        raise RuleError("\n".join(errors))
    return rules


def _rule(class_type: str, data: Any, origin: str, err: Err) -> NodeRule | None:
    if not isinstance(data, dict):
        err("a rule must be an object")
        return None
    for key in data:
        if key not in RULE_KEYS and not key.startswith("_"):
            err(f"unknown key {key!r}; allowed: {', '.join(sorted(RULE_KEYS))}")
    role = data.get("role")
    if role not in ROLES:
        err(f"role {role!r} is not one of {', '.join(sorted(ROLES))}")
    inputs = _inputs(data.get("inputs", {}), err)
    parts = strings(data.get("parts", []), "parts", err)
    for part in parts:
        if part not in inputs:
            err(f"part {part!r} is not a link role in 'inputs'")
    rule = NodeRule(
        class_type=class_type,
        role=str(role),
        fields=fields(data.get("fields", {}), "fields", err),
        inputs=inputs,
        outputs=outputs(data.get("outputs", []), err),
        output_fields=MappingProxyType(
            {i: fields(v, f"output_fields[{i}]", err) for i, v in by_output(data, "output_fields", err).items()}
        ),
        texts=MappingProxyType(
            {i: t for i, v in by_output(data, "texts", err).items() if (t := field(v, f"texts[{i}]", err))}
        ),
        models=tuple(m for i, raw in enumerate(listed(data, "models", err)) if (m := model(raw, i, err))),
        loras=tuple(lo for i, raw in enumerate(listed(data, "loras", err)) if (lo := lora(raw, i, err))),
        parts=parts,
        switch=switch(data["switch"], err) if "switch" in data else None,
        math=math_spec(data["math"], err) if "math" in data else None,
        combine=combine(data["combine"], err) if "combine" in data else None,
        unresolved_values=tuple(listed(data, "unresolved_values", err)),
        regional=fields(data["regional"], "regional", err) if "regional" in data else None,
        origin=origin,
    )
    if (rule.role == "switch") != (rule.switch is not None):
        err("role 'switch' and a 'switch' object go together")
    if (rule.role == "math") != (rule.math is not None):
        err("role 'math' and a 'math' object go together")
    if rule.role == "constant" and "value" not in rule.fields and not any(rule.outputs):
        err("a constant needs fields.value or 'outputs' naming the input behind each output")
    return rule


def _inputs(data: Any, err: Err) -> MappingProxyType[str, tuple[str, ...]]:
    if not isinstance(data, dict):
        err("'inputs' must map link roles to input names")
        return MappingProxyType({})
    out: dict[str, tuple[str, ...]] = {}
    for role, names in data.items():
        if role not in LINK_ROLES:
            err(f"inputs: unknown link role {role!r}; allowed: {', '.join(sorted(LINK_ROLES))}")
        out[role] = strings([names] if isinstance(names, str) else names, f"inputs.{role}", err)
    return MappingProxyType(out)

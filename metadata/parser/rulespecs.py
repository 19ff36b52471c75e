"""Validation of the parts of a rule: field specs, models, LoRA stacks, switches, math, combines.

Each function takes the raw JSON value and an `err` callback that records a message (the caller
prefixes file and node class); it returns the frozen spec, or None when the value is unusable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from .rules import MISSING, CombineSpec, FieldSpec, LoraStack, MathSpec, ModelSpec, SwitchSpec

CASTS = frozenset({"int", "float", "str", "bool"})
MATH_OUTPUTS = frozenset({"float", "int", "bool", "round"})
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
Err = Callable[[str], None]


def strings(data: Any, what: str, err: Err) -> tuple[str, ...]:
    if not isinstance(data, list) or not all(isinstance(v, str) and v for v in data):
        err(f"{what} must be a list of input names")
        return ()
    return tuple(data)


def listed(data: dict[str, Any], key: str, err: Err) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        err(f"{key!r} must be a list")
        return []
    return value


def outputs(data: Any, err: Err) -> tuple[str | None, ...]:
    if not isinstance(data, list) or not all(v is None or (isinstance(v, str) and v) for v in data):
        err("'outputs' must list, by output index, the input each output passes through (or null)")
        return ()
    return tuple(data)


def by_output(data: dict[str, Any], key: str, err: Err) -> dict[int, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and k.isdigit() for k in value):
        err(f"{key!r} must be an object keyed by output index ('0', '1', ...)")
        return {}
    return {int(k): v for k, v in value.items()}


def fields(data: Any, what: str, err: Err) -> MappingProxyType[str, FieldSpec]:
    if not isinstance(data, dict):
        err(f"{what} must map record fields to input names or field objects")
        return MappingProxyType({})
    out: dict[str, FieldSpec] = {}
    for name, raw in data.items():
        if not NAME.match(name):
            err(f"{what}: field name {name!r} must be lower_snake_case")
        spec = field(raw, f"{what}.{name}", err)
        if spec is not None:
            out[name] = spec
    return MappingProxyType(out)


_FIELD_KEYS = frozenset(
    {"input", "const", "regex", "group", "cast", "replace", "strip", "if", "map", "ignore", "round", "fallback"}
)


def field(raw: Any, what: str, err: Err) -> FieldSpec | None:
    if isinstance(raw, str) and raw:
        return FieldSpec(input=raw)
    if not isinstance(raw, dict):
        err(f"{what} must be an input name or an object with 'input' or 'const'")
        return None
    bad = set(raw) - _FIELD_KEYS
    if bad:
        err(f"{what}: unknown keys {sorted(bad)}; allowed: {', '.join(sorted(_FIELD_KEYS))}")
    if ("input" in raw) == ("const" in raw):
        err(f"{what} needs exactly one of 'input' and 'const'")
        return None
    if "input" in raw and not (isinstance(raw["input"], str) and raw["input"]):
        err(f"{what}.input must be an input name")
    if raw.get("cast") is not None and raw["cast"] not in CASTS:
        err(f"{what}.cast must be one of {', '.join(sorted(CASTS))}")
    replace = raw.get("replace", [])
    if not isinstance(replace, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in replace
    ):
        err(f"{what}.replace must be a list of [old, new] string pairs")
        replace = []
    mapping = raw.get("map")
    if mapping is not None and not isinstance(mapping, dict):
        err(f"{what}.map must map input values (as strings: 'cpu', 'true', '1') to field values")
        mapping = None
    ignore = raw.get("ignore", [])
    if not isinstance(ignore, list):
        err(f"{what}.ignore must list values that count as missing (then 'fallback' applies)")
        ignore = []
    if "round" in raw and type(raw["round"]) is not int:
        err(f"{what}.round must be a number of decimals")
    return FieldSpec(
        input=raw.get("input") if isinstance(raw.get("input"), str) else None,
        const=raw.get("const", MISSING),
        regex=regex(raw.get("regex"), f"{what}.regex", err),
        group=raw.get("group", 1) if isinstance(raw.get("group", 1), int) else 1,
        cast=raw.get("cast") if raw.get("cast") in CASTS else None,
        replace=tuple((a, b) for a, b in replace),
        strip=bool(raw.get("strip", False)),
        only_if=raw.get("if") if isinstance(raw.get("if"), str) else None,
        mapping=MappingProxyType(dict(mapping)) if mapping is not None else None,
        ignore=tuple(ignore),
        round_to=raw["round"] if type(raw.get("round")) is int else None,
        fallback=field(raw["fallback"], f"{what}.fallback", err) if "fallback" in raw else None,
    )


def regex(raw: Any, what: str, err: Err) -> re.Pattern[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        err(f"{what} must be a regular expression string")
        return None
    try:
        return re.compile(raw)
    except re.error as error:
        err(f"{what} is not a valid regular expression: {error}")
        return None


def model(raw: Any, index: int, err: Err) -> ModelSpec | None:
    keys = {"role", "name", "strength_model", "strength_clip"}
    if not isinstance(raw, dict) or not {"role", "name"} <= raw.keys() or set(raw) - keys:
        err(f"models[{index}] needs 'role' and 'name' (optional: strength_model, strength_clip) and nothing else")
        return None
    if not all(isinstance(v, str) and v for v in raw.values()) or not NAME.match(raw["role"]):
        err(f"models[{index}]: values are input names and the role is lower_snake_case")
        return None
    return ModelSpec(**raw)


_LORA_KEYS = frozenset(
    {"name", "items", "list", "slots", "inline", "count", "strength_model", "strength_clip", "clip_from_model"}
    | {"enabled", "enabled_values", "when", "unless", "requires_links"}
)
_LORA_SOURCES = ("items", "list", "slots", "inline")


def lora(raw: Any, index: int, err: Err) -> LoraStack | None:
    what = f"loras[{index}]"
    if not isinstance(raw, dict) or set(raw) - _LORA_KEYS:
        err(f"{what} is an object with keys from: {', '.join(sorted(_LORA_KEYS))}")
        return None
    sources = [k for k in _LORA_SOURCES if k in raw]
    if len(sources) != 1:
        err(f"{what} takes exactly one of 'items' (a regex), 'list' (an input), 'slots' ([first, last]), 'inline'")
    if "inline" not in raw and not isinstance(raw.get("name"), str):
        err(f"{what}.name must name the entry key (or slot input template) holding the LoRA file")
    for key in ("name", "strength_model", "strength_clip", "enabled"):
        if "slots" in raw and isinstance(raw.get(key), str):
            try:
                raw[key].format(i=1)
            except (IndexError, KeyError, ValueError) as error:
                err(f"{what}.{key} {raw[key]!r} is not a template of {{i}}: {error!r}")
    slots = raw.get("slots")
    if slots is not None and not (isinstance(slots, list) and len(slots) == 2 and all(type(v) is int for v in slots)):
        err(f"{what}.slots must be [first, last] integers")
        slots = None
    conditions = {}
    for key in ("when", "unless"):
        conditions[key] = raw.get(key, {})
        if not isinstance(conditions[key], dict):
            err(f"{what}.{key} must map input names to constants")
            conditions[key] = {}
    for key in ("count", "strength_model", "strength_clip", "enabled", "list", "inline"):
        if key in raw and not (isinstance(raw[key], str) and raw[key]):
            err(f"{what}.{key} must be an input (or entry key) name")
    values = raw.get("enabled_values")
    if values is not None and not isinstance(values, list):
        err(f"{what}.enabled_values must be a list")
        values = None
    return LoraStack(
        name=str(raw["name"]) if isinstance(raw.get("name"), str) else "name",
        items=regex(raw.get("items"), f"{what}.items", err),
        inline=raw.get("inline") if isinstance(raw.get("inline"), str) else None,
        list_input=raw.get("list") if isinstance(raw.get("list"), str) else None,
        slots=(slots[0], slots[1]) if slots else None,
        count=raw.get("count") if isinstance(raw.get("count"), str) else None,
        strength_model=raw.get("strength_model") if isinstance(raw.get("strength_model"), str) else None,
        strength_clip=raw.get("strength_clip") if isinstance(raw.get("strength_clip"), str) else None,
        clip_from_model=bool(raw.get("clip_from_model", False)),
        enabled=raw.get("enabled") if isinstance(raw.get("enabled"), str) else None,
        **({"enabled_values": tuple(values)} if isinstance(values, list) else {}),
        when=tuple(conditions["when"].items()),
        unless=tuple(conditions["unless"].items()),
        requires_links=strings(raw.get("requires_links", []), f"{what}.requires_links", err),
    )


def switch(raw: Any, err: Err) -> SwitchSpec | None:
    keys = {"selector", "choices", "pattern", "first_present", "output"}
    if not isinstance(raw, dict) or set(raw) - keys:
        err(f"'switch' must be an object with keys from {', '.join(sorted(keys))}")
        return None
    choices = raw.get("choices", {})
    if not isinstance(choices, dict) or not all(isinstance(v, str) for v in choices.values()):
        err("switch.choices must map selector values (as strings: 'true', '1', 'On') to input names")
        choices = {}
    has_selector = isinstance(raw.get("selector"), str)
    if has_selector == ("first_present" in raw):
        # A selector alone (no choices, no pattern) says which input decides, not what it picks:
        # such a switch stays unresolved (and its branches only candidates) until run time.
        err("a switch has either a 'selector' (with 'choices' or a 'pattern', or alone) or 'first_present'")
    if raw.get("pattern") is not None and "{}" not in str(raw.get("pattern")):
        err("switch.pattern must contain {} for the selector value, e.g. 'input{}'")
    return SwitchSpec(
        selector=raw.get("selector") if has_selector else None,
        choices=MappingProxyType({str(k): v for k, v in choices.items()}),
        pattern=raw.get("pattern") if isinstance(raw.get("pattern"), str) else None,
        first_present=regex(raw.get("first_present"), "switch.first_present", err),
        output=raw.get("output", 0) if type(raw.get("output", 0)) is int else 0,
    )


def math_spec(raw: Any, err: Err) -> MathSpec | None:
    keys = {"expression", "prefix", "variables", "defaults", "outputs"}
    if not isinstance(raw, dict) or not isinstance(raw.get("expression"), str) or set(raw) - keys:
        err(f"'math' needs 'expression' (an input name) and only keys from {', '.join(sorted(keys))}")
        return None
    outputs = raw.get("outputs", ["float"])
    if not isinstance(outputs, list) or not all(o in MATH_OUTPUTS for o in outputs):
        err(f"math.outputs lists each output's type: {', '.join(sorted(MATH_OUTPUTS))}")
        outputs = ["float"]
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(v, (int, float)) for v in defaults.values()):
        err("math.defaults maps variable names to numbers")
        defaults = {}
    variables = raw.get("variables", [])
    if not isinstance(variables, list) or not all(isinstance(v, str) and v.isidentifier() for v in variables):
        err("math.variables lists the input names usable in the expression")
        variables = []
    if ("prefix" in raw) == bool(variables):
        err("math takes either 'prefix' (inputs named <prefix><var>) or 'variables'")
    return MathSpec(
        expression=raw["expression"],
        prefix=raw.get("prefix") if isinstance(raw.get("prefix"), str) else None,
        variables=tuple(variables),
        defaults=MappingProxyType(dict(defaults)),
        outputs=tuple(outputs),
    )


def combine(raw: Any, err: Err) -> CombineSpec | None:
    if not isinstance(raw, dict) or set(raw) - {"inputs", "pattern", "separator"}:
        err("'combine' takes 'inputs' (a list) or 'pattern' (a regex), and 'separator'")
        return None
    inputs = strings(raw.get("inputs", []), "combine.inputs", err)
    pattern = regex(raw.get("pattern"), "combine.pattern", err)
    if bool(inputs) == (pattern is not None):
        err("combine takes exactly one of 'inputs' and 'pattern'")
    separator = raw.get("separator", " AND ")
    if isinstance(separator, str):
        return CombineSpec(inputs=inputs, pattern=pattern, separator=separator)
    field_spec = field(separator, "combine.separator", err)
    return CombineSpec(inputs=inputs, pattern=pattern, separator_field=field_spec)

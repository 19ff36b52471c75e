"""A record read from a file has the shape record-1.schema.json describes, or it is a ReadError naming the field.

The schema is compiled once into small checks (no jsonschema at read time: reading must stay
cheap). Only what a reader relies on is enforced: every type the schema gives, through
`properties`, `items`, `additionalProperties`, `$ref` and `oneOf` (as any-of). Presence
(`required`), enums, patterns and bounds are not: an older writer's record lacks newer keys, a
newer writer's may use values this version does not know, and both must still read. Graphs
(`prompt`, `workflow`) are only checked to be objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from .errors import ReadError
from .record import SCHEMA_ID, Record

# A check takes a value and says what is wrong with it, or None: (where, below the value, e.g. `.models[2].name`;
# what is wrong). The path is only spelled out on the way back from a failure, so a good record costs no strings.
Problem = tuple[str, str]
Check = Callable[[Any], "Problem | None"]

_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}
_NAMES = {
    "null": "null",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "a list",
    "object": "an object",
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return _NAMES["boolean"]
    for name in ("null", "integer", "number", "string", "array", "object"):
        if isinstance(value, _TYPES[name]):
            return _NAMES[name]
    return type(value).__name__


def _anything(value: Any) -> Problem | None:
    return None


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.defs = root.get("$defs", {})
        self.compiled: dict[str, Check] = {}

    def compile(self, schema: Any) -> Check | None:
        """A check for `schema`, or None where it constrains nothing a reader relies on."""
        if not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            return self._ref(schema["$ref"])
        checks = [
            c
            for c in (
                self._type(schema),
                self._properties(schema),
                self._items(schema),
                self._additional(schema),
                self._one_of(schema),
            )
            if c is not None
        ]
        if not checks:
            return None
        if len(checks) == 1:
            return checks[0]

        def all_of(value: Any) -> Problem | None:
            for check in checks:
                if (problem := check(value)) is not None:
                    return problem
            return None

        return all_of

    def _ref(self, ref: str) -> Check | None:
        name = ref.rsplit("/", 1)[-1]  # the record schema's $defs do not refer to themselves
        if name not in self.compiled:
            self.compiled[name] = self.compile(self.defs.get(name)) or _anything
        return self.compiled[name]

    @staticmethod
    def _type(schema: dict[str, Any]) -> Check | None:
        wanted = schema.get("type")
        if wanted is None:
            return None
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        types = tuple(t for n in names for t in _TYPES[n])
        bools = "boolean" in names  # bool is an int to Python, never to JSON
        label = " or ".join(_NAMES[n] for n in names)

        def check(value: Any) -> Problem | None:
            if isinstance(value, types) and (bools or not isinstance(value, bool)):
                return None
            return "", f"must be {label}, not {_kind(value)}"

        return check

    def _properties(self, schema: dict[str, Any]) -> Check | None:
        props = {k: c for k, v in schema.get("properties", {}).items() if (c := self.compile(v)) is not None}
        if not props:
            return None
        pairs = tuple(props.items())

        def check(value: Any) -> Problem | None:
            if not isinstance(value, dict):
                return None
            for key, sub in pairs:
                if key in value and (problem := sub(value[key])) is not None:
                    return f".{key}{problem[0]}", problem[1]
            return None

        return check

    def _items(self, schema: dict[str, Any]) -> Check | None:
        sub = self.compile(schema.get("items"))
        if sub is None:
            return None

        def check(value: Any) -> Problem | None:
            if not isinstance(value, list):
                return None
            for index, item in enumerate(value):
                if (problem := sub(item)) is not None:
                    return f"[{index}]{problem[0]}", problem[1]
            return None

        return check

    def _additional(self, schema: dict[str, Any]) -> Check | None:
        sub = self.compile(schema.get("additionalProperties"))
        if sub is None:
            return None
        known = set(schema.get("properties", {}))

        def check(value: Any) -> Problem | None:
            if not isinstance(value, dict):
                return None
            for key, item in value.items():
                if key not in known and (problem := sub(item)) is not None:
                    return f".{key}{problem[0]}", problem[1]
            return None

        return check

    def _one_of(self, schema: dict[str, Any]) -> Check | None:
        options = [self.compile(s) for s in schema.get("oneOf", ())]
        if not options:
            return None
        if any(o is None for o in options):
            return None
        checks = [o for o in options if o is not None]

        def check(value: Any) -> Problem | None:
            problem = None
            for option in checks:
                if (problem := option(value)) is None:
                    return None
            return problem  # the last option's, as before

        return check


@cache
def _record_check() -> Check:
    text = resources.files(__package__).joinpath("schema/record-1.schema.json").read_text("utf-8")
    check = _Compiler(json.loads(text)).compile(json.loads(text))
    assert check is not None
    return check


def warm() -> None:
    """Compile the record schema now rather than at the first read."""
    _record_check()


def check_record(data: Any, what: str) -> None:
    """ReadError naming the first field of `data` whose type the record schema does not allow."""
    problem = _record_check()(data)
    if problem is not None:
        raise ReadError(f"{what} is malformed: record{problem[0]} {problem[1]}")


SCHEMA_FAMILY = SCHEMA_ID.rsplit("/", 1)[0] + "/"


def record_from_data(data: Any, what: str) -> Record:
    """A record from decoded JSON, once its shape is checked; ReadError naming the field otherwise."""
    if not isinstance(data, dict):
        raise ReadError(f"{what} is not a JSON object")
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_FAMILY):
        raise ReadError(f"{what} is not a provenance record (schema {schema!r})")
    check_record(data, what)
    return Record.from_dict(data)

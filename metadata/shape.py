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

Check = Callable[[Any, str], "str | None"]  # (value, path) -> what is wrong, or None

_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
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
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return _NAMES[name]
    return type(value).__name__


def _anything(value: Any, path: str) -> str | None:
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

        def all_of(value: Any, path: str) -> str | None:
            for check in checks:
                if (problem := check(value, path)) is not None:
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
        tests = [_TYPES[n] for n in names]
        label = " or ".join(_NAMES[n] for n in names)

        def check(value: Any, path: str) -> str | None:
            return None if any(t(value) for t in tests) else f"{path} must be {label}, not {_kind(value)}"

        return check

    def _properties(self, schema: dict[str, Any]) -> Check | None:
        props = {k: c for k, v in schema.get("properties", {}).items() if (c := self.compile(v)) is not None}
        if not props:
            return None

        def check(value: Any, path: str) -> str | None:
            if not isinstance(value, dict):
                return None
            for key, sub in props.items():
                if key in value and (problem := sub(value[key], f"{path}.{key}")) is not None:
                    return problem
            return None

        return check

    def _items(self, schema: dict[str, Any]) -> Check | None:
        sub = self.compile(schema.get("items"))
        if sub is None:
            return None

        def check(value: Any, path: str) -> str | None:
            if not isinstance(value, list):
                return None
            for index, item in enumerate(value):
                if (problem := sub(item, f"{path}[{index}]")) is not None:
                    return problem
            return None

        return check

    def _additional(self, schema: dict[str, Any]) -> Check | None:
        sub = self.compile(schema.get("additionalProperties"))
        if sub is None:
            return None
        known = set(schema.get("properties", {}))

        def check(value: Any, path: str) -> str | None:
            if not isinstance(value, dict):
                return None
            for key, item in value.items():
                if key not in known and (problem := sub(item, f"{path}.{key}")) is not None:
                    return problem
            return None

        return check

    def _one_of(self, schema: dict[str, Any]) -> Check | None:
        options = [self.compile(s) for s in schema.get("oneOf", ())]
        if not options:
            return None
        if any(o is None for o in options):
            return None

        def check(value: Any, path: str) -> str | None:
            problems = [o(value, path) for o in options if o is not None]
            return None if any(p is None for p in problems) else problems[-1]

        return check


@cache
def _record_check() -> Check:
    text = resources.files(__package__).joinpath("schema/record-1.schema.json").read_text("utf-8")
    check = _Compiler(json.loads(text)).compile(json.loads(text))
    assert check is not None
    return check


def check_record(data: Any, what: str) -> None:
    """ReadError naming the first field of `data` whose type the record schema does not allow."""
    problem = _record_check()(data, "record")
    if problem is not None:
        raise ReadError(f"{what} is malformed: {problem}")


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

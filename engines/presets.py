"""Presets as data: one JSON file per engine/task/mode, validated on load; user files override by name."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from .errors import EngineError
from .families import family_by_engine
from .modes import MODE_TABLE

logger = logging.getLogger(__name__)

MAX_PRESET_BYTES = 1 << 20
FIELDS = ("engine", "task", "mode", "name", "values")
OPTIONAL_FIELDS = ("description",)


@dataclass(frozen=True)
class Preset:
    engine: str
    task: str
    mode: str
    name: str
    values: Mapping[str, Any]
    source: str
    description: str = ""


class PresetStore:
    """Presets by name; `default_for` finds the one an engine uses for a task and mode."""

    def __init__(self, presets: Mapping[str, Preset] | None = None) -> None:
        self.presets: dict[str, Preset] = dict(presets or {})

    def get(self, name: str) -> Preset | None:
        return self.presets.get(name)

    def names_for(self, engine: str, task: str) -> list[str]:
        return sorted(p.name for p in self.presets.values() if p.engine == engine and p.task == task)

    def default_for(self, engine: str, task: str, mode: str) -> Preset | None:
        """`<engine>-<task>-<mode>` when present, else the first by name with that engine, task and mode."""
        canonical = f"{engine}-{task}-{mode}"
        found = [p for p in self.presets.values() if (p.engine, p.task, p.mode) == (engine, task, mode)]
        return min(found, key=lambda p: (p.name != canonical, p.name), default=None)

    def __len__(self) -> int:
        return len(self.presets)

    def __iter__(self) -> Iterator[Preset]:
        return iter(self.presets.values())


def parse_preset(data: Any, source: str) -> Preset:
    """A preset from decoded JSON, checked against its engine's specs; EngineError names source and key."""
    if not isinstance(data, dict):
        raise EngineError(f"preset {source}: must be a JSON object with {', '.join(FIELDS)}")
    for key in FIELDS:
        if key not in data:
            raise EngineError(f"preset {source}: missing key {key!r} (needs {', '.join(FIELDS)})")
    extra = sorted(set(data) - set(FIELDS) - set(OPTIONAL_FIELDS))
    if extra:
        raise EngineError(f"preset {source}: unknown key {extra[0]!r}; allowed: {', '.join(FIELDS + OPTIONAL_FIELDS)}")
    for key in ("engine", "task", "mode", "name"):
        if not isinstance(data[key], str) or not data[key]:
            raise EngineError(f"preset {source}: key {key!r} must be a non-empty string")
    family = family_by_engine(data["engine"])
    if family is None:
        raise EngineError(f"preset {source}: key 'engine' is {data['engine']!r}; allowed: {', '.join(_engines())}")
    instance = family()
    _check_choice(source, "task", data["task"], family.tasks)
    _check_choice(source, "mode", data["mode"], family.modes)
    values = data["values"]
    if not isinstance(values, dict):
        raise EngineError(f"preset {source}: key 'values' must be an object")
    specs = instance.specs()
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None:
            raise EngineError(
                f"preset {source}: values key {key!r} is not a {family.engine} parameter; allowed: {', '.join(specs)}"
            )
        if (why := spec.check(value)) is not None:
            raise EngineError(f"preset {source}: values key {key!r}: {why}")
    problems = [*MODE_TABLE[data["mode"]].problems(values), *instance.problems(data["task"], values)]
    if problems:
        key, why = problems[0]
        raise EngineError(f"preset {source}: values key {key!r}: {why}")
    coerced = {key: specs[key].coerce(value) for key, value in values.items()}
    description = data.get("description", "")
    return Preset(data["engine"], data["task"], data["mode"], data["name"], coerced, source, str(description))


def _check_choice(source: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise EngineError(f"preset {source}: key {key!r} is {value!r}; allowed: {', '.join(allowed)}")


def _engines() -> list[str]:
    from .families import FAMILIES, Generic

    return [family.engine for family in FAMILIES if family is not Generic]


def bundled_files() -> list[Traversable]:
    folder = resources.files(__package__).joinpath("presets")
    return sorted((f for f in folder.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)


def load_presets(user_dir: Path | None = None) -> PresetStore:
    """Bundled presets (a bad one raises EngineError naming file and key), then user presets from
    `user_dir`, which override bundled ones by name; a damaged or hostile user file is skipped with a warning."""
    store = PresetStore()
    for file in bundled_files():
        try:
            data = json.loads(file.read_text("utf-8"))
        except ValueError as err:
            raise EngineError(f"preset {file.name}: not valid JSON ({err})") from err
        preset = parse_preset(data, file.name)
        if preset.name in store.presets:
            raise EngineError(
                f"preset {file.name}: key 'name' {preset.name!r} is also in {store.presets[preset.name].source}"
            )
        store.presets[preset.name] = preset
    if user_dir is not None and user_dir.is_dir():
        for path in sorted(user_dir.glob("*.json")):
            user = _load_user(path)
            if user is not None:
                store.presets[user.name] = user
    return store


def _load_user(path: Path) -> Preset | None:
    try:
        if path.is_symlink() or not path.is_file():
            raise EngineError("not a regular file")
        if path.stat().st_size > MAX_PRESET_BYTES:
            raise EngineError(f"larger than {MAX_PRESET_BYTES} bytes")
        with path.open("rb") as handle:
            raw = handle.read(MAX_PRESET_BYTES + 1)
        if len(raw) > MAX_PRESET_BYTES:
            raise EngineError(f"larger than {MAX_PRESET_BYTES} bytes")
        return parse_preset(json.loads(raw.decode("utf-8")), str(path))
    except (OSError, ValueError, RecursionError) as err:  # EngineError and JSON/Unicode errors are ValueErrors
        logger.warning("skipping user preset %s: %s", path, err)
        return None

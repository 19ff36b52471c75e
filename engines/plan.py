"""plan(): sampler policy, then presets fill what is empty, then strict validation → the effective Plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from .errors import EngineError
from .family import MODES, TASKS, Family
from .modes import MODE_TABLE
from .presets import Preset, PresetStore
from .samplers import resolve

NO_PRESET = "none"
DEFAULT_PRESET = (None, "", "auto")


@dataclass
class Plan:
    """What an engine will sample with and how it got there; `to_dict()` is what the record stores."""

    engine: str
    task: str
    mode: str
    params: dict[str, Any]
    sampler_in: str | None
    scheduler_in: str | None
    sampler_effective: str
    scheduler_effective: str
    applied_preset_patch: list[dict[str, Any]] = field(default_factory=list)
    mode_ignored_reason: str | None = None
    notes: list[str] = field(default_factory=list)
    preset: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    advice: dict[str, Any] = field(default_factory=dict)  # recommended, not applied by the caller

    def set_aside(self, keys: Sequence[str], why: str) -> None:
        """Move `keys` from the effective params to `advice`: values the engine recommends that the
        caller does not apply (so a record never calls them effective), with a note saying why."""
        moved = {key: self.params.pop(key) for key in keys if key in self.params}
        if moved:
            self.advice.update(moved)
            self.notes.append(f"{', '.join(f'{k} {v}' for k, v in moved.items())}: advice only, {why}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "task": self.task,
            "mode": self.mode,
            "preset": self.preset,
            "params": dict(self.params),
            "advice": dict(self.advice),
            "sampler_in": self.sampler_in,
            "scheduler_in": self.scheduler_in,
            "sampler_effective": self.sampler_effective,
            "scheduler_effective": self.scheduler_effective,
            "applied_preset_patch": [dict(entry) for entry in self.applied_preset_patch],
            "mode_ignored_reason": self.mode_ignored_reason,
            "notes": list(self.notes),
            "model": dict(self.model),
        }


def plan(
    family: Family,
    task: str,
    given: Mapping[str, Any],
    *,
    mode: str = "normal",
    preset: str | None = None,
    samplers: Sequence[str],
    schedulers: Sequence[str],
    presets: PresetStore | None = None,
) -> Plan:
    """The effective parameters for `family` on `task`. `given` holds what the user set (None = left empty);
    an explicit value is never overwritten. Raises EngineError naming engine and task with the allowed values."""
    where = f"{family.name} {task}"
    if task not in TASKS:
        raise EngineError(f"{family.name}: unknown task {task!r}; allowed: {', '.join(TASKS)}")
    if task not in family.allowed_tasks():
        raise EngineError(f"{where}: this model does not do {task}; allowed: {', '.join(family.allowed_tasks())}")
    if mode not in MODES:
        raise EngineError(f"{where}: unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    specs = family.specs()
    unknown = sorted(key for key, value in given.items() if value is not None and key not in specs)
    if unknown:
        raise EngineError(f"{where}: {family.name} has no parameter {unknown[0]!r}; allowed: {', '.join(specs)}")

    for group in family.exclusive:
        both = [key for key in group if given.get(key) is not None]
        if len(both) > 1:
            raise EngineError(f"{where}: set one of {', '.join(group)}, not {' and '.join(both)}")
    notes: list[str] = []
    ignored = None
    if mode not in family.modes:
        ignored = f"{family.name} has no {mode} mode (its modes: {', '.join(family.modes)}); sampling as normal"
        mode = "normal"
    chosen = _choose_preset(family, task, mode, name=preset, store=presets)
    if chosen is not None and chosen.mode != mode:
        notes.append(f"mode {chosen.mode} from preset {chosen.name}")
        mode = chosen.mode

    sampler_in, scheduler_in = given.get("sampler_name"), given.get("scheduler")
    choice = resolve(sampler_in, scheduler_in, samplers, schedulers, where)
    notes += choice.notes
    params = {key: value for key, value in given.items() if value is not None}
    params.update({k: v for k, v in (("sampler_name", choice.sampler), ("scheduler", choice.scheduler)) if v})
    patch: list[dict[str, Any]] = []
    if chosen is not None:
        _fill(family, params, _scaled(chosen, params), chosen.name, patch)
    _fill(family, params, MODE_TABLE[mode].defaults, f"defaults:{mode} mode", patch)
    _fill(family, params, family.defaults, f"defaults:{family.engine}", patch)
    _fill(family, params, family.derived(task, params), f"defaults:{family.engine}", patch)

    params = _validate(family, task, mode, params, samplers=samplers, schedulers=schedulers, patch=patch)
    notes += family.notes(task, mode, params)
    return Plan(
        engine=family.name,
        task=task,
        mode=mode,
        params=params,
        sampler_in=sampler_in,
        scheduler_in=scheduler_in,
        sampler_effective=params["sampler_name"],
        scheduler_effective=params["scheduler"],
        applied_preset_patch=patch,
        mode_ignored_reason=ignored,
        notes=notes,
        preset=chosen.name if chosen is not None else None,
        model=family.describe(),
    )


def _choose_preset(
    family: Family, task: str, mode: str, *, name: str | None, store: PresetStore | None
) -> Preset | None:
    where = f"{family.name} {task}"
    if name == NO_PRESET or (store is None and name in DEFAULT_PRESET):
        return None
    if name in DEFAULT_PRESET:
        assert store is not None
        return store.default_for(family.engine, task, mode)
    assert name is not None
    found = store.get(name) if store is not None else None
    allowed = store.names_for(family.engine, task) if store is not None else []
    listing = ", ".join([NO_PRESET, *allowed])
    if found is None:
        raise EngineError(f"{where}: unknown preset {name!r}; allowed: {listing}")
    if (found.engine, found.task) != (family.engine, task):
        raise EngineError(f"{where}: preset {name!r} is for {found.engine} {found.task}; allowed: {listing}")
    if mode not in (found.mode, "normal"):
        raise EngineError(
            f"{where}: preset {name!r} is for {found.mode} mode, not {mode}; allowed: {', '.join(allowed)}"
        )
    return found


def _scaled(chosen: Preset, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The preset's values, its expert split moved with the user's own step count: split 10 of the
    preset's 20 steps is split 4 of 8, never a step past the end (which would refuse the run)."""
    values = chosen.values
    split, preset_steps, steps = values.get("split"), values.get("steps"), params.get("steps")
    if not (_count(split) and _count(preset_steps) and _count(steps)) or steps == preset_steps or steps < 2:
        return values
    moved = min(max(1, round(split * steps / preset_steps)), steps - 1)
    return {**values, "split": moved}


def _count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _fill(
    family: Family, params: dict[str, Any], values: Mapping[str, Any], source: str, patch: list[dict[str, Any]]
) -> None:
    """Fill only keys still empty; in an exclusive group (split/boundary) only when none of it is set."""
    specs = family.specs()
    blocked = {key for group in family.exclusive if any(k in params for k in group) for key in group}
    for key, value in values.items():
        if key in params or key in blocked or key not in specs:
            continue
        params[key] = value
        patch.append({"key": key, "value": value, "preset": source})
        blocked |= {k for group in family.exclusive if key in group for k in group}


def _validate(
    family: Family,
    task: str,
    mode: str,
    params: dict[str, Any],
    *,
    samplers: Sequence[str],
    schedulers: Sequence[str],
    patch: list[dict[str, Any]],
) -> dict[str, Any]:
    where = f"{family.name} {task}"
    specs = family.specs()
    origin = {entry["key"]: entry["preset"] for entry in patch}

    def fail(message: str, key: str | None = None) -> EngineError:
        source = f" (from {origin[key]})" if key in origin else ""
        return EngineError(f"{where}: {message}{source}")

    for key, value in params.items():
        if (why := specs[key].check(value)) is not None:
            raise fail(why, key)
    params = {key: specs[key].coerce(value) for key, value in params.items()}
    if params["sampler_name"] not in samplers:
        raise fail(
            f"sampler {params['sampler_name']!r} is not in this ComfyUI; allowed: {', '.join(samplers)}", "sampler_name"
        )
    if params["scheduler"] not in schedulers:
        raise fail(
            f"scheduler {params['scheduler']!r} is not in this ComfyUI; allowed: {', '.join(schedulers)}", "scheduler"
        )
    if task in ("txt2img", "txt2vid") and params["denoise"] != 1.0:
        image_task = "img2img" if task == "txt2img" else "img2vid"
        raise fail(
            f"denoise must be 1.0 for {task}, got {params['denoise']} (a partial denoise needs {image_task})", "denoise"
        )
    problems = [*MODE_TABLE[mode].problems(params), *family.problems(task, params)]
    if problems:
        raise fail(problems[0][1], problems[0][0])
    ordered = {key: params[key] for key in specs if key in params}
    for group in family.exclusive:
        ordered.update({key: params.get(key) for key in group})
    return ordered

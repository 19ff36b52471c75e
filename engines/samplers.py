"""Sampler policy: ComfyUI names pass through, A1111 labels map to ComfyUI sampler + scheduler (table as data)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from .errors import EngineError

EMPTY = (None, "", "auto")


@dataclass(frozen=True)
class A1111Table:
    """Labels folded to lower case with single spaces, so "dpm++ 2m  karras" finds "DPM++ 2M Karras"."""

    samplers: Mapping[str, str]
    schedulers: Mapping[str, str]
    default_scheduler: str
    labels: tuple[str, ...] = field(default=())

    def sampler(self, label: str) -> tuple[str, str | None] | None:
        """(ComfyUI sampler, scheduler the label names or None) for an A1111 label, else None."""
        key = _fold(label)
        if key in self.samplers:
            return self.samplers[key], None
        for sched_label, scheduler in self.schedulers.items():
            head = key.removesuffix(" " + sched_label)
            if head != key and head in self.samplers:
                return self.samplers[head], scheduler
        return None

    def scheduler(self, label: str) -> str | None:
        return self.schedulers.get(_fold(label))


def _fold(label: str) -> str:
    return " ".join(label.split()).casefold()


@cache
def a1111_table() -> A1111Table:
    text = resources.files(__package__).joinpath("data/a1111_samplers.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    samplers: dict[str, str] = {}
    for label, entry in data["samplers"].items():
        for name in (label, *entry.get("aliases", ())):
            samplers[_fold(name)] = entry["sampler"]
    schedulers = {_fold(label): name for label, name in data["schedulers"].items()}
    return A1111Table(samplers, schedulers, data["default_scheduler"], tuple(data["samplers"]))


@dataclass
class SamplerChoice:
    sampler: str | None
    scheduler: str | None
    notes: list[str] = field(default_factory=list)


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names)


def resolve(
    sampler_in: str | None,
    scheduler_in: str | None,
    samplers: Sequence[str],
    schedulers: Sequence[str],
    where: str,
) -> SamplerChoice:
    """Map the user's sampler/scheduler to ComfyUI names from the live lists; None stays empty for presets.

    A combined label ("DPM++ 2M Karras", "dpmpp_2m_karras") names the scheduler and must agree with an
    explicit one; a bare A1111 label only fills an empty scheduler with the table's default."""
    table = a1111_table()
    choice = SamplerChoice(None, _scheduler(scheduler_in, schedulers, where, table))
    if sampler_in in EMPTY:
        return choice
    assert sampler_in is not None
    named: str | None
    if sampler_in in samplers:
        choice.sampler, named = sampler_in, None
    elif (found := table.sampler(sampler_in)) is not None:
        choice.sampler, named = found
        if choice.sampler not in samplers:
            raise EngineError(
                f"{where}: A1111 sampler {sampler_in!r} means {choice.sampler!r}, which this ComfyUI lacks; "
                f"allowed: {_listing(samplers)}"
            )
        choice.notes.append(f"A1111 sampler {sampler_in!r} mapped to {choice.sampler}")
        if named is None and choice.scheduler is None:
            choice.scheduler = table.default_scheduler
            choice.notes.append(f"{sampler_in!r} names no schedule: {table.default_scheduler}, as A1111 imports do")
    elif (split := _split_combined(sampler_in, samplers, schedulers)) is not None:
        choice.sampler, named = split
    else:
        raise EngineError(
            f"{where}: unknown sampler {sampler_in!r}; allowed: {_listing(samplers)} "
            f"(or an A1111 name: {_listing(table.labels)}, optionally followed by Karras/Exponential)"
        )
    if named is not None:
        if choice.scheduler not in (None, named):
            raise EngineError(
                f"{where}: sampler {sampler_in!r} names scheduler {named} but scheduler is {choice.scheduler}; "
                "set one of them"
            )
        if named not in schedulers:
            raise EngineError(f"{where}: scheduler {named!r} is not in this ComfyUI; allowed: {_listing(schedulers)}")
        choice.scheduler = named
    return choice


def _scheduler(scheduler_in: str | None, schedulers: Sequence[str], where: str, table: A1111Table) -> str | None:
    if scheduler_in in EMPTY:
        return None
    assert scheduler_in is not None
    if scheduler_in in schedulers:
        return scheduler_in
    mapped = table.scheduler(scheduler_in)
    if mapped is not None and mapped in schedulers:
        return mapped
    raise EngineError(f"{where}: unknown scheduler {scheduler_in!r}; allowed: {_listing(schedulers)}")


def _split_combined(name: str, samplers: Sequence[str], schedulers: Sequence[str]) -> tuple[str, str] | None:
    """ "dpmpp_2m_karras" (Image-Saver's `sampler_scheduler` label) → ("dpmpp_2m", "karras")."""
    for scheduler in sorted(schedulers, key=len, reverse=True):
        head = name.removesuffix("_" + scheduler)
        if head != name and head in samplers:
            return head, scheduler
    return None

"""Batch templates: load and check one strictly, then expand it into jobs (final prompt, negative, seed).

A template is a YAML or JSON mapping (README "Batches and manifests" is its reference). Expansion
is pure: the same settled template always gives the same jobs, which is what lets `--resume`
find the ones still missing. Variation draws (random mode) come from their own random.Random,
seeded by `variation_seed`, so changing the sampler seeds never changes which prompts are made.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..metadata import settings
from ..metadata.errors import MetadataError

MODES = ("combinatorial", "random")
SEED_MODES = ("fixed", "progressive", "random")
KEYS = (
    "workflow",
    "prompt",
    "negative",
    "variations",
    "mode",
    "seed_mode",
    "base_seed",
    "variation_seed",
    "num_images",
    "overrides",
    "options",
    "prompt_node",
    "negative_node",
    "seed_node",
)
NODE_KEYS = ("prompt_node", "negative_node", "seed_node")
SEED_MAX = 2**64 - 1  # KSampler's own maximum
DRAWN_SEED_MAX = 2**32  # seeds we draw stay in the range every A1111-style reader takes
NUM_IMAGES_MAX = 100_000
TEMPLATE_MAX = 16 * 1024 * 1024  # a template, a variations file or a workflow file
# {Name} is a placeholder; {{ and }} are literal braces. Anything else in braces ({a|b}) is left alone.
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w-]*)\}")
NAME = re.compile(r"^[A-Za-z_][\w-]*$")


class TemplateError(MetadataError):
    """A template that cannot run; the message names the key (and the file) at fault."""


@dataclass(frozen=True)
class NodeRef:
    """A node the template names: its id or title, and optionally the input to set."""

    node: str
    input: str | None = None

    def to_json(self) -> Any:
        return self.node if self.input is None else {"node": self.node, "input": self.input}


@dataclass(frozen=True)
class Template:
    """A checked template; `variations` holds every list resolved (files read), in the template's order."""

    workflow: str
    prompt: str
    negative: str | None = None
    variations: dict[str, list[str]] = field(default_factory=dict)
    mode: str = "combinatorial"
    seed_mode: str = "fixed"
    base_seed: int | None = None
    variation_seed: int | None = None
    num_images: int = 1
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per-run settings for every Provenance save node of each job (their `options` input).
    options: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, NodeRef] = field(default_factory=dict)  # prompt_node, negative_node, seed_node

    def used(self) -> dict[str, list[str]]:
        """The variations whose placeholder the prompt or negative uses, in the template's order."""
        names = set(placeholders(self.prompt)) | set(placeholders(self.negative or ""))
        return {name: values for name, values in self.variations.items() if name in names}

    def total_combinations(self) -> int:
        total = 1
        for values in self.used().values():
            total *= len(values)
        return total

    def image_count(self) -> int:
        """Jobs the template makes: every combination num_images times, or num_images draws."""
        return self.total_combinations() * self.num_images if self.mode == "combinatorial" else self.num_images

    def resolved(self) -> dict[str, Any]:
        """The template as loaded, variation files inline: with it alone the same jobs come out again."""
        data: dict[str, Any] = {
            "workflow": self.workflow,
            "prompt": self.prompt,
            "negative": self.negative,
            "variations": {k: list(v) for k, v in self.variations.items()},
            "mode": self.mode,
            "seed_mode": self.seed_mode,
            "base_seed": self.base_seed,
            "variation_seed": self.variation_seed,
            "num_images": self.num_images,
            "overrides": json.loads(json.dumps(self.overrides)),
            "options": json.loads(json.dumps(self.options)),
        }
        data.update({key: ref.to_json() for key, ref in self.nodes.items()})
        return data


@dataclass(frozen=True)
class Job:
    """One image to make: its position, final texts, seed and the variation values it used."""

    index: int
    prompt: str
    negative: str | None
    seed: int
    applied: dict[str, str]


def placeholders(text: str) -> list[str]:
    """The {Name} placeholders of `text`, in order of first use."""
    return list(dict.fromkeys(m.group(1) for m in PLACEHOLDER.finditer(text) if m.group(1)))


def fill(text: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values[m.group(1)] if m.group(1) else m.group(0)[0], text)


def load(path: Path) -> Template:
    """Read and check a template file (.yaml, .yml or .json); TemplateError naming the key otherwise."""
    text = read_text(path, "the template")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # json's ValueError, yaml.YAMLError, and a too-deep document's RecursionError
        raise TemplateError(f"the template is not valid {_kind(path)}: {_first_line(err)}") from err
    return from_data(data, path.parent)


def from_data(data: Any, base: Path | None) -> Template:
    """A template from its parsed mapping; file references are read relative to `base`."""
    if not isinstance(data, dict):
        raise TemplateError("a template is a mapping of keys (workflow, prompt, variations, ...)")
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise TemplateError(f"unknown key {unknown[0]!r}; allowed: {', '.join(KEYS)}")
    workflow = _text(data, "workflow", required=True)
    prompt = _text(data, "prompt", required=True)
    negative = _text(data, "negative")
    variations = _variations(data.get("variations"), base)
    mode = _choice(data, "mode", MODES)
    seed_mode = _choice(data, "seed_mode", SEED_MODES)
    template = Template(
        workflow=str(workflow),
        prompt=str(prompt),
        negative=negative,
        variations=variations,
        mode=mode,
        seed_mode=seed_mode,
        base_seed=_int(data, "base_seed", 0, SEED_MAX),
        variation_seed=_int(data, "variation_seed", 0, SEED_MAX),
        num_images=_int(data, "num_images", 1, NUM_IMAGES_MAX) or 1,
        overrides=_overrides(data.get("overrides")),
        options=_options(data.get("options")),
        nodes={key: ref for key in NODE_KEYS if (ref := _node_ref(data, key)) is not None},
    )
    for key, text in (("prompt", template.prompt), ("negative", template.negative or "")):
        missing = [name for name in placeholders(text) if name not in variations]
        if missing:
            known = ", ".join(variations) or "none"
            raise TemplateError(f"{key}: unknown placeholder {{{missing[0]}}} (variations: {known})")
    return template


def settle(template: Template, workflow_seed: int | None) -> Template:
    """Fill what the template leaves open, once, so the resolved template alone makes the same jobs.

    No base_seed: the workflow's own seed for fixed and progressive, a drawn one for random. No
    variation_seed in random mode: a drawn one.
    """
    base_seed = template.base_seed
    if base_seed is None:
        fresh = template.seed_mode == "random" or workflow_seed is None
        base_seed = secrets.randbelow(DRAWN_SEED_MAX) if fresh else workflow_seed
    variation_seed = template.variation_seed
    if variation_seed is None and template.mode == "random":
        variation_seed = secrets.randbelow(DRAWN_SEED_MAX)
    return replace(template, base_seed=base_seed, variation_seed=variation_seed)


def expand(template: Template) -> list[Job]:
    """Every job, in order; `template` must be settled (base_seed set, and variation_seed in random mode)."""
    if template.base_seed is None or (template.mode == "random" and template.variation_seed is None):
        raise TemplateError("the template is not settled: base_seed (and variation_seed in random mode) missing")
    used = template.used()
    if template.mode == "combinatorial":
        combos = [dict(zip(used, values, strict=True)) for values in itertools.product(*used.values())]
        # Every combination gets the same seeds (repeat r uses seed r): a grid that compares the variations.
        plan = [(combo, repeat) for combo in combos for repeat in range(template.num_images)]
    else:
        draws = random.Random(template.variation_seed)
        plan = [({n: draws.choice(v) for n, v in used.items()}, i) for i in range(template.num_images)]
    seeds = _seeds(template, max(k for _, k in plan) + 1 if plan else 0)
    return [
        Job(
            index=index,
            prompt=fill(template.prompt, combo),
            negative=fill(template.negative, combo) if template.negative is not None else None,
            seed=seeds[k],
            applied=combo,
        )
        for index, (combo, k) in enumerate(plan)
    ]


def _seeds(template: Template, count: int) -> list[int]:
    base = template.base_seed or 0
    if template.seed_mode == "fixed":
        return [base] * count
    if template.seed_mode == "progressive":
        return [(base + i) % (SEED_MAX + 1) for i in range(count)]
    stream = random.Random(f"seeds:{base}")  # a string seed: its own stream, never the variations'
    return [stream.randrange(DRAWN_SEED_MAX) for _ in range(count)]


# -- checking each key ---------------------------------------------------------------------------
def _text(data: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise TemplateError(f"{key}: missing (required)")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise TemplateError(f"{key}: must be a non-empty string, got {_what(value)}")
    return value


def _choice(data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = data.get(key, allowed[0])
    if value not in allowed:
        raise TemplateError(f"{key}: must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _int(data: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TemplateError(f"{key}: must be a whole number from {low} to {high}, got {_what(value)}")
    return value


def _variations(value: Any, base: Path | None) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TemplateError(f"variations: must map names to lists (or files), got {_what(value)}")
    out: dict[str, list[str]] = {}
    for name, values in value.items():
        where = f"variations.{name}"
        if not isinstance(name, str) or not NAME.match(name):
            raise TemplateError(f"{where}: a name is letters, digits, _ or -, starting with a letter or _")
        items = _lines(_path(values, base, where), where) if isinstance(values, str) else values
        if not isinstance(items, list) or not items:
            raise TemplateError(f"{where}: must be a non-empty list or a file of one value per line")
        bad = next((v for v in items if isinstance(v, bool) or not isinstance(v, (str, int, float))), None)
        if bad is not None:
            raise TemplateError(f"{where}: values must be text or numbers, got {_what(bad)}")
        out[name] = [str(v) for v in items]
    return out


def _lines(path: Path, where: str) -> list[str]:
    """A variations file: one value per line; blank lines and lines starting with # left out."""
    text = read_text(path, where)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _overrides(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TemplateError(f"overrides: must map node ids or titles to {{input: value}}, got {_what(value)}")
    out: dict[str, dict[str, Any]] = {}
    for node, inputs in value.items():
        if not isinstance(inputs, dict) or not inputs or not all(isinstance(k, str) for k in inputs):
            raise TemplateError(f"overrides.{node}: must map input names to values, got {_what(inputs)}")
        try:
            json.dumps(inputs, allow_nan=False)
        except ValueError as err:
            raise TemplateError(f"overrides.{node}: values must be plain JSON ({err})") from err
        out[str(node)] = dict(inputs)
    return out


def _options(value: Any) -> dict[str, Any]:
    """Settings overrides for the save nodes, checked as the nodes check their `options` input."""
    if value is None:
        return {}
    try:
        checked = settings.parse_overrides(value if isinstance(value, (str, dict)) else json.dumps(value))
    except ValueError as err:
        raise TemplateError(str(err)) from err
    plain: dict[str, Any] = json.loads(json.dumps(checked))  # as the manifest and the node's input hold it
    return plain


def _node_ref(data: Mapping[str, Any], key: str) -> NodeRef | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return NodeRef(str(value))
    if isinstance(value, dict) and set(value) <= {"node", "input"} and "node" in value:
        node, name = value.get("node"), value.get("input")
        if isinstance(node, (str, int)) and not isinstance(node, bool) and (name is None or isinstance(name, str)):
            return NodeRef(str(node), name)
    raise TemplateError(f"{key}: a node id or title, or {{node: ID_OR_TITLE, input: NAME}}; got {_what(value)}")


def _path(value: str, base: Path | None, where: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        raise TemplateError(f"{where}: no such file: {path}")
    return path


def workflow_path(template: Template, base: Path | None) -> Path:
    """The workflow file, relative to the template's folder."""
    return _path(template.workflow, base, "workflow")


def read_text(path: Path, what: str) -> str:
    """A UTF-8 file of at most TEMPLATE_MAX bytes; TemplateError naming `what` otherwise."""
    try:
        with path.open("rb") as handle:
            data = handle.read(TEMPLATE_MAX + 1)
    except OSError as err:
        raise TemplateError(f"{what}: cannot read {path}: {(err.strerror or str(err)).lower()}") from err
    if len(data) > TEMPLATE_MAX:
        raise TemplateError(f"{what}: {path} is over the {TEMPLATE_MAX:,}-byte limit")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise TemplateError(f"{what}: {path} is not UTF-8 text") from err


def _kind(path: Path) -> str:
    return "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"


def _first_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]


def _what(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:60])
    return f"a {type(value).__name__.replace('dict', 'mapping')}"

"""A1111 vocabulary: sampler and schedule labels, quoting, numbers, names; the constants of the format."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

NEGATIVE_PREFIX = "Negative prompt:"
EXACT_PROMPT = "Exact prompt"
EXACT_NEGATIVE = "Exact negative prompt"
COMFY_SAMPLER = "ComfyUI sampler"
# How many `<lora:…>` tags were appended to the prompt for A1111 readers (our reader takes them off again).
LORA_TAGS = "Lora tags appended"
# A1111's extra-network tag: `<lora:name>`, `<lora:name:w>`, `<lora:name:te:unet>`, named `te=`/`unet=` too.
RE_LORA_TAG = re.compile(r"<lora:([^:<>]+)((?::[^:<>]*)*)>", re.IGNORECASE)

# A1111 infotext_utils.re_param: a key, then a quoted JSON string or anything up to a comma.
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_SIZE = re.compile(r"^(\d+)x(\d+)$")


@cache
def _names() -> dict[str, dict[str, str]]:
    text = resources.files(__package__.rsplit(".", 1)[0]).joinpath("rules/a1111_names.json").read_text("utf-8")
    data: dict[str, dict[str, str]] = json.loads(text)
    return data


def sampler_label(name: str) -> str:
    return _names()["samplers"].get(name, name)


def scheduler_label(name: str) -> str:
    return _names()["schedulers"].get(name, name)


def sampler_from_label(label: str) -> tuple[str, str | None]:
    """A1111 sampler label → (ComfyUI sampler, scheduler implied by a legacy combined label)."""
    samplers = _names()["samplers"]
    reverse = {v: k for k, v in reversed(samplers.items())}
    if label in reverse:
        return reverse[label], None
    for sched, sched_label in _names()["schedulers"].items():
        suffix = " " + sched_label
        if label.endswith(suffix) and label[: -len(suffix)] in reverse:
            return reverse[label[: -len(suffix)]], sched
    return label, None


def scheduler_from_label(label: str) -> str:
    reverse = {v: k for k, v in _names()["schedulers"].items()}
    return reverse.get(label, label)


def tag_separator(prompt: str) -> str:
    """What goes between a prompt and the `<lora:…>` tags appended to it: one space (none after an empty
    prompt), always the same, so a reader can take the tags off and get the prompt back exactly."""
    return " " if prompt else ""


def quote(value: str) -> str:
    """A1111's quote(): JSON-quote values holding `,` `:` or a newline (and ones that look quoted)."""
    if any(c in value for c in ",:\n") or (value.startswith('"') and value.endswith('"')):
        return json.dumps(value, ensure_ascii=False)
    return value


def format_number(value: float | int) -> str:
    """Shortest text that reads back as the same number: 7.0 → "7", 6.5 → "6.5"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def safe_name(name: str) -> str:
    """Model names lose `,` and `:` in infotext: naive readers split on them (readers.md §7.3); `<` and
    `>` too, which would end a `<lora:…>` tag. The file's stem, as A1111 names a LoRA in tags."""
    stem = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    for ext in (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    return stem.replace(",", "").replace(":", "").replace("<", "").replace(">", "")

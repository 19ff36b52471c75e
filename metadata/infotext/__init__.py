"""A1111/Forge infotext ("parameters"): written from a record, parsed back into generation fields.

The format is the one every A1111-style reader understands (research/readers.md §2): prompt
lines, an optional `Negative prompt:` line, and a last line of `Key: value` pairs that starts
with `Steps:`. It is lossy by design (A1111 strips every line, and a prompt line that starts
with `Negative prompt:` ends the prompt), so when the plain text would not parse back to the
exact prompts, the exact ones ride along as quoted `Exact prompt`/`Exact negative prompt`
parameters that other readers ignore and ours prefers.
"""

from __future__ import annotations

from .labels import (
    COMFY_SAMPLER,
    EXACT_NEGATIVE,
    EXACT_PROMPT,
    LORA_TAGS,
    NEGATIVE_PREFIX,
    _names,
    format_number,
    quote,
    safe_name,
    sampler_from_label,
    sampler_label,
    scheduler_from_label,
    scheduler_label,
)
from .read import Infotext, parse, to_record
from .write import build, lora_tags, parameters

__all__ = [
    "COMFY_SAMPLER",
    "EXACT_NEGATIVE",
    "EXACT_PROMPT",
    "LORA_TAGS",
    "NEGATIVE_PREFIX",
    "Infotext",
    "_names",
    "build",
    "format_number",
    "lora_tags",
    "parameters",
    "parse",
    "quote",
    "safe_name",
    "sampler_from_label",
    "sampler_label",
    "scheduler_from_label",
    "scheduler_label",
    "to_record",
]

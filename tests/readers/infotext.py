"""A minimal A1111 infotext parser, written apart from the library's so the tests are not circular.

It reads the text the way Civitai does (the details line is the last line starting with
`Steps: `; the negative prompt starts at a line beginning `Negative prompt:`) and splits the
details with a small tokenizer instead of A1111's regular expression.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_NEGATIVE = re.compile(r"(?:^|\n)Negative prompt:[ ]?")
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_DECODER = json.JSONDecoder()


@dataclass
class Parsed:
    prompt: str
    negative: str | None
    params: dict[str, str]


def parse(text: str) -> Parsed | None:
    """None when the text has no details line."""
    lines = text.replace("\r\n", "\n").strip().split("\n")
    details = [i for i, line in enumerate(lines) if line.startswith("Steps: ")]
    if not details:
        return None
    head = "\n".join(lines[: details[-1]])
    match = _NEGATIVE.search(head)
    if match is None:
        prompt, negative = head, None
    else:
        prompt, negative = head[: match.start()], head[match.end() :].strip()
    return Parsed(prompt.strip(), negative, pairs(lines[details[-1]]))


def pairs(line: str) -> dict[str, str]:
    """`Key: value, Key: "quoted, value"` → {key: value}; quoted values are JSON strings."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        colon = line.find(": ", pos)
        if colon == -1:
            break
        key, pos = line[pos:colon].strip(), colon + 2
        if line.startswith(('"', "{", "["), pos):
            try:
                value, pos = _DECODER.raw_decode(line, pos)
            except ValueError:
                value = None
        else:
            value = None
        if value is None:
            end = line.find(", ", pos)
            end = len(line) if end == -1 else end
            value, pos = line[pos:end], end
        out[key] = value if isinstance(value, str) else json.dumps(value)
        if line.startswith(", ", pos):
            pos += 2
    return out


def fields(parsed: Parsed) -> dict[str, Any]:
    params = parsed.params
    size = _SIZE.match(params.get("Size", ""))
    return {
        "prompt": parsed.prompt,
        "negative_prompt": parsed.negative,
        "seed": params.get("Seed"),
        "steps": params.get("Steps"),
        "cfg": params.get("CFG scale"),
        "sampler": params.get("Sampler"),
        "scheduler": params.get("Schedule type"),
        "model": params.get("Model"),
        "width": size.group(1) if size else None,
        "height": size.group(2) if size else None,
    }

"""`provenance demo`: the save path end to end on real ComfyUI workflows, with no ComfyUI or model.

For every bundled example (a real API prompt with its UI workflow) it renders a placeholder
picture, saves it as PNG, JPEG and WEBP through the library's save_images (the function the
node calls), reads each file back, and prints what went where and whether it survived.

The default targets are the node's (no sidecars unless a format needs one). What "survived"
means depends on them: the whole record when one of record/sidecar_json/sidecar_xmp is
written; otherwise only what the richest target written can carry (the graph, or the infotext's
or XMP's generation fields). The exit status is 1 when any file reads back differently.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .. import __version__
from ..metadata.capture import SaveContext
from ..metadata.errors import ReadError
from ..metadata.formats.base import A1111, COMFYUI, GRAPH_KEYS, RECORD, SIDECAR_JSON, SIDECAR_TXT, SIDECAR_XMP, XMP
from ..metadata.parser.parse import WorkflowParser
from ..metadata.read import read
from ..metadata.record import Record
from ..metadata.save import SaveOptions, save_images
from .errors import in_words
from .options import add_targets, parse_targets
from .summary import joined

FORMATS = ("png", "jpeg", "webp")
MAX_SIDE = 512
SAVE_CLASSES = ("SaveImage", "PreviewImage", "SaveAnimatedWEBP")
# The generation fields an A1111 infotext (and our XMP summary) carries. Not denoise: A1111
# writes it only below 1, and after a hires pass it is that pass's.
INFOTEXT_FIELDS = ("positive", "negative", "seed", "steps", "cfg", "sampler", "scheduler", "width", "height")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="provenance-demo", help="output folder (default: %(default)s)")
    add_targets(parser, "; the read-back check compares what they can carry")


def examples() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, API prompt, UI workflow) of every bundled example."""
    folder = resources.files(__package__.rsplit(".", 1)[0]).joinpath("metadata/examples")
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".api.json"):
            name = entry.name[: -len(".api.json")]
            ui = folder.joinpath(f"{name}.ui.json")
            found.append((name, json.loads(entry.read_text("utf-8")), json.loads(ui.read_text("utf-8"))))
    return found


def placeholder(text: str, width: int, height: int, seed: int) -> np.ndarray:
    """A gradient with the prompt written on it: stands in for what the sampler would draw."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    w, h = max(64, int(width * scale)), max(64, int(height * scale))
    rng = np.random.default_rng(seed % 2**32)
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0.0, 1.0, w)[None, :, None] * 0.6 + np.linspace(0.0, 1.0, h)[:, None, None] * 0.4
    image = Image.fromarray((start + (end - start) * ramp).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, w // 32))
    lines = textwrap.wrap(text, width=max(16, w // max(6, w // 48)))[: max(1, h // (w // 24 + 4))]
    draw.multiline_text(
        (w // 24, h // 24), "\n".join(lines), fill=(255, 255, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0)
    )
    return np.asarray(image)


def save_node(prompt: dict[str, Any]) -> str | None:
    """The example's save node: a SaveImage before a PreviewImage."""
    for cls in SAVE_CLASSES:
        found = next((k for k, v in prompt.items() if v.get("class_type") == cls), None)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Check:
    """What reading a file back can be compared with, given the targets that carried it."""

    label: str  # how the row names the comparison
    targets: frozenset[str]  # any one of these brings it back
    keys: tuple[str, ...]  # generation fields compared, besides the whole record or the graphs
    whole: bool = False
    graphs: bool = False


# Most complete first: the first whose targets were written is the one a reader gets back.
CHECKS = (
    Check("record", frozenset({RECORD, SIDECAR_JSON, SIDECAR_XMP}), (), whole=True),
    Check("graph", frozenset({COMFYUI}), INFOTEXT_FIELDS, graphs=True),
    Check("infotext fields", frozenset({A1111, SIDECAR_TXT}), INFOTEXT_FIELDS),
    Check("XMP fields", frozenset({XMP}), INFOTEXT_FIELDS),
)


def check_for(targets: frozenset[str]) -> Check:
    return next(c for c in CHECKS if c.targets & targets)  # parse_targets refuses an empty set


def differences(check: Check, saved: Record, back: Record) -> list[str]:
    """What `back` got wrong of what the check's targets carry; empty when it all survived."""
    if check.whole:
        want, got = saved.to_dict(), back.to_dict()
        return [key for key in sorted(want.keys() | got.keys()) if want.get(key) != got.get(key)]
    wrong = [k for k in check.keys if getattr(back.generation, k) != getattr(saved.generation, k)]
    if check.graphs:
        wrong.extend(g for g in GRAPH_KEYS if getattr(back, g) != getattr(saved, g))
    return wrong


def verdict(check: Check, saved: Record | None, path: Path) -> tuple[str, bool]:
    """The row's read-back cell and whether it read back as it should."""
    if saved is None:
        return "NO RECORD was saved", False
    try:
        back = read(path)
    except ReadError as err:
        return f"UNREADABLE: {in_words(err)}", False
    wrong = differences(check, saved, back)
    gen = back.generation
    seen = f"seed {gen.seed}, {joined(gen.sampler, gen.scheduler) or '-'}, {len(back.passes)} pass(es)"
    if wrong:
        return f"DIFFERENT {check.label} ({', '.join(wrong)}): {seen}", False
    return f"same {check.label}: {seen}", True


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    targets = parse_targets(args.targets)
    check = check_for(targets)
    rows = [("example", "format", "file", "KB", "in file", "sidecars", "read back")]
    images = sidecars = failures = 0
    for name, prompt, workflow in examples():
        node = save_node(prompt)
        gen = WorkflowParser().parse(prompt, node).generation
        image = placeholder(gen.positive or name, gen.width or 512, gen.height or 512, gen.seed or 0)
        context = SaveContext(
            prompt=prompt,
            extra_pnginfo={"workflow": workflow},
            save_node_id=node,
            prompt_id=f"demo-{name}",
            comfyui_version=None,
        )
        for fmt in FORMATS:
            options = SaveOptions(format=fmt, quality=90, targets=targets)
            (saved,) = save_images([image], context, out, name, options, version=__version__)
            text, same = verdict(check, saved.record, saved.path)
            images, sidecars, failures = images + 1, sidecars + len(saved.sidecars), failures + (not same)
            placements = saved.record.provenance.embedding if saved.record else []
            inline = sorted(
                {p.target for p in placements if p.status == "written" and not p.location.startswith("sidecar")}
            )
            size = f"{saved.path.stat().st_size / 1024:.0f}"
            rows.append((name, fmt, saved.path.name, size, ",".join(inline), str(len(saved.sidecars)), text))
    table(rows)
    print(f"\n{plural(images, 'image')} and {plural(sidecars, 'sidecar')} in {out.resolve()}")
    print(f"compared on read-back: the {check.label}; {failures} read back differently")
    return 1 if failures else 0


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))

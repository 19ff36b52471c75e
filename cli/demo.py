"""`provenance demo`: the save path end to end on real ComfyUI workflows, with no ComfyUI or model.

For every bundled example (a real API prompt with its UI workflow) it renders a placeholder
picture, saves it as PNG, JPEG and WEBP through the library's save_images (the function the
node calls), reads each file back, and prints what went where and whether the record survived.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .. import __version__
from ..metadata.capture import SaveContext
from ..metadata.formats.base import TARGETS
from ..metadata.parser.parse import WorkflowParser
from ..metadata.read import read
from ..metadata.save import SaveOptions, save_images

FORMATS = ("png", "jpeg", "webp")
MAX_SIDE = 512
SAVE_CLASSES = ("SaveImage", "PreviewImage", "SaveAnimatedWEBP")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="provenance-demo", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated targets (default: all, sidecars included)"
    )


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


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    targets = frozenset(t.strip() for t in args.targets.split(",") if t.strip())
    rows = [("example", "format", "file", "KB", "in file", "sidecars", "read back")]
    failures = 0
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
            back = read(saved.path)
            same = saved.record is not None and back.to_dict() == saved.record.to_dict()
            failures += not same
            placements = saved.record.provenance.embedding if saved.record else []
            inline = sorted(
                {p.target for p in placements if p.status == "written" and not p.location.startswith("sidecar")}
            )
            rows.append(
                (
                    name,
                    fmt,
                    saved.path.name,
                    f"{saved.path.stat().st_size / 1024:.0f}",
                    ",".join(inline),
                    str(len(saved.sidecars)),
                    f"{'same record' if same else 'DIFFERENT'}: seed {back.generation.seed}, "
                    f"{back.generation.sampler}/{back.generation.scheduler}, {len(back.passes)} pass(es)",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\n{len(rows) - 1} files in {out.resolve()}; {failures} read back differently")
    return 1 if failures else 0

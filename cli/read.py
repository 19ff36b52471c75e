"""`provenance read FILE...`: a readable summary, or the record as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from ..metadata.errors import ReadError
from ..metadata.read import read
from ..metadata.record import Record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--json", action="store_true", help="print the whole record as JSON")


def summary(record: Record) -> str:
    gen, prov = record.generation, record.provenance
    lines = [
        f"  prompt    : {gen.positive!r}" if gen.positive is not None else "  prompt    : -",
        f"  negative  : {gen.negative!r}" if gen.negative is not None else "  negative  : -",
        f"  seed {gen.seed}  steps {gen.steps}  cfg {gen.cfg}  sampler {gen.sampler}/{gen.scheduler}"
        f"  denoise {gen.denoise}  size {gen.width}x{gen.height}",
    ]
    for model in record.models:
        strength = f"  strength {model.strength_model}/{model.strength_clip}" if model.role == "lora" else ""
        hashes = f"  {model.hashes.get('autov2', '')}" if model.hashes else ""
        lines.append(f"  {model.role:<10}: {model.name}{strength}{hashes}")
    if len(record.passes) > 1:
        for i, p in enumerate(record.passes):
            lines.append(
                f"  pass {i} (node {p.node_id}): {p.steps} steps {p.sampler}/{p.scheduler} denoise {p.denoise}"
            )
    made_by = " ".join(x for x in (prov.generator.name, prov.generator.version) if x)
    when = f" at {prov.created}" if prov.created else ""
    comfy = f" (ComfyUI {prov.comfyui_version})" if prov.comfyui_version else ""
    lines.append(f"  captured  : {prov.capture_mode} by {made_by}{when}{comfy}")
    graphs = [name for name in ("prompt", "workflow") if getattr(record, name)]
    lines.append(f"  graphs    : {', '.join(graphs) or 'none'}")
    for placement in prov.embedding:
        reason = f" ({placement.reason})" if placement.reason else ""
        lines.append(f"  embedded  : {placement.target} -> {placement.location} [{placement.status}]{reason}")
    lines.extend(f"  warning   : {w}" for w in prov.warnings)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            record = read(path)
        except ReadError as err:
            print(f"{path}: {err}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps(record.to_dict(), indent=2, ensure_ascii=False))
        else:
            print(f"{path}\n{summary(record)}")
    return status

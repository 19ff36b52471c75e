"""`provenance manifest`: compact the `manifest` target's logs into a run manifest, or show one.

build DIR      DIR/manifest.jsonl (with --recursive, every subfolder's too) into a V2
               manifest.json (DIR/manifest.json, or --out FILE). What a log cannot know is null
               in the snapshot (resolved_template, api_params, variations, mode,
               total_combinations). A torn line (a save killed mid-write) is skipped, named on
               stderr. A batch's own manifest.json is never overwritten.
inspect FILE   the snapshot, then one row per image (index, file, seed, prompt, variations).
    --json     {"snapshot": {...}, "images": [rows]}: each row is the manifest's image less its
               api_prompt, with its index.
    --csv      the rows alone: index, filename, subfolder, seed, prompt, negative,
               applied_variations (name=value; ...), record_digest.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from ..metadata.errors import ReadError
from ..reproduce import manifest
from ..reproduce.manifest_build import build
from .errors import CliError
from .options import global_flags
from .summary import number

COLUMNS = ("index", "filename", "subfolder", "seed", "prompt", "negative", "applied_variations", "record_digest")
PROMPT_WIDTH = 48


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(show_help=parser.print_help)
    sub = parser.add_subparsers(dest="manifest_command", metavar="COMMAND")
    flags = [global_flags()]
    make = sub.add_parser("build", help="compact DIR/manifest.jsonl into a V2 manifest.json", parents=flags)
    make.add_argument("folder", metavar="DIR", type=Path, help="the output folder holding manifest.jsonl")
    make.add_argument("--recursive", action="store_true", help="also every subfolder's manifest.jsonl")
    make.add_argument("--out", metavar="FILE", type=Path, help="where to write it (default: DIR/manifest.json)")
    show = sub.add_parser("inspect", help="print a manifest's snapshot and a table of its images", parents=flags)
    show.add_argument("file", metavar="FILE", type=Path, help="a V2 manifest.json")
    output = show.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the snapshot and the rows as one JSON object")
    output.add_argument("--csv", action="store_true", help="print the image rows as CSV")


def run(args: argparse.Namespace) -> int:
    if args.manifest_command is None:
        args.show_help()
        return 0
    if args.manifest_command == "build":
        return build_command(args.folder, args.out, args.recursive)
    return inspect_command(args.file, as_json=args.json, as_csv=args.csv)


def build_command(folder: Path, out: Path | None, recursive: bool) -> int:
    if not folder.is_dir():
        raise CliError("no such folder", path=folder)
    target = out or folder / manifest.FILE_NAME
    _refuse_to_replace(target)
    try:
        built = build(folder, recursive=recursive)
    except ReadError as err:
        raise CliError(str(err), path=folder) from err
    for warning in built.warnings:
        print(f"provenance: {warning}", file=sys.stderr)
    manifest.write(target, built.manifest)
    print(f"{target}: {len(built.manifest['images'])} image(s)")
    return 0


def _refuse_to_replace(target: Path) -> None:
    """Only a manifest built from logs is replaced: a batch's (it has a template) or a foreign file never is."""
    if not target.exists():
        return
    try:
        existing = manifest.read(target)
    except (ReadError, manifest.ManifestError) as err:
        raise CliError(f"is there and is not a run manifest ({err}); write elsewhere with --out", path=target) from err
    if existing["snapshot"].get("resolved_template") is not None:
        raise CliError("is a batch's manifest (it has a template); write elsewhere with --out", path=target)


def inspect_command(path: Path, *, as_json: bool, as_csv: bool) -> int:
    try:
        data = manifest.read(path)
    except (ReadError, manifest.ManifestError) as err:
        raise CliError(str(err), path=path) from err
    rows = [_row(index, image) for index, image in enumerate(data["images"])]
    if as_json:
        json.dump({"snapshot": data["snapshot"], "images": rows}, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in COLUMNS])
    else:
        print("\n".join(snapshot_lines(data["snapshot"])))
        print("\n".join(table(rows)))
    return 0


def _row(index: int, image: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, **{k: image.get(k) for k in COLUMNS if k != "index"}}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def snapshot_lines(snapshot: dict[str, Any]) -> list[str]:
    info, params = snapshot["runtime_info"], snapshot["generation_params"]
    lines = [
        f"manifest {snapshot['version']}, written {snapshot['timestamp']}",
        f"ComfyUI {info.get('comfyui_version') or 'unknown'}, pack {info.get('pack_version') or 'unknown'}",
    ]
    for model in info.get("models") or []:
        digest = (model.get("hashes") or {}).get("sha256")
        lines.append(f"  {model['role']}: {model['name']}" + (f"  sha256 {digest[:12]}…" if digest else ""))
    shown = [(k, params.get(k)) for k in ("mode", "seed_mode", "base_seed", "num_images", "total_combinations")]
    lines.append("  ".join(f"{k} {number(v)}" for k, v in shown if v is not None) or "generation: unknown")
    for name, values in (snapshot.get("variations") or {}).items():
        lines.append(f"variation {name} ({len(values)}): {_short(', '.join(values), 80)}")
    template = snapshot.get("resolved_template")
    if isinstance(template, dict):
        lines.append(f"workflow {template.get('workflow')}; prompt {_short(str(template.get('prompt')), 80)!r}")
    else:
        lines.append("built from a manifest.jsonl log: no template")
    return lines


def table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no images"]
    files = [str(Path(r["subfolder"] or ".") / r["filename"]).removeprefix("./") for r in rows]
    width = max(len("file"), *(len(f) for f in files))
    seeds = [str(r["seed"]) if r["seed"] is not None else "?" for r in rows]
    seed_width = max(len("seed"), *(len(s) for s in seeds))
    lines = [f"{'#':>4}  {'file':<{width}}  {'seed':>{seed_width}}  {'prompt':<{PROMPT_WIDTH}}  variations"]
    for row, name, seed in zip(rows, files, seeds, strict=True):
        prompt = _short(row["prompt"] or "", PROMPT_WIDTH)
        applied = _cell(row["applied_variations"])
        lines.append(f"{row['index']:>4}  {name:<{width}}  {seed:>{seed_width}}  {prompt:<{PROMPT_WIDTH}}  {applied}")
    return lines


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"

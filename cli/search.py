"""`provenance search [TEXT] [filters]`: the catalogued files that match, newest first.

TEXT matches words of the prompts (positive and negative, every word, any order). Filters
combine with AND: --lora and --model take a name as typed, with or without its folder and
extension (`epiNoiseoffset_v2` finds `loras/epiNoiseoffset_v2.safetensors`), or a hash: AutoV2
(10 hex), AutoV3 (12 hex) or SHA-256 (64 hex); --model matches any model the file used, LoRAs
included. --since/--until take YYYY-MM-DD or an ISO date-time (UTC unless it says otherwise);
a bare --until date includes that day. Times are the record's creation time, else the file's.

The catalogue: --db PATH, sqlite:///PATH or postgresql://… URL, else $PROVENANCE_CATALOGUE_URL,
else ~/.local/share/comfyui-provenance/catalogue.sqlite. `provenance index` fills it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from ..catalogue.query import DEFAULT_LIMIT, Query, QueryError
from ..catalogue.store import Catalogue, default_location, open_catalogue
from .errors import CliError

FORMATS = ("table", "json", "jsonl", "csv")
CSV_COLUMNS = ("made", "path", "kind", "width", "height", "seed", "steps", "cfg", "sampler", "scheduler", "model")


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH|URL",
        help="the catalogue: a SQLite path, sqlite:///PATH or postgresql://… "
        "(default: $PROVENANCE_CATALOGUE_URL, else ~/.local/share/comfyui-provenance/catalogue.sqlite)",
    )


def open_db(args: argparse.Namespace, *, create: bool) -> Catalogue:
    """The catalogue --db names; searching one that does not exist is an error, not a new empty file."""
    location = args.db or default_location()
    if not create and "://" not in location and not Path(location).expanduser().exists():
        raise CliError(f"no catalogue at {location}; run `provenance index FOLDER` first")
    return open_catalogue(location)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", metavar="TEXT", help="words the prompt must contain")
    parser.add_argument("--lora", metavar="NAME|HASH", help="files made with this LoRA")
    parser.add_argument("--model", metavar="NAME|HASH", help="files made with this model (any role)")
    parser.add_argument("--seed", type=int, help="files made with this seed")
    parser.add_argument("--sampler", metavar="NAME", help="files made with this sampler (e.g. euler, dpmpp_2m)")
    parser.add_argument("--since", metavar="DATE", help="made on or after DATE")
    parser.add_argument("--until", metavar="DATE", help="made on or before DATE (a bare date includes the day)")
    parser.add_argument("--folder", metavar="DIR", help="files in DIR or below it")
    parser.add_argument(
        "--limit", type=int, metavar="N", default=DEFAULT_LIMIT, help="at most N files (default: %(default)s)"
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: %(default)s)")
    add_db(parser)


def query_of(args: argparse.Namespace) -> Query:
    try:
        return Query(
            text=args.text,
            lora=args.lora,
            model=args.model,
            seed=args.seed,
            sampler=args.sampler,
            since=args.since,
            until=args.until,
            folder=args.folder,
            limit=args.limit,
        )
    except QueryError as err:
        raise CliError(f"--{err}", status=2) from err


def run(args: argparse.Namespace) -> int:
    query = query_of(args)
    catalogue = open_db(args, create=False)
    try:
        rows = catalogue.search(query)
    finally:
        catalogue.close()
    show(rows, args.format)
    return 0


def show(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif fmt == "jsonl":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([*CSV_COLUMNS, "loras", "prompt"])
        for row in rows:
            writer.writerow([*(row[c] for c in CSV_COLUMNS), loras_text(row), row["prompt"]])
    else:
        table(rows)


def loras_text(row: dict[str, Any]) -> str:
    return " ".join(f"{lora['name']}:{lora['strength_model']:g}" if lora["strength_model"] is not None
                    else lora["name"] for lora in row["loras"])  # fmt: skip


def clip(text: Any, width: int) -> str:
    value = " ".join(str(text).split()) if text is not None else "-"
    return value if len(value) <= width else value[: width - 1] + "…"


def table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("provenance: no catalogued file matches", file=sys.stderr)
        return
    print(f"{'made':<20} {'seed':>16} {'sampler':<14} {'model':<28} {'loras':<28} path")
    for row in rows:
        print(
            f"{clip(row['made'], 20):<20} {clip(row['seed'], 16):>16} {clip(row['sampler'], 14):<14} "
            f"{clip(row['model'], 28):<28} {clip(loras_text(row) or None, 28):<28} {row['path']}"
        )

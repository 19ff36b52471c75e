"""`provenance stats`: how many files the catalogue holds, its most used models, LoRAs and samplers, files per day."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .search import add_db, open_db


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top", type=int, default=10, help="how many of each to list (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the statistics as one JSON object")
    add_db(parser)


def run(args: argparse.Namespace) -> int:
    catalogue = open_db(args, create=False)
    try:
        stats = catalogue.stats(max(1, args.top))
    finally:
        catalogue.close()
    if args.json:
        json.dump(stats, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        show(stats)
    return 0


def show(stats: dict[str, Any]) -> None:
    kinds = ", ".join(f"{n} {k}" for k, n in stats["kinds"].items())
    print(f"files: {stats['files']}" + (f" ({kinds})" if kinds else ""))
    for title, key, label in (("models", "models", "name"), ("LoRAs", "loras", "name"),
                              ("samplers", "samplers", "name"), ("files per day", "days", "day")):  # fmt: skip
        if stats[key]:
            print(f"\n{title}:")
            for item in stats[key]:
                print(f"  {item['files']:>8}  {item[label]}")

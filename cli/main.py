"""`provenance`: read, inspect and demo provenance metadata, with no ComfyUI needed."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from . import convert, demo, parse, read, rules

# Each subcommand module offers add_arguments(parser) and run(args) -> exit code.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "read": ("print the record a PNG/JPEG/WEBP carries", read.add_arguments, read.run),
    "parse": ("print the record a ComfyUI API prompt describes, with no image", parse.add_arguments, parse.run),
    "demo": ("save the bundled examples as PNG, JPEG and WEBP and read them back", demo.add_arguments, demo.run),
    "convert": (
        "stamp files ComfyUI core wrote with the full metadata, pixels untouched",
        convert.add_arguments,
        convert.run,
    ),
    "rules": ("check capture-rules files and list the rules in use", rules.add_arguments, rules.run),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="provenance", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())

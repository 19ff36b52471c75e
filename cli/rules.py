"""`provenance rules check FILE...` validates capture-rules files; `provenance rules list` shows the rules in use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..metadata.parser.ruledata import load_file
from ..metadata.parser.rules import ENV_RULES_DIR, RuleError, bundled, default_rules, user_rule_files, user_rules_dir
from .options import global_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Bare `provenance rules` shows this help, as bare `provenance` shows its own.
    parser.set_defaults(show_help=parser.print_help)
    sub = parser.add_subparsers(dest="rules_command", metavar="COMMAND")
    flags = [global_flags()]
    check = sub.add_parser(
        "check", help="validate rules files; every problem is named with its node class", parents=flags
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    listing = sub.add_parser("list", help="the rules in use: bundled, then the user's folder", parents=flags)
    listing.add_argument("--class", dest="class_type", metavar="CLASS", help="show only this node class")


def check(paths: list[str]) -> int:
    status = 0
    known = bundled()
    for name in paths:
        try:
            rules = load_file(Path(name))
        except RuleError as err:
            print(err, file=sys.stderr)
            status = 1
            continue
        overrides = sorted(c for c in rules if c in known)
        shown = ", ".join(overrides[:8]) + (f" and {len(overrides) - 8} more" if len(overrides) > 8 else "")
        note = f"; replaces the bundled rule for {shown}" if overrides else ""
        print(f"{name}: OK, {len(rules)} rule(s){note}")
    return status


def listing(class_type: str | None) -> int:
    folder = user_rules_dir()
    where = f"{folder}" if folder else f"none (set {ENV_RULES_DIR}, or run inside ComfyUI)"
    print(f"user rules folder: {where}")
    for path in user_rule_files():
        print(f"  {path.name}")
    rules = default_rules()
    for name in rules.classes():
        rule = rules.get(name)
        if rule is not None and (class_type is None or name == class_type):
            print(f"{name:<48} {rule.role:<12} {Path(rule.origin).name}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.rules_command is None:
        args.show_help()
        return 0
    if args.rules_command == "check":
        return check(args.files)
    return listing(args.class_type)

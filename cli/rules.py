"""`provenance rules`: check rules files, list the rules in use, snapshot node schemas, draft rules.

`snapshot` rewrites the node schemas the parser infers rules from (metadata/rules/schemas-core.json)
from a ComfyUI's /object_info. `suggest` prints the rules the parser inferred for a graph's classes
that have none, as a rules file: check it, keep it in your rules folder, and the reading is pinned.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..metadata.budget import Budget
from ..metadata.errors import ReadError
from ..metadata.files import write_atomic
from ..metadata.parser.infer import infer
from ..metadata.parser.ruledata import load_file
from ..metadata.parser.rules import ENV_RULES_DIR, RuleError, bundled, default_rules, user_rule_files, user_rules_dir
from ..metadata.parser.schemas import SchemaSet, dump_compact, gather, snapshot_path, to_compact
from . import objectinfo, parse
from .errors import CliError
from .options import global_flags

SUGGESTED = (
    "drafted by `provenance rules suggest` from node schemas: check each rule, then keep it in your rules folder"
)


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
    shot = sub.add_parser(
        "snapshot", help="write a ComfyUI's node schemas as the compact snapshot the parser infers from", parents=flags
    )
    objectinfo.add_arguments(shot, required=True)
    shot.add_argument("--out", metavar="PATH", type=Path, help=f"where to write it (default: {snapshot_path()})")
    shot.add_argument("--about", metavar="TEXT", help="which ComfyUI it describes (default: asked of --server)")
    draft = sub.add_parser(
        "suggest",
        help="print a draft rules file for the graph's classes that have no rule (from their schemas)",
        parents=flags,
    )
    parse.add_graph_arguments(draft)
    objectinfo.add_arguments(draft)


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
    if args.rules_command == "snapshot":
        return snapshot(args)
    if args.rules_command == "suggest":
        return suggest(args)
    return listing(args.class_type)


# -- snapshot: the schemas the parser infers rules from --------------------------------------------


def snapshot(args: argparse.Namespace) -> int:
    schemas = objectinfo.load(args)
    assert schemas is not None  # the option group is required
    about = args.about or described(args)
    out: Path = args.out or snapshot_path()
    write_snapshot(out, dump_compact(to_compact(schemas, about)))
    print(f"{out}: {len(schemas)} node classes ({about})")
    return 0


def described(args: argparse.Namespace) -> str:
    """What the snapshot says it describes: the server's ComfyUI version, else the file's name."""
    if not args.server:
        print("provenance: say which ComfyUI the file came from with --about", file=sys.stderr)
        return f"/object_info saved in {Path(args.object_info).name}"
    base = objectinfo.server_url(args.server)
    try:
        stats = Budget().json(objectinfo.fetch(f"{base}/system_stats", args.server), "/system_stats")
        version = stats["system"]["comfyui_version"]
    except (CliError, ReadError, KeyError, TypeError):  # an old or odd server: the snapshot is still good
        version = None
    named = f"ComfyUI {version}" if isinstance(version, str) else "ComfyUI (version not given)"
    return f"{named} /object_info from {base}"


def write_snapshot(path: Path, text: str) -> None:
    """`text` replaces `path` whole or not at all (metadata/files.py's temporary beside it, then a rename)."""
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as err:
        raise CliError(f"cannot write: {objectinfo.reason(err)}", path=path) from err


# -- suggest: the inferred rules, for the user to check and pin ------------------------------------


def suggest(args: argparse.Namespace) -> int:
    prompt, workflow = parse.load_graph(args)
    with objectinfo.user_schemas(args):
        record = parse.parsed(args, prompt, workflow)
        inferred = sorted(record.provenance.other.get("inferred_rules", {}))
        known = gather(_classes(prompt), workflow)  # what the parse knew: the classes' schemas, best first
    nodes: dict[str, Any] = {}
    for class_type in inferred:
        schema = known.get(class_type)
        rule = infer(schema) if schema is not None else None
        if schema is not None and rule is not None:
            nodes[class_type] = {**rule, "_schema": schema.source}
    json.dump({"version": 1, "about": SUGGESTED, "nodes": nodes}, sys.stdout, indent=2, ensure_ascii=False)
    print()
    if not nodes:
        print("provenance: no class in this graph was read by inference: nothing to suggest", file=sys.stderr)
    unknown = unread(prompt, inferred, known)
    if unknown:
        print(f"provenance: no rule and nothing inferable for {', '.join(unknown)}", file=sys.stderr)
    return 0


def unread(prompt: dict[str, Any], inferred: list[str], known: SchemaSet) -> list[str]:
    """The graph's classes with no rule and no inferred one, each with why."""
    rules = default_rules()
    found = []
    for class_type in sorted(_classes(prompt)):
        if class_type in rules or class_type in inferred:
            continue
        schema = known.get(class_type)
        why = f"its {schema.source} schema says nothing sure" if schema else "no schema: try --object-info or --server"
        found.append(f"{class_type} ({why})")
    return found


def _classes(prompt: dict[str, Any]) -> set[str]:
    return {n["class_type"] for n in prompt.values() if isinstance(n.get("class_type"), str)}

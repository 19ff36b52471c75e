"""`provenance diff A B`: what differs between two files, two run manifests, or a file and a manifest entry.

A and B are each an image, video or sound file, a V2 run manifest (manifest.json), or one of a
manifest's images as MANIFEST.json#INDEX (0-based, as in its images[]). An entry is read from
its file when that lies beside the manifest, else rebuilt from its api_prompt, seed and prompts.
Only what differs is printed, section by section (generation, passes, models, environment,
graph; for manifests: snapshot, images), or "identical".

  --json   {"a", "b", "identical", "generation", "passes", "models", "environment",
           "graph": {"added", "removed", "changed"}}; for two manifests {"a", "b", "identical",
           "snapshot", "images"}. Long values (prompts) are whole here, shortened in the text.
Exit status: 0 identical, 1 different, 2 a side cannot be read (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from ..reproduce.diff import Change, GraphDiff, RecordDiff, diff_records, is_link
from ..reproduce.diff_manifest import MATCHES, ManifestDiff, diff_manifests
from ..reproduce.sides import Side, load
from .errors import FORESEEN, CliError, in_words
from .summary import number

logger = logging.getLogger(__name__)

LONG = 60  # text longer than this is shortened in the text output (--json keeps it whole)
CONTEXT = 20  # characters shown before a long value's first difference
UNREADABLE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="a file, a manifest.json, or MANIFEST.json#INDEX")
    parser.add_argument("b", metavar="B", help="the same kinds as A")
    parser.add_argument("--json", action="store_true", help="print the differences as one JSON object")
    parser.add_argument(
        "--match",
        choices=MATCHES,
        default="index",
        help="how two manifests' images are paired (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    a, b = side(args.a), side(args.b)
    result: RecordDiff | ManifestDiff
    if a.manifest is not None and b.manifest is not None:
        result = diff_manifests(a.manifest, b.manifest, args.match)
    elif a.record is not None and b.record is not None:
        result = diff_records(a.record, b.record, a.unknown | b.unknown)
    else:
        raise CliError(
            "a whole manifest compares only with another; name one of its images as MANIFEST.json#INDEX",
            status=UNREADABLE,
        )
    if args.json:
        json.dump(result.to_dict(a.label, b.label), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print("\n".join(text(result, a.label, b.label)))
    return 0 if result.identical else 1


def side(spec: str) -> Side:
    """The side `spec` names; any failure is exit status 2 with one line naming it."""
    try:
        return load(spec)
    except Exception as err:
        if not isinstance(err, FORESEEN):
            logger.debug("the traceback of the error below", exc_info=err)
        raise CliError(in_words(err), path=spec, status=UNREADABLE) from err


def text(result: RecordDiff | ManifestDiff, a: str, b: str) -> list[str]:
    lines = [f"a: {a}", f"b: {b}"]
    if result.identical:
        return [*lines, "identical"]
    if isinstance(result, ManifestDiff):
        return lines + manifest_text(result)
    sections = {
        "generation": [f"  {c['field']}: {pair(c['a'], c['b'])}" for c in result.generation],
        "passes": [change_text(f"  pass {c['pass']} (node {c['node_id']})", c) for c in result.passes],
        "models": [change_text(f"  {model_name(c)}", c) for c in result.models],
        "environment": [f"  {c['field']}: {pair(c['a'], c['b'])}" for c in result.environment],
        "graph": ["  " + line for line in graph_text(result.graph)],
    }
    for name, body in sections.items():
        if body:
            lines.extend([name, *body])
    return lines


def manifest_text(result: ManifestDiff) -> list[str]:
    snapshot: list[str] = []
    for part, changes in result.snapshot.items():
        for c in changes:
            if part == "models":
                snapshot.append(change_text(f"  runtime_info.models: {model_name(c)}", c))
            else:
                prefix = "" if part == "other" else f"{part}."
                snapshot.append(f"  {prefix}{c['field']}: {pair(c['a'], c['b'])}")
    snapshot.extend(f"  api_params: {line}" for line in graph_text(result.api_params))
    lines = ["snapshot", *snapshot] if snapshot else []
    if result.images:
        lines.append("images")
    for image in result.images:
        here = image["b"] if image["a"] is None else image["a"]
        label = f"  image {here['index']}" + (f" ({here['filename']})" if here["filename"] else "")
        if image["change"] != "changed":
            lines.append(f"{label}: only in {'b' if image['a'] is None else 'a'}")
            continue
        lines.append(label)
        lines.extend(f"    {c['field']}: {pair(c['a'], c['b'])}" for c in image["fields"])
        graph = GraphDiff(**image["graph"])
        lines.extend(f"    {line}" for line in graph_text(graph))
    return lines


def model_name(c: Change) -> str:
    return f"{c['role']} {c['name'] or '(no name)'}"


def change_text(what: str, c: Change) -> str:
    """A pass or model difference: the field that changed, or the whole thing only one side has."""
    if c["change"] == "added":
        return f"{what}: only in b"
    if c["change"] == "removed":
        return f"{what}: only in a"
    return f"{what} {c['field']}: {pair(c['a'], c['b'])}"


def graph_text(graph: GraphDiff) -> list[str]:
    lines = [f"node {n['node']} ({n['class_type']}): only in a" for n in graph.removed]
    lines.extend(f"node {n['node']} ({n['class_type']}): only in b" for n in graph.added)
    for c in graph.changed:
        if c["input"] is None:
            lines.append(f"node {c['node']}: class_type {c['a']} -> {c['b']}")
            continue
        where = f"node {c['node']} ({c['class_type']}).{c['input']}"
        if c["change"] == "added":
            lines.append(f"{where}: only in b, {short(show(c['b']))}")
        elif c["change"] == "removed":
            lines.append(f"{where}: only in a, {short(show(c['a']))}")
        else:
            lines.append(f"{where}: {pair(c['a'], c['b'])}")
    return lines


def show(value: Any) -> str:
    """One value on one line: numbers without float noise, links as the output they read."""
    if value is None:
        return "none"
    if is_link(value):
        return f"node {value[0]} output {value[1]}"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, bool | int):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def short(rendered: str) -> str:
    return rendered if len(rendered) <= 2 * LONG else rendered[: 2 * LONG - 1] + "…"


def pair(a: Any, b: Any) -> str:
    """`a -> b`; two long strings as excerpts around their first difference, with where it is."""
    if isinstance(a, str) and isinstance(b, str) and max(len(a), len(b)) > LONG:
        at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        hint = f"first difference at character {at + 1}; {len(a)} -> {len(b)} characters"
        return f"{excerpt(a, at)} -> {excerpt(b, at)} ({hint})"
    return f"{short(show(a))} -> {short(show(b))}"


def excerpt(value: str, at: int) -> str:
    """The part of `value` around position `at`, quoted, with … where it was cut."""
    start = max(0, at - CONTEXT)
    end = start + LONG
    inner = json.dumps(value[start:end], ensure_ascii=False)[1:-1]
    return f'"{"…" if start else ""}{inner}{"…" if end < len(value) else ""}"'

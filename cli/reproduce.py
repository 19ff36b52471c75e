"""`provenance reproduce FILE|MANIFEST.json#INDEX --server URL`: run a file's prompt again and compare.

The prompt is the one the file records, with every value the run resolved pinned (a seed drawn
at run time, a switch's choice), cut down to the node that saved the file, saved under
`reproduce/<original name>` so nothing is overwritten. Before anything is queued the server is
checked: every node class, every model file, and each model's hash where the server runs this
pack (GET /provenance/hash); ComfyUI and pack versions are compared (a difference is a warning).
The server's caches are cleared (POST /free) so the prompt really runs again.

Exit status: 0 identical pixels, 1 the pixels differ (max and mean difference and the record
fields that differ are shown), 2 cannot reproduce (the server lacks something, the run failed,
the server cannot be reached). --dry-run checks and prints the prompt (JSON on stdout), queuing
nothing. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from ..reproduce.client import DEFAULT_URL, ReproduceError
from ..reproduce.run import CANNOT, DEFAULT_HASH_WAIT_S, DEFAULT_TIMEOUT_S, Options, Report, reproduce
from .errors import CliError

SERVER_ENV = "COMFYUI_URL"
PROGRESS_EVERY_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="FILE|MANIFEST.json#INDEX", help="an image file, or a manifest entry (0-based)"
    )
    parser.add_argument(
        "--server",
        default=os.environ.get(SERVER_ENV, DEFAULT_URL),
        metavar="URL",
        help=f"the ComfyUI server (default: ${SERVER_ENV}, else %(default)s)",
    )
    parser.add_argument("--out", type=Path, metavar="PROMPT.json", help="also write the exact API prompt there")
    parser.add_argument("--seed", type=int, metavar="N", help="set the main sampler's seed to N")
    parser.add_argument("--dry-run", action="store_true", help="check the server and print the prompt; queue nothing")
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S", help="give up waiting after S seconds"
    )
    parser.add_argument(
        "--hash-wait",
        type=float,
        default=DEFAULT_HASH_WAIT_S,
        metavar="S",
        help="wait up to S seconds for the server to hash a model file (default: %(default)g)",
    )


class Ticker:
    """Progress on stderr: a rewritten line on a terminal, a line every few seconds elsewhere."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = -PROGRESS_EVERY_S

    def __call__(self, elapsed: float, state: str) -> None:
        if self.tty:
            end = "\n" if state == "done" else ""
            print(f"\rprovenance: {state}, {elapsed:.0f} s   ", end=end, file=sys.stderr, flush=True)
        elif state != "done" and elapsed - self.shown >= PROGRESS_EVERY_S:
            self.shown = elapsed
            print(f"provenance: {state}, {elapsed:.0f} s", file=sys.stderr, flush=True)


def say(line: str) -> None:
    print(f"provenance: {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    options = Options(
        server=args.server,
        out=args.out,
        seed=args.seed,
        dry_run=args.dry_run,
        timeout=args.timeout,
        hash_wait=args.hash_wait,
    )
    try:
        report = reproduce(args.target, options, say, Ticker())
    except ReproduceError as err:
        raise CliError(str(err), status=CANNOT) from err
    if args.json:
        print(json.dumps(report.to_dict(with_prompt=args.dry_run), indent=2, ensure_ascii=False))
    elif args.dry_run and args.out is None:
        _lines(report, sys.stderr)
        print(json.dumps(report.prompt, indent=2, ensure_ascii=False))
    else:
        _lines(report, sys.stdout)
    if report.status == "refused":
        count = len(report.checks.differences)
        print(f"{report.target}: cannot reproduce on {report.server}: {count} difference(s)", file=sys.stderr)
    return report.exit_code


def _lines(report: Report, out: TextIO) -> None:
    lines = [f"{report.target} on {report.server}"]
    checks = report.checks
    versions = [f"ComfyUI {checks.comfyui_version or '?'}"]
    if checks.pack_version:
        versions.append(f"provenance pack {checks.pack_version}")
    lines.append(f"  server: {', '.join(versions)}")
    lines += [f"  pinned: node {p.node_id} {p.input} = {p.value!r} (from node {p.source})" for p in report.pins]
    if report.seed_set:
        lines.append(f"  seed set: {report.seed_set}")
    if report.dropped:
        lines.append(f"  left out: node(s) {', '.join(report.dropped)} (not needed by the saving node)")
    if checks.hashes_checked:
        lines.append(f"  hashes match: {', '.join(checks.hashes_checked)}")
    lines += [f"  note: {n}" for n in report.notes]
    lines += [f"  warning: {w}" for w in checks.warnings]
    lines += [f"  difference: {d}" for d in checks.differences]
    if report.output:
        where = "/".join(filter(None, (report.output["subfolder"], report.output["filename"])))
        lines.append(f"  result: {where} (prompt {report.prompt_id})")
    lines += _comparison(report)
    lines.append(f"  {_verdict(report)}")
    out.write("\n".join(lines) + "\n")


def _comparison(report: Report) -> list[str]:
    found = report.comparison
    if found is None:
        return []
    lines = [f"  note: {n}" for n in found.notes]
    if found.max_diff is not None and not found.identical:
        lines.append(f"  pixel difference: max {found.max_diff}, mean {found.mean_diff:.4f} (of 255)")
    for item in found.fields:
        lines.append(f"  field differs: {item['field']}: {item['original']!r} -> {item['reproduced']!r}")
    return lines


def _verdict(report: Report) -> str:
    if report.status == "identical":
        width, height = report.comparison.size if report.comparison else (0, 0)
        return f"identical pixels ({width}x{height})"
    return {
        "differs": "the pixels differ",
        "refused": "refused: the server cannot run this prompt as it ran",
        "dry-run": "dry run: the server can run it; nothing queued",
        "ran": "ran, but without the original file nothing shows it came out the same",
    }.get(report.status, report.status)

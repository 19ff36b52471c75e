"""`provenance`: read, inspect and demo provenance metadata, with no ComfyUI needed.

Scriptable: results go to stdout, every complaint to stderr as one line (`PATH: why` for a
file, `provenance: why` otherwise), never a traceback (-v logs one for an unforeseen error).
Exit status: 0 done, 1 something failed, 2 a usage error, 130 interrupted, 141 stdout closed
early (`| head`), quietly. Bare `provenance` prints this help and exits 0: with nothing to do
there is nothing that failed, and a script never calls it bare. -v and --version work before
or after the subcommand.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from . import (
    audit,
    batch,
    c2pa,
    convert,
    demo,
    diff,
    index,
    manifest,
    openai,
    parse,
    read,
    reproduce,
    rules,
    search,
    stats,
    verify,
)
from .errors import CliError, report
from .options import global_flags, use_settings, verbose

logger = logging.getLogger(__name__)

PACK_LOGGER = __package__.rsplit(".", 1)[0]
BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell shows for a tool a closed pipe stopped
INTERRUPTED = 130  # 128 + SIGINT

# Each subcommand module offers add_arguments(parser) and run(args) -> exit code; its docstring
# is the subcommand's --help description.
COMMANDS: dict[str, tuple[str, ModuleType]] = {
    "read": ("print the record PNG/JPEG/WEBP files carry (folders walked)", read),
    "parse": ("print the record a ComfyUI API prompt or image's graph describes", parse),
    "demo": ("save the bundled examples as PNG, JPEG and WEBP and read them back", demo),
    "convert": ("stamp files ComfyUI core wrote with the full metadata, pixels untouched", convert),
    "rules": ("check, list and draft capture rules; snapshot node schemas", rules),
    "diff": ("what differs between two files, manifests or manifest entries", diff),
    "reproduce": ("re-run a file's (or manifest entry's) prompt on a ComfyUI server and compare", reproduce),
    "batch": ("run a batch template (variations, seeds) on a ComfyUI server; write manifest.json", batch),
    "manifest": ("build a run manifest from the manifest target's logs; inspect one", manifest),
    "index": ("add files to the catalogue (folders walked; unchanged files skipped)", index),
    "search": ("find catalogued files by prompt words, LoRA, model, hash, seed, sampler, date", search),
    "stats": ("the catalogue's counts: top models, LoRAs, samplers, files per day", stats),
    "verify": ("check each file's Content Credentials (C2PA signature, binding, signer) and record", verify),
    "c2pa": ("Content Credentials set-up: `c2pa init` makes untrusted test signing credentials", c2pa),
    "openai": ("the OpenAI-compatible image API: `openai key` makes a key and stores its digest", openai),
    "audit": ("check the model and LoRA hashes catalogued files claim against the local model folders", audit),
}


def build_parser() -> argparse.ArgumentParser:
    flags = global_flags()
    style = argparse.RawDescriptionHelpFormatter  # the docstrings' line breaks are meant
    parser = argparse.ArgumentParser(prog="provenance", description=__doc__, parents=[flags], formatter_class=style)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, module) in COMMANDS.items():
        add_arguments: Callable[[argparse.ArgumentParser], None] = module.add_arguments
        add_arguments(
            sub.add_parser(name, help=help_text, description=module.__doc__, parents=[flags], formatter_class=style)
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        status = dispatch(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
    except BrokenPipeError:
        quiet_stdout()
        return BROKEN_PIPE
    except KeyboardInterrupt:
        print("provenance: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as err:  # no traceback for any input: one line, the traceback under -v
        report(err)
        return err.status if isinstance(err, CliError) else 1
    return status


def dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version or a usage error: argparse has said what it had to
        return done.code if isinstance(done.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # -v opens the pack's own logs only: Pillow's debug logging would drown them.
    logging.getLogger(PACK_LOGGER).setLevel(logging.DEBUG if verbose(args) else logging.NOTSET)
    use_settings(args)
    status: int = COMMANDS[args.command][1].run(args)
    return status


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so the flush at interpreter exit does not complain about the pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass  # stdout is no real file (captured in tests): nothing will flush to the closed pipe


if __name__ == "__main__":
    sys.exit(main())

"""Options several subcommands share: the global flags and --targets."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ..metadata import settings
from ..metadata.formats.base import DEFAULT_TARGETS, TARGETS
from ..metadata.formats.base import parse_targets as targets_from
from .errors import CliError

# Subcommands that write the settings file --settings names (so it need not exist yet).
WRITES_SETTINGS = ("c2pa", "openai")
DEFAULT_TARGET_TEXT = ",".join(t for t in TARGETS if t in DEFAULT_TARGETS)


def global_flags() -> argparse.ArgumentParser:
    """A parent parser for the top level and every subcommand, so `-v` works before or after it.

    The default is SUPPRESS: a subparser's own default would otherwise overwrite a `-v` given
    before the subcommand. Read the flag with `verbose(args)`.
    """
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what happens")
    flags.add_argument("--version", action="version", version=f"provenance {__version__}")
    flags.add_argument(
        "--settings",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="a settings file (JSON, as ComfyUI's <user>/provenance/settings.json) for this run",
    )
    return flags


def use_settings(args: argparse.Namespace) -> None:
    """--settings FILE becomes this process's settings file, checked first: a usage error names the key."""
    path = getattr(args, "settings", None)
    if path is None:
        return
    if getattr(args, "command", None) in WRITES_SETTINGS and not Path(path).exists():
        settings.set_file(path)  # the command creates it
        return
    try:
        settings.read_file(path, strict=True)
    except settings.SettingsError as err:
        raise CliError(f"--settings: {err}", status=2) from err
    settings.set_file(path)


def verbose(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "verbose", False))


def add_targets(parser: argparse.ArgumentParser, note: str = "") -> None:
    parser.add_argument(
        "--targets",
        default=DEFAULT_TARGET_TEXT,
        metavar="LIST",
        help=f"comma-separated targets to write (default: %(default)s; allowed: {', '.join(TARGETS)}){note}",
    )


def parse_targets(text: str) -> frozenset[str]:
    """The --targets set; a usage error (status 2) naming the allowed targets when it is not one."""
    try:
        chosen = targets_from(text)
    except ValueError as err:
        raise CliError(f"--targets: {err}", status=2) from err
    if not chosen:
        raise CliError(f"--targets: no target; allowed: {', '.join(TARGETS)}", status=2)
    return chosen

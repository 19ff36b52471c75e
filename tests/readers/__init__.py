"""Adapters for the external metadata readers our files must satisfy (research/readers.md).

Each adapter takes a file path and returns a `Reading` with the same normalized fields
(prompt, negative_prompt, seed, steps, cfg, sampler, scheduler, model, width, height), the raw
tags it saw and the source the fields came from. A reader that is not installed skips the
test, or fails it when PROVENANCE_REQUIRE_READERS=1 (CI installs them all).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import cli, comfyui, libs
from .common import FIELDS, GRAPH, INFOTEXT, NATIVE, XMP, Reading, stem, unavailable

Adapter = Callable[[Path], Reading]

READERS: dict[str, Adapter] = {
    "exiftool": cli.exiftool,
    "exiv2": cli.exiv2,
    "pyexiv2": libs.pyexiv2_reader,
    "python-xmp-toolkit": libs.xmp_toolkit,
    "pillow": libs.pillow,
    "piexif": libs.piexif_reader,
    "sd-prompt-reader": libs.sd_prompt_reader,
    "sd-parsers": libs.sd_parsers,
    "exifreader": cli.exifreader,
    "comfyui": comfyui.read,
}

__all__ = [
    "FIELDS",
    "GRAPH",
    "INFOTEXT",
    "NATIVE",
    "READERS",
    "XMP",
    "Adapter",
    "Reading",
    "cli",
    "comfyui",
    "libs",
    "stem",
    "unavailable",
]

"""Readers that run as programs: exiftool, the exiv2 CLI and exifreader (Civitai's, under node)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from .common import Reading, from_texts, unavailable

TIMEOUT = 60
REPO = Path(__file__).resolve().parents[2]
EXIFREADER_JS = Path(__file__).with_name("exifreader.js")
EXIV2_PREFIXES = ("charset=Unicode ", "charset=Ascii ", 'lang="x-default" ')
EXIV2_KEYS = (
    "Exif.Photo.UserComment",
    "Exif.Image.Make",
    "Exif.Image.ImageDescription",
    "Exif.Image.Model",
    "Xmp.dc.description",
    "Xmp.xmp.CreatorTool",
    "Xmp.iptcExt.DigitalSourceType",
    "Xmp.exif.UserComment",
)


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, timeout=TIMEOUT, env=env, check=False, stdin=subprocess.DEVNULL)


def _program(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        unavailable(f"{name} is not on PATH (Debian package {package})")
    return exe


@cache
def exiftool_tags(path: Path) -> dict[str, Any]:
    """`exiftool -j -G1 -a -s`: every tag as `Group:Name`."""
    out = _run([_program("exiftool", "libimage-exiftool-perl"), "-j", "-G1", "-a", "-s", str(path)])
    data: list[dict[str, Any]] = json.loads(out.stdout.decode("utf-8"))
    return data[0]


def _xmp_props(tags: dict[str, Any], prefix: str, dc_description: str) -> dict[str, Any]:
    props = {k[len(prefix) :]: v for k, v in tags.items() if k.startswith(prefix)}
    if dc_description in tags:
        props["description"] = tags[dc_description]
    return props


def exiftool(path: Path) -> Reading:
    tags = exiftool_tags(path)
    texts = [tags.get("PNG:Parameters"), tags.get("ExifIFD:UserComment")]
    return from_texts("exiftool", tags, texts, _xmp_props(tags, "XMP-cprov:", "XMP-dc:Description"))


def _exiv2_value(text: str) -> str:
    for prefix in EXIV2_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


@cache
def exiv2_tags(path: Path) -> dict[str, Any]:
    """The keys `exiv2 -pa` lists, and the values of those we look at (one `-K key -Pt` call each)."""
    exe = _program("exiv2", "exiv2")
    listing = _run([exe, "-q", "-Pk", str(path)]).stdout.decode("utf-8", errors="replace")
    keys = list(dict.fromkeys(k.strip() for k in listing.splitlines() if k.strip()))
    wanted = [k for k in keys if k in EXIV2_KEYS or (k.startswith("Xmp.cprov.") and k != "Xmp.cprov.Record")]
    tags: dict[str, Any] = {"keys": keys}
    for key in wanted:
        value = _run([exe, "-q", "-K", key, "-Pt", str(path)]).stdout.decode("utf-8", errors="replace")
        tags[key] = _exiv2_value(value.rstrip("\n"))
    return tags


def exiv2(path: Path) -> Reading:
    tags = exiv2_tags(path)
    texts = [tags.get("Exif.Photo.UserComment")]
    return from_texts("exiv2", tags, texts, _xmp_props(tags, "Xmp.cprov.", "Xmp.dc.description"))


def exifreader_dir() -> Path | None:
    """A node_modules folder holding exifreader: $PROVENANCE_EXIFREADER_DIR, .ci/node, readers_check's."""
    candidates = [
        os.environ.get("PROVENANCE_EXIFREADER_DIR"),
        str(REPO / ".ci" / "node"),
        str(Path.home() / ".local" / "share" / "readers_check"),
    ]
    for candidate in filter(None, candidates):
        base = Path(candidate)
        for modules in (base / "node_modules", base):
            if (modules / "exifreader" / "package.json").is_file():
                return modules
    return None


def exifreader(path: Path) -> Reading:
    """Civitai's choice: PNG `parameters`, else the decoded UserComment, when it holds `Steps: `."""
    node = _program("node", "nodejs")
    modules = exifreader_dir()
    if modules is None:
        unavailable("npm package exifreader not found (.ci/install_readers.sh puts it in .ci/node)")
    env = {**os.environ, "NODE_PATH": str(modules)}
    out = _run([node, str(EXIFREADER_JS), str(path)], env=env)
    try:
        data = json.loads(out.stdout.decode("utf-8"))
    except ValueError:
        return Reading("exifreader", error=f"node failed: {out.stderr.decode(errors='replace')[:500]}")
    if "missing" in data:
        unavailable(f"exifreader cannot be loaded: {data['missing']}")
    if "error" in data:
        return Reading("exifreader", error=data["error"])
    tags = data["tags"]
    texts = [t for t in (tags.get("parameters"), tags.get("UserComment")) if isinstance(t, str) and "Steps: " in t]
    reading = from_texts("exifreader", tags, texts)
    reading.raw["version"] = data["version"]
    return reading

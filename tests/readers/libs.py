"""Readers that are Python packages: pyexiv2, python-xmp-toolkit, Pillow, piexif, sd-prompt-reader,
sd-parsers. Each is imported on first use, so a missing one skips (or, in CI, fails) its tests only.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from .common import NATIVE, NS_CPROV, Reading, decode_user_comment, from_texts, normalize, unavailable

NS_DC = "http://purl.org/dc/elements/1.1/"
NS_EXIF = "http://ns.adobe.com/exif/1.0/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
IFD0_TAGS = {0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model", 0x0131: "Software"}


def _import(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as err:  # a broken install raises more than ImportError (OSError from ctypes)
        unavailable(f"{package} is not importable ({type(err).__name__}: {err})")


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Readers print and log as they go; keep that out of the test output, but keep it."""
    out = io.StringIO()
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield out
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def _c_stderr() -> Iterator[list[str]]:
    """Capture what C libraries write to file descriptor 2 (exempi's warnings)."""
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def _strip_exiv2(value: Any) -> Any:
    if isinstance(value, dict):  # LangAlt: {'lang="x-default"': text}
        value = next(iter(value.values()), None)
    if isinstance(value, str):
        for prefix in ("charset=Unicode ", "charset=Ascii "):
            if value.startswith(prefix):
                return value[len(prefix) :]
    return value


@cache
def pyexiv2_tags(path: Path) -> dict[str, Any]:
    pyexiv2 = _import("pyexiv2", "pyexiv2")
    pyexiv2.set_log_level(4)  # its warnings (e.g. piexif's Exif IFD next pointer) go to stderr
    image = pyexiv2.Image(str(path))
    try:
        tags = {**image.read_exif(), **image.read_xmp()}
    finally:
        image.close()
    return {k: _strip_exiv2(v) for k, v in tags.items()}


def pyexiv2_reader(path: Path) -> Reading:
    tags = pyexiv2_tags(path)
    props = {k.removeprefix("Xmp.cprov."): v for k, v in tags.items() if k.startswith("Xmp.cprov.")}
    if "Xmp.dc.description" in tags:
        props["description"] = tags["Xmp.dc.description"]
    return from_texts("pyexiv2", tags, [tags.get("Exif.Photo.UserComment")], props)


def xmp_toolkit(path: Path) -> Reading:
    """python-xmp-toolkit (Exempi): the XMP packet, merged by Exempi with what it maps from EXIF."""
    libxmp = _import("libxmp", "python-xmp-toolkit (needs libexempi8)")
    with _c_stderr() as stderr:
        files = libxmp.XMPFiles(file_path=str(path))
        try:
            xmp = files.get_xmp()
        finally:
            files.close_file()
    raw: dict[str, Any] = {"stderr": stderr, "xmp": xmp is not None}
    if xmp is None:
        return Reading("python-xmp-toolkit", raw=raw)
    props: dict[str, Any] = {}
    for ns, name, key in ((NS_DC, "description", "description"), (NS_EXIF, "UserComment", "exif:UserComment")):
        if xmp.does_property_exist(ns, name):
            props[key] = xmp.get_localized_text(ns, name, None, "x-default")
    for name in (
        "Positive",
        "Negative",
        "Seed",
        "Steps",
        "CFGScale",
        "Sampler",
        "Scheduler",
        "Checkpoint",
        "Width",
        "Height",
    ):
        if xmp.does_property_exist(NS_CPROV, name):
            props[name] = xmp.get_property(NS_CPROV, name)
    if xmp.does_property_exist(NS_XMP, "CreatorTool"):
        raw["CreatorTool"] = xmp.get_property(NS_XMP, "CreatorTool")
    raw.update(props)
    return from_texts("python-xmp-toolkit", raw, [props.get("exif:UserComment")], props)


def pillow(path: Path) -> Reading:
    """What A1111 itself reads on PNG (`image.info["parameters"]`), plus EXIF and getxmp()."""
    image_module = _import("PIL.Image", "Pillow")
    raw: dict[str, Any] = {}
    with image_module.open(path) as image, _quiet():
        raw.update(format=image.format, mode=image.mode, size=image.size, text=dict(getattr(image, "text", {})))
        raw["info_keys"] = sorted(image.info)
        exif = image.getexif()
        raw["ifd0"] = {name: exif[tag] for tag, name in IFD0_TAGS.items() if tag in exif}
        raw["user_comment"] = decode_user_comment(exif.get_ifd(EXIF_IFD).get(USER_COMMENT))
        raw["xmp"] = image.getxmp() if "xmp" in image.info or "XML:com.adobe.xmp" in image.info else {}
    return from_texts("pillow", raw, [raw["text"].get("parameters"), raw["user_comment"]])


def piexif_reader(path: Path) -> Reading:
    """A1111's own JPEG/WEBP path: piexif.load, then UserComment through piexif.helper."""
    piexif = _import("piexif", "piexif")
    helper = _import("piexif.helper", "piexif")
    try:
        data = piexif.load(str(path))
    except Exception as err:  # piexif raises InvalidImageDataError on PNG, bare errors on damage
        return Reading("piexif", error=f"{type(err).__name__}: {err}")
    zeroth = {IFD0_TAGS.get(tag, tag): v for tag, v in data.get("0th", {}).items()}
    comment = data.get("Exif", {}).get(piexif.ExifIFD.UserComment)
    text = helper.UserComment.load(comment) if comment else None
    return from_texts("piexif", {"0th": zeroth, "user_comment": text}, [text])


def sd_prompt_reader(path: Path) -> Reading:
    module = _import("sd_prompt_reader.image_data_reader", "sd-prompt-reader")
    with _quiet() as chatter:
        try:
            reader = module.ImageDataReader(str(path))
        except Exception as err:
            return Reading("sd-prompt-reader", error=f"{type(err).__name__}: {err}")
    raw = {
        "status": reader.status.name,
        "tool": reader.tool,
        "setting": reader.setting,
        "parameter": dict(reader.parameter or {}),
        "output": chatter.getvalue(),
    }
    if not reader.tool:
        return Reading("sd-prompt-reader", raw=raw, error=f"status {reader.status.name}")
    param = raw["parameter"]
    fields = {
        "prompt": reader.positive,
        "negative_prompt": reader.negative,
        "seed": param.get("seed"),
        "steps": param.get("steps"),
        "cfg": param.get("cfg"),
        "sampler": param.get("sampler"),
        "model": param.get("model"),
        "width": reader.width,
        "height": reader.height,
    }
    return Reading("sd-prompt-reader", NATIVE, normalize(fields), raw)


def sd_parsers(path: Path) -> Reading:
    module = _import("sd_parsers", "sd-parsers")
    with _quiet():
        try:
            info = module.ParserManager().parse(str(path))
        except Exception as err:
            return Reading("sd-parsers", error=f"{type(err).__name__}: {err}")
    if info is None:
        return Reading("sd-parsers")
    sampler = info.samplers[0] if info.samplers else None
    params = dict(sampler.parameters or {}) if sampler else {}
    width, _, height = str(info.metadata.get("Size", "")).partition("x")
    fields = {
        "prompt": info.full_prompt,
        "negative_prompt": info.full_negative_prompt,
        "seed": params.get("seed"),
        "steps": params.get("steps"),
        "cfg": params.get("cfg_scale"),
        "sampler": sampler.name if sampler else None,
        "scheduler": params.get("scheduler"),
        "model": sampler.model.name if sampler and sampler.model else None,
        "width": width or None,
        "height": height or None,
    }
    raw = {"generator": getattr(info.generator, "value", str(info.generator)), "metadata": dict(info.metadata)}
    return Reading("sd-parsers", NATIVE, normalize(fields), raw)

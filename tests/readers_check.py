#!/usr/bin/env python3
# Vendored verbatim from the project's shared tools (shared/tools/readers_check.py, MIT like this
# repository; upstream sha256 c665bb872511c4b3479e666f123930e6188c92ad2b94d8458a521a9fa5d6587f) so
# that tests/test_readers_check.py needs nothing outside the checkout. Everything below these header
# lines is the upstream file from its second line on; it keeps its own style, hence no lint/format.
# To refresh, from the repository root with shared/ beside it:
#   (head -n 10 tests/readers_check.py; tail -n +2 ../shared/tools/readers_check.py) > /tmp/rc.py
#   mv /tmp/rc.py tests/readers_check.py   # then update the sha256 above: sha256sum ../shared/tools/readers_check.py
# ruff: noqa
# fmt: off
"""readers_check.py - what do real external metadata readers extract from an image?

Usage:
    python readers_check.py IMAGE [--json] [--readers a,b,...] [--raw-full]
    python readers_check.py IMAGE --expect EXPECTED.json [--strict] [--json]
    python readers_check.py --versions

For each reader (exiftool, exiv2, pyexiv2, python-xmp-toolkit, sd-prompt-reader,
sd-parsers, pillow, piexif, exifreader [npm, Civitai's reader], comfyui-frontend
[an emulation of the ComfyUI web UI's PNG/WEBP loader, not the real app]) it
prints the normalized fields

    prompt, negative_prompt, seed, steps, cfg, sampler, scheduler, model,
    model_hash, width, height, loras

plus the raw tags the reader returned (truncated unless --raw-full).  A reader
that is not installed is reported as "missing"; a reader that raises is
reported as "error" with the exception text (that is a finding, not a crash).

Where a reader only returns raw tags (exiftool, exiv2, pyexiv2, xmp-toolkit,
pillow, piexif, exifreader) the fields are derived by this script from the
text the reader returned, using the A1111 infotext rules or a ComfyUI graph
walker; "parsed_by" says which.  sd-prompt-reader and sd-parsers parse by
themselves and their own output is reported as-is.

--expect FILE.json:
    {"fields": {"prompt": "...", "seed": 123, "loras": ["add_detail"], ...},
     "readers": ["sd-parsers", "exiftool"],          # optional
     "ignore": {"sd-prompt-reader": ["scheduler"]}}  # optional
    A bare object without "fields" is taken as the fields.
    Fails (exit 1) when a reader reports a value that differs from the
    expected one.  A reader that reports nothing for a field is "absent": that
    fails only for readers listed in "readers" (which must also be installed),
    or for every installed reader with --strict.  Comparison: strings are
    stripped and newline-normalized; seed/steps/width/height as int; cfg as
    float; model and lora names compare by file stem (dirs and
    .safetensors/.ckpt/.pt/.pth/.bin/.gguf dropped); model_hash
    case-insensitively; loras as the set of names (weight/hash also compared
    when the expectation gives them and the reader reports them).

Exit codes: 0 ok, 1 expectation failed, 2 usage error / unreadable input.
Standard library only; Python 3.10+.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from typing import Any

FIELDS = ["prompt", "negative_prompt", "seed", "steps", "cfg", "sampler", "scheduler",
          "model", "model_hash", "width", "height", "loras"]
READER_ORDER = ["exiftool", "exiv2", "pyexiv2", "python-xmp-toolkit", "sd-prompt-reader",
                "sd-parsers", "pillow", "piexif", "exifreader", "comfyui-frontend"]
SUBPROCESS_TIMEOUT = 60
RAW_LIMIT = 300
MODEL_EXTS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")

# --------------------------------------------------------------------------------------
# A1111 infotext parsing (reimplementation of the rules of A1111's
# modules/infotext_utils.py parse_generation_parameters, plus the Civitai "Hashes" JSON)
# --------------------------------------------------------------------------------------
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
RE_LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([^:>]+))?(?::[^>]*)?>")


def _extract_balanced_json(line: str, prefix: str) -> tuple[str, int, int] | None:
    """Find `prefix{...}` in line and return (json_text, start, end) with nested braces handled."""
    idx = line.find(prefix)
    if idx == -1:
        return None
    start = line.find("{", idx + len(prefix))
    if start == -1 or line[idx + len(prefix):start].strip():
        return None
    depth, in_str, esc = 0, False, False
    for i in range(start, len(line)):
        ch = line[i]
        if esc:
            esc = False
            continue
        if ch == "\\":
            esc = True
            continue
        if ch == '"':
            in_str = not in_str
            continue
        if in_str:
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return line[start:i + 1], idx, i + 1
    return None


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        try:
            return json.loads(v)
        except Exception:
            return v
    return v


def parse_infotext(text: str) -> dict[str, Any] | None:
    """Parse A1111/Forge infotext. Returns None if there is no parameters line (>=3 params)."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.replace("\r\n", "\n")
    *lines, last = text.strip().split("\n")
    hashes = None
    found = _extract_balanced_json(last, "Hashes: ")
    if found:
        try:
            hashes = json.loads(found[0])
        except Exception:
            hashes = None
        # drop the ", Hashes: {...}" span (with its leading comma) before regex parsing
        s, e = found[1], found[2]
        pre = last[:s].rstrip()
        if pre.endswith(","):
            pre = pre[:-1]
        last = pre + last[e:]
    if len(RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
        hashes = None
    if not last:
        return None
    prompt, neg, done = "", "", False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done = True
            line = line[16:].strip()
        if done:
            neg += ("" if neg == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    params: dict[str, str] = {}
    for k, v in RE_PARAM.findall(last):
        params[k] = _unquote(v.strip())
    out: dict[str, Any] = {f: None for f in FIELDS}
    out["prompt"] = prompt
    out["negative_prompt"] = neg
    out["seed"] = params.get("Seed")
    out["steps"] = params.get("Steps")
    out["cfg"] = params.get("CFG scale")
    out["sampler"] = params.get("Sampler")
    out["scheduler"] = params.get("Schedule type") or params.get("Scheduler")
    out["model"] = params.get("Model")
    out["model_hash"] = params.get("Model hash")
    m = RE_SIZE.match(params.get("Size", "") or "")
    if m:
        out["width"], out["height"] = m.group(1), m.group(2)
    loras: dict[str, dict[str, Any]] = {}
    for name, weight in RE_LORA_TAG.findall(prompt):
        loras.setdefault(name, {"name": name})
        if weight:
            loras[name]["weight"] = weight
    if params.get("Lora hashes"):
        for item in params["Lora hashes"].split(","):
            if ":" in item:
                name, h = item.split(":", 1)
                loras.setdefault(name.strip(), {"name": name.strip()})["hash"] = h.strip()
    if isinstance(hashes, dict):
        for k, h in hashes.items():
            if k.startswith("lora:"):
                loras.setdefault(k[5:], {"name": k[5:]}).setdefault("hash", h)
        if not out["model_hash"] and isinstance(hashes.get("model"), str):
            out["model_hash"] = hashes["model"]
    out["loras"] = list(loras.values()) or None
    extra = dict(params)
    if hashes is not None:
        extra["Hashes"] = hashes
    return {"fields": out, "params": extra}


# --------------------------------------------------------------------------------------
# ComfyUI API-graph ("prompt" chunk) walker
# --------------------------------------------------------------------------------------
SAMPLER_CLASSES = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")


def parse_comfy_prompt(prompt: Any) -> dict[str, Any] | None:
    if isinstance(prompt, str):
        try:
            prompt = json.loads(prompt)
        except Exception:
            return None
    if not isinstance(prompt, dict):
        return None
    nodes = {str(k): v for k, v in prompt.items() if isinstance(v, dict)}

    def node(link: Any) -> dict | None:
        if isinstance(link, list) and link:
            return nodes.get(str(link[0]))
        return None

    def sort_key(k: str):
        return (0, int(k)) if k.isdigit() else (1, k)

    samplers = [k for k in sorted(nodes, key=sort_key)
                if nodes[k].get("class_type") in SAMPLER_CLASSES
                or {"sampler_name", "steps", "cfg"} <= set((nodes[k].get("inputs") or {}).keys())]
    if not samplers:
        return None
    s_in = nodes[samplers[0]].get("inputs") or {}

    def text_of(link: Any, depth: int = 0) -> str | None:
        n = node(link)
        if n is None or depth > 12:
            return None
        ins = n.get("inputs") or {}
        for key in ("text", "text_g", "positive", "negative", "string", "value"):
            v = ins.get(key)
            if isinstance(v, str):
                return v
            if isinstance(v, list):
                t = text_of(v, depth + 1)
                if t is not None:
                    return t
        for key in ("conditioning", "conditioning_1", "conditioning_to"):
            if key in ins:
                t = text_of(ins[key], depth + 1)
                if t is not None:
                    return t
        return None

    def scalar(v: Any, key: str, depth: int = 0) -> Any:
        if isinstance(v, list):
            n = node(v)
            if n is None or depth > 8:
                return None
            ins = n.get("inputs") or {}
            for k2 in (key, "seed", "noise_seed", "value", "int", "float"):
                if k2 in ins:
                    return scalar(ins[k2], key, depth + 1)
            return None
        return v

    out: dict[str, Any] = {f: None for f in FIELDS}
    guider = node(s_in.get("guider")) if "guider" in s_in else None
    pos_link = s_in.get("positive") or ((guider or {}).get("inputs") or {}).get("positive")
    neg_link = s_in.get("negative") or ((guider or {}).get("inputs") or {}).get("negative")
    out["prompt"] = text_of(pos_link)
    out["negative_prompt"] = text_of(neg_link)
    out["seed"] = scalar(s_in.get("seed", s_in.get("noise_seed")), "seed")
    if out["seed"] is None and "noise" in s_in:
        out["seed"] = scalar(s_in["noise"], "noise_seed")
    out["steps"] = scalar(s_in.get("steps"), "steps")
    out["cfg"] = scalar(s_in.get("cfg"), "cfg")
    out["sampler"] = scalar(s_in.get("sampler_name"), "sampler_name")
    out["scheduler"] = scalar(s_in.get("scheduler"), "scheduler")
    # model chain: sampler.model -> LoraLoader* -> CheckpointLoader
    loras = []
    link = s_in.get("model") or ((guider or {}).get("inputs") or {}).get("model")
    for _ in range(32):
        n = node(link)
        if n is None:
            break
        ins = n.get("inputs") or {}
        if isinstance(ins.get("lora_name"), str):
            loras.append({"name": ins["lora_name"], "weight": ins.get("strength_model")})
        name = ins.get("ckpt_name") or ins.get("unet_name")
        if isinstance(name, str):
            out["model"] = name
            break
        link = ins.get("model")
    out["loras"] = list(reversed(loras)) or None
    lat = node(s_in.get("latent_image"))
    for _ in range(8):
        if lat is None:
            break
        lin = lat.get("inputs") or {}
        if "width" in lin and "height" in lin:
            out["width"], out["height"] = scalar(lin["width"], "width"), scalar(lin["height"], "height")
            break
        lat = node(lin.get("samples") or lin.get("latent") or lin.get("pixels"))
    return {"fields": out, "params": {"sampler_node": samplers[0], "class_type": nodes[samplers[0]].get("class_type")}}


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def trunc(v: Any, full: bool) -> Any:
    if isinstance(v, (bytes, bytearray)):
        v = "0x" + bytes(v[:64]).hex() + ("..." if len(v) > 64 else "") + f" ({len(v)} bytes)"
    if isinstance(v, str) and not full and len(v) > RAW_LIMIT:
        return v[:RAW_LIMIT] + f"... [{len(v)} chars]"
    if isinstance(v, dict):
        return {str(k): trunc(x, full) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [trunc(x, full) for x in v]
    return v


def run(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, timeout=SUBPROCESS_TIMEOUT, env=env)


def result(status: str, **kw) -> dict[str, Any]:
    r = {"status": status, "version": None, "parsed_by": None, "source": None,
         "detected_as": None, "fields": {f: None for f in FIELDS}, "raw": {}, "error": None}
    r.update(kw)
    return r


def fields_from_texts(candidates: list[tuple[str, Any]], comfy: list[tuple[str, Any]]) -> tuple:
    """Try infotext candidates first, then ComfyUI prompt candidates. Returns (fields, parsed_by, source, extra)."""
    for src, text in candidates:
        p = parse_infotext(text) if isinstance(text, str) else None
        if p:
            return p["fields"], "readers_check: A1111 infotext rules", src, p["params"]
    for src, text in comfy:
        p = parse_comfy_prompt(text)
        if p:
            return p["fields"], "readers_check: ComfyUI graph walker", src, p["params"]
    return {f: None for f in FIELDS}, None, None, None


def decode_usercomment(raw: bytes) -> tuple[str | None, str]:
    """Decode EXIF UserComment bytes the way the A1111 ecosystem does (UNICODE => UTF-16BE)."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) < 8:
        return None, "too short"
    prefix, body = bytes(raw[:8]), bytes(raw[8:])
    if prefix == b"UNICODE\0":
        return body.decode("utf-16-be", errors="replace"), "UNICODE (decoded as UTF-16BE)"
    if prefix == b"ASCII\0\0\0":
        return body.decode("ascii", errors="replace").rstrip("\0"), "ASCII"
    if prefix == b"JIS\0\0\0\0\0":
        return body.decode("shift_jis", errors="replace"), "JIS"
    if prefix == b"\0" * 8:
        return body.decode("utf-8", errors="replace").rstrip("\0"), "undefined prefix (decoded as UTF-8)"
    return None, f"unknown prefix {prefix!r}"


@contextlib.contextmanager
def quiet():
    """Silence stdout/stderr chatter (print, logging) of in-process readers."""
    out, err = io.StringIO(), io.StringIO()
    prev = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out
    finally:
        logging.disable(prev)


def pkg_version(dist: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def file_format(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"\x89PNG"):
        return "PNG"
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return "other"


# --------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------
def r_exiftool(path: str, full: bool) -> dict:
    exe = shutil.which("exiftool")
    if not exe:
        return result("missing", error="exiftool not on PATH (Debian: libimage-exiftool-perl)")
    ver = run([exe, "-ver"]).stdout.decode().strip()
    cp = run([exe, "-j", "-G1", "-a", "-s", "-charset", "utf8", path])
    try:
        data = json.loads(cp.stdout.decode("utf-8", errors="replace"))[0]
    except Exception as e:
        return result("error", version=ver, error=f"cannot parse exiftool JSON: {e}; {cp.stderr.decode()[:300]}")
    skip_groups = ("System:", "File:", "Composite:", "SourceFile", "JFIF:")
    structural = {"ExifTool:ExifToolVersion", "PNG:BitDepth", "PNG:ColorType", "PNG:Compression", "PNG:Filter",
                  "PNG:Interlace", "PNG:ImageWidth", "PNG:ImageHeight", "RIFF:ImageWidth", "RIFF:ImageHeight",
                  "RIFF:VP8Version", "RIFF:HorizontalScale", "RIFF:VerticalScale", "RIFF:AlphaPreprocessing",
                  "RIFF:AlphaFiltering", "RIFF:AlphaCompression"}
    raw = {k: v for k, v in data.items() if not k.startswith(skip_groups) and k not in structural}
    cands, comfy = [], []
    for key in ("PNG:Parameters", "ExifIFD:UserComment", "XMP-exif:UserComment", "XMP-dc:Description",
                "IFD0:ImageDescription"):
        if isinstance(data.get(key), str):
            cands.append((key, data[key]))
    if isinstance(data.get("PNG:Prompt"), str):
        comfy.append(("PNG:Prompt", data["PNG:Prompt"]))
    for key in ("IFD0:Model", "IFD0:Make"):
        v = data.get(key)
        if isinstance(v, str) and v.startswith("prompt:"):
            comfy.append((key, v[len("prompt:"):]))
    fields, by, src, extra = fields_from_texts(cands, comfy)
    return result("ok" if by else "nothing", version=ver, parsed_by=by, source=src,
                  fields=fields, raw=trunc(raw, full))


def _strip_exiv2(v: str) -> str:
    for p in ("charset=Unicode ", "charset=Ascii ", "charset=Jis ", 'lang="x-default" '):
        if v.startswith(p):
            return v[len(p):]
    return v


def r_exiv2(path: str, full: bool) -> dict:
    exe = shutil.which("exiv2")
    if not exe:
        return result("missing", error="exiv2 not on PATH (Debian: exiv2)")
    ver_out = run([exe, "--version"]).stdout.decode(errors="replace").splitlines()
    ver = ver_out[0].strip() if ver_out else None
    keys_cp = run([exe, "-q", "-Pk", "-pa", path])
    keys = [k.strip() for k in keys_cp.stdout.decode(errors="replace").splitlines() if k.strip()]
    wanted = [k for k in dict.fromkeys(keys) if k.startswith("Xmp.") or k in (
        "Exif.Photo.UserComment", "Exif.Image.ImageDescription", "Exif.Image.Make", "Exif.Image.Model",
        "Exif.Image.Software", "Exif.Image.Artist", "Exif.Image.XPComment")][:40]
    raw: dict[str, Any] = {"keys": keys[:60]}
    for k in wanted:
        cp = run([exe, "-q", "-K", k, "-Pt", path])
        raw[k] = _strip_exiv2(cp.stdout.decode("utf-8", errors="replace").rstrip("\n"))
    com = run([exe, "-q", "-pc", path]).stdout.decode("utf-8", errors="replace").strip()
    if com:
        raw["comment"] = com
    if file_format(path) == "PNG":
        st = run([exe, "-pS", path]).stdout.decode("latin-1", errors="replace")
        chunks = []
        for line in st.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 4 and parts[1] in ("tEXt", "iTXt", "zTXt"):
                chunks.append(f"{parts[1]} {parts[3].split('.', 1)[0]} (value not exposed by exiv2)")
        if chunks:
            raw["png_text_chunks(-pS)"] = chunks
    cands = [(k, raw[k]) for k in ("Exif.Photo.UserComment", "Xmp.exif.UserComment", "Xmp.dc.description",
                                   "Exif.Image.ImageDescription") if isinstance(raw.get(k), str)]
    comfy = [(k, raw[k][7:]) for k in ("Exif.Image.Model", "Exif.Image.Make")
             if isinstance(raw.get(k), str) and raw[k].startswith("prompt:")]
    fields, by, src, _ = fields_from_texts(cands, comfy)
    return result("ok" if by else "nothing", version=ver, parsed_by=by, source=src, fields=fields,
                  raw=trunc(raw, full))


def r_pyexiv2(path: str, full: bool) -> dict:
    try:
        with quiet():
            import pyexiv2  # type: ignore
    except Exception as e:
        return result("missing", error=f"import pyexiv2 failed: {e}")
    ver = f"{pyexiv2.__version__} (bundled exiv2 {getattr(pyexiv2, '__exiv2_version__', '?')})"
    try:
        with quiet():
            try:
                pyexiv2.set_log_level(4)
            except Exception:
                pass
            img = pyexiv2.Image(path)
            try:
                exif, xmp, comment = img.read_exif(), img.read_xmp(), img.read_comment()
            finally:
                img.close()
    except Exception as e:
        return result("error", version=ver, error=f"{type(e).__name__}: {e}")

    def flat(v: Any) -> Any:
        if isinstance(v, dict):  # LangAlt: {'lang="x-default"': text}
            return next(iter(v.values()), None) if v else None
        return v

    raw = {**exif, **xmp}
    if comment:
        raw["comment"] = comment
    g = {k: _strip_exiv2(flat(v)) if isinstance(flat(v), str) else flat(v) for k, v in raw.items()}
    cands = [(k, g[k]) for k in ("Exif.Photo.UserComment", "Xmp.exif.UserComment", "Xmp.dc.description",
                                 "Exif.Image.ImageDescription") if isinstance(g.get(k), str)]
    comfy = [(k, g[k][7:]) for k in ("Exif.Image.Model", "Exif.Image.Make")
             if isinstance(g.get(k), str) and g[k].startswith("prompt:")]
    fields, by, src, _ = fields_from_texts(cands, comfy)
    return result("ok" if by else "nothing", version=ver, parsed_by=by, source=src, fields=fields,
                  raw=trunc(raw, full))


def _exempi_version() -> str | None:
    if shutil.which("dpkg-query"):
        cp = run(["dpkg-query", "-W", "-f", "${Version}", "libexempi8"])
        if cp.returncode == 0 and cp.stdout:
            return cp.stdout.decode().strip()
    return None


def r_xmp_toolkit(path: str, full: bool) -> dict:
    try:
        with quiet():
            from libxmp import XMPFiles, consts  # type: ignore
            import libxmp.utils  # type: ignore
    except Exception as e:
        return result("missing", error=f"import libxmp failed (needs libexempi8): {type(e).__name__}: {e}")
    ver = f"{pkg_version('python-xmp-toolkit')} (exempi {_exempi_version() or '?'})"
    raw: dict[str, Any] = {}
    # exempi prints C-level warnings (e.g. "Unrecognized TIFF prefix") on fd 2: capture them
    import tempfile
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as errf:
            os.dup2(errf.fileno(), 2)
            try:
                xf = XMPFiles(file_path=path)
                xmp = xf.get_xmp()
                if xmp is not None:
                    d = libxmp.utils.object_to_dict(xmp)
                    for ns, props in d.items():
                        for name, value, _opts in props:
                            if value != "":
                                raw[name] = value
                    for prop, ns in (("description", consts.XMP_NS_DC), ("UserComment", consts.XMP_NS_EXIF)):
                        try:
                            t = xmp.get_localized_text(ns, prop, None, "x-default")
                            if t:
                                raw[f"{'dc' if ns == consts.XMP_NS_DC else 'exif'}:{prop}[x-default]"] = t
                        except Exception:
                            pass
                xf.close_file()
                err = None
            except Exception as e:
                xmp, err = None, f"{type(e).__name__}: {e}"
            finally:
                os.dup2(saved, 2)
            errf.seek(0)
            c_warn = errf.read().decode(errors="replace").strip()
    finally:
        os.close(saved)
    if c_warn:
        raw["exempi_stderr"] = c_warn
    if err:
        return result("error", version=ver, error=err, raw=trunc(raw, full))
    if xmp is None:
        return result("nothing", version=ver, raw=trunc(raw, full), error=None)
    cands = [(k, raw[k]) for k in ("dc:description[x-default]", "exif:UserComment[x-default]") if k in raw]
    fields, by, src, _ = fields_from_texts(cands, [])
    return result("ok" if by else "nothing", version=ver, parsed_by=by, source=src, fields=fields,
                  raw=trunc(raw, full))


def r_sd_prompt_reader(path: str, full: bool) -> dict:
    try:
        with quiet():
            from sd_prompt_reader.image_data_reader import ImageDataReader  # type: ignore
    except Exception as e:
        return result("missing", error=f"import sd_prompt_reader.image_data_reader failed: {type(e).__name__}: {e}")
    ver = pkg_version("sd-prompt-reader")
    try:
        with quiet() as chatter:
            r = ImageDataReader(path)
    except Exception as e:
        return result("error", version=ver, error=f"ImageDataReader raised {type(e).__name__}: {e}")
    status = getattr(r.status, "name", str(r.status))
    raw = {"status": status, "tool": r.tool, "format": r.format}
    if chatter.getvalue().strip():
        raw["stdout"] = chatter.getvalue().strip()
    if not r.tool:
        return result("nothing", version=ver, raw=raw)
    try:
        param = dict(r.parameter or {})
        raw.update({"parameter": param, "setting": r.setting, "is_sdxl": r.is_sdxl})
        if r.is_sdxl:
            raw["positive_sdxl"], raw["negative_sdxl"] = r.positive_sdxl, r.negative_sdxl
        f = {k: None for k in FIELDS}
        f.update(prompt=r.positive or None, negative_prompt=r.negative or None, seed=param.get("seed"),
                 steps=param.get("steps"), cfg=param.get("cfg"), sampler=param.get("sampler"),
                 model=param.get("model"), width=r.width, height=r.height)
        for k, v in list(f.items()):
            if v in ("", "None", "0") and k not in ("seed",):
                f[k] = None
    except Exception as e:
        return result("error", version=ver, error=f"{type(e).__name__}: {e}", raw=trunc(raw, full))
    ok = status == "READ_SUCCESS"
    return result("ok" if ok else "error", version=ver, parsed_by="reader", detected_as=r.tool,
                  source=None, fields=f, raw=trunc(raw, full), error=None if ok else f"status {status}")


def _forget_sd_parsers_cache() -> None:
    """sd-parsers keeps the last image's UserComment (and stealth PNG data) keyed by id(image): a new
    image allocated where the last one was freed reads the last file's metadata. Forget it per file."""
    import importlib
    for module, names in (("sd_parsers.extractors._jpeg_usercomment", ("_image_id",)),
                          ("sd_parsers.extractors._png_stenographic_alpha", ("_image_id",))):
        try:
            found = importlib.import_module(module)
        except Exception:
            continue
        for name in names:
            if hasattr(found, name):
                setattr(found, name, None)


def r_sd_parsers(path: str, full: bool) -> dict:
    try:
        with quiet():
            from sd_parsers import ParserManager  # type: ignore
    except Exception as e:
        return result("missing", error=f"import sd_parsers failed: {type(e).__name__}: {e}")
    ver = pkg_version("sd-parsers")
    _forget_sd_parsers_cache()
    try:
        with quiet():
            info = ParserManager().parse(path)
    except Exception as e:
        return result("error", version=ver, error=f"ParserManager.parse raised {type(e).__name__}: {e}")
    if info is None:
        return result("nothing", version=ver)
    f = {k: None for k in FIELDS}
    gen = getattr(info.generator, "value", str(info.generator))
    s = info.samplers[0] if info.samplers else None
    md = info.metadata or {}
    if s is not None:
        p = s.parameters or {}
        f.update(sampler=s.name, seed=p.get("seed"), steps=p.get("steps"), cfg=p.get("cfg_scale"),
                 scheduler=p.get("scheduler"))
        if s.model is not None:
            f["model"], f["model_hash"] = s.model.name, s.model.hash
            lora_md = (s.model.metadata or {}).get("LoraLoader")
            if lora_md:
                items = lora_md if isinstance(lora_md, list) else [lora_md]
                f["loras"] = [{"name": x.get("lora_name"), "weight": x.get("strength_model")}
                              for x in items if isinstance(x, dict)] or None
    f["prompt"] = info.full_prompt or None
    f["negative_prompt"] = info.full_negative_prompt or None
    size = md.get("Size") or md.get("size")
    if isinstance(size, str) and RE_SIZE.match(size):
        f["width"], f["height"] = size.split("x")
    lat = md.get("EmptyLatentImage")
    if f["width"] is None and isinstance(lat, list) and lat and isinstance(lat[0], dict):
        f["width"], f["height"] = lat[0].get("width"), lat[0].get("height")
    if f["loras"] is None and isinstance(md.get("Lora hashes"), str):
        f["loras"] = [{"name": x.split(":")[0].strip().strip('"')} for x in md["Lora hashes"].split(",") if x.strip()]
    raw = {"generator": gen, "samplers": [
        {"name": x.name, "parameters": x.parameters,
         "model": None if x.model is None else {"name": x.model.name, "hash": x.model.hash,
                                                "metadata": x.model.metadata}} for x in info.samplers],
        "metadata": md}
    return result("ok", version=ver, parsed_by="reader", detected_as=gen, fields=f, raw=trunc(raw, full))


def r_pillow(path: str, full: bool) -> dict:
    try:
        import PIL
        from PIL import Image
    except Exception as e:
        return result("missing", error=f"import PIL failed: {e}")
    ver = PIL.__version__
    raw: dict[str, Any] = {}
    try:
        with Image.open(path) as im:
            raw["format"], raw["mode"], raw["size"] = im.format, im.mode, list(im.size)
            text = dict(getattr(im, "text", {}) or {})  # PNG: tEXt/zTXt/iTXt (whole file)
            info = {k: v for k, v in im.info.items() if k not in ("exif", "icc_profile", "xmp")}
            for k, v in text.items():
                raw[f"text[{k}]"] = v
            for k, v in info.items():
                if k not in text:
                    raw[f"info[{k}]"] = v
            exif = im.getexif()
            for tag in (0x010E, 0x010F, 0x0110, 0x0131, 0x013B):
                if tag in exif:
                    raw[f"IFD0[0x{tag:04x}]"] = exif[tag]
            uc = exif.get_ifd(0x8769).get(0x9286)
            if uc is not None:
                raw["ExifIFD[UserComment] raw"] = uc
                dec, how = decode_usercomment(uc if isinstance(uc, bytes) else bytes(uc) if isinstance(uc, (tuple, list)) else str(uc).encode())
                raw["ExifIFD[UserComment] decoded"] = dec
                raw["ExifIFD[UserComment] charset"] = how
            if "xmp" in im.info or "XML:com.adobe.xmp" in im.info:
                try:
                    import warnings
                    with warnings.catch_warnings(record=True) as w:
                        warnings.simplefilter("always")
                        x = im.getxmp()
                    raw["getxmp()"] = x if x else ("{} - " + "; ".join(str(i.message) for i in w))
                except Exception as e:
                    raw["getxmp()"] = f"error {type(e).__name__}: {e}"
    except Exception as e:
        return result("error", version=ver, error=f"{type(e).__name__}: {e}")
    cands = []
    if isinstance(raw.get("text[parameters]") or raw.get("info[parameters]"), str):
        cands.append(("text[parameters]", raw.get("text[parameters]") or raw.get("info[parameters]")))
    if isinstance(raw.get("ExifIFD[UserComment] decoded"), str):
        cands.append(("ExifIFD UserComment", raw["ExifIFD[UserComment] decoded"]))
    x = raw.get("getxmp()")
    if isinstance(x, dict):
        try:
            d = x["xmpmeta"]["RDF"]["Description"]
            d = d[0] if isinstance(d, list) else d
            desc = d.get("description", {}).get("Alt", {}).get("li")
            desc = desc.get("text") if isinstance(desc, dict) else desc
            if isinstance(desc, str):
                cands.append(("getxmp dc:description", desc))
        except Exception:
            pass
    comfy = []
    if isinstance(raw.get("text[prompt]"), str):
        comfy.append(("text[prompt]", raw["text[prompt]"]))
    m = raw.get("IFD0[0x0110]")
    if isinstance(m, str) and m.startswith("prompt:"):
        comfy.append(("IFD0 Model (0x0110) prompt:", m[7:]))
    fields, by, src, _ = fields_from_texts(cands, comfy)
    return result("ok" if by else "nothing", version=ver, parsed_by=by, source=src, fields=fields,
                  raw=trunc(raw, full))


def r_piexif(path: str, full: bool) -> dict:
    try:
        import piexif  # type: ignore
        import piexif.helper  # type: ignore
    except Exception as e:
        return result("missing", error=f"import piexif failed: {e}")
    ver = getattr(piexif, "VERSION", None) or pkg_version("piexif")
    try:
        d = piexif.load(path)
    except Exception as e:
        return result("nothing", version=ver, error=None,
                      raw={"load": f"{type(e).__name__}: {e}"})
    raw: dict[str, Any] = {}
    for ifd in ("0th", "Exif"):
        for tag, v in (d.get(ifd) or {}).items():
            name = piexif.TAGS.get(ifd, {}).get(tag, {}).get("name", hex(tag))
            raw[f"{ifd}.{name}"] = v.decode("utf-8", "replace") if isinstance(v, bytes) and name != "UserComment" else v
    uc = (d.get("Exif") or {}).get(piexif.ExifIFD.UserComment)
    cands, comfy = [], []
    if uc is not None:
        try:
            txt = piexif.helper.UserComment.load(uc)
            raw["UserComment (helper.load)"] = txt
            cands.append(("Exif.UserComment via piexif.helper.UserComment.load", txt))
        except Exception as e:
            raw["UserComment (helper.load)"] = f"{type(e).__name__}: {e}"
    m = raw.get("0th.Model")
    if isinstance(m, str) and m.startswith("prompt:"):
        comfy.append(("0th.Model prompt:", m[7:]))
    fields, by, src, _ = fields_from_texts(cands, comfy)
    return result("ok" if by else "nothing", version=ver, parsed_by=by, source=src, fields=fields,
                  raw=trunc(raw, full))


_EXIFREADER_JS = r"""
const fs = require('fs');
let ExifReader;
try { ExifReader = require('exifreader'); } catch (e) { console.log(JSON.stringify({missing: String(e)})); process.exit(0); }
const ver = (() => { try { return require('exifreader/package.json').version; } catch (e) { return null; } })();
function decodeUserComment(buffer) {  // same logic as Civitai's src/utils/encoding-helpers.ts
  if (buffer.length < 8) return '';
  const header = new TextDecoder('ascii').decode(buffer.subarray(0, 8));
  const content = buffer.subarray(8);
  if (header.startsWith('ASCII')) return new TextDecoder('ascii').decode(content);
  if (header.startsWith('UTF8')) return new TextDecoder('utf-8').decode(content);
  if (content.length >= 2) {
    if (content[0] === 0xFE && content[1] === 0xFF) return new TextDecoder('utf-16be').decode(content.subarray(2)).replace(/\0/g, '');
    if (content[0] === 0xFF && content[1] === 0xFE) return new TextDecoder('utf-16le').decode(content.subarray(2)).replace(/\0/g, '');
  }
  let evenZeros = 0, oddZeros = 0;
  const limit = Math.min(content.length, 1000);
  for (let i = 0; i + 1 < limit; i += 2) { if (content[i] === 0) evenZeros++; if (content[i + 1] === 0) oddZeros++; }
  return new TextDecoder(oddZeros > evenZeros ? 'utf-16le' : 'utf-16be').decode(content).replace(/\0/g, '');
}
(async () => {
  const buf = fs.readFileSync(process.argv[1]);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
  let tags;
  try { tags = await ExifReader.load(ab, {includeUnknown: true, async: true}); }
  catch (e) { console.log(JSON.stringify({version: ver, error: String(e)})); return; }
  const out = {};
  for (const [k, v] of Object.entries(tags)) {
    const val = v && v.value;
    out[k] = (typeof val === 'string') ? val : (v && v.description !== undefined ? v.description : val);
    // Civitai: exif.userComment = Uint8Array.from(exif.UserComment) where exif.X = tags[X].value; an XMP
    // exif:UserComment merged under the same name replaces the EXIF byte array (-> decodes to '')
    if (k === 'UserComment') {
      out['UserComment.value type'] = Array.isArray(val) ? (val.length && typeof val[0] === 'number' ? 'byte array (EXIF)' : 'array of objects (XMP)') : typeof val;
      out['userComment (Civitai decodeUserComment)'] = decodeUserComment(Uint8Array.from(Array.isArray(val) ? val : []));
    }
  }
  console.log(JSON.stringify({version: ver, tags: out}));
})();
"""


def _node_paths() -> list[str]:
    paths = []
    if os.environ.get("READERS_NODE_PATH"):
        paths.append(os.environ["READERS_NODE_PATH"])
    prefix = os.environ.get("READERS_PREFIX") or os.path.join(os.path.expanduser("~"), ".local", "share", "readers_check")
    paths.append(os.path.join(prefix, "node_modules"))
    npm = shutil.which("npm")
    if npm:
        try:
            g = run([npm, "root", "-g"]).stdout.decode().strip()
            if g:
                paths.append(g)
        except Exception:
            pass
    return [p for p in paths if os.path.isdir(p)]


def r_exifreader(path: str, full: bool) -> dict:
    node = shutil.which("node")
    if not node:
        return result("missing", error="node not on PATH (exifreader is an npm package; Civitai uses it)")
    env = dict(os.environ)
    env["NODE_PATH"] = os.pathsep.join(_node_paths() + ([env["NODE_PATH"]] if env.get("NODE_PATH") else []))
    cp = run([node, "-e", _EXIFREADER_JS, os.path.abspath(path)], env=env)
    try:
        out = json.loads(cp.stdout.decode("utf-8", errors="replace").strip().splitlines()[-1])
    except Exception:
        return result("error", error=f"node failed: {cp.stderr.decode(errors='replace')[:300]}")
    if "missing" in out:
        return result("missing", error="npm package exifreader not found (install_readers.sh installs it)")
    ver = out.get("version")
    if "error" in out:
        return result("error", version=ver, error=out["error"])
    tags = out.get("tags") or {}
    skip = {"Image Width", "Image Height", "Bit Depth", "Color Type", "Compression", "Filter", "Interlace",
            "FileType", "Bits Per Sample", "Color Components", "Subsampling", "ImageWidth", "ImageHeight",
            "Alpha", "Animation", "Exif IFD Pointer", "UserComment"}
    raw = {k: v for k, v in tags.items() if k not in skip}
    # Civitai's parser order: automatic (parameters / userComment containing "Steps: ") then comfy
    cands, comfy = [], []
    for key in ("parameters", "userComment (Civitai decodeUserComment)"):
        v = tags.get(key)
        if isinstance(v, str) and "Steps: " in v:
            cands.append((key, v))
    if isinstance(tags.get("prompt"), str):
        comfy.append(("prompt", tags["prompt"]))
    m = tags.get("Model")
    m = m[0] if isinstance(m, list) and m else m
    if isinstance(m, str) and m.startswith("prompt:"):
        comfy.append(("Model prompt:", m[7:]))
    fields, by, src, _ = fields_from_texts(cands, comfy)
    if by:
        by += " (Civitai's tag-selection rules)"
    return result("ok" if by else "nothing", version=ver, parsed_by=by, source=src, fields=fields,
                  raw=trunc(raw, full))


def _frontend_png_chunks(data: bytes) -> dict[str, str]:
    """ComfyUI_frontend src/scripts/metadata/png.ts getFromPngBuffer: tEXt/iTXt/comf chunks,
    text = everything after the keyword's NUL decoded as UTF-8 (iTXt header bytes are NOT skipped)."""
    out, off = {}, 8
    while off + 8 <= len(data):
        length = int.from_bytes(data[off:off + 4], "big")
        ctype = data[off + 4:off + 8]
        if ctype in (b"tEXt", b"comf", b"iTXt"):
            body = data[off + 8:off + 8 + length]
            kw, _, rest = body.partition(b"\0")
            out[kw.decode("latin-1")] = rest.decode("utf-8", errors="replace")
        off += 12 + length
    return out


def _frontend_webp_exif(data: bytes) -> dict[str, str]:
    """ComfyUI_frontend getWebpMetadata: EXIF chunk (optional 'Exif\\0\\0'), IFD0 ASCII values 'key:value'."""
    out, off = {}, 12
    while off + 8 <= len(data):
        ctype, n = data[off:off + 4], int.from_bytes(data[off + 4:off + 8], "little")
        if ctype == b"EXIF":
            ex = data[off + 8:off + 8 + n]
            if ex[:6] == b"Exif\0\0":
                ex = ex[6:]
            le = ex[:2] == b"II"
            rd = (lambda b: int.from_bytes(b, "little" if le else "big"))
            ifd = rd(ex[4:8])
            for i in range(rd(ex[ifd:ifd + 2])):
                e = ifd + 2 + i * 12
                typ, cnt, val = rd(ex[e + 2:e + 4]), rd(ex[e + 4:e + 8]), rd(ex[e + 8:e + 12])
                if typ == 2 and cnt > 4:
                    v = ex[val:val + cnt - 1].decode("utf-8", errors="replace")
                    if ":" in v:
                        k, _, rest = v.partition(":")
                        out[k] = rest
        off += 8 + n + (n & 1)
    return out


def r_comfyui_frontend(path: str, full: bool) -> dict:
    """Emulation (not the real app) of how the ComfyUI web frontend finds workflow/prompt on drag&drop."""
    ver = "emulated: ComfyUI_frontend metadata/png.ts + getWebpMetadata"
    fmt = file_format(path)
    with open(path, "rb") as fh:
        data = fh.read()
    if fmt == "PNG":
        chunks = _frontend_png_chunks(data)
    elif fmt == "WEBP":
        chunks = _frontend_webp_exif(data)
    else:
        return result("nothing", version=ver, raw={"note": "frontend reads workflow only from PNG/WEBP (and video/audio)"})
    raw: dict[str, Any] = {}
    loadable = None
    for key in ("workflow", "prompt"):
        if key in chunks:
            try:
                json.loads(chunks[key])
                raw[f"{key} JSON.parse"] = "ok"
                loadable = loadable or key
            except Exception as e:
                raw[f"{key} JSON.parse"] = f"FAILS ({e}); starts with {chunks[key][:12]!r}"
    if "parameters" in chunks:
        raw["parameters"] = chunks["parameters"]
    raw["loads"] = loadable or ("A1111 parameters import" if "parameters" in chunks else None)
    comfy = [("prompt", chunks["prompt"])] if raw.get("prompt JSON.parse") == "ok" else []
    cands = [("parameters", chunks["parameters"])] if not loadable and "parameters" in chunks else []
    fields, by, src, _ = fields_from_texts(cands, comfy)
    return result("ok" if (by or loadable) else "nothing", version=ver, parsed_by=by, source=src,
                  detected_as=raw["loads"], fields=fields, raw=trunc(raw, full))


READERS = {
    "exiftool": r_exiftool, "exiv2": r_exiv2, "pyexiv2": r_pyexiv2, "python-xmp-toolkit": r_xmp_toolkit,
    "sd-prompt-reader": r_sd_prompt_reader, "sd-parsers": r_sd_parsers, "pillow": r_pillow,
    "piexif": r_piexif, "exifreader": r_exifreader, "comfyui-frontend": r_comfyui_frontend,
}


def run_readers(path: str, names: list[str], full: bool) -> dict[str, dict]:
    out = {}
    for n in names:
        try:
            out[n] = READERS[n](path, full)
        except subprocess.TimeoutExpired:
            out[n] = result("error", error=f"timed out after {SUBPROCESS_TIMEOUT}s")
        except Exception as e:  # a reader must never take the harness down
            out[n] = result("error", error=f"harness error {type(e).__name__}: {e}")
    return out


# --------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------
def _stem(name: Any) -> str:
    s = str(name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    for ext in MODEL_EXTS:
        if s.lower().endswith(ext):
            return s[: -len(ext)]
    return s


def norm(field: str, v: Any) -> Any:
    if v is None:
        return None
    try:
        if field in ("seed", "steps", "width", "height"):
            return int(float(str(v).strip()))
        if field == "cfg":
            return round(float(str(v).strip()), 6)
    except ValueError:
        return str(v).strip()
    if field == "model":
        return _stem(v)
    if field == "model_hash":
        return str(v).strip().lower()
    if field == "loras":
        items = v if isinstance(v, list) else [v]
        res = {}
        for it in items:
            d = it if isinstance(it, dict) else {"name": it}
            if d.get("name") is None:
                continue
            res[_stem(d["name"])] = {k: d.get(k) for k in ("weight", "hash") if d.get(k) is not None}
        return res or None
    if isinstance(v, str):
        return v.replace("\r\n", "\n").strip()
    return v


def compare(field: str, expected: Any, got: Any) -> str | None:
    """None if equal, else a human-readable reason."""
    e, g = norm(field, expected), norm(field, got)
    if field != "loras":
        return None if e == g else f"expected {e!r}, got {g!r}"
    if set(e or {}) != set(g or {}):
        return f"expected lora names {sorted(e or {})}, got {sorted(g or {})}"
    for name, attrs in (e or {}).items():
        for k, ev in attrs.items():
            gv = (g or {}).get(name, {}).get(k)
            if gv is None:
                continue
            if k == "weight":
                try:
                    if abs(float(ev) - float(gv)) < 1e-6:
                        continue
                except ValueError:
                    pass
            elif str(ev).lower() == str(gv).lower():
                continue
            return f"lora {name}: expected {k}={ev!r}, got {gv!r}"
    return None


def check_expect(results: dict[str, dict], spec: dict, strict: bool) -> tuple[list[str], list[str]]:
    fields = spec.get("fields", spec if "fields" not in spec else {})
    fields = {k: v for k, v in fields.items() if k in FIELDS}
    required = set(spec.get("readers") or [])
    ignore = spec.get("ignore") or {}
    fails, notes = [], []
    for r in required:
        if r not in results:
            fails.append(f"{r}: required reader was not run (unknown name or filtered out)")
        elif results[r]["status"] == "missing":
            fails.append(f"{r}: required reader is not installed ({results[r]['error']})")
    for name, res in results.items():
        if res["status"] == "missing":
            notes.append(f"{name}: missing (skipped)")
            continue
        must = strict or name in required
        if res["status"] == "error" and res["fields"].get("prompt") is None:
            (fails if must else notes).append(f"{name}: reader error: {res['error']}")
            if not must:
                continue
        for f, exp in fields.items():
            if f in (ignore.get(name) or []) or f in (ignore.get("*") or []):
                continue
            got = res["fields"].get(f)
            if got is None:
                (fails if must else notes).append(f"{name}.{f}: absent (expected {norm(f, exp)!r})")
                continue
            why = compare(f, exp, got)
            if why:
                fails.append(f"{name}.{f}: MISMATCH {why}")
    return fails, notes


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------
def fmt_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return json.dumps(v, ensure_ascii=False, default=str)


def print_human(path: str, results: dict[str, dict]) -> None:
    print(f"# {path} ({file_format(path)})")
    for name, r in results.items():
        head = f"== {name}"
        if r.get("version"):
            head += f" {r['version']}"
        head += f" [{r['status']}]"
        if r.get("detected_as"):
            head += f" detected_as={json.dumps(r['detected_as'])}"
        print(head)
        if r.get("error"):
            print(f"   error: {r['error']}")
        if r.get("parsed_by"):
            print(f"   parsed_by: {r['parsed_by']}" + (f"  (from {r['source']})" if r.get("source") else ""))
        for f in FIELDS:
            v = r["fields"].get(f)
            if v is not None:
                print(f"   {f:16s} {fmt_value(v)}")
        if r.get("raw"):
            for k, v in r["raw"].items():
                s = fmt_value(v)
                print(f"   raw {k}: {s}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("image", nargs="?")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--expect", metavar="FILE.json", help="compare against expected field values")
    ap.add_argument("--strict", action="store_true", help="with --expect: an absent field fails for every installed reader")
    ap.add_argument("--readers", help="comma-separated subset of: " + ",".join(READER_ORDER))
    ap.add_argument("--raw-full", action="store_true", help=f"do not truncate raw values (default {RAW_LIMIT} chars)")
    ap.add_argument("--versions", action="store_true", help="print reader versions / missing and exit")
    a = ap.parse_args(argv)

    names = READER_ORDER
    if a.readers:
        names = [n.strip() for n in a.readers.split(",") if n.strip()]
        bad = [n for n in names if n not in READERS]
        if bad:
            print(f"unknown reader(s): {', '.join(bad)}; known: {', '.join(READER_ORDER)}", file=sys.stderr)
            return 2
    if a.versions:
        import tempfile
        from base64 import b64decode
        png = b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")
        with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as t:
            t.write(png)
        try:
            res = run_readers(t.name, names, False)
        finally:
            os.unlink(t.name)
        vers = {n: {"status": "missing" if r["status"] == "missing" else "installed",
                    "version": r["version"], "error": r["error"] if r["status"] == "missing" else None}
                for n, r in res.items()}
        if a.json:
            print(json.dumps(vers, indent=2))
        else:
            for n, v in vers.items():
                print(f"{n:20s} {v['status']:10s} {v['version'] or ''}" + (f"  ({v['error']})" if v["error"] else ""))
        return 0
    if not a.image:
        ap.print_usage(sys.stderr)
        return 2
    if not os.path.isfile(a.image):
        print(f"no such file: {a.image}", file=sys.stderr)
        return 2
    spec = None
    if a.expect:
        try:
            with open(a.expect, encoding="utf-8") as fh:
                spec = json.load(fh)
            assert isinstance(spec, dict)
        except Exception as e:
            print(f"cannot read expectation file {a.expect}: {e}", file=sys.stderr)
            return 2

    results = run_readers(a.image, names, a.raw_full)
    rc = 0
    report: dict[str, Any] = {"image": a.image, "format": file_format(a.image), "readers": results}
    if spec is not None:
        fails, notes = check_expect(results, spec, a.strict)
        report["expect"] = {"file": a.expect, "ok": not fails, "failures": fails, "notes": notes}
        rc = 1 if fails else 0
    if a.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        print_human(a.image, results)
        if spec is not None:
            print()
            print("== expectation: " + ("OK" if rc == 0 else f"FAILED ({len(report['expect']['failures'])})"))
            for f in report["expect"]["failures"]:
                print(f"   FAIL {f}")
            for n in report["expect"]["notes"]:
                print(f"   note {n}")
    return rc


if __name__ == "__main__":
    try:  # behave like a normal CLI when piped into head/less
        import signal
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    except (AttributeError, ValueError):
        pass
    sys.exit(main())

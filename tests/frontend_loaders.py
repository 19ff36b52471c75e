"""What the ComfyUI frontend 1.49.6 loads from a dropped file: a port of its file loaders."""

# A port of comfyui_frontend_package 1.49.6 static/assets/settingStore-CwkLtSKP.js.map (sourcesContent):
# src/scripts/metadata/parser.ts, png.ts, ebml.ts, isobmff.ts, flac.ts, mp3.ts, ogg.ts, src/scripts/pnginfo.ts,
# src/utils/jsonUtil.ts and src/scripts/app.ts handleFile. JS semantics kept: bytes past the end read as
# `undefined`, `<<`/`|` wrap to int32, `||` and `if (x)` use JS truthiness, fromCharCode is latin-1.

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The browser sets File.type from the extension; these are Chromium's (net/base/mime_util.cc
# kPrimaryMappings, plus the platform types it falls back to for mov/mkv/m4v/glb). `mime=` overrides.
MIME_TYPES = {
    ".png": "image/png", ".apng": "image/apng", ".webp": "image/webp", ".avif": "image/avif",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".svg": "image/svg+xml",
    ".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
    ".wav": "audio/wav", ".m4a": "audio/x-m4a", ".webm": "video/webm", ".mp4": "video/mp4", ".m4v": "video/x-m4v",
    ".mov": "video/quicktime", ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".json": "application/json",
    ".glb": "model/gltf-binary",
}  # fmt: skip
NO_LOADER = "not loaded by the frontend (no loader for this type)"


class JsError(Exception):
    """Where the frontend's code throws (a RangeError on a short buffer): its promise never settles."""


@dataclass(frozen=True)
class FrontendResult:
    """What handleFile does with a dropped file.

    workflow/prompt: the objects the file gave (JSON strings parsed as app.ts does), parameters: A1111 text.
    loaded: what handleFile loads, "workflow" > "prompt" (API JSON only) > "parameters", or None.
    reason: None when the workflow loads; else why not (a failed parse, a window, no loader, ...).
    """

    workflow: dict[str, Any] | None
    prompt: dict[str, Any] | None
    parameters: str | None
    loaded: str | None
    reason: str | None
    mime: str = ""
    loader: str | None = None  # the frontend function that read the file
    raw: dict[str, Any] = field(default_factory=dict)  # what getWorkflowDataFromFile returned


def _truthy(value: Any) -> bool:
    return not (value is None or value is False or value == "" or (isinstance(value, (int, float)) and not value))


def _or(a: Any, b: Any) -> Any:
    return a if _truthy(a) else b


def _at(data: bytes, i: int) -> int | None:
    return data[i] if 0 <= i < len(data) else None  # JS: typed array out of range is undefined


def _i32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _u32(data: bytes, pos: int, little: bool = False) -> int:
    if pos < 0 or pos + 4 > len(data):
        raise JsError(f"RangeError: offset {pos} is outside the bounds of the DataView")
    return int.from_bytes(data[pos : pos + 4], "little" if little else "big")


def _decode(data: bytes) -> str:
    # new TextDecoder(): UTF-8 with U+FFFD for bad bytes, a leading BOM dropped.
    return (data[3:] if data.startswith(b"\xef\xbb\xbf") else data).decode("utf-8", errors="replace")


JS_SPACE = "\t\n\v\f\r \xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
NON_FINITE = re.compile(r'"(?:\\.|[^"\\])*"|(?<![\w.-])(-?Infinity|NaN)(?![\w.])', re.ASCII)


def _no_constant(token: str) -> Any:
    raise ValueError(f"JSON.parse: unexpected token {token}")


def parse_json(text: str) -> Any:
    """jsonUtil.ts parseJsonWithNonFinite: JSON.parse, retried with bare NaN/Infinity tokens made null."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError:
        fixed = NON_FINITE.sub(lambda m: "null" if m.group(1) else m.group(0), text)
        return json.loads(fixed, parse_constant=_no_constant)


def _json_or_none(text: str | None) -> Any:
    """The loaders' `try { parseJsonWithNonFinite(text) } catch { null }`."""
    try:
        return parse_json(text) if text else None
    except ValueError:
        return None


def _png(data: bytes) -> dict[str, Any]:
    """png.ts getFromPngBuffer: every tEXt/iTXt/comf chunk, keyword latin-1, text UTF-8; whole file."""
    if _u32(data, 0) != 0x89504E47:
        return {}
    out: dict[str, Any] = {}
    offset = 8
    while offset < len(data):
        length, ctype = _u32(data, offset), data[offset + 4 : offset + 8]
        end = offset + 8 + length
        if ctype in (b"tEXt", b"comf", b"iTXt"):
            keyword_end = data.find(b"\x00", offset + 8)
            if keyword_end < 0:
                raise JsError("the keyword scan runs past the end of the file (never terminates)")
            keyword, start = data[offset + 8 : keyword_end].decode("latin-1"), keyword_end + 1
            compressed, method = False, 0  # iTXt: compression flag (1 = zlib), method (0 = deflate)
            if ctype == b"iTXt":
                compressed, start = _at(data, start) == 1, start + 2
                method = -1 if (byte := _at(data, start - 1)) is None else byte  # undefined matches no method
                for _ in range(2):  # language tag, translated keyword: each up to a NUL inside the chunk
                    while _at(data, start) != 0 and start < end:
                        start += 1
                    start += 1 if start < end else 0
            content = data[start:end]
            if compressed:
                if method != 0:
                    offset += 12 + length
                    continue
                # decompressZlib awaits writer.write() and writer.close() before it reads, and a
                # DecompressionStream's write waits for a reader: in Chromium 156 every compressed iTXt,
                # even 79 bytes, leaves the load pending forever (tests/test_comfyui_web.py saw it).
                raise JsError(f"compressed iTXt {keyword!r}: decompressZlib never settles (no reader)")
            out[keyword] = _decode(content)
        offset += 12 + length
    return out


def _webp(data: bytes) -> dict[str, Any]:
    """pnginfo.ts getWebpMetadata + parseExifData: first EXIF chunk, IFD0 ASCII values split at ':'."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return {}
    texts: dict[str, Any] = {}
    offset = 12
    while offset < len(data):
        length = _u32(data, offset + 4, little=True)
        if data[offset : offset + 4] == b"EXIF":
            start = offset + 8 + (6 if data[offset + 8 : offset + 14] == b"Exif\x00\x00" else 0)
            exif = data[start : offset + 8 + length]
            little = exif[:2] == b"II"

            def read(pos: int, size: int, exif: bytes = exif, little: bool = little) -> int:
                if pos < 0 or pos + size > len(exif):
                    raise JsError("RangeError: EXIF offset outside the buffer")
                return int.from_bytes(exif[pos : pos + size], "little" if little else "big")

            ifd, tags = read(4, 4), {}
            for i in range(read(ifd, 2)):
                entry = ifd + 2 + 12 * i
                kind, count, value_at = read(entry + 2, 2), read(entry + 4, 4), read(entry + 8, 4)
                # Always at value_at, even for inline (<= 4 byte) values; subarray's end may be negative.
                end = value_at + count - 1
                value = exif[value_at : end if end >= 0 else len(exif) + end] if kind == 2 else None
                tags[read(entry, 2)] = _decode(value) if value is not None else None
            for tag_id in sorted(tags):  # `for (key in data)`: integer keys ascending
                if isinstance(text := tags[tag_id], str):
                    i = text.find(":")
                    texts[text[:i] if i >= 0 else text[:-1]] = text[i + 1 :]
            break
        offset += 8 + length + length % 2
    return texts


def _be32(data: bytes, pos: int) -> int:
    """isobmff.ts readUint32: 0 past the end, and signed (built with << and |)."""
    return _i32(int.from_bytes(data[pos : pos + 4], "big")) if pos + 4 <= len(data) else 0


def _box(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """isobmff.ts findIsobmffBoxByType: (content start, end) of the first `kind` box among siblings."""
    pos = start
    while pos < end - 8:
        size = _be32(data, pos)
        if size < 8:  # not a box header here: step one byte
            pos += 1
            continue
        if data[pos + 4 : pos + 8] == kind:
            return pos + 8, pos + size
        if pos + size > end:
            return None
        pos += size
    return None


def _isobmff(data: bytes) -> dict[str, Any]:
    """isobmff.ts getFromIsobmffFile: udta (top level, else moov/udta) → meta → keys + ilst, first 64 MiB."""
    meta: dict[str, Any] = {}
    udta = _box(data, 0, len(data), b"udta")
    if udta is None and (moov := _box(data, 0, len(data), b"moov")):
        udta = _box(data, *moov, b"udta")
    box = udta and _box(data, *udta, b"meta")
    keys_box = box and _box(data, box[0] + 4, box[1], b"keys")
    if not box or not keys_box:
        return meta
    keys, (pos, keys_end) = {}, keys_box
    pos += 4
    if pos + 4 > keys_end:
        return meta
    count, pos = _be32(data, pos), pos + 4
    for index in range(1, count + 1):  # keys are 1-based
        if pos + 8 > keys_end:
            break
        size, pos = _be32(data, pos), pos + 8
        if size < 8 or pos + size - 8 > keys_end:
            break
        keys[index], pos = _decode(data[pos : pos + size - 8]), pos + size - 8
    ilst = _box(data, box[0] + 4, box[1], b"ilst")
    if not keys or not ilst:
        return meta
    pos, ilst_end = ilst
    while pos < ilst_end - 8:
        size = _be32(data, pos)
        if size <= 8 or pos + size > ilst_end:
            break
        name = keys.get(_be32(data, pos + 4))
        value_box = _box(data, pos + 8, pos + size, b"data") if name else None
        if name and value_box and value_box[0] + 8 < value_box[1] and name.lower() in ("prompt", "workflow"):
            # extractJson: from the first '{' to the end of the data box
            brace = data.find(b"{", value_box[0] + 8, value_box[1])
            if brace >= 0 and (value := _json_or_none(_decode(data[brace : value_box[1]]))) is not None:
                meta[name.lower()] = value
        pos += size
    return meta


def _vint(data: bytes, pos: int) -> tuple[int, int] | None:
    """ebml.ts readVint: (value, length); an all-ones value is -1 except in the 1-byte fast path."""
    if pos >= len(data):
        return None
    first = data[pos]
    if first & 0x80:
        return first & 0x7F, 1
    length = next((n for n in range(1, 9) if first & (0x80 >> (n - 1))), 0)
    if length == 0 or pos + length > len(data):
        return None
    value = first & (0xFF >> length)
    for i in range(1, length):
        value = _i32(_i32(value << 8) | data[pos + i])  # JS bitwise ops wrap at 32 bits
    return (-1 if value == 2 ** (7 * length) - 1 else value), length


def _element(data: bytes, start: int, end: int, element_id: bytes) -> tuple[int, int] | None:
    """ebml.ts findElementsInTag: the first id with a positive size anywhere in [start, end - 1)."""
    pos = start
    while (pos := data.find(element_id, pos)) >= 0 and pos < end - 1:
        size = _vint(data, pos + 2)
        if size and size[0] > 0:
            return pos + 2 + size[1], size[0]
        pos += 1
    return None


def _json_end(text: str) -> int | None:
    """ebml.ts findJsonEnd: counts every brace, also those inside JSON strings."""
    depth = 1
    for match in re.finditer(r"[{}]", text[1:]):
        depth += 1 if match.group() == "{" else -1
        if depth == 0:
            return match.end() + 1
    return None


def _ebml(data: bytes) -> dict[str, Any]:
    """ebml.ts getFromWebmFile: every SimpleTag's TagName/TagString in the first 2 MiB."""
    meta: dict[str, Any] = {}
    if len(data) < 4 or data[:4] != b"\x1a\x45\xdf\xa3":
        return meta
    pos = 0
    while (pos := data.find(b"\x67\xc8", pos)) >= 0 and pos < len(data) - 2:
        size = _vint(data, pos + 2)
        if not size or size[0] <= 0 or pos + 2 + size[1] + size[0] > len(data):
            pos += 1
            continue
        start, tag_end = pos + 2 + size[1], pos + 2 + size[1] + size[0]
        name_at, value_at = _element(data, start, tag_end, b"\x45\xa3"), _element(data, start, tag_end, b"\x44\x87")
        if name_at and value_at:
            (name_pos, name_len), (value_pos, value_len) = name_at, value_at
            first = name_pos  # findReadableTextRange: skip to the first printable byte, stop at a NUL
            while first < name_pos + name_len and not 32 <= (_at(data, first) or 0) <= 126:
                first += 1
            last = first
            while last < name_pos + name_len and _at(data, last) != 0:
                last += 1
            name = _decode(data[first:last]).strip(JS_SPACE) if first < name_pos + name_len else ""
            nul = data.find(b"\x00", value_pos, min(value_pos + value_len, len(data)))
            nul = min(value_pos + value_len, len(data)) if nul < 0 else nul
            if name in ("PROMPT", "WORKFLOW"):
                brace = data.find(b"{", value_pos, nul)
                text = _decode(data[brace:nul]) if brace >= 0 else ""
                end = _json_end(text) if text else None
                if end is not None and (value := _json_or_none(text[:end])) is not None:
                    meta[name.lower()] = value
            elif name:
                meta[name.lower()] = _decode(data[value_pos:nul]).strip(JS_SPACE)
        pos = tag_end
    return meta


def _flac(data: bytes) -> dict[str, Any] | None:
    """flac.ts getFromFlacBuffer: the last Vorbis comment block, each comment split at '=', latin-1."""
    if data[:4] != b"fLaC":
        return None
    offset, comments = 4, None
    while offset < len(data):
        head = _u32(data, offset)
        block_type, size, offset = head >> 24 & 0x7F, head & 0xFFFFFF, offset + 4
        if block_type == 4:
            if offset + size > len(data):
                raise JsError("RangeError: Vorbis comment block past the end of the file")
            block, comments = data[offset : offset + size], {}
            at = 4 + _u32(block, 0, little=True)
            for _ in range(_u32(block, at, little=True)):
                length = _u32(block, at + 4, little=True)
                if at + 8 + length > len(block):
                    raise JsError("RangeError: comment past the end of its block")
                comment, at = block[at + 8 : at + 8 + length].decode("latin-1"), at + 4 + length
                i = comment.find("=")
                comments[comment[:i] if i >= 0 else ""] = comment[i + 1 :]  # substring(0, -1) is ""
        offset += size
        if head & 0x80000000:
            break
    return comments


def _head(data: bytes, signature: int, stop: Callable[[bytes], bool]) -> str:
    """mp3.ts/ogg.ts: 4096-byte pages as latin-1 text, up to and including the page where `stop` holds."""
    if len(data) < signature:
        raise JsError("RangeError: the signature check reads past the end")
    end = 0
    while end < len(data):
        page = data[end : end + 4096]
        end += len(page)
        if stop(page):
            break
    return data[:end].decode("latin-1")


def _pick(head: str, pattern: str, inner: str | None = None) -> Any:
    match = re.search(pattern, head, re.S)
    text = match.group(1) if match else None
    if text and inner:  # JS `.` (no s flag) stops at \n and \r
        found = re.search(inner, text)
        text = found.group(0) if found else None
    return _json_or_none(text)


def _mp3(data: bytes) -> dict[str, Any]:
    """mp3.ts getMp3Metadata: bytes up to the page holding the first \\xff\\xfb, `prompt\\0{…}\\0`."""
    head = _head(data, 3, lambda page: b"\xff\xfb" in page)
    return {"prompt": _pick(head, r"prompt\x00(\{.*?\})\x00"), "workflow": _pick(head, r"workflow\x00(\{.*?\})\x00")}


def _ogg(data: bytes) -> dict[str, Any]:
    """ogg.ts getOggMetadata: up to the second 4096-byte page that holds an `OggS\\0`, `prompt={…}`."""
    pages = [0]

    def second(page: bytes) -> bool:
        pages[0] += b"OggS\x00" in page
        return pages[0] > 1

    head, inner = _head(data, 4, second), r"\{[^\n\r]*\}"
    prompt = _pick(head, r"prompt=(\{.*?(\}.*?\x00))", inner)
    return {"prompt": prompt, "workflow": _pick(head, r"workflow=(\{.*?(\}.*?\x00))", inner)}


class NotEmulated(Exception):
    """A frontend loader this harness does not port (avif, svg, glb, latent, json)."""


def _dispatch(data: Callable[[int | None], bytes], mime: str, name: str) -> tuple[str | None, Any]:
    """parser.ts getWorkflowDataFromFile, in its order: (loader, what it returns); (None, None): no branch."""
    if mime == "image/png":
        return "getPngMetadata", _png(data(None))
    if mime == "image/avif":
        raise NotEmulated("avif.ts getAvifMetadata")
    if mime in ("image/webp", "audio/mpeg", "audio/ogg"):
        loader, parse = {"image/webp": ("getWebpMetadata", _webp), "audio/mpeg": ("getMp3Metadata", _mp3),
                         "audio/ogg": ("getOggMetadata", _ogg)}[mime]  # fmt: skip
        info = parse(data(None))
        if mime != "image/webp":
            return loader, info
        return loader, {"workflow": _or(info.get("workflow"), info.get("Workflow")),
                        "prompt": _or(info.get("prompt"), info.get("Prompt"))}  # fmt: skip
    if mime in ("audio/flac", "audio/x-flac"):
        info = _flac(data(None)) or {}
        return "getFlacMetadata", {"workflow": _or(info.get("workflow"), info.get("Workflow")),
                                   "prompt": _or(info.get("prompt"), info.get("Prompt"))}  # fmt: skip
    if mime == "video/webm":
        return "getFromWebmFile", _ebml(data(2 * 1024 * 1024))
    if name.endswith((".mp4", ".mov", ".m4v")) or mime in ("video/mp4", "video/quicktime", "video/x-m4v"):
        return "getFromIsobmffFile", _isobmff(data(64 * 1024 * 1024))
    if mime in ("image/svg+xml", "model/gltf-binary", "application/json") or name.endswith(
        (".svg", ".glb", ".latent", ".safetensors", ".json")
    ):
        raise NotEmulated(f"the loader for {mime or name}")
    return None, None


def _is_api_json(value: Any) -> bool:
    """app.ts isApiJson: a non-empty object whose every value has a string class_type and object inputs."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(
            isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict)
            for node in value.values()
        )
    )


def _parsed(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return value, None
    try:
        return parse_json(value), None
    except ValueError as err:
        return None, f"JSON.parse fails ({err})"


def frontend_load(path: Path, mime: str | None = None, name: str | None = None) -> FrontendResult:
    """What ComfyUI frontend 1.49.6 loads when `path` is dropped on the canvas (app.ts handleFile).

    `mime` is File.type (default: Chromium's type for the extension), `name` the file name (default: path's).
    """
    name = path.name if name is None else name
    mime = MIME_TYPES.get(path.suffix.lower(), "") if mime is None else mime

    def data(limit: int | None) -> bytes:
        with path.open("rb") as f:
            return f.read() if limit is None else f.read(limit)  # File.slice(0, limit)

    try:
        loader, raw = _dispatch(data, mime, name)
    except JsError as err:
        return FrontendResult(None, None, None, None, f"the frontend's loader throws: {err}", mime)
    except NotEmulated as err:
        return FrontendResult(None, None, None, None, f"{err} is not emulated by this harness", mime)
    if loader is None:
        return FrontendResult(None, None, None, None, NO_LOADER, mime)
    raw = dict(raw or {})
    workflow, prompt, parameters = raw.get("workflow"), raw.get("prompt"), raw.get("parameters")
    workflow_obj, workflow_error = _parsed(workflow) if _truthy(workflow) else (None, None)
    prompt_obj, prompt_error = _parsed(prompt) if _truthy(prompt) else (None, None)
    params = parameters if isinstance(parameters, str) and parameters else None
    wf = workflow_obj if isinstance(workflow_obj, dict) else None
    api = prompt_obj if isinstance(prompt_obj, dict) else None

    def done(loaded: str | None, reason: str | None = None) -> FrontendResult:
        return FrontendResult(wf, api, params, loaded, reason, mime=mime, loader=loader, raw=raw)

    if not any(_truthy(raw.get(k)) for k in ("workflow", "prompt", "parameters", "templates")):
        media = {"image": "LoadImage", "audio": "LoadAudio", "video": "LoadVideo"}
        node = next((n for kind, n in media.items() if mime.startswith(kind)), None)
        action = f"dropped in as a {node} node" if node else "a file load error is shown"
        return done(None, f"{loader} found no workflow, prompt or parameters: {action}")
    if wf is not None:
        return done("workflow")
    problems = [f"workflow: {workflow_error or 'not an object'}" if _truthy(workflow) else "no workflow"]
    if _is_api_json(api):
        return done("prompt", problems[0])
    problems += [f"prompt: {prompt_error or 'not API JSON'}" if _truthy(prompt) else "no prompt"]
    if params is not None:
        return done("parameters", "; ".join(problems))  # handed to importA1111, which may still reject it
    return done(None, f"a file load error is shown ({'; '.join(problems)})")

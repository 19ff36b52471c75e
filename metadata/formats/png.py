"""PNG: text chunks as A1111, ComfyUI and photo tools expect them, plus the record in iTXt.

Writer (research/readers.md §0): `parameters` via add_text (tEXt, or uncompressed iTXt when not
Latin-1), `prompt`/`workflow` as tEXt with core's json.dumps (ASCII, so tEXt), the record in
one uncompressed iTXt `comfyui_provenance` chunk (at most 1 MiB), XMP in iTXt `XML:com.adobe.xmp`.
No chunk is ever compressed: the ComfyUI frontend (1.49.6 to at least 1.58.1) never finishes loading
a PNG with a compressed iTXt chunk (its decompressZlib waits on a DecompressionStream write that
needs a reader first), so a dropped file would load nothing. All text stays within Pillow's 64 MiB text budget;
what does not fit moves to a sidecar. Restamp splices the same chunks into an existing file's
chunk stream, copying image data byte for byte. Reader: a chunk walker that seeks over image
data, so reading costs no pixel decoding; sizes and inflation are capped.
An `Animation` is an APNG assembled here (Pillow's writer folds a frame identical to the one
before into it). Core's animated PNG keeps its graphs in `comf` chunks after the image data.
"""

from __future__ import annotations

import codecs
import io
import json
import struct
import zlib
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any, BinaryIO

from PIL import PngImagePlugin

from ..budget import Budget, BudgetExceeded
from ..errors import ReadError
from ..limits import (
    PNG_COMPRESSED_TEXT_MAX,
    PNG_TEXT_TOTAL_BUDGET,
    READ_CHUNK_MAX,
    READ_DECOMPRESS_MAX,
)
from . import xmp
from .base import (
    A1111,
    COMFYUI,
    GRAPH_KEYS,
    RECORD,
    XMP,
    Animation,
    Embedded,
    Payloads,
    Plan,
    embedded_record_json,
    register,
)
from .webp import animation_media

SIGNATURE = b"\x89PNG\r\n\x1a\n"
RECORD_KEY = "comfyui_provenance"
XMP_KEY = "XML:com.adobe.xmp"
PARAMETERS_KEY = "parameters"
# ffmpeg's first probe of a file (AVPROBE_PADDING aside): an APNG's header must fit it (_write_apng).
APNG_PROBE = 2048
# Placements leave this much room for the embedding list the record gains after planning.
PLACEMENT_MARGIN = 8 * 1024
# Where C2PA puts its manifest store in a PNG.
C2PA_CHUNK = b"caBX"
# Text chunks: the standard three, and core's private `comf` (SaveAnimatedPNG: keyword, NUL, Latin-1 text).
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt", b"comf")
# Modes an APNG frame keeps; any other (a palette above all: APNG has one PLTE) becomes RGB or RGBA.
APNG_MODES = ("1", "L", "LA", "I", "I;16", "RGB", "RGBA")
DELAY_MAX = 0xFFFF  # fcTL delays are 16-bit fractions
Chunks = Iterable[tuple[bytes, bytes]]


def _text_location(key: str, text: str) -> str:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return f"png:iTXt:{key}"
    return f"png:tEXt:{key}"


class PngFormat:
    name = "png"
    extensions: tuple[str, ...] = (".png",)
    mime = "image/png"

    def plan(self, payloads: Payloads, targets: frozenset[str]) -> Plan:
        plan = Plan()
        used = 0
        graphs: dict[str, str] = {}  # where ComfyUI's chunks hold the record's graphs
        if COMFYUI in targets:
            for key, text in payloads.comfy:
                size = len(key) + 1 + len(text)
                if used + size <= PNG_TEXT_TOTAL_BUDGET:
                    used += size
                    plan.place(COMFYUI, f"png:tEXt:{key}")
                    if key in GRAPH_KEYS:
                        graphs[key] = f"png:tEXt:{key}"
                else:
                    plan.move(COMFYUI, "sidecar:json", f"{key} ({size:,} bytes) exceeds the PNG text budget")
        if A1111 in targets and payloads.infotext is not None:
            size = len(payloads.infotext.encode("utf-8")) + len(PARAMETERS_KEY) + 1
            if used + size <= PNG_TEXT_TOTAL_BUDGET:
                used += size
                plan.place(A1111, _text_location(PARAMETERS_KEY, payloads.infotext))
            else:
                plan.move(A1111, "sidecar:txt", f"infotext ({size:,} bytes) exceeds the PNG text budget")
        if RECORD in targets:
            used += self._plan_record(payloads, plan, graphs, PNG_TEXT_TOTAL_BUDGET - used)
        if XMP in targets:
            # PNG's XMP holds no record (the iTXt chunk does), so it is final already.
            plan.xmp = xmp.build(payloads.record)
            if used + len(plan.xmp) <= PNG_TEXT_TOTAL_BUDGET:
                plan.place(XMP, f"png:iTXt:{XMP_KEY}")
            else:
                plan.move(XMP, "sidecar:xmp", f"XMP ({len(plan.xmp):,} bytes) exceeds the PNG text budget")
        return plan

    @staticmethod
    def _plan_record(payloads: Payloads, plan: Plan, graphs: dict[str, str], room: int) -> int:
        """The whole record in one chunk; past Pillow's 1 MiB cap it refers to ComfyUI's chunks for the
        graphs, and past that the chunk is a stub: either way the JSON sidecar holds it all."""
        cap = min(PNG_COMPRESSED_TEXT_MAX, room)
        size = len(embedded_record_json(payloads.record, {})) + PLACEMENT_MARGIN
        if size <= cap:
            plan.place(RECORD, f"png:iTXt:{RECORD_KEY}")
            return size
        reason = f"record ({size:,} bytes) exceeds the 1 MiB text-chunk cap"
        if graphs:
            slim = len(embedded_record_json(payloads.record, graphs)) + PLACEMENT_MARGIN
            if slim <= cap:
                plan.record_refs.update(graphs)
                plan.place(
                    RECORD, f"png:iTXt:{RECORD_KEY}", reason=f"{reason}; its graphs are in the prompt/workflow chunks"
                )
                plan.move(RECORD, "sidecar:json", "the whole record, in one place")
                return slim
        plan.move(RECORD, "sidecar:json", reason)
        return 0

    def encode(self, image: Any, payloads: Payloads, plan: Plan, options: Any, fp: BinaryIO) -> None:
        info = _pnginfo(payloads, plan)
        if isinstance(image, Animation):
            _write_apng(fp, image, options.compress_level, before=[(c, d) for c, d, *_ in info.chunks])
            return
        image.save(fp, format="PNG", pnginfo=info, compress_level=options.compress_level)

    def encode_pixels(self, image: Any, options: Any, fp: BinaryIO) -> None:
        if isinstance(image, Animation):
            _write_apng(fp, image, options.compress_level)
            return
        image.save(fp, format="PNG", compress_level=options.compress_level)

    def restamp(self, src: BinaryIO, payloads: Payloads, plan: Plan, options: Any, dst: BinaryIO) -> None:
        """Rewrite the chunk stream: the planned text chunks go in before the image data (or before
        any iTXt the file keeps, so our XMP is the first), the old ones under the same keywords go.
        Every other chunk, image data included, is copied byte for byte, but an old C2PA manifest (`caBX`),
        whose hard binding no rewrite keeps: the c2pa target signs the new file afresh."""
        info = _pnginfo(payloads, plan)
        ours = [(ctype, data) for ctype, data, _after_idat in info.chunks]
        replaced = {RECORD_KEY.encode("latin-1")} | {data.partition(b"\x00")[0] for _ctype, data in ours}
        dst.write(SIGNATURE)
        pending, animated = True, False
        for ctype, data, crc in _walk(src, image_data=True):
            if ctype in TEXT_CHUNKS and data.partition(b"\x00")[0] in replaced:
                continue
            if ctype == C2PA_CHUNK:  # a manifest's binding breaks with any rewrite: signed anew or dropped
                continue
            animated = animated or ctype == b"acTL"
            # An APNG's text goes after its frames (see _write_apng: ffmpeg's probe).
            stops = (b"IEND",) if animated else (b"fcTL", b"IDAT", b"fdAT", b"iTXt", b"IEND")
            if pending and ctype in stops:
                for new_type, new_data in ours:
                    dst.write(_chunk(new_type, new_data))
                pending = False
            dst.write(_chunk(ctype, data, crc))

    def encode_core(self, image: Any, payloads: Payloads, options: Any, fp: BinaryIO) -> None:
        """What ComfyUI core writes: prompt and extra_pnginfo keys as tEXt, nothing else (an animation:
        as `comf` chunks after the image data, SaveAnimatedPNG's layout)."""
        if isinstance(image, Animation):
            comf = [(b"comf", f"{k}\0{_latin1_json(v)}".encode("latin-1", "replace")) for k, v in payloads.comfy]
            _write_apng(fp, image, options.compress_level, after=comf)
            return
        info = PngImagePlugin.PngInfo()
        for key, text in payloads.comfy:
            info.add_text(key, text)
        image.save(fp, format="PNG", pnginfo=info if payloads.comfy else None, compress_level=options.compress_level)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(SIGNATURE)

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """The text chunks we use (the first of each keyword), and an APNG's frame count and timing;
        every chunk but image data is CRC-checked, and only the text chunks we use are inflated."""
        found = Embedded(format=self.name)
        wanted = {RECORD_KEY, PARAMETERS_KEY, XMP_KEY, *GRAPH_KEYS}
        seen: set[str] = set()
        animated, frames, seconds = False, 0, Fraction(0)
        for ctype, length in _headers(fp, budget):
            if ctype in (b"IDAT", b"fdAT"):
                fp.seek(length + 4, 1)
                continue
            data = _checked(fp, ctype, length, budget)
            if ctype == b"IHDR" and len(data) >= 8:
                found.width, found.height = struct.unpack(">II", data[:8])
            animated = animated or ctype == b"acTL"
            if ctype == b"fcTL" and len(data) >= 26:
                frames += 1
                num, den = struct.unpack(">HH", data[20:24])
                seconds += Fraction(num, den or 100)  # a zero denominator means 1/100 s
            if ctype not in TEXT_CHUNKS:
                continue
            key = data.partition(b"\x00")[0].decode("latin-1")
            if key not in wanted or key in seen:
                continue
            seen.add(key)
            _, text = _decode_text(ctype, data, budget)
            del data
            if key == RECORD_KEY:
                found.record_json = text
            elif key == PARAMETERS_KEY:
                found.infotext = text
            elif key == XMP_KEY:
                found.xmp = text.encode("utf-8")
            else:
                found.comfy[key] = text
        if animated:
            found.media = animation_media(frames, float(seconds))
        return found


def _pnginfo(payloads: Payloads, plan: Plan) -> PngImagePlugin.PngInfo:
    """The planned text chunks, in the order they are written."""
    info = PngImagePlugin.PngInfo()
    written = {p.location for p in plan.placements if p.status == "written"}
    for key, text in payloads.comfy:
        if f"png:tEXt:{key}" in written:
            info.add_text(key, _latin1_json(text))
    # XMP is the first iTXt chunk: Exempi (python-xmp-toolkit) ignores it after any other iTXt.
    if plan.xmp is not None and f"png:iTXt:{XMP_KEY}" in written:
        info.add_itxt(XMP_KEY, plan.xmp.decode("utf-8"), zip=False)
    if payloads.infotext is not None and any(loc.endswith(f":{PARAMETERS_KEY}") for loc in written):
        info.add_text(PARAMETERS_KEY, payloads.infotext)
    if f"png:iTXt:{RECORD_KEY}" in written:
        record_json = embedded_record_json(payloads.record, plan.record_refs)
    elif any(p.target == RECORD and p.status == "moved" for p in plan.placements):
        record_json = embedded_record_json(payloads.record, {}, stub=True)
    else:
        record_json = None
    if record_json is not None:
        info.add_itxt(RECORD_KEY, record_json, zip=False)  # compressed iTXt hangs ComfyUI's loader (above)
    return info


def _write_apng(fp: BinaryIO, anim: Animation, compress_level: int, *, before: Chunks = (), after: Chunks = ()) -> None:
    """IHDR, acTL, then per frame an fcTL and that frame's own PNG encoding (each frame alone, in the
    first frame's mode) as IDAT (the first frame) or numbered fdAT chunks, then the `before` and
    `after` chunks (text) and IEND.

    Text goes after the frames, as core's SaveAnimatedPNG puts it: ffmpeg takes a PNG for an APNG
    only when every chunk before the first IDAT fits its first 2 KiB probe (apngdec.c apng_probe),
    else it decodes one frame; ComfyUI's frontend, exiftool, Pillow and our reader read text anywhere.
    The A1111 parameters alone go ahead of the frames when they fit that probe, where ffprobe shows
    them (first frame's tags) and readers that stop at the image data find them.
    """
    head_room = APNG_PROBE - 8 - 25 - 20 - 38  # signature, IHDR, acTL, the first fcTL
    early = [(c, d) for c, d in before if c in (b"tEXt", b"iTXt") and d.startswith(b"parameters\0")]
    if not early or sum(len(d) + 12 for _c, d in early) > head_room:
        early = []
    late = [chunk for chunk in before if chunk not in early]
    alpha = "A" in anim.mode or "transparency" in anim.frames[0].info
    mode = anim.mode if anim.mode in APNG_MODES else ("RGBA" if alpha else "RGB")
    delays = _delays(anim)
    fp.write(SIGNATURE)
    sequence = 0
    for index, frame in enumerate(anim.frames):
        if frame.size != anim.size:
            raise ValueError(f"frame {index} is {frame.size[0]}x{frame.size[1]}, not {anim.width}x{anim.height}")
        still = io.BytesIO()
        (frame if frame.mode == mode else frame.convert(mode)).save(still, format="PNG", compress_level=compress_level)
        still.seek(0)
        chunks = [(ctype, data) for ctype, data, _crc in _walk(still, image_data=True) if ctype != b"IEND"]
        if index == 0:
            fp.write(_chunk(*chunks[0]))  # IHDR
            fp.write(_chunk(b"acTL", struct.pack(">II", len(anim.frames), anim.loop)))
            for ctype, data in [*early, *((c, d) for c, d in chunks[1:] if c != b"IDAT")]:
                fp.write(_chunk(ctype, data))
        num, den = delays[index]
        fp.write(_chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, anim.width, anim.height, 0, 0, num, den, 0, 0)))
        sequence += 1
        for data in (data for ctype, data in chunks if ctype == b"IDAT"):
            if index == 0:
                fp.write(_chunk(b"IDAT", data))
                continue
            fp.write(_chunk(b"fdAT", struct.pack(">I", sequence) + data))
            sequence += 1
    fp.write(b"".join(_chunk(ctype, data) for ctype, data in [*late, *after]) + _chunk(b"IEND", b""))


def _delays(anim: Animation) -> list[tuple[int, int]]:
    """Each frame's fcTL delay: exactly 1/fps when it fits 16-bit fractions, else rounded milliseconds."""
    period = 1 / anim.fps
    if period.numerator <= DELAY_MAX and period.denominator <= DELAY_MAX:
        return [(period.numerator, period.denominator)] * len(anim.frames)
    durations = anim.durations(1000)
    if max(durations) > DELAY_MAX:
        raise ValueError(f"a frame of {max(durations):,} ms is longer than an APNG delay can hold")
    return [(ms, 1000) for ms in durations]


def _latin1_json(text: str) -> str:
    """ComfyUI's chunks must stay tEXt (the frontend misreads iTXt): JSON that is not Latin-1
    (written by some other tool) is re-dumped with ASCII escapes; core's text passes unchanged."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        try:
            return json.dumps(json.loads(text))
        except ValueError:
            return text
    return text


def _chunk(ctype: bytes, data: bytes, crc: bytes | None = None) -> bytes:
    if crc is None:
        crc = struct.pack(">I", zlib.crc32(ctype + data))
    return struct.pack(">I", len(data)) + ctype + data + crc


def _walk(fp: BinaryIO, *, image_data: bool) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(type, data, crc) of every chunk through IEND, for restamping a file `read` already accepted;
    image data is skipped unread (b"") unless asked for."""
    budget = Budget(metadata_max=1 << 62)  # the chunk sizes were checked against the file by read()
    for ctype, length in _headers(fp, budget):
        if ctype in (b"IDAT", b"fdAT") and not image_data:
            fp.seek(length + 4, 1)
            yield ctype, b"", b""
            continue
        data = fp.read(length)
        crc = fp.read(4)
        if len(data) < length or len(crc) < 4:
            raise ReadError(f"PNG is truncated inside chunk {ctype!r}")
        yield ctype, data, crc
    yield b"IEND", b"", struct.pack(">I", zlib.crc32(b"IEND"))


def _headers(fp: BinaryIO, budget: Budget) -> Iterator[tuple[bytes, int]]:
    """(type, length) of each chunk before IEND, the file positioned at its data; the caller reads or
    skips exactly `length + 4` bytes. Every length is checked against the file's real size first."""
    end = fp.seek(0, 2)
    fp.seek(0)
    if fp.read(8) != SIGNATURE:
        raise ReadError("not a PNG file (bad signature)")
    pos = 8
    while True:
        header = fp.read(8)
        if len(header) < 8:
            raise ReadError("PNG is truncated: no IEND chunk")
        length, ctype = struct.unpack(">I4s", header)
        budget.chunk("PNG chunk")
        if length > READ_CHUNK_MAX:
            raise ReadError(f"PNG chunk {ctype!r} claims {length:,} bytes, over the {READ_CHUNK_MAX:,}-byte limit")
        if pos + 12 + length > end:
            raise ReadError(
                f"PNG chunk {ctype!r} claims {length:,} bytes, past the end of the file (truncated or damaged)"
            )
        if ctype == b"IEND":
            return
        yield ctype, length
        pos += 12 + length
        if fp.tell() != pos:
            fp.seek(pos)


def _checked(fp: BinaryIO, ctype: bytes, length: int, budget: Budget) -> bytes:
    """A chunk's data, CRC-checked; charged to the budget before it is read."""
    budget.load(length, f"PNG chunk {ctype.decode('latin-1')!r}")
    data = fp.read(length)
    crc = fp.read(4)
    if struct.unpack(">I", crc)[0] != zlib.crc32(data, zlib.crc32(ctype)):
        raise ReadError(f"PNG chunk {ctype!r} fails its CRC check (file damaged)")
    return data


def _inflate(data: bytes | memoryview, what: str, budget: Budget) -> bytes:
    """Inflate within the per-chunk cap and what is left of the file's total."""
    room = min(READ_DECOMPRESS_MAX, budget.inflate_room())
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, room)
    except zlib.error as err:
        raise ReadError(f"PNG text chunk {what!r} is not valid zlib data: {err}") from err
    if inflater.unconsumed_tail:
        limit = "its own" if room == READ_DECOMPRESS_MAX else "the whole file's"
        raise BudgetExceeded(
            f"PNG text chunk {what!r} inflates beyond {limit} {room:,}-byte limit (decompression bomb refused)"
        )
    budget.inflated_by(len(out))
    return out


def _decode_text(ctype: bytes, data: bytes, budget: Budget) -> tuple[str, str]:
    """(keyword, text) of a text chunk; the text is decoded straight from the chunk's buffer (a
    50 MB prompt costs one copy, not three)."""
    nul = data.find(b"\x00")
    if nul < 0:
        raise ReadError(f"PNG {ctype.decode()} chunk has no keyword separator")
    key = data[:nul].decode("latin-1")
    body = memoryview(data)[nul + 1 :]
    if ctype in (b"tEXt", b"comf"):
        return key, codecs.latin_1_decode(body)[0]
    if ctype == b"zTXt":
        return key, _inflate(body[1:], key, budget).decode("latin-1")
    if len(body) < 2:
        raise ReadError(f"PNG iTXt chunk {key!r} is truncated")
    compressed = body[0]
    lang_end = data.find(b"\x00", nul + 3)
    tkey_end = data.find(b"\x00", lang_end + 1) if lang_end >= 0 else -1
    if tkey_end < 0:
        raise ReadError(f"PNG iTXt chunk {key!r} is truncated")
    text = memoryview(data)[tkey_end + 1 :]
    raw = _inflate(text, key, budget) if compressed else text
    return key, codecs.utf_8_decode(raw, "replace")[0]


register(PngFormat())

"""MP3 reader: ID3v2 tags (TXXX, COMM, TIT2) and the first MPEG audio frame's format and length.

Core's SaveAudioMP3 writes ComfyUI's graphs through PyAV (libmp3lame) as ID3v2.4 TXXX frames
described `prompt` and `workflow`; ours adds `comfyui_provenance` and the A1111 text as the
comment. Other writers' tags come as ID3v2.2, 2.3 or 2.4, each framed its own way:
unsynchronisation (the whole tag in 2.3, per frame in 2.4), extended headers, grouping bytes,
zlib-compressed frames (inflated within the file's budget) and four text encodings. The audio
is never decoded: the first frame header after the tag gives codec, rate and channels; a
Xing/Info or VBRI header gives the frame count (so a VBR file's duration is exact), else the
bitrate and the byte length give a CBR duration.
"""

from __future__ import annotations

import codecs
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..budget import Budget, BudgetExceeded
from ..errors import ReadError
from .base import Embedded, register_container
from .tags import embedded_from_tags

Pairs = list[tuple[str, str]]
HEADER = 10
UNSYNC, EXTENDED, FOOTER = 0x80, 0x40, 0x10
TEXT_CODECS = {0: "latin-1", 1: "utf-16", 2: "utf-16-be", 3: "utf-8"}
# The frames that can hold what we read; ID3v2.2 spells them in three letters.
FRAMES = {b"TXXX": "user", b"TXX": "user", b"COMM": "comment", b"COM": "comment", b"TIT2": "title", b"TT2": "title"}
FRAME_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
# A COMM frame described thus is the file's comment; any other description names the value.
COMMENT_DESCRIPTIONS = ("", "comment", "description")
# How far past the tag the first audio frame is looked for (encoders leave a little junk at most).
FRAME_SCAN = 64 * 1024
ID3V1_SIZE = 128

# Bitrates in kbps by (MPEG-1?, layer), index 1-14 (0 is free format, 15 is invalid).
_V2_LOW = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): _V2_LOW,
    (False, 3): _V2_LOW,
}
SAMPLE_RATES = (44100, 48000, 32000)
# Version bits: 3 is MPEG-1, 2 MPEG-2 (half the rates), 0 MPEG-2.5 (a quarter); 1 is reserved.
RATE_DIVISORS = {3: 1, 2: 2, 0: 4}
LAYER_CODECS = {1: "mp1", 2: "mp2", 3: "mp3"}


class Mp3Container:
    name = "mp3"
    extensions: tuple[str, ...] = (".mp3",)
    mime = "audio/mpeg"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"ID3") or frame_header(head[:4]) is not None

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """The ID3v2 tags at the start and the audio's format; a FLAC stream behind the tags is read as FLAC."""
        end = fp.seek(0, 2)
        pairs, start = _id3_tags(fp, end, budget)
        fp.seek(start)
        if fp.read(4) == b"fLaC":
            from . import flac  # flac imports this module for id3_size

            flac_pairs, media = flac.read_stream(fp, start, end, budget)
            return embedded_from_tags("flac", [*flac_pairs, *pairs], budget, media=media)
        media = _media(fp, start, end, budget)
        if start == 0 and not media:
            raise ReadError("not an MP3 file (no ID3 tag and no MPEG audio frame)")
        return embedded_from_tags(self.name, pairs, budget, media=media)


# -- ID3v2 ------------------------------------------------------------------------------------------


def id3_size(head: bytes) -> int:
    """The bytes an ID3v2 tag takes, header and footer included, from its first 10 bytes."""
    return _tag_header(head)[3]


def syncsafe(raw: bytes, what: str) -> int:
    """A big-endian integer of 7-bit bytes (ID3v2's way of keeping 0xFF out of sizes)."""
    value = 0
    for byte in raw:
        if byte & 0x80:
            raise ReadError(f"{what} is not a syncsafe integer (damaged ID3 tag)")
        value = value << 7 | byte
    return value


def _tag_header(head: bytes) -> tuple[int, int, int, int]:
    """(version, flags, body size, total size) of the ID3v2 tag whose header is `head`."""
    if len(head) < HEADER:
        raise ReadError("ID3 tag is truncated in its header")
    version, flags = head[3], head[5]
    if version not in (2, 3, 4):
        raise ReadError(f"ID3v2.{version} is not a version this reader knows")
    body = syncsafe(head[6:10], "the ID3 tag size")
    footer = HEADER if version == 4 and flags & FOOTER else 0
    return version, flags, body, HEADER + body + footer


def _id3_tags(fp: BinaryIO, end: int, budget: Budget) -> tuple[Pairs, int]:
    """The pairs of every ID3v2 tag at the start of the file (some writers leave two in a row) and
    where the audio begins after them."""
    pairs: Pairs = []
    pos = 0
    while True:
        fp.seek(pos)
        head = fp.read(HEADER)
        if not head.startswith(b"ID3"):
            return pairs, pos
        budget.chunk("ID3 tag")
        version, flags, body_size, size = _tag_header(head)
        if pos + size > end:
            raise ReadError(f"ID3 tag claims {size:,} bytes, past the end of the file (truncated or damaged)")
        budget.load(body_size, "ID3 tag")
        pairs.extend(_tag_pairs(version, flags, fp.read(body_size), budget))
        pos += size


def _tag_pairs(version: int, flags: int, body: bytes, budget: Budget) -> Pairs:
    if flags & UNSYNC and version < 4:
        body = _resync(body)  # 2.2/2.3 unsynchronise the whole tag; 2.4 marks each frame
    if version == 2 and flags & EXTENDED:
        return []  # ID3v2.2's compression flag: no scheme was ever defined, so nothing is readable
    pos = _extended_header(body, version) if flags & EXTENDED else 0
    return _frames(body, pos, version, bool(flags & UNSYNC) and version == 4, budget)


def _extended_header(body: bytes, version: int) -> int:
    """Where the frames begin after an extended header (2.3: size after itself; 2.4: syncsafe, all of it)."""
    if len(body) < 4:
        raise ReadError("ID3 extended header is truncated")
    raw = body[:4]
    pos = 4 + int.from_bytes(raw, "big") if version == 3 else syncsafe(raw, "the ID3 extended header size")
    if pos > len(body):
        raise ReadError(f"ID3 extended header claims {pos:,} bytes, more than the tag holds")
    return pos


def _frames(body: bytes, pos: int, version: int, unsync_all: bool, budget: Budget) -> Pairs:
    """The pairs of the frames we read, in file order; every size checked against the tag first."""
    id_size, header_size = (3, 6) if version == 2 else (4, 10)
    pairs: Pairs = []
    while pos + header_size <= len(body):
        frame_id = body[pos : pos + id_size]
        if not all(c in FRAME_ID_CHARS for c in frame_id):
            break  # padding, or junk after the last frame (readers stop there too)
        budget.chunk("ID3 frame")
        size = _frame_size(body, pos, version)
        start = pos + header_size
        name = frame_id.decode("ascii")
        if size > len(body) - start:
            raise ReadError(f"ID3 frame {name} claims {size:,} bytes, past the end of its tag (truncated or damaged)")
        pos = start + size
        kind = FRAMES.get(frame_id)
        if kind is None:
            continue
        fmt = body[start - 1] if version > 2 else 0
        data = _frame_data(body[start:pos], version, fmt, unsync_all=unsync_all, budget=budget, name=name)
        pair = _pair(kind, data) if data is not None else None
        if pair is not None:
            pairs.append(pair)
    return pairs


def _frame_size(body: bytes, pos: int, version: int) -> int:
    if version == 2:
        return int.from_bytes(body[pos + 3 : pos + 6], "big")
    raw = body[pos + 4 : pos + 8]
    plain = int.from_bytes(raw, "big")
    if version == 3 or any(b & 0x80 for b in raw):
        return plain  # 2.3 sizes are plain; so are some 2.4 writers' (iTunes), seen by their high bits
    safe = syncsafe(raw, "an ID3 frame size")
    if safe != plain and not _frame_at(body, pos + HEADER + safe) and _frame_at(body, pos + HEADER + plain):
        return plain  # a plain size the syncsafe reading would misplace: the next frame says which
    return safe


def _frame_at(body: bytes, pos: int) -> bool:
    """Whether a frame, padding or the tag's end is at `pos`."""
    if pos == len(body) or (pos < len(body) and body[pos] == 0):
        return True
    return pos + HEADER <= len(body) and all(c in FRAME_ID_CHARS for c in body[pos : pos + 4])


def _frame_data(data: bytes, version: int, fmt: int, *, unsync_all: bool, budget: Budget, name: str) -> bytes | None:
    """A frame's content with its format flags undone; None when it is encrypted."""
    declared = None
    if version == 3:  # 0x80 compressed (4-byte inflated size first), 0x40 encrypted, 0x20 grouped
        compressed, encrypted, unsync = bool(fmt & 0x80), bool(fmt & 0x40), False
        skip = 4 * compressed + encrypted + bool(fmt & 0x20)
        if compressed and len(data) >= 4:
            declared = int.from_bytes(data[:4], "big")
    elif version == 4:  # 0x40 grouped, 0x08 compressed, 0x04 encrypted, 0x02 unsynchronised, 0x01 length
        compressed, encrypted, unsync = bool(fmt & 0x08), bool(fmt & 0x04), unsync_all or bool(fmt & 0x02)
        skip = bool(fmt & 0x40) + encrypted
        if fmt & 0x01:
            if compressed:
                declared = syncsafe(data[skip : skip + 4], f"ID3 frame {name}'s data length")
            skip += 4
    else:
        return data
    if len(data) < skip:
        raise ReadError(f"ID3 frame {name} is shorter than its flags require (damaged)")
    if encrypted:
        return None  # without the key there is nothing to read
    data = data[skip:]
    if unsync:
        data = _resync(data)
    return _inflate(data, declared, budget, name) if compressed else data


def _resync(data: bytes) -> bytes:
    """Unsynchronisation undone: every 0xFF 0x00 was 0xFF."""
    return data.replace(b"\xff\x00", b"\xff")


def _inflate(data: bytes, declared: int | None, budget: Budget, name: str) -> bytes:
    """A compressed frame inflated no further than it declares and the file's inflation budget allows."""
    room = budget.inflate_room()
    if declared is not None and declared > room:
        raise BudgetExceeded(
            f"ID3 frame {name} declares {declared:,} bytes inflated, over the file's {room:,}-byte"
            " inflation limit (decompression bomb refused)"
        )
    cap = room if declared is None else declared
    try:
        out = zlib.decompressobj().decompress(data, cap + 1)
    except zlib.error as err:
        raise ReadError(f"ID3 frame {name} is not valid zlib data: {err}") from err
    if len(out) > cap:
        limit = f"the {cap:,} bytes it declares" if declared is not None else f"the file's {cap:,}-byte inflation limit"
        raise BudgetExceeded(f"ID3 frame {name} inflates beyond {limit} (decompression bomb refused)")
    budget.inflated_by(len(out))
    return out


def _pair(kind: str, data: bytes) -> tuple[str, str] | None:
    """(name, value) of a TXXX, COMM or TIT2 frame's content."""
    if kind == "title":
        texts = _texts(data, 1)
        return ("title", texts[0]) if texts else None
    if kind == "user":
        texts = _texts(data, 2)
        return (texts[0], texts[1]) if len(texts) == 2 else None
    texts = _texts(data, 2, skip=3)  # COMM: encoding, 3-letter language, description, text
    if len(texts) < 2:
        return None
    described = texts[0].strip()
    return ("comment" if described.lower() in COMMENT_DESCRIPTIONS else described, texts[1])


def _texts(data: bytes, count: int, skip: int = 0) -> list[str]:
    """The first `count` strings of a text frame: the encoding byte, `skip` bytes, then strings ended
    by a null (two on even offsets in UTF-16); the last may run to the frame's end."""
    if not data:
        return []
    codec = TEXT_CODECS.get(data[0])
    if codec is None:
        raise ReadError(f"ID3 text encoding {data[0]} is unknown (damaged tag)")
    wide = data[0] in (1, 2)
    null = b"\x00\x00" if wide else b"\x00"
    texts: list[str] = []
    pos = 1 + skip
    while len(texts) < count and pos <= len(data):
        stop = data.find(null, pos)
        while wide and stop >= 0 and (stop - pos) % 2:
            stop = data.find(null, stop + 1)
        stop = len(data) if stop < 0 else stop
        texts.append(codecs.decode(data[pos:stop], codec, "replace"))
        pos = stop + len(null)
    return texts


# -- MPEG audio ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameHeader:
    """What one MPEG audio frame header says."""

    layer: int
    bitrate: int  # bits per second
    sample_rate: int
    channels: int
    length: int  # bytes, header included
    samples: int
    xing_at: int  # where a Xing/Info header would start in the frame


def frame_header(raw: bytes) -> FrameHeader | None:
    """The header in these 4 bytes, or None unless every field is valid (sync, version, layer, rates)."""
    if len(raw) < 4 or raw[0] != 0xFF or raw[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (raw[1] >> 3) & 3, (raw[1] >> 1) & 3
    bitrate_index, rate_index = raw[2] >> 4, (raw[2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1, layer = version == 3, 4 - layer_bits
    bitrate = BITRATES[mpeg1, layer][bitrate_index] * 1000
    rate = SAMPLE_RATES[rate_index] // RATE_DIVISORS[version]
    padding, mono = (raw[2] >> 1) & 1, raw[3] >> 6 == 3
    if layer == 1:
        samples, length = 384, (12 * bitrate // rate + padding) * 4
    else:
        samples = 1152 if mpeg1 or layer == 2 else 576
        length = samples // 8 * bitrate // rate + padding
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    return FrameHeader(layer, bitrate, rate, 1 if mono else 2, length, samples, 4 + side_info)


def _media(fp: BinaryIO, start: int, end: int, budget: Budget) -> dict[str, Any]:
    """Codec, rate, channels and duration from the first audio frame at or after `start`."""
    fp.seek(start)
    size = min(FRAME_SCAN, end - start)
    budget.load(size, "MP3 audio frame scan")
    block = fp.read(size)
    found = _first_frame(block)
    if found is None:
        return {}
    at, frame = found
    audio = {"codec": LAYER_CODECS[frame.layer], "sample_rate": frame.sample_rate, "channels": frame.channels}
    counted = _frame_count(block[at : at + frame.length], frame)
    if counted is not None and counted[0]:
        samples = counted[0] * frame.samples
        duration = (samples - counted[1] if samples > counted[1] else samples) / frame.sample_rate
    else:
        audio_end = end - (ID3V1_SIZE if _has_id3v1(fp, end) else 0)
        duration = max(0, audio_end - start - at) * 8 / frame.bitrate
    return {"audio": audio, "duration_s": duration}


def _first_frame(block: bytes) -> tuple[int, FrameHeader] | None:
    """The first valid header in `block` that another one follows where it says (when the block reaches)."""
    at = block.find(b"\xff")
    while 0 <= at <= len(block) - 4:
        frame = frame_header(block[at : at + 4])
        if frame is not None:
            after = at + frame.length
            follower = frame_header(block[after : after + 4]) if after + 4 <= len(block) else frame
            if follower is not None and follower.sample_rate == frame.sample_rate and follower.layer == frame.layer:
                return at, frame
        at = block.find(b"\xff", at + 1)
    return None


def _frame_count(data: bytes, frame: FrameHeader) -> tuple[int, int] | None:
    """(frames, samples the encoder padded in) from a Xing/Info header (LAME, ffmpeg) or a VBRI one
    (Fraunhofer) in the first frame; the padding comes from the LAME tag, as ffmpeg reads it."""
    tag = frame.xing_at
    if data[tag : tag + 4] in (b"Xing", b"Info"):
        flags = int.from_bytes(data[tag + 4 : tag + 8], "big")
        if not flags & 1 or len(data) < tag + 12:
            return None
        count = int.from_bytes(data[tag + 8 : tag + 12], "big")
        # After the count: byte count (flag 2), 100-byte TOC (4), quality (8), then the LAME tag,
        # whose bytes 21-23 hold the encoder delay and the end padding, 12 bits each.
        lame = tag + 12 + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
        padded = 0
        if data[lame : lame + 4] in (b"LAME", b"Lavf", b"Lavc") and len(data) >= lame + 24:
            bits = int.from_bytes(data[lame + 21 : lame + 24], "big")
            padded = (bits >> 12) + (bits & 0xFFF)
        return count, padded
    vbri = 4 + 32  # always after 32 bytes, whatever the channel mode
    if data[vbri : vbri + 4] == b"VBRI" and len(data) >= vbri + 18:
        return int.from_bytes(data[vbri + 14 : vbri + 18], "big"), 0
    return None


def _has_id3v1(fp: BinaryIO, end: int) -> bool:
    if end < ID3V1_SIZE:
        return False
    fp.seek(end - ID3V1_SIZE)
    return fp.read(3) == b"TAG"


register_container(Mp3Container())

"""The MP3 writer's last step: the A1111 text as an ID3v2.4 COMM frame, the comment players show.

ffmpeg's mp3 muxer writes every tag it has no frame for as `TXXX` (so our `comment` becomes a
user-defined text described "comment", which players and exiftool list as such, not as the
file's comment), and it has no way to write `COMM`. The tag PyAV just wrote is rewritten with
that TXXX frame turned into a COMM frame (language `eng`, empty description, UTF-8); the audio
after the tag is copied as it is. Only our own freshly written tag is rewritten.
"""

from __future__ import annotations

import shutil
from typing import BinaryIO

from ..errors import SerializeError

HEADER = 10
# A tag we write holds ComfyUI's graphs and our record: refuse anything past what we would write.
TAG_MAX = 256 << 20
COMMENT_DESCRIPTION = b"comment"


def _syncsafe(value: int) -> bytes:
    return bytes(((value >> shift) & 0x7F) for shift in (21, 14, 7, 0))


def _unsyncsafe(raw: bytes) -> int:
    if any(b & 0x80 for b in raw):
        raise SerializeError("the ID3 tag just written has a size that is not syncsafe")
    return (raw[0] << 21) | (raw[1] << 14) | (raw[2] << 7) | raw[3]


def comment_frame(text: str) -> bytes:
    """COMM, ID3v2.4: UTF-8, language `eng`, no description, the text."""
    body = b"\x03eng\x00" + text.encode("utf-8")
    return b"COMM" + _syncsafe(len(body)) + b"\x00\x00" + body


def _is_comment_txxx(frame_id: bytes, body: bytes) -> bool:
    if frame_id != b"TXXX" or not body:
        return False
    encoding, rest = body[0], body[1:]
    if encoding in (0, 3):
        return rest.split(b"\x00", 1)[0].lower() == COMMENT_DESCRIPTION
    text = rest.decode("utf-16" if encoding == 1 else "utf-16-be", errors="replace")
    return text.split("\x00", 1)[0].lower() == COMMENT_DESCRIPTION.decode()


def with_comment(src: BinaryIO, dst: BinaryIO, text: str) -> None:
    """Copy an MP3 PyAV wrote, its ID3v2.4 `TXXX:comment` replaced by a COMM frame holding `text`."""
    head = src.read(HEADER)
    if len(head) < HEADER or head[:3] != b"ID3" or head[3] != 4:
        raise SerializeError("the MP3 just written does not start with an ID3v2.4 tag")
    if head[5] & 0xF0:
        raise SerializeError("the MP3's ID3 tag uses flags we do not rewrite")
    size = _unsyncsafe(head[6:10])
    if size > TAG_MAX:
        raise SerializeError(f"the MP3's ID3 tag is {size:,} bytes, over {TAG_MAX:,}")
    body = src.read(size)
    if len(body) < size:
        raise SerializeError("the MP3's ID3 tag is truncated")
    frames, pos = [], 0
    while pos + HEADER <= size and body[pos] != 0:  # zero bytes: the padding
        frame_id, length = body[pos : pos + 4], _unsyncsafe(body[pos + 4 : pos + 8])
        end = pos + HEADER + length
        if end > size:
            raise SerializeError("an ID3 frame runs past the tag")
        if not _is_comment_txxx(frame_id, body[pos + HEADER : end]):
            frames.append(body[pos:end])
        pos = end
    frames.append(comment_frame(text))
    tag = b"".join(frames)
    dst.write(head[:6] + _syncsafe(len(tag)) + tag)
    shutil.copyfileobj(src, dst, 1 << 20)

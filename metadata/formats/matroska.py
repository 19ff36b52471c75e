"""Matroska and WebM: the SimpleTags core's SaveWEBM/SaveVideo, VHS and our save node write, read by walking EBML.

PyAV's muxer stores container metadata as SimpleTags (PROMPT, WORKFLOW, COMFYUI_PROVENANCE, COMMENT)
in a Tags element near the head; ffmpeg adds per-track tags (ENCODER, DURATION), sometimes after the
clusters. The walk reads only Info, Tracks, Tags and each block's first bytes (to count frames); every
element costs the budget a chunk, every size is checked against its parent first, nothing recurses.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..budget import Budget
from ..errors import ReadError
from .base import Embedded, register_container
from .tags import embedded_from_tags

logger = logging.getLogger(__name__)

MAGIC = b"\x1a\x45\xdf\xa3"
DOCTYPES = {"webm": "webm", "matroska": "mkv"}
# Element ids (RFC 8794 EBML, RFC 9559 Matroska).
EBML, DOCTYPE = 0x1A45DFA3, 0x4282
SEGMENT, CLUSTER = 0x18538067, 0x1F43B675
INFO, TIMESTAMP_SCALE, DURATION = 0x1549A966, 0x2AD7B1, 0x4489
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE = 0x1654AE6B, 0xAE, 0xD7, 0x83
CODEC_ID, DEFAULT_DURATION = 0x86, 0x23E383
VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT = 0xE0, 0xB0, 0xBA
AUDIO, SAMPLING_FREQUENCY, CHANNELS = 0xE1, 0xB5, 0x9F
TAGS, TAG, TARGETS, SIMPLE_TAG, TAG_NAME, TAG_STRING = 0x1254C367, 0x7373, 0x63C0, 0x67C8, 0x45A3, 0x4487
TAG_TRACK_UID, TAG_CHAPTER_UID, TAG_ATTACHMENT_UID = 0x63C5, 0x63C4, 0x63C6
CLUSTER_TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK = 0xE7, 0xA3, 0xA0, 0xA1
# An unknown-size Cluster ends where one of these (a level-1 or level-0 element) begins.
LEVEL_1 = frozenset({0x114D9B74, INFO, TRACKS, TAGS, CLUSTER, 0x1C53BB6B, 0x1043A770, 0x1941A469, SEGMENT, EBML})
VIDEO_TRACK, AUDIO_TRACK = 1, 2
# CodecIDs as ffmpeg names the codecs; AAC's may carry a profile (A_AAC/MPEG4/LC), so it is a prefix.
VIDEO_CODECS = {"V_VP9": "vp9", "V_VP8": "vp8", "V_AV1": "av1", "V_MPEG4/ISO/AVC": "h264", "V_MPEGH/ISO/HEVC": "hevc"}
AUDIO_CODECS = {"A_OPUS": "opus", "A_VORBIS": "vorbis", "A_AAC": "aac", "A_FLAC": "flac"}
DEFAULT_TIMESTAMP_SCALE = 1_000_000  # ns per tick: timestamps in milliseconds
# Real files nest SimpleTags one or two levels (a tag and its sub-tags); deeper is refused.
SIMPLE_TAG_DEPTH_MAX = 32
# Block headers read to count frames, per file: a long video stops being counted here (its
# frame count is then left out) so the walk stays well inside the chunks budget.
BLOCKS_COUNTED_MAX = 100_000
# Frame rates a video most likely has, simplest first: whole numbers, then NTSC's.
ROUND_RATES = (*range(1, 241), *(n * 1000 / 1001 for n in (24, 30, 48, 60, 120)))
ID_BYTES_MAX, SIZE_BYTES_MAX = 4, 8
NAMES = {EBML: "EBML header", SEGMENT: "Segment", CLUSTER: "Cluster", TAGS: "Tags", TAG: "Tag"}
NAMES.update({SIMPLE_TAG: "SimpleTag", TAG_STRING: "TagString", TRACKS: "Tracks", INFO: "Info", 0xEC: "Void"})


@dataclass(frozen=True)
class Element:
    """An EBML element: its id, where its payload starts and ends (an unknown size: the parent's end)."""

    id: int
    start: int
    end: int
    unknown: bool = False


class EbmlFile:
    """The file as EBML elements: headers read and checked against the parent and the file,
    payloads read only on request and charged to the budget first."""

    def __init__(self, fp: BinaryIO, budget: Budget) -> None:
        self.fp, self.budget = fp, budget
        self.size = fp.seek(0, 2)

    def element(self, pos: int, end: int, *, unknown_ok: bool = False) -> Element:
        """The element whose header is at `pos`, inside a parent ending at `end`."""
        self.budget.chunk("Matroska element")
        self.fp.seek(pos)
        head = self.fp.read(min(ID_BYTES_MAX + SIZE_BYTES_MAX, end - pos))
        ident, id_len = self.number(head, 0, pos, marker=True)
        size, size_len = self.number(head, id_len, pos)
        start = pos + id_len + size_len
        name = NAMES.get(ident, f"element 0x{ident:X}")
        if size == (1 << (7 * size_len)) - 1:
            if not (unknown_ok and ident in (SEGMENT, CLUSTER)):
                raise ReadError(f"Matroska {name} at byte {pos:,} has an unknown size where none is allowed")
            return Element(ident, start, end, unknown=True)
        if size > end - start:
            past = "past the end of its parent or the file (truncated or damaged)"
            raise ReadError(f"Matroska {name} at byte {pos:,} claims {size:,} bytes, {past}")
        return Element(ident, start, start + size)

    def children(self, parent: Element) -> Iterator[Element]:
        pos = parent.start
        while pos < parent.end:
            child = self.element(pos, parent.end)
            yield child
            pos = child.end

    @staticmethod
    def number(data: bytes, offset: int, at: int, *, marker: bool = False) -> tuple[int, int]:
        """An EBML variable-length number (an id keeps its length marker) and its length in bytes."""
        if offset >= len(data):
            raise ReadError(f"Matroska is truncated: an element header is cut at byte {at:,}")
        first = data[offset]
        if first == 0:
            raise ReadError(f"Matroska has an invalid EBML number at byte {at + offset:,} (no length marker)")
        length = 9 - first.bit_length()
        if marker and length > ID_BYTES_MAX:
            raise ReadError(f"Matroska has an element id longer than {ID_BYTES_MAX} bytes at byte {at:,}")
        if offset + length > len(data):
            raise ReadError(f"Matroska is truncated: an element header is cut at byte {at:,}")
        value = int.from_bytes(data[offset : offset + length], "big")
        return (value if marker else value & ((1 << (7 * length)) - 1)), length

    def peek(self, element: Element, count: int) -> bytes:
        self.fp.seek(element.start)
        return self.fp.read(min(count, element.end - element.start))

    def payload(self, element: Element, what: str, sizes: range | tuple[int, ...] | None = None) -> bytes:
        """The element's payload, charged to the budget first; `sizes`: the only sizes it may have."""
        size = element.end - element.start
        if sizes is not None and size not in sizes:
            raise ReadError(f"{what} is {size:,} bytes, not a number (damaged Matroska)")
        self.budget.load(size, what)
        data = self.peek(element, size)
        if len(data) < size:
            raise ReadError(f"Matroska is truncated inside {what}")
        return data

    def uint(self, element: Element, what: str) -> int:
        return int.from_bytes(self.payload(element, what, range(9)), "big")

    def float(self, element: Element, what: str) -> float:
        data = self.payload(element, what, (0, 4, 8))
        return struct.unpack(">f" if len(data) == 4 else ">d", data)[0] if data else 0.0

    def text(self, element: Element, what: str) -> str:
        """A string or UTF-8 element (the spec allows trailing NULs; ffmpeg writes some)."""
        return self.payload(element, what).rstrip(b"\x00").decode("utf-8", errors="replace")


@dataclass
class _Track:
    number: int = 0
    kind: int = 0
    codec_id: str = ""
    width: int | None = None
    height: int | None = None
    default_duration: int | None = None
    sample_rate: float = 8000.0  # the spec's defaults when the element is absent
    channels: int = 1


@dataclass
class _Scan:
    """What the walk found, turned into an Embedded at the end (Info may come after Tracks)."""

    timestamp_scale: int = DEFAULT_TIMESTAMP_SCALE
    duration: float | None = None
    tracks: list[_Track] = field(default_factory=list)
    segment_tags: list[tuple[str, str]] = field(default_factory=list)
    track_tags: list[tuple[str, str]] = field(default_factory=list)
    # The first video track's frames and its earliest and latest block timestamps (in ticks).
    frames: int = 0
    first: int | None = None
    last: int | None = None
    blocks: int = 0
    counting: bool = True

    def track(self, kind: int) -> _Track | None:
        return next((t for t in self.tracks if t.kind == kind), None)


class MatroskaContainer:
    name = "matroska"
    extensions: tuple[str, ...] = (".mkv", ".webm", ".mka")
    mime = "video/x-matroska"

    def sniff(self, head: bytes) -> bool:
        return head[:4] == MAGIC

    def read(self, fp: BinaryIO, budget: Budget) -> Embedded:
        """The tags (segment-level first, then per-track), the first video and audio track, the frames."""
        ebml = EbmlFile(fp, budget)
        fmt, segment = _open(ebml)
        scan, pos = _Scan(), segment.start
        while pos < segment.end:
            element = ebml.element(pos, segment.end, unknown_ok=True)
            if element.id == CLUSTER:
                pos = _cluster(ebml, element, scan)
                continue
            if element.unknown:  # a level-1 Segment (a second one) runs to the end
                break
            if element.id == INFO:
                _info(ebml, element, scan)
            elif element.id == TRACKS:
                _tracks(ebml, element, scan)
            elif element.id == TAGS:
                _tags(ebml, element, scan)
            pos = element.end
        video, audio = scan.track(VIDEO_TRACK), scan.track(AUDIO_TRACK)
        media = _media(scan, video, audio)
        pairs = [*scan.segment_tags, *scan.track_tags]
        width, height = (video.width, video.height) if video else (None, None)
        return embedded_from_tags(fmt, pairs, budget, width=width, height=height, media=media)


def _open(ebml: EbmlFile) -> tuple[str, Element]:
    """The format the EBML header's DocType names ("webm" or "mkv"), and the first Segment after it."""
    header = ebml.element(0, ebml.size)
    if header.id != EBML:
        raise ReadError("not a Matroska file (no EBML header)")
    doctype = "matroska"  # the spec's default
    for child in ebml.children(header):
        if child.id == DOCTYPE:
            doctype = ebml.text(child, "the EBML DocType")
    if doctype not in DOCTYPES:
        shown = doctype[:32].encode("ascii", "backslashreplace").decode()
        raise ReadError(f"an EBML file of DocType {shown!r}, not Matroska or WebM")
    pos = header.end
    while pos < ebml.size:
        element = ebml.element(pos, ebml.size, unknown_ok=True)
        if element.id == SEGMENT:
            return DOCTYPES[doctype], element
        if element.unknown:
            break
        pos = element.end
    raise ReadError("Matroska file has no Segment")


def _info(ebml: EbmlFile, info: Element, scan: _Scan) -> None:
    for child in ebml.children(info):
        if child.id == TIMESTAMP_SCALE:
            scan.timestamp_scale = ebml.uint(child, "the TimestampScale") or DEFAULT_TIMESTAMP_SCALE
        elif child.id == DURATION:
            scan.duration = ebml.float(child, "the segment Duration")


def _tracks(ebml: EbmlFile, tracks: Element, scan: _Scan) -> None:
    for entry in ebml.children(tracks):
        if entry.id != TRACK_ENTRY:
            continue
        track = _Track()
        for child in ebml.children(entry):
            if child.id == TRACK_NUMBER:
                track.number = ebml.uint(child, "a TrackNumber")
            elif child.id == TRACK_TYPE:
                track.kind = ebml.uint(child, "a TrackType")
            elif child.id == CODEC_ID:
                track.codec_id = ebml.text(child, "a CodecID")
            elif child.id == DEFAULT_DURATION:
                track.default_duration = ebml.uint(child, "a DefaultDuration")
            elif child.id in (VIDEO, AUDIO):
                _track_settings(ebml, child, track)
        scan.tracks.append(track)


def _track_settings(ebml: EbmlFile, settings: Element, track: _Track) -> None:
    """A TrackEntry's Video (pixel size) or Audio (sampling rate, channels) element."""
    for child in ebml.children(settings):
        if child.id == PIXEL_WIDTH:
            track.width = ebml.uint(child, "a PixelWidth")
        elif child.id == PIXEL_HEIGHT:
            track.height = ebml.uint(child, "a PixelHeight")
        elif child.id == SAMPLING_FREQUENCY:
            track.sample_rate = ebml.float(child, "a SamplingFrequency")
        elif child.id == CHANNELS:
            track.channels = ebml.uint(child, "a Channels")


def _tags(ebml: EbmlFile, tags: Element, scan: _Scan) -> None:
    """Each Tag's SimpleTags, filed by its Targets: the segment's, a track's, or (chapters,
    attachments) none we read. ffmpeg's demuxer sorts them the same way."""
    for tag in ebml.children(tags):
        if tag.id != TAG:
            continue
        pairs: list[tuple[str, str]] = []
        track_level = elsewhere = False
        for child in ebml.children(tag):
            if child.id == TARGETS:
                for target in ebml.children(child):
                    if target.id in (TAG_TRACK_UID, TAG_CHAPTER_UID, TAG_ATTACHMENT_UID):
                        uid = ebml.uint(target, "a Targets UID")  # 0 means "every one": the segment
                        track_level |= target.id == TAG_TRACK_UID and uid != 0
                        elsewhere |= target.id != TAG_TRACK_UID and uid != 0
            elif child.id == SIMPLE_TAG:
                pairs.extend(_simple_tags(ebml, child))
        if not elsewhere:
            (scan.track_tags if track_level else scan.segment_tags).extend(pairs)


def _simple_tags(ebml: EbmlFile, top: Element) -> list[tuple[str, str]]:
    """A SimpleTag and the SimpleTags nested in it, in file order; a nested one is named
    PARENT/CHILD as ffmpeg names it, so a sub-tag never passes for a top-level PROMPT."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[Element, str, int]] = [(top, "", 1)]
    while stack:
        element, prefix, depth = stack.pop()
        name: str | None = None
        value: str | None = None
        nested: list[Element] = []
        for child in ebml.children(element):
            if child.id == TAG_NAME:
                name = ebml.text(child, "a TagName")
            elif child.id == TAG_STRING:
                value = ebml.text(child, "a TagString")
            elif child.id == SIMPLE_TAG:
                nested.append(child)
        if name is None:
            continue  # a nameless tag names nothing, nor do its sub-tags
        if value is not None:
            out.append((prefix + name, value))
        if nested and depth >= SIMPLE_TAG_DEPTH_MAX:
            raise ReadError(f"Matroska SimpleTags nest deeper than {SIMPLE_TAG_DEPTH_MAX} levels (refused)")
        stack.extend((child, f"{prefix}{name}/", depth + 1) for child in reversed(nested))
    return out


def _cluster(ebml: EbmlFile, cluster: Element, scan: _Scan) -> int:
    """Count the first video track's frames in the cluster; returns where the cluster ends (for
    one of unknown size: where the next level-1 element begins)."""
    video = scan.track(VIDEO_TRACK)
    scan.counting &= video is not None  # no video track, or blocks before the Tracks: nothing to count
    if not scan.counting and not cluster.unknown:
        return cluster.end
    base, pos = 0, cluster.start
    while pos < cluster.end:
        element = ebml.element(pos, cluster.end, unknown_ok=cluster.unknown)
        if cluster.unknown and element.id in LEVEL_1:
            return pos
        if element.id == CLUSTER_TIMESTAMP:
            base = ebml.uint(element, "a Cluster Timestamp")
        elif scan.counting and video and element.id == SIMPLE_BLOCK:
            _block(ebml, element, base, video.number, scan)
        elif scan.counting and video and element.id == BLOCK_GROUP:
            for child in ebml.children(element):
                if child.id == BLOCK:
                    _block(ebml, child, base, video.number, scan)
        pos = element.end
    return cluster.end


def _block(ebml: EbmlFile, block: Element, base: int, track: int, scan: _Scan) -> None:
    """One block's track number, timestamp and frame count (a laced block holds several)."""
    scan.blocks += 1
    if scan.blocks > BLOCKS_COUNTED_MAX:
        logger.debug("provenance: more than %d Matroska blocks: frames left uncounted", BLOCKS_COUNTED_MAX)
        scan.counting = False
        return
    head = ebml.peek(block, 12)
    number, used = ebml.number(head, 0, block.start)
    if len(head) < used + 4:
        raise ReadError(f"Matroska block at byte {block.start:,} is too short for its header")
    if number != track:
        return
    timestamp = base + struct.unpack(">h", head[used : used + 2])[0]
    scan.frames += head[used + 3] + 1 if head[used + 2] & 0x06 else 1
    scan.first = timestamp if scan.first is None else min(scan.first, timestamp)
    scan.last = timestamp if scan.last is None else max(scan.last, timestamp)


def _media(scan: _Scan, video: _Track | None, audio: _Track | None) -> dict[str, Any]:
    """The Embedded's media: only what the file says (or the spec's defaults say for it)."""
    media: dict[str, Any] = {}
    if scan.duration is not None and math.isfinite(scan.duration) and scan.duration >= 0:
        media["duration_s"] = scan.duration * scan.timestamp_scale / 1e9
    if video is not None:
        if video.codec_id in VIDEO_CODECS:
            media["codec"] = VIDEO_CODECS[video.codec_id]
        if scan.counting:
            media["frames"] = scan.frames
        if (fps := _fps(scan, video, media.get("duration_s"))) is not None:
            media["fps"] = fps
    if audio is not None:
        codec = next((name for cid, name in AUDIO_CODECS.items() if audio.codec_id.startswith(cid)), None)
        rate: float | None = audio.sample_rate if math.isfinite(audio.sample_rate) and audio.sample_rate > 0 else None
        rate = int(rate) if rate is not None and rate.is_integer() else rate
        sound = {"codec": codec, "sample_rate": rate, "channels": audio.channels}
        media["audio"] = {key: value for key, value in sound.items() if value is not None}
    return media


def _fps(scan: _Scan, video: _Track, duration_s: float | None) -> float | None:
    """DefaultDuration's rate; else the simplest rate the block timestamps fit (to within a tick
    at each end); else frames over the duration."""
    if video.default_duration:
        return round(1e9 / video.default_duration, 3)
    if not scan.counting or scan.frames == 0:
        return None
    tick = scan.timestamp_scale / 1e9
    if scan.frames >= 2 and scan.first is not None and scan.last is not None and scan.last > scan.first:
        span, intervals = (scan.last - scan.first) * tick, scan.frames - 1
        fitting = (rate for rate in ROUND_RATES if abs(intervals / rate - span) <= tick)
        return round(float(next(fitting, intervals / span)), 3)
    return round(scan.frames / duration_s, 3) if duration_s else None


register_container(MatroskaContainer())

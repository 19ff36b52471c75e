"""Every size limit the writers and readers obey, in one place, with where each comes from."""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB

# JPEG: a marker segment's 16-bit length counts itself, so at most 65,533 payload bytes
# (Pillow's MAX_BYTES_IN_MARKER). APP1 Exif carries "Exif\0\0" before the TIFF structure.
JPEG_SEGMENT_PAYLOAD_MAX = 65_533
JPEG_EXIF_TIFF_MAX = JPEG_SEGMENT_PAYLOAD_MAX - len(b"Exif\x00\x00")
# APP1 XMP starts with the 29-byte namespace "http://ns.adobe.com/xap/1.0/\0"; Pillow refuses more.
JPEG_XMP_PACKET_MAX = 65_504

# PNG: Pillow refuses compressed text (zTXt, compressed iTXt) that inflates beyond 1 MiB
# (PngImagePlugin.MAX_TEXT_CHUNK) and all text chunks together beyond 64 MiB (MAX_TEXT_MEMORY).
PNG_COMPRESSED_TEXT_MAX = 1 * MIB
PNG_TEXT_TOTAL_MAX = 64 * MIB
# Leave room for chunk headers and for text Pillow counts that we do not write ourselves.
PNG_TEXT_TOTAL_BUDGET = PNG_TEXT_TOTAL_MAX - 1 * MIB

# WEBP: RIFF chunk sizes are 32-bit; keep the EXIF and XMP chunks well inside what readers load.
WEBP_CHUNK_MAX = 256 * MIB

# Runtime capture: the `runtime` block (executed nodes, timings, resolved inputs) stays inline in
# the record up to this size (PROVENANCE_RUNTIME_INLINE_KB overrides it); beyond, it moves to
# `<image>.runtime.json` and the record keeps a pointer. Every embedded copy of the record pays
# for it, and a JPEG's whole record must fit one 64 KiB XMP segment.
RUNTIME_INLINE_MAX = 32 * KIB

# XMP free-text fields (description, AI prompt) are summaries; the record keeps the full text.
XMP_TEXT_FIELD_MAX = 32 * KIB

# Readers: every file is hostile until proven otherwise. One budget per file (metadata/budget.py),
# its sidecars included, checked before anything is allocated.
# A metadata chunk, segment or sidecar bigger than this is refused outright.
READ_CHUNK_MAX = 256 * MIB
READ_SIDECAR_MAX = 256 * MIB
# All the metadata one file (and its sidecars) may make us hold in memory.
READ_METADATA_MAX = 256 * MIB
# Compressed text inflates no further than Pillow allows, per chunk (MAX_TEXT_CHUNK) and per file
# (MAX_TEXT_MEMORY): a bomb split over many chunks stops at the file's total.
READ_DECOMPRESS_MAX = PNG_COMPRESSED_TEXT_MAX
READ_INFLATE_TOTAL_MAX = PNG_TEXT_TOTAL_MAX
# Chunks (PNG, WEBP frames included) and segments walked in one file: ComfyUI's own files have tens,
# a long animation thousands; walking this many costs well under a second.
READ_CHUNKS_MAX = 250_000
# EXIF entries walked in one file (IFD0 + Exif IFD hold a few dozen in real files).
READ_EXIF_ENTRIES_MAX = 4_096
# An XMP packet bigger than this is refused before parsing.
READ_XMP_MAX = 64 * MIB
# JSON documents (records, graphs, sidecars): decoded objects take about 5x their text, so a
# document past this is refused, not decoded. Nesting is refused past Python's recursion limit by
# the decoder itself, and past this depth by a scan where the host raised that limit (budget.py).
# Real workflows nest about 10 levels deep.
READ_JSON_MAX = PNG_TEXT_TOTAL_MAX
READ_JSON_DEPTH_MAX = 128
# A ComfyUI graph (prompt or workflow) read from a file is parsed only up to this size: real ones
# are a few KB to a few MB, and a bigger one would cost hundreds of MB to decode and parse.
READ_GRAPH_MAX = 16 * MIB
# The parser walks graphs of at most this many nodes (ComfyUI's own templates have tens to hundreds).
GRAPH_NODES_MAX = 50_000
# A1111 infotext bigger than this is not parsed (real ones are a few KB; the record keeps long prompts).
READ_INFOTEXT_MAX = 4 * MIB

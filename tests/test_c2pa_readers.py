"""Signed files (the `c2pa` target) read as unsigned ones do: every external reader, the frontend, exiftool, ffprobe.

c2pa-python writes the manifest into the file after every other target (PNG `caBX`, JPEG APP11, WEBP
`C2PA`, MP4 `uuid`, an ID3 GEOB frame in MP3; FLAC is left unsigned, see test_c2pa). Each file here is
signed with a test CA and checked to verify `valid` against it, so every reader below ran on a signed
file. Where a reader loses something on a signed file, the test asserts exactly that (a KNOWN break),
as test_external_readers does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import media_readers
import pytest
from conftest import context_for, pixels
from frontend_loaders import frontend_load
from readers import FIELDS, READERS, cli, comfyui
from readers.common import unavailable
from test_external_readers import FORMATS, NEVER, SOURCES, WORKFLOWS, _explain, expected_fields
from test_save_media import audio_context, frames, sine, video_context

from comfyui_provenance.metadata.credentials import testca
from comfyui_provenance.metadata.credentials.verify import verify_file
from comfyui_provenance.metadata.formats.base import C2PA, DEFAULT_TARGETS, MediaOptions
from comfyui_provenance.metadata.media import clip_from, save_audio, save_video
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import TRAINED, Record
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images

pytestmark = pytest.mark.readers

TARGETS = DEFAULT_TARGETS | {C2PA}
MEDIA = ("mp4", "mp3")  # FLAC is left unsigned: test_c2pa.test_flac_is_left_unsigned_so_comfyui_still_loads_it
# Where C2PA puts the manifest, as the c2pa placement names it.
LOCATIONS = {
    "png": "png:caBX",
    "jpeg": "jpeg:APP11",
    "webp": "webp:C2PA",
    "mp4": "mp4:uuid",
    "mp3": "mp3:c2pa",
}
# exiftool 12.57 decodes the JUMBF manifest in PNG and JPEG; a WEBP `C2PA` chunk it lists only as
# RIFF:Unknown_C2PA (with -u). A newer exiftool that decodes it fails this test: update the set.
EXIFTOOL_DECODES_C2PA = {"png", "jpeg"}
# Tags that differ between two saves of the same graph whatever the targets: times, and the record
# (whose embedding lists the c2pa placement); the record is compared whole by test_our_reader_*.
VOLATILE = ("Date", "Comfyui_provenance", "XMP-cprov:Record")
OUR_GROUPS = ("PNG:", "IFD0:", "ExifIFD:", "XMP-")
C2PA_GROUPS = ("JUMBF:", "CBOR:", "JSON:", "Jpeg2000:")


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> testca.TestCredentials:
    return testca.create(tmp_path_factory.mktemp("c2pa_ca"))


def _save_all(folder: Path) -> dict[tuple[str, str], SavedFile]:
    """The same graphs saved into `folder`, with the c2pa target on (signed only where credentials are set)."""
    saved = {
        (name, fmt): save_images(
            [pixels()], context_for(name), folder, fmt, SaveOptions(format=fmt, targets=TARGETS), version="test"
        )[0]
        for name in WORKFLOWS
        for fmt in FORMATS
    }
    clip = clip_from(frames(), 24)
    saved["video", "mp4"] = save_video(
        clip, video_context(fmt="mp4"), folder, "v", MediaOptions(format="mp4", targets=TARGETS), version="test"
    )
    options = MediaOptions(format="mp3", targets=TARGETS)
    saved["audio", "mp3"] = save_audio(sine(0.5), audio_context(), folder, "a", options, version="test")
    return saved


@pytest.fixture(scope="module")
def signed(
    tmp_path_factory: pytest.TempPathFactory, credentials: testca.TestCredentials
) -> Iterator[dict[tuple[str, str], SavedFile]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROVENANCE_C2PA_CERT", str(credentials.chain))
        patch.setenv("PROVENANCE_C2PA_KEY", str(credentials.key))
        yield _save_all(tmp_path_factory.mktemp("c2pa_signed"))


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], SavedFile]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PROVENANCE_C2PA_CERT", raising=False)
        patch.delenv("PROVENANCE_C2PA_KEY", raising=False)
        yield _save_all(tmp_path_factory.mktemp("c2pa_unsigned"))


@pytest.fixture(scope="module")
def verdicts(
    signed: dict[tuple[str, str], SavedFile], credentials: testca.TestCredentials
) -> dict[tuple[str, str], str]:
    return {key: verify_file(saved.path, trust=credentials.ca).status for key, saved in signed.items()}


def _record(saved: SavedFile) -> Record:
    assert saved.record is not None, f"{saved.path.name} was saved without a record"
    return saved.record


def _c2pa_placement(saved: SavedFile) -> tuple[str, str, str | None]:
    (placement,) = [p for p in _record(saved).provenance.embedding if p.target == C2PA]
    return placement.location, placement.status, placement.reason


def _assert_signed(signed: dict[tuple[str, str], SavedFile], verdicts: dict[tuple[str, str], str], key: Any) -> None:
    assert verdicts[key] == "valid", f"{signed[key].path.name} is not a valid signed file: {verdicts[key]}"
    location, status, _ = _c2pa_placement(signed[key])
    assert (location, status) == (LOCATIONS[key[1]], "written")


KEYS = [*((name, fmt) for name in WORKFLOWS for fmt in FORMATS), ("video", "mp4"), ("audio", "mp3")]


@pytest.mark.parametrize("key", KEYS, ids="-".join)
def test_every_file_is_signed_and_valid(
    signed: dict[tuple[str, str], SavedFile],
    unsigned: dict[tuple[str, str], SavedFile],
    verdicts: dict[tuple[str, str], str],
    key: tuple[str, str],
) -> None:
    _assert_signed(signed, verdicts, key)
    assert _c2pa_placement(signed[key])[2] == "signed with an untrusted test certificate"
    location, status, reason = _c2pa_placement(unsigned[key])  # the control: same save, no credentials
    assert (location, status) == (LOCATIONS[key[1]], "omitted") and reason and "no signing certificate" in reason


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", WORKFLOWS)
@pytest.mark.parametrize("reader", list(READERS))
def test_reader_gets_every_field_from_a_signed_file(
    signed: dict[tuple[str, str], SavedFile],
    verdicts: dict[tuple[str, str], str],
    reader: str,
    name: str,
    fmt: str,
) -> None:
    _assert_signed(signed, verdicts, (name, fmt))
    reading = READERS[reader](signed[name, fmt].path)
    source = SOURCES[reader][fmt]
    if source is None:
        assert not reading.found, f"KNOWN limit no longer holds on a signed file: {_explain(reading)}"
        return
    assert reading.source == source, _explain(reading)
    want = expected_fields(name, source)
    never = NEVER.get(reader, set())
    got = {k: reading[k] for k in FIELDS}
    assert {k: v for k, v in got.items() if k in never} == dict.fromkeys(never & set(FIELDS))
    assert {k: v for k, v in got.items() if k not in never} == {k: v for k, v in want.items() if k not in never}


FRONTEND_KEYS = [*((name, fmt) for name in WORKFLOWS for fmt in ("png", "webp")), *KEYS[-3:]]


@pytest.mark.parametrize("key", FRONTEND_KEYS, ids="-".join)
def test_frontend_loads_the_signed_file_as_the_unsigned_one(
    signed: dict[tuple[str, str], SavedFile],
    unsigned: dict[tuple[str, str], SavedFile],
    verdicts: dict[tuple[str, str], str],
    key: tuple[str, str],
) -> None:
    _assert_signed(signed, verdicts, key)
    plain = frontend_load(unsigned[key].path)
    got = frontend_load(signed[key].path)
    assert plain.loaded == "workflow", plain.reason
    assert plain.workflow is not None and plain.prompt is not None
    assert (got.loaded, got.reason, got.loader) == ("workflow", None, plain.loader)
    assert got.workflow == plain.workflow
    assert got.prompt == plain.prompt
    assert got.parameters == plain.parameters


def _exiftool_unknown(path: Path) -> dict[str, Any]:
    """`exiftool -j -G1 -a -s -u`: unknown tags too (a chunk exiftool cannot decode shows as Unknown_...)."""
    exe = shutil.which("exiftool")
    if exe is None:
        unavailable("exiftool is not on PATH (Debian package libimage-exiftool-perl)")
    out = subprocess.run(
        [exe, "-j", "-G1", "-a", "-s", "-u", str(path)], capture_output=True, timeout=60, check=False
    ).stdout
    data: list[dict[str, Any]] = json.loads(out.decode("utf-8"))
    return data[0]


def _ours(tags: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tags.items() if k.startswith(OUR_GROUPS) and not any(s in k for s in VOLATILE)}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", WORKFLOWS)
def test_exiftool_reads_our_tags_and_the_manifest(
    signed: dict[tuple[str, str], SavedFile],
    unsigned: dict[tuple[str, str], SavedFile],
    verdicts: dict[tuple[str, str], str],
    name: str,
    fmt: str,
) -> None:
    _assert_signed(signed, verdicts, (name, fmt))
    tags = cli.exiftool_tags(signed[name, fmt].path)
    plain = cli.exiftool_tags(unsigned[name, fmt].path)
    assert "ExifTool:Warning" not in tags, tags["ExifTool:Warning"]
    # Parameters / UserComment, the graphs in IFD0, and our XMP: the same tags, the same values.
    assert _ours(tags) == _ours(plain)
    text = tags.get("PNG:Parameters") if fmt == "png" else tags.get("ExifIFD:UserComment")
    assert text is not None and "Steps: " in text
    assert tags["XMP-iptcExt:DigitalSourceType"] == TRAINED
    assert tags["XMP-xmp:CreatorTool"].startswith("ComfyUI Provenance")
    assert not [k for k in plain if k.startswith(C2PA_GROUPS)]
    manifest = {k: v for k, v in tags.items() if k.startswith(C2PA_GROUPS)}
    if fmt in EXIFTOOL_DECODES_C2PA:
        assert manifest["JUMBF:JUMDLabel"] == "c2pa"
        assert manifest["CBOR:Claim_Generator_InfoName"] == "ComfyUI Provenance"
        assert manifest["CBOR:Claim_Generator_InfoVersion"] == "test"
        assert manifest["CBOR:ActionsAction"] == "c2pa.created"
        assert manifest["CBOR:ActionsDigitalSourceType"] == TRAINED
        assert manifest["CBOR:Title"] == signed[name, fmt].path.name
        # Our record assertion, decoded by exiftool's JSON reader.
        assert manifest["JSON:Schema"] == "comfyui-provenance/1"
    else:
        assert not manifest, f"KNOWN limit no longer holds, exiftool decodes WEBP C2PA now: {sorted(manifest)}"
        assert "C2PA" in [ctype for ctype, _ in comfyui.webp_chunks(signed[name, fmt].path.read_bytes())]
        assert "RIFF:Unknown_C2PA" in _exiftool_unknown(signed[name, fmt].path)


@pytest.mark.parametrize("fmt", MEDIA)
def test_ffprobe_reads_the_same_container_tags(
    signed: dict[tuple[str, str], SavedFile],
    unsigned: dict[tuple[str, str], SavedFile],
    verdicts: dict[tuple[str, str], str],
    fmt: str,
) -> None:
    key = ("video" if fmt == "mp4" else "audio", fmt)
    _assert_signed(signed, verdicts, key)
    probe = media_readers.ffprobe(signed[key].path)
    plain = media_readers.ffprobe(unsigned[key].path)
    assert {k: v for k, v in probe["format_tags"].items() if k != "comfyui_provenance"} == {
        k: v for k, v in plain["format_tags"].items() if k != "comfyui_provenance"
    }
    assert (probe["format_name"], probe["duration"], probe["streams"]) == (
        plain["format_name"],
        plain["duration"],
        plain["streams"],
    )
    prompt = media_readers.tag(probe, "prompt")
    workflow = media_readers.tag(probe, "workflow")
    assert prompt is not None and workflow is not None
    assert json.loads(prompt) == _record(signed[key]).prompt
    assert json.loads(workflow) == _record(signed[key]).workflow
    comment = media_readers.tag(probe, "comment")
    assert comment is not None and "Steps: " in comment
    # The record tag: the whole record, its graphs referenced from the prompt/workflow tags.
    record_text = media_readers.tag(probe, "comfyui_provenance")
    assert record_text is not None
    record = json.loads(record_text)
    assert set(record.pop("$refs")) == {"prompt", "workflow"}
    assert record | {"prompt": json.loads(prompt), "workflow": json.loads(workflow)} == _record(signed[key]).to_dict()
    if fmt == "mp4":
        assert json.loads(prompt)["80"]["class_type"] == "ProvenanceSaveVideo"


@pytest.mark.parametrize("fmt", ("mp3",))
def test_exiftool_reads_the_signed_audio_tags(
    signed: dict[tuple[str, str], SavedFile],
    unsigned: dict[tuple[str, str], SavedFile],
    verdicts: dict[tuple[str, str], str],
    fmt: str,
) -> None:
    _assert_signed(signed, verdicts, ("audio", fmt))
    tags = media_readers.exiftool(signed["audio", fmt].path)
    plain = media_readers.exiftool(unsigned["audio", fmt].path)
    for name in ("Prompt", "Workflow"):
        assert media_readers.exiftool_tag(tags, name) == media_readers.exiftool_tag(plain, name) is not None
    # exiftool 12.57 calls the MP3's own ID3 frame size invalid, signed or not.
    assert "ExifTool:Warning" in plain
    assert tags.get("ExifTool:Warning") == "Invalid ID3 frame size", tags.get("ExifTool:Warning")


@pytest.mark.parametrize("key", KEYS, ids="-".join)
def test_our_reader_returns_the_saved_record(
    signed: dict[tuple[str, str], SavedFile], verdicts: dict[tuple[str, str], str], key: tuple[str, str]
) -> None:
    _assert_signed(signed, verdicts, key)
    assert read(signed[key].path).to_dict() == _record(signed[key]).to_dict()

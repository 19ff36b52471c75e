"""The save path: ComfyUI's file naming, concurrency, pixels-only saves, sidecars and permissions."""

from __future__ import annotations

import json
import os
import stat
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import context_for, pixels
from PIL import Image as PILImage

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.errors import ReadError
from comfyui_provenance.metadata.formats import xmp
from comfyui_provenance.metadata.formats.base import DEFAULT_TARGETS, TARGETS
from comfyui_provenance.metadata.read import extract, read
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images

FORMATS = ("png", "jpeg", "webp")
EXT = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def save_batch(
    folder: Path,
    prefix: str,
    count: int = 1,
    fmt: str = "png",
    targets: frozenset[str] = DEFAULT_TARGETS,
    **options: object,
) -> list[SavedFile]:
    images = [pixels(seed=i) for i in range(count)]
    return save_images(
        images,
        context_for("default"),
        folder,
        prefix,
        SaveOptions(format=fmt, targets=targets, **options),
        version="test",
    )  # type: ignore[arg-type]


# -- naming ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_first_file_is_named_like_comfyui(fmt: str, tmp_path: Path) -> None:
    saved = save_batch(tmp_path, "ComfyUI", fmt=fmt)[0]
    assert saved.path == tmp_path / f"ComfyUI_00001_{EXT[fmt]}"
    assert saved.subfolder == ""
    assert saved.record is not None and saved.record.image.filename == saved.path.name


def test_counter_continues_after_existing_files(tmp_path: Path) -> None:
    (tmp_path / "ComfyUI_00041_.png").write_bytes(b"older")
    (tmp_path / "ComfyUI_00007_.jpg").write_bytes(b"older")
    (tmp_path / "ComfyUI_x_00099_.png").write_bytes(b"another prefix")
    (tmp_path / "Other_00500_.png").write_bytes(b"another prefix")
    first = save_batch(tmp_path, "ComfyUI")[0]
    assert first.path.name == "ComfyUI_00042_.png"
    second = save_batch(tmp_path, "ComfyUI", count=2)
    assert [s.path.name for s in second] == ["ComfyUI_00043_.png", "ComfyUI_00044_.png"]
    assert (tmp_path / "ComfyUI_00041_.png").read_bytes() == b"older"


def test_subfolders_in_the_prefix(tmp_path: Path) -> None:
    saved = save_batch(tmp_path, "people/portraits/face", fmt="jpeg")[0]
    assert saved.path == tmp_path / "people" / "portraits" / "face_00001_.jpg"
    assert saved.subfolder == "people/portraits"
    again = save_batch(tmp_path, "people\\portraits\\face", fmt="jpeg")[0]
    assert again.path == tmp_path / "people" / "portraits" / "face_00002_.jpg"


def test_batch_num_and_size_placeholders(tmp_path: Path) -> None:
    saved = save_batch(tmp_path, "img_%batch_num%", count=3)
    # ComfyUI's SaveImage counts on per image, %batch_num% or not.
    assert [s.path.name for s in saved] == ["img_0_00001_.png", "img_1_00002_.png", "img_2_00003_.png"]
    sized = save_batch(tmp_path, "s_%width%x%height%")[0]
    assert sized.path.name == "s_96x64_00001_.png"


def test_batch_num_never_overwrites_an_earlier_batch(tmp_path: Path) -> None:
    first = save_batch(tmp_path, "b_%batch_num%", count=2)
    contents = {s.path: s.path.read_bytes() for s in first}
    second = save_batch(tmp_path, "b_%batch_num%", count=2)
    assert not {s.path for s in first} & {s.path for s in second}
    assert all(path.read_bytes() == data for path, data in contents.items())


@pytest.mark.parametrize("prefix", ["../escape", "a/../../escape", "/tmp/absolute", "..\\escape"])
def test_a_prefix_escaping_the_output_folder_is_refused(prefix: str, tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.mkdir()
    with pytest.raises(ValueError, match="outside the output folder"):
        save_batch(out, prefix)
    assert names(tmp_path) == [] and names(out) == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("format", "bmp", "allowed: gif, jpeg, png, webp"),
        ("targets", frozenset({"exif"}), "allowed: a1111"),
        ("quality", 0, "quality must be 1..100"),
    ],
)
def test_bad_options_are_value_errors_listing_what_is_allowed(option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SaveOptions(**{option: value})  # type: ignore[arg-type]


def test_jpg_is_an_alias(tmp_path: Path) -> None:
    assert SaveOptions(format="JPG").format == "jpeg"


# -- concurrency ------------------------------------------------------------------------------------------------


def test_concurrent_saves_lose_nothing(tmp_path: Path) -> None:
    threads, per_thread = 8, 4
    start = threading.Barrier(threads)

    def work(thread: int) -> list[tuple[SavedFile, np.ndarray]]:
        images = [pixels(24, 16, seed=thread * 100 + i) for i in range(per_thread)]
        start.wait()
        saved = save_images(images, context_for("default"), tmp_path, "race", SaveOptions(), version="test")
        return list(zip(saved, images, strict=True))

    with ThreadPoolExecutor(threads) as pool:
        results = [pair for batch in pool.map(work, range(threads)) for pair in batch]
    paths = [s.path for s, _ in results]
    assert len(paths) == threads * per_thread
    assert len(set(paths)) == len(paths), "two saves got the same file"
    assert names(tmp_path) == sorted(p.name for p in paths), "stray or missing files"
    for saved, image in results:  # each file holds its own pixels and its own record
        with PILImage.open(saved.path) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), image)
        assert saved.record is not None
        assert read(saved.path).image.filename == saved.path.name


# -- pixels only ------------------------------------------------------------------------------------------------


def png_chunk_types(data: bytes) -> list[bytes]:
    types, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def jpeg_markers(data: bytes) -> list[int]:
    markers, pos = [], 2
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:
        markers.append(data[pos + 1])
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return markers


def webp_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 12
    while pos < len(data):
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks.append(data[pos : pos + 4])
        pos += 8 + size + (size & 1)
    return chunks


@pytest.mark.parametrize("fmt", FORMATS)
def test_disable_metadata_writes_pixels_only(fmt: str, tmp_path: Path) -> None:
    saved = save_batch(tmp_path, "plain", fmt=fmt, targets=frozenset(TARGETS), disable_metadata=True)[0]
    assert saved.record is None and saved.sidecars == []
    assert names(tmp_path) == [saved.path.name]
    data = saved.path.read_bytes()
    if fmt == "png":
        assert set(png_chunk_types(data)) <= {b"IHDR", b"IDAT", b"IEND"}, png_chunk_types(data)
    elif fmt == "jpeg":
        assert not {0xE1, 0xFE} & set(jpeg_markers(data)), [hex(m) for m in jpeg_markers(data)]
    else:
        assert not {b"EXIF", b"XMP "} & set(webp_chunks(data)), webp_chunks(data)
    with PILImage.open(saved.path) as im:
        assert not im.getexif()
        assert "xmp" not in im.info
    with pytest.raises(ReadError, match="no provenance"):
        read(saved.path)


# -- sidecars ---------------------------------------------------------------------------------------------------------


def test_sidecars_are_named_after_the_whole_image_name(tmp_path: Path) -> None:
    targets = frozenset(TARGETS)
    png = save_batch(tmp_path, "pair", fmt="png", targets=targets)[0]
    jpg = save_batch(tmp_path, "pair", fmt="jpeg", targets=targets)[0]
    assert png.path.stem.rsplit("_", 2)[0] == jpg.path.stem.rsplit("_", 2)[0] == "pair"
    assert not set(png.sidecars) & set(jpg.sidecars)
    for saved in (png, jpg):
        assert sorted(p.name for p in saved.sidecars) == sorted(
            saved.path.name + suffix for suffix in (".json", ".xmp", ".txt")
        )
        data = json.loads(saved.path.with_name(saved.path.name + ".json").read_text("utf-8"))
        assert data["image"]["filename"] == saved.path.name


def test_a_later_save_never_overwrites_an_earlier_sidecar(tmp_path: Path) -> None:
    (tmp_path / "keep_00001_.png.json").write_text("an orphan sidecar", "utf-8")
    (tmp_path / "keep_00002_.jpg.txt").write_text("another one", "utf-8")
    targets = frozenset({"a1111", "sidecar_json", "sidecar_txt"})
    first = save_batch(tmp_path, "keep", targets=targets)[0]
    assert first.path.name == "keep_00003_.png"
    before = {p: p.read_bytes() for p in first.sidecars}
    second = save_batch(tmp_path, "keep", targets=targets, fmt="webp")[0]
    assert second.path.name == "keep_00004_.webp"
    assert all(p.read_bytes() == data for p, data in before.items())
    assert (tmp_path / "keep_00001_.png.json").read_text("utf-8") == "an orphan sidecar"
    assert (tmp_path / "keep_00002_.jpg.txt").read_text("utf-8") == "another one"


# -- permissions and batches ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_get_normal_permissions(fmt: str, tmp_path: Path) -> None:
    saved = save_batch(tmp_path, "mode", fmt=fmt, targets=frozenset(TARGETS))[0]
    mask = os.umask(0)
    os.umask(mask)
    expected = 0o666 & ~mask
    for path in (saved.path, *saved.sidecars):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == expected, f"{path.name}: {oct(mode)}, wanted {oct(expected)}"
    assert len(saved.sidecars) == 3
    assert not [n for n in names(tmp_path) if n.startswith(".") or n.endswith(".tmp")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_batch_of_three_records_its_indices(fmt: str, tmp_path: Path) -> None:
    saved = save_batch(tmp_path, "batch", count=3, fmt=fmt)
    assert len({s.path for s in saved}) == 3
    for index, item in enumerate(saved):
        assert item.record is not None
        assert (item.record.image.batch_index, item.record.image.batch_size) == (index, 3)
        assert item.record.image.filename == item.path.name
        back = read(item.path)
        assert (back.image.batch_index, back.image.batch_size) == (index, 3)
    # The images share one parse; they are still separate records.
    first, second = saved[0].record, saved[1].record
    assert first is not None and second is not None
    assert first.provenance is not second.provenance
    assert first.generation.to_dict() == second.generation.to_dict()


def test_a1111_batch_fields_follow_the_latent_batch(tmp_path: Path) -> None:
    context = context_for("default")
    assert context.prompt is not None
    prompt = json.loads(json.dumps(context.prompt))
    prompt["5"]["inputs"]["batch_size"] = 2
    ctx = SaveContext(prompt=prompt, extra_pnginfo=context.extra_pnginfo, save_node_id="9")
    saved = save_images([pixels(), pixels(seed=1)], ctx, tmp_path, "ab", SaveOptions(targets=frozenset({"a1111"})))
    for index, item in enumerate(saved):
        with PILImage.open(item.path) as im:
            params = im.text["parameters"]
        assert f"Batch size: 2, Batch pos: {index}" in params


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "targets",
    [{"xmp"}, {"xmp", "a1111"}, {"xmp", "sidecar_json"}, set(TARGETS)],
    ids=["xmp", "xmp+a1111", "xmp+sidecar_json", "all"],
)
def test_xmp_points_at_a_sidecar_only_when_there_is_one(fmt: str, targets: set[str], tmp_path: Path) -> None:
    saved = save_batch(tmp_path, "note", fmt=fmt, targets=frozenset(targets))[0]
    fields = xmp.parse(extract(saved.path).xmp or b"")
    sidecar = saved.path.with_name(saved.path.name + ".json")
    assert sidecar.exists() == ("sidecar_json" in targets)
    if "Sidecar" in fields:
        assert fields["Sidecar"] == "sidecar:json"
        assert sidecar.exists(), "the XMP points at a JSON sidecar that was never written"
    assert fields["Seed"] == "685468484323813"


def test_executor_is_changed_nan_never_costs_the_record(tmp_path: Path) -> None:
    """ComfyUI adds `is_changed: [NaN]` to a node that always re-runs; the record drops it, core's chunk keeps it."""
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProvenanceSaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    prompt["1"]["is_changed"] = [float("nan")]
    (saved,) = save_images(
        [np.zeros((8, 8, 3), np.uint8)], SaveContext(prompt=prompt, save_node_id="2"), tmp_path, "x", SaveOptions()
    )
    record = read(saved.path)
    assert record.provenance.capture_mode == "parser"
    assert not [w for w in record.provenance.warnings if "failed" in w]
    assert record.prompt is not None and "is_changed" not in record.prompt["1"]
    with PILImage.open(saved.path) as image:
        assert '"is_changed": [NaN]' in image.info["prompt"]  # core's text, as core writes it

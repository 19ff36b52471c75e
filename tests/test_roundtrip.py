"""write → read → same record, for every format and every target, on real corpus workflows.

What read() returns depends on what the file carries; the semantics asserted here:

- the record travels (target `record`, or `sidecar_json`, or all targets): read returns exactly the
  record save returned (`to_dict()` equality);
- `a1111` only (or `sidecar_txt` only, the same infotext beside the image): the A1111 fields come back
  (prompts, seed, steps, cfg, sampler, scheduler, size; denoise when below 1; the checkpoint by stem),
  as an imported record;
- `comfyui` only: the prompt and workflow come back verbatim and the parser re-derives the same
  generation, passes, models and digital source type, as an imported record;
- `xmp` only: the XMP packet holds the generation fields (cprov:*), so read returns them;
- `sidecar_xmp` only: the sidecar packet holds the whole record (cprov:Record), so read returns it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import context_for, load_workflow, pixels, save_node_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.errors import ReadError
from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.manifest_log import NAME as MANIFEST_LOG
from comfyui_provenance.metadata.manifest_log import read_log
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Record
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images

FORMATS = ("png", "jpeg", "webp")
# txt2img + LoRA; two passes through a latent upscale; img2img (composite, no latent size); base + refiner.
WORKFLOWS = ("lora", "hiresfix_latent_workflow", "image2image", "sdxl_refiner_prompt_example")
TARGET_SETS = [frozenset({t}) for t in TARGETS] + [frozenset(TARGETS)]
A1111_FIELDS = ("positive", "negative", "seed", "steps", "cfg", "sampler", "scheduler")
GENERATION_FIELDS = (*A1111_FIELDS, "denoise", "width", "height")


def _id(targets: frozenset[str]) -> str:
    return "all" if targets == frozenset(TARGETS) else next(iter(targets))


def _save(tmp_path: Path, context: SaveContext, fmt: str, targets: frozenset[str] | None = None) -> SavedFile:
    options = SaveOptions(format=fmt) if targets is None else SaveOptions(format=fmt, targets=targets)
    saved = save_images([pixels()], context, tmp_path, "rt", options, version="9.9.9")[0]
    assert saved.record is not None
    return saved


def _stem(name: str) -> str:
    return name.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def assert_a1111_view(saved: Record, got: Record, fmt: str) -> None:
    for key in A1111_FIELDS:
        assert getattr(got.generation, key) == getattr(saved.generation, key), key
    # Size is the latent size, or the image size when the graph has none (img2img).
    assert got.generation.width == (saved.generation.width or saved.image.width)
    assert got.generation.height == (saved.generation.height or saved.image.height)
    denoise = saved.generation.denoise
    assert got.generation.denoise == (denoise if denoise is not None and denoise < 1 else None)
    checkpoint = saved.first_model("checkpoint")
    assert checkpoint is not None
    # The LoRAs come back from the <lora:name:te:unet> tags appended to the A1111 prompt, with their strengths.
    loras = [("lora", _stem(m.name), m.strength_model, m.strength_clip) for m in saved.loras()]
    want = [("checkpoint", _stem(checkpoint.name), None, None), *loras]
    assert [(m.role, m.name, m.strength_model, m.strength_clip) for m in got.models] == want
    assert got.provenance.capture_mode == "imported"
    assert got.provenance.other["imported_from"] == "a1111"
    assert (got.image.format, got.image.width, got.image.height) == (fmt, saved.image.width, saved.image.height)
    assert got.prompt is None and got.workflow is None


def assert_comfyui_view(saved: Record, got: Record, fmt: str) -> None:
    assert got.prompt == saved.prompt
    assert got.workflow == saved.workflow
    assert got.generation.to_dict() == saved.generation.to_dict()
    assert [p.to_dict() for p in got.passes] == [p.to_dict() for p in saved.passes]
    assert [m.to_dict() for m in got.models] == [m.to_dict() for m in saved.models]
    assert got.provenance.digital_source_type == saved.provenance.digital_source_type
    assert got.provenance.capture_mode == "imported"
    assert got.provenance.other["imported_from"] == "comfyui"
    assert (got.image.format, got.image.width, got.image.height) == (fmt, saved.image.width, saved.image.height)


def _read_or_fail(path: Path, what: str) -> Record:
    try:
        return read(path)
    except ReadError as err:
        pytest.fail(f"LIBRARY FINDING: a file saved with only {what} reads as carrying nothing ({err})")


@pytest.mark.parametrize("name", WORKFLOWS)
@pytest.mark.parametrize("targets", TARGET_SETS, ids=_id)
@pytest.mark.parametrize("fmt", FORMATS)
def test_write_read_round_trip(fmt: str, targets: frozenset[str], name: str, tmp_path: Path) -> None:
    saved = _save(tmp_path, context_for(name), fmt, targets)
    record = saved.record
    assert record is not None
    for kind, suffix in (("sidecar_json", ".json"), ("sidecar_xmp", ".xmp"), ("sidecar_txt", ".txt")):
        if kind in targets:
            assert saved.path.with_name(saved.path.name + suffix) in saved.sidecars

    if targets & {"record", "sidecar_json"}:
        assert read(saved.path).to_dict() == record.to_dict()
    elif targets == {"a1111"}:
        assert_a1111_view(record, read(saved.path), fmt)
    elif targets == {"comfyui"}:
        assert_comfyui_view(record, read(saved.path), fmt)
    elif targets == {"sidecar_txt"}:
        assert_a1111_view(record, _read_or_fail(saved.path, "an infotext .txt sidecar"), fmt)
    elif targets == {"sidecar_xmp"}:
        got = _read_or_fail(saved.path, "an XMP sidecar (which holds the whole record)")
        assert got.to_dict() == record.to_dict()
    elif targets == {"xmp"}:
        got = _read_or_fail(saved.path, "embedded XMP (which holds the generation fields)")
        for key in GENERATION_FIELDS:
            assert getattr(got.generation, key) == getattr(record.generation, key), key
    elif targets == {"c2pa"}:  # no credentials here: nothing signed, nothing else asked for, and it says so
        assert [(p.target, p.status) for p in record.provenance.embedding] == [("c2pa", "omitted")]
        with pytest.raises(ReadError, match="no provenance"):
            read(saved.path)
    elif targets == {"manifest"}:  # nothing in the file: the folder's manifest.jsonl holds the record
        (line,) = read_log(saved.path.parent / MANIFEST_LOG).entries
        assert line["record"] == record.to_dict()
    else:
        pytest.fail(f"no semantics defined for {sorted(targets)}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_default_targets_round_trip_exactly(fmt: str, tmp_path: Path) -> None:
    for name in WORKFLOWS:
        saved = _save(tmp_path / name, context_for(name), fmt)
        assert saved.record is not None
        assert not saved.sidecars, "small workflows fit in the file with the default targets"
        assert read(saved.path).to_dict() == saved.record.to_dict()


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_of_the_sidecar_json_alone_is_the_record(fmt: str, tmp_path: Path) -> None:
    saved = _save(tmp_path, context_for("lora"), fmt, frozenset(TARGETS))
    assert saved.record is not None
    data = json.loads(saved.path.with_name(saved.path.name + ".json").read_text("utf-8"))
    assert data == saved.record.to_dict()


# -- a workflow too large for JPEG's 64 KiB segments ------------------------------------------------------


def big_context(pad: int = 100_000) -> SaveContext:
    api, ui = load_workflow("lora")
    ui = copy.deepcopy(ui)
    ui.setdefault("extra", {})["padding"] = "wide workflow " * (pad // 14)
    return SaveContext(
        prompt=api,
        extra_pnginfo={"workflow": ui},
        save_node_id=save_node_of(api),
        prompt_id="big",
        comfyui_version="0.3.60",
    )


def _placements(record: Record) -> list[dict[str, Any]]:
    return [p.to_dict() for p in record.provenance.embedding]


def test_large_workflow_in_jpeg_moves_to_the_sidecar(tmp_path: Path) -> None:
    context = big_context()
    assert context.workflow is not None
    assert len(json.dumps(context.workflow)) > 64 * 1024
    saved = _save(tmp_path, context, "jpeg")
    record = saved.record
    assert record is not None
    sidecar = saved.path.with_name(saved.path.name + ".json")
    assert saved.sidecars == [sidecar] and sidecar.exists()

    moved = [p for p in _placements(record) if p["status"] == "moved"]
    workflow_moves = [p for p in moved if p["target"] == "comfyui" and "workflow" in (p["reason"] or "")]
    assert workflow_moves and workflow_moves[0]["location"] == "sidecar:json", _placements(record)
    assert "limit" in workflow_moves[0]["reason"]
    record_moves = [p for p in moved if p["target"] == "record"]
    assert record_moves and record_moves[0]["location"] == "sidecar:json" and record_moves[0]["reason"]
    # What did fit is still in place.
    assert {"target": "comfyui", "location": "exif:prompt", "status": "written", "reason": None} in _placements(record)
    assert any(p["target"] == "a1111" and p["status"] == "written" for p in _placements(record))

    got = read(saved.path)
    assert got.to_dict() == record.to_dict()
    assert got.workflow == context.workflow


def test_large_workflow_in_jpeg_without_its_sidecar_reads_partially(tmp_path: Path) -> None:
    saved = _save(tmp_path, big_context(), "jpeg")
    assert saved.record is not None
    saved.path.with_name(saved.path.name + ".json").unlink()
    got = read(saved.path)
    assert any("sidecar" in w and "missing" in w for w in got.provenance.warnings), got.provenance.warnings
    assert got.workflow is None
    assert got.provenance.prompt_id == "big"
    assert got.provenance.embedding == saved.record.provenance.embedding
    for key in ("positive", "negative", "seed", "steps", "cfg", "sampler", "scheduler", "width", "height"):
        assert getattr(got.generation, key) == getattr(saved.record.generation, key), key


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_large_workflow_stays_inside_png_and_webp(fmt: str, tmp_path: Path) -> None:
    """Only JPEG has 64 KiB segments: the same workflow stays in the file elsewhere."""
    saved = _save(tmp_path, big_context(), fmt)
    assert saved.record is not None
    assert saved.sidecars == []
    assert all(p["status"] == "written" for p in _placements(saved.record))
    assert read(saved.path).to_dict() == saved.record.to_dict()


# -- arbitrary text through real files ---------------------------------------------------------------------------

TRICKY = [
    "\n",
    "\r\n",
    " ",
    ",",
    ":",
    '"',
    "\\",
    "\x00",
    "Negative prompt: ",
    "\nSteps: 1, Seed: 2, Size: 3x4",
    "😀",
    "مرحبا",
    "\u202e",
    "Über",
    "ヘ",
    "\ufeff",
    "\u2028",
    "<x:xmpmeta>",
    "]]>",
    "&amp;",
    "</rdf:li>",
]
file_prompts = st.one_of(
    st.text(max_size=200), st.lists(st.sampled_from(TRICKY) | st.text(max_size=6), max_size=10).map("".join)
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(positive=file_prompts, negative=file_prompts)
@pytest.mark.parametrize("fmt", FORMATS)
def test_arbitrary_prompts_survive_every_container(fmt: str, positive: str, negative: str, tmp_path: Path) -> None:
    api, ui = load_workflow("default")
    api = copy.deepcopy(api)
    api["6"]["inputs"]["text"], api["7"]["inputs"]["text"] = positive, negative
    context = SaveContext(prompt=api, extra_pnginfo={"workflow": ui}, save_node_id="9")
    for targets in (frozenset({"a1111"}), frozenset({"comfyui"}), frozenset(TARGETS)):
        folder = tmp_path / f"{len(list(tmp_path.iterdir()))}"
        got = read(_save(folder, context, fmt, targets).path).generation
        assert (got.positive, got.negative) == (positive, negative), sorted(targets)

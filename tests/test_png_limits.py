"""PNG's limits: Pillow's 1 MiB cap on compressed text decides where the record goes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from conftest import context_for
from PIL import Image

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.save import SavedFile

MIB = 1024 * 1024


def _big_workflow_context(size: int) -> SaveContext:
    context = context_for("lora")
    extra = copy.deepcopy(dict(context.extra_pnginfo or {}))
    extra["workflow"]["extra"]["notes"] = "x" * size  # a big note node's text, as users paste
    context.extra_pnginfo = extra
    return context


def _placements(saved: SavedFile) -> list[tuple[str, str, str]]:
    assert saved.record is not None
    return [(p.target, p.location, p.status) for p in saved.record.provenance.embedding]


def test_small_record_is_whole_in_its_chunk(save: Callable[..., SavedFile]) -> None:
    saved = save(context_for("lora"), format="png")
    assert ("record", "png:iTXt:comfyui_provenance", "written") in _placements(saved)
    assert not saved.sidecars
    info = Image.open(saved.path).text
    assert '"$refs"' not in info["comfyui_provenance"]  # self-contained: the graphs are inside
    assert saved.record is not None and read(saved.path).to_dict() == saved.record.to_dict()


def test_record_over_the_cap_refers_to_the_graph_chunks(save: Callable[..., SavedFile]) -> None:
    saved = save(_big_workflow_context(2 * MIB), format="png")
    placements = _placements(saved)
    assert ("record", "png:iTXt:comfyui_provenance", "written") in placements
    assert ("record", "sidecar:json", "moved") in placements
    info = Image.open(saved.path).text  # Pillow (and ComfyUI's loader) still open it
    assert '"$refs"' in info["comfyui_provenance"]
    assert len(info["workflow"]) > 2 * MIB
    assert saved.record is not None and read(saved.path).to_dict() == saved.record.to_dict()
    # Without the sidecar, the chunk and the graph chunks still give the whole record.
    Path(str(saved.path) + ".json").unlink()
    assert saved.record is not None and read(saved.path).to_dict() == saved.record.to_dict()


def test_graphs_off_and_record_over_the_cap_goes_to_the_sidecar(save: Callable[..., SavedFile]) -> None:
    targets = frozenset(TARGETS) - {"comfyui", "sidecar_json", "sidecar_xmp", "sidecar_txt"}
    saved = save(_big_workflow_context(2 * MIB), format="png", targets=targets)
    placements = _placements(saved)
    assert ("record", "sidecar:json", "moved") in placements
    assert [p.name for p in saved.sidecars] == [saved.path.name + ".json"]
    assert saved.record is not None and read(saved.path).to_dict() == saved.record.to_dict()

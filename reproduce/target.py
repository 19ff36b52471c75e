"""What to reproduce: a file's record, or one entry of a V2 run manifest (`MANIFEST.json#INDEX`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..metadata.errors import MetadataError
from ..metadata.parser.parse import WorkflowParser
from ..metadata.read import read
from ..metadata.record import Model, Record
from .client import ReproduceError, mapping
from .manifest import entry_file, split_entry
from .manifest import read as read_manifest

logger = logging.getLogger(__name__)


@dataclass
class Target:
    """The prompt to run again, what it ran with, and the file to compare the result with."""

    label: str
    prompt: dict[str, Any]
    record: Record
    original: Path | None = None
    workflow: dict[str, Any] | None = None
    save_node_id: str | None = None
    batch_index: int = 0
    comfyui_version: str | None = None
    pack_version: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[Model]:
        return self.record.models


def load(spec: str) -> Target:
    """`spec` is an image file, or `MANIFEST.json#INDEX` (0-based, as in the manifest's `images[]`)."""
    entry = split_entry(spec)
    return from_manifest(*entry) if entry is not None else from_file(Path(spec))


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A failure to read `path` as one ReproduceError line that names it."""
    try:
        yield
    except MetadataError as err:
        raise ReproduceError(f"{path}: {err}") from err
    except OSError as err:
        raise ReproduceError(f"{path}: {err.strerror or err}") from err


def from_file(path: Path) -> Target:
    with _reading(path):
        record = read(path)
    if not isinstance(record.prompt, dict) or not record.prompt:
        raise ReproduceError(f"{path}: the file carries no ComfyUI prompt graph to run again")
    prov = record.provenance
    target = Target(
        label=str(path),
        prompt=record.prompt,
        record=record,
        original=path,
        workflow=record.workflow,
        save_node_id=prov.save_node_id or _save_node(record.prompt),
        batch_index=record.image.batch_index or 0,
        comfyui_version=prov.comfyui_version,
        pack_version=prov.generator.version if prov.capture_mode != "imported" else None,
    )
    if prov.save_node_id is None:
        guess = f"; node {target.save_node_id} is the only one that saves" if target.save_node_id else ""
        target.notes.append(f"the record does not say which node saved the file{guess}")
    return target


def from_manifest(path: Path, index: int) -> Target:
    """A manifest entry; its file, where it is still beside the manifest, gives the record and the pixels."""
    with _reading(path):
        manifest = read_manifest(path, schema=False)
    images = manifest["images"]
    if not images:
        raise ReproduceError(f"{path}: the manifest lists no images")
    if index >= len(images) or not isinstance(images[index], dict):
        raise ReproduceError(f"{path}: no image #{index} (the manifest lists {len(images)}, numbered from 0)")
    entry = images[index]
    label = f"{path}#{index}"
    file = entry_file(path.parent, entry)
    info = mapping(manifest["snapshot"].get("runtime_info"))
    if file is not None:
        target = from_file(file)
        target.label = label
    else:
        prompt = entry.get("api_prompt")
        if not isinstance(prompt, dict) or not prompt:
            raise ReproduceError(f"{label}: neither the image file nor its api_prompt is there to run again")
        save = _save_node(prompt)
        record = WorkflowParser().parse(prompt, save)
        target = Target(label=label, prompt=prompt, record=record, save_node_id=save)
        name = entry.get("filename") if isinstance(entry.get("filename"), str) else None
        target.notes.append(f"{name or 'the image'} is not beside the manifest: nothing to compare with")
    _merge_models(target.record, info.get("models"))
    target.comfyui_version = target.comfyui_version or _text(info.get("comfyui_version"))
    target.pack_version = target.pack_version or _text(info.get("pack_version"))
    return target


def _save_node(prompt: Mapping[str, Any]) -> str | None:
    """The one node that looks like a save node, when a manifest entry has no record to say which."""
    saves = [str(k) for k, v in prompt.items() if isinstance(v, dict) and "filename_prefix" in (v.get("inputs") or {})]
    return saves[0] if len(saves) == 1 else None


def _merge_models(record: Record, listed: Any) -> None:
    """Hashes the manifest's runtime_info knows for models the record names without them (a model of the
    run that this entry's graph does not use is not this entry's business)."""
    for item in listed if isinstance(listed, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("hashes"), dict):
            continue
        hashes = {str(k): str(v) for k, v in item["hashes"].items() if isinstance(v, str)}
        for model in record.models:
            if model.role == item.get("role") and model.name == item.get("name"):
                model.hashes = {**hashes, **model.hashes}


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None

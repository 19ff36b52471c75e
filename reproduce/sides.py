"""One side of a diff: a file's record, a whole V2 run manifest, or one manifest entry (`M.json#INDEX`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..metadata.budget import open_regular
from ..metadata.errors import GraphTooLarge, ReadError
from ..metadata.formats.base import EXTENSIONS, sniffers
from ..metadata.parser.parse import WorkflowParser
from ..metadata.read import read
from ..metadata.record import Record
from .diff import environment
from .manifest import entry_file, split_entry
from .manifest import read as read_manifest

logger = logging.getLogger(__name__)

SNIFF_BYTES = 16
# What a record rebuilt from a manifest entry's graph cannot know about the file it describes.
ENTRY_UNKNOWN = frozenset({"capture_mode", "size"})


@dataclass
class Side:
    """What one argument names: a record (a file or an entry) or a whole manifest, never both."""

    label: str
    record: Record | None = None
    manifest: dict[str, Any] | None = None
    # Environment fields this side cannot tell (an entry without its file): left out of the comparison,
    # so a manifest entry never "differs" from its own file in what the manifest never recorded.
    unknown: frozenset[str] = frozenset()


def load(spec: str) -> Side:
    """The side `spec` names; ReadError or ManifestError (one line, the spec not named) when it cannot be read."""
    entry = split_entry(spec)
    if entry is not None:
        path, index = entry
        return entry_side(spec, path, read_manifest(path, schema=False), index)
    path = Path(spec)
    if looks_like_json(path):
        return Side(spec, manifest=read_manifest(path, schema=False))
    return Side(spec, record=read(path))


def looks_like_json(path: Path) -> bool:
    """Whether the file starts like JSON: a manifest is told by content, never by its name."""
    try:
        with open_regular(path) as fp:
            head = fp.read(SNIFF_BYTES)
    except ReadError:
        return False  # read() opens it again and says why it cannot
    if any(fmt.sniff(head) for fmt in sniffers()):
        return False
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith((b"{", b"["))


def entry(manifest: dict[str, Any], index: int) -> dict[str, Any]:
    images: list[Any] = manifest["images"]
    if index >= len(images):
        raise ReadError(f"no image {index} in the manifest (it lists {len(images)}, numbered from 0)")
    item = images[index]
    if not isinstance(item, dict):
        raise ReadError(f"the manifest's images[{index}] is not a JSON object")
    return item


def entry_side(label: str, path: Path, manifest: dict[str, Any], index: int) -> Side:
    """An entry as its file's record when the file lies beside the manifest, else rebuilt from its graph."""
    item = entry(manifest, index)
    saved = entry_file(path.parent, item)
    if saved is not None:
        return Side(label, record=read(saved))
    record = rebuilt(manifest["snapshot"], item, index)
    unknown = ENTRY_UNKNOWN | {name for name, value in environment(record).items() if value is None}
    return Side(label, record=record, unknown=frozenset(unknown))


def rebuilt(snapshot: dict[str, Any], item: dict[str, Any], index: int) -> Record:
    """The entry's graph parsed as the save node would, with the seed and prompts the run really used."""
    prompt = item.get("api_prompt")
    if prompt is None:
        prompt = snapshot.get("api_params")  # an entry may leave its graph to the snapshot's
    if not isinstance(prompt, dict):
        raise ReadError(f"the manifest's images[{index}] has no api_prompt (nor the snapshot an api_params graph)")
    try:
        record = WorkflowParser().parse(prompt, save_node_id=None, workflow=None)
    except GraphTooLarge as err:
        raise ReadError(str(err)) from err
    except Exception as err:  # a hostile graph must end in a ReadError, whatever the parser trips on
        raise ReadError(f"images[{index}].api_prompt could not be parsed ({type(err).__name__}: {err})") from err
    gen = record.generation
    if isinstance(item.get("seed"), int) and not isinstance(item["seed"], bool):
        gen.seed = item["seed"]
    gen.positive = item["prompt"] if isinstance(item.get("prompt"), str) else gen.positive
    gen.negative = item["negative"] if isinstance(item.get("negative"), str) else gen.negative
    if isinstance(item.get("filename"), str):
        record.image.filename = item["filename"]
        sniffers()  # fills EXTENSIONS
        record.image.format = EXTENSIONS.get(PurePosixPath(item["filename"]).suffix.lower())
    with_runtime_info(record, snapshot.get("runtime_info"))
    return record


def with_runtime_info(record: Record, info: Any) -> None:
    """The versions and model hashes the manifest's snapshot recorded, put where a file's record has them."""
    if not isinstance(info, dict):
        return
    version, pack = info.get("comfyui_version"), info.get("pack_version")
    record.provenance.comfyui_version = version if isinstance(version, str) else None
    record.provenance.generator.version = pack if isinstance(pack, str) else None
    models = info.get("models")
    listed = models if isinstance(models, list) else []
    hashes = {
        (m.get("role"), m.get("name")): m["hashes"]
        for m in listed
        if isinstance(m, dict) and isinstance(m.get("hashes"), dict)
    }
    for model in record.models:
        found = hashes.get((model.role, model.name))
        if found is not None:
            model.hashes = {str(k): str(v) for k, v in found.items()}

"""`manifest build`: a folder's manifest.jsonl (the `manifest` save target's log) compacted into a V2 manifest.

What a log cannot know is null in the snapshot: `resolved_template`, `api_params` and `variations`
(no template made these files), and `generation_params.mode` and `total_combinations`.
`seed_mode` is read off the seeds (one seed for all: fixed; each one more than the last:
progressive; else random), `base_seed` is the first image's seed and `num_images` the count.
Each image's `api_prompt` is its record's prompt (the executed graph), its digest the line's.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..metadata.errors import ReadError
from ..metadata.manifest_log import NAME, read_log
from ..metadata.read import read
from ..metadata.record import Record
from ..metadata.shape import record_from_data
from . import manifest

logger = logging.getLogger(__name__)


@dataclass
class Built:
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def logs_in(folder: Path, recursive: bool) -> list[Path]:
    """`folder`/manifest.jsonl, and with `recursive` every subfolder's, in name order."""
    if not recursive:
        return [folder / NAME] if (folder / NAME).is_file() else []
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if NAME in names:
            found.append(Path(root) / NAME)
    return found


def build(folder: Path, *, recursive: bool = False) -> Built:
    """The V2 manifest of every file the logs list, in the order they were saved."""
    logs = logs_in(folder, recursive)
    if not logs:
        where = f"{folder} or its subfolders" if recursive else str(folder)
        raise ReadError(f"no {NAME} in {where} (save with the manifest target to make one)")
    warnings: list[str] = []
    images: list[dict[str, Any]] = []
    records: list[Record] = []
    for log_path in logs:
        log = read_log(log_path)
        warnings += [f"{log_path.parent}: {w}" for w in log.warnings]
        for line in log.entries:
            record = _record(log_path.parent, line, warnings)
            if record is None:
                continue
            records.append(record)
            digest = line.get("record_digest")
            images.append(
                manifest.image_entry(
                    line["filename"],
                    str(line.get("subfolder") or ""),
                    record,
                    api_prompt=record.prompt,
                    digest=digest if isinstance(digest, str) and digest.startswith("sha256:") else None,
                )
            )
    first = records[0] if records else None
    seeds = [i["seed"] for i in images]
    snapshot = manifest.snapshot(
        runtime_info=manifest.runtime_info(
            first.provenance.comfyui_version if first else None,
            first.provenance.generator.version if first else None,
            records,
        ),
        resolved_template=None,
        generation_params=manifest.generation_params(
            None, seed_mode(seeds), seeds[0] if seeds else None, len(images), None
        ),
        api_params=None,
        variations=None,
    )
    return Built(manifest.check({"snapshot": snapshot, "images": images}), warnings)


def seed_mode(seeds: list[int | None]) -> str | None:
    """What the seeds look like: fixed, progressive or random; None with no seed known."""
    known = [s for s in seeds if s is not None]
    if not known or len(known) != len(seeds):
        return None
    if all(s == known[0] for s in known):
        return "fixed"
    if all(b == a + 1 for a, b in itertools.pairwise(known)):
        return "progressive"
    return "random"


def _record(folder: Path, line: dict[str, Any], warnings: list[str]) -> Record | None:
    """The line's record, or the file's where the line points at it (records over the line's budget)."""
    body = line["record"]
    name = line["filename"]
    if not (folder / name).exists():
        warnings.append(f"{folder / name}: listed in {NAME} but no longer there (kept in the manifest)")
    try:
        if "$ref" in body:
            return read(folder / name)
        return record_from_data(body, f"{NAME}'s record of {name}")
    except ReadError as err:
        warnings.append(f"{folder / name}: left out: {err}")
        logger.warning("provenance: %s: left out of the manifest: %s", folder / name, err)
        return None

"""The save path shared by the node and the CLI: name, plan, write sidecars, encode once.

For each image: pick a free file name, build every target's payload from one record, let the
format plan what fits where (`prepare`, which `provenance convert` shares), stage the sidecars,
encode the pixels with the planned metadata, and publish the image under its name with an
exclusive hard link (files.Publication: concurrent saves never collide, a kill never leaves a
half-written or empty image, and a later run completes or removes what a killed one staged).
A failure in any metadata step logs one warning, lands in provenance.warnings, and the image
is still written, at worst with what ComfyUI core would have written. A runtime block over its
inline budget goes to its own sidecar, `<image>.runtime.json`, and the record everywhere carries
a pointer to it (metadata/runtime.py).
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image as PILImage

from . import files, infotext, manifest_log
from . import runtime as runtime_merge
from .capture import SaveContext, build_record, short
from .credentials import signer
from .formats import sidecar, xmp
from .formats.base import (
    A1111,
    C2PA,
    COMFYUI,
    DEFAULT_TARGETS,
    SIDECAR_JSON,
    SIDECAR_TXT,
    SIDECAR_XMP,
    TARGETS,
    Format,
    Payloads,
    Plan,
    by_name,
)
from .parser.parse import fill_size_from_pixels
from .record import Image, Model, Record

logger = logging.getLogger(__name__)

FORMAT_ALIASES = {"jpg": "jpeg"}
MAX_NAME_ATTEMPTS = 10_000


@dataclass(frozen=True)
class SaveOptions:
    format: str = "png"
    quality: int = 95
    lossless: bool = False
    compress_level: int = 4
    targets: frozenset[str] = DEFAULT_TARGETS
    disable_metadata: bool = False
    # Append the LoRAs to the A1111 prompt as `<lora:name:w>` tags (the record keeps the literal prompt).
    lora_tags: bool = True

    def __post_init__(self) -> None:
        fmt = FORMAT_ALIASES.get(self.format.lower(), self.format.lower())
        object.__setattr__(self, "format", fmt)
        by_name(fmt)  # raises ValueError listing the allowed formats
        unknown = set(self.targets) - set(TARGETS)
        if unknown:
            raise ValueError(f"unknown targets {sorted(unknown)}; allowed: {', '.join(TARGETS)}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1..100, got {self.quality}")


@dataclass
class SavedFile:
    path: Path
    subfolder: str
    record: Record | None
    sidecars: list[Path] = field(default_factory=list)


# Fills Model.hashes (and header metadata) in place for the models it is given.
Hasher = Callable[[list[Model]], None]
# (prefix, width, height) -> (folder, base file name, first counter, subfolder)
Namer = Callable[[str, int, int], tuple[Path, str, int, str]]


def default_namer(output_dir: Path) -> Namer:
    """ComfyUI's get_save_image_path naming, without ComfyUI: `<prefix>_<counter:05>_.<ext>`."""

    def name(prefix: str, width: int, height: int) -> tuple[Path, str, int, str]:
        prefix = prefix.replace("%width%", str(width)).replace("%height%", str(height))
        subfolder, _, base = prefix.replace("\\", "/").rpartition("/")
        folder = (output_dir / subfolder).resolve()
        if output_dir.resolve() not in (folder, *folder.parents):
            raise ValueError(f"filename_prefix {prefix!r} points outside the output folder")
        folder.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(re.escape(base) + r"_(\d+)_?\.")
        counters = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))]
        return folder, base, max(counters, default=0) + 1, subfolder

    return name


def free_name(folder: Path, base: str, counter: int, ext: str) -> tuple[Path, int]:
    """The first `<base>_<counter>_.<ext>` not taken yet, and its counter (claimed later, when published)."""
    for attempt in range(MAX_NAME_ATTEMPTS):
        path = folder / f"{base}_{counter + attempt:05}_{ext}"
        if not os.path.lexists(path):
            return path, counter + attempt
    raise OSError(f"no free file name for {base!r} in {folder} after {MAX_NAME_ATTEMPTS} tries")


def to_pil(pixels: np.ndarray) -> PILImage.Image:
    """HxWxC uint8 (or 0..1 floats, as ComfyUI tensors hold) to a Pillow image."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        array = np.clip(array * 255.0, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return PILImage.fromarray(array)


@dataclass
class _Job:
    """One image on its way to disk."""

    fmt: Any
    pil: PILImage.Image
    options: SaveOptions
    path: Path
    subfolder: str
    comfy: list[tuple[str, str]]

    def pixels_only(self, handle: Any) -> None:
        self.fmt.encode_pixels(self.pil, self.options, handle)


def save_images(
    images: Sequence[np.ndarray],
    context: SaveContext,
    output_dir: Path,
    filename_prefix: str,
    options: SaveOptions,
    *,
    version: str | None = None,
    namer: Namer | None = None,
    hasher: Hasher | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> list[SavedFile]:
    """Save a batch; returns one SavedFile per image, in order.

    `hasher` fills the hashes of the record's models (those upstream of the save node), once per
    batch; without one the record names its models but carries no hashes. `runtime` is the run's
    snapshot (hooks/session.py's contract), merged into the record when given.
    """
    fmt = by_name(options.format)
    pils = [to_pil(px) for px in images]
    if not pils:
        return []
    width, height = pils[0].size
    folder, base, counter, subfolder = (namer or default_namer(output_dir))(filename_prefix, width, height)
    context = context.scrubbed()
    base_record = None if options.disable_metadata else build_record(context, version, runtime=runtime)
    if base_record is not None:
        fill_size_from_pixels(base_record, width, height)
    if base_record is not None and hasher is not None:
        hash_record(base_record, hasher)
    comfy = [] if options.disable_metadata else list(context.chunks or [])
    files.sweep_once(folder)
    saved = []
    for index, pil in enumerate(pils):
        # Core counts on per image (img_0_00001_, img_1_00002_), %batch_num% or not.
        name = base.replace("%batch_num%", str(index))
        for _ in range(MAX_NAME_ATTEMPTS):
            path, counter = free_name(folder, name, counter, fmt.extensions[0])
            job = _Job(fmt, pil, options, path, subfolder, comfy)
            try:
                if base_record is None:
                    saved.append(_write_pixels(job))
                else:
                    record = _for_image(base_record, pil, index, len(pils), fmt=fmt.name, name=path.name)
                    saved.append(_write_one(job, record))
                manifest_log.note(saved[-1], options.targets)  # guarded: a failure is a warning
                break
            except files.NameTaken:  # another save published this name first: take the next one
                counter += 1
        else:
            raise OSError(f"no free file name for {name!r} in {folder} after {MAX_NAME_ATTEMPTS} tries")
        counter += 1
    return saved


def hash_record(record: Record, hasher: Hasher) -> None:
    """Fill the record's model hashes; a failure or an unknown file becomes a warning, never an error.

    Run again on a record (convert filling pending hashes), it replaces what earlier runs warned.
    """
    stale = tuple(f"{m.role} {m.name}: hash " for m in record.models)
    record.provenance.warnings = [w for w in record.provenance.warnings if not w.startswith(stale)]
    try:
        hasher(record.models)
    except Exception as err:  # hashing never fails the save
        logger.warning("provenance: hashing models failed: %s", err)
        record.warn(short(f"model hashes unknown: {err}"))
        return
    for model in record.models:
        if model.other.get("hash_error"):
            record.warn(short(f"{model.role} {model.name}: hash unknown ({model.other['hash_error']})"))
        elif model.other.get("hash_pending"):
            record.warn(
                short(
                    f"{model.role} {model.name}: hash still being computed when saved "
                    "(a later save, or `provenance convert --models-dir`, fills it)"
                )
            )


def _for_image(base: Record, pil: PILImage.Image, index: int, count: int, *, fmt: str, name: str) -> Record:
    record = copy.copy(base)
    record.provenance = copy.deepcopy(base.provenance)
    record.image = Image(
        format=fmt, width=pil.width, height=pil.height, batch_index=index, batch_size=count, filename=name
    )
    return record


def prepare(
    record: Record,
    comfy: list[tuple[str, str]],
    fmt: Format,
    targets: frozenset[str],
    spill: runtime_merge.Spill | None = None,
    *,
    lora_tags: bool = True,
) -> tuple[Payloads, Plan]:
    """Every target's payload from one record, where the format puts each, and which sidecars it needs.

    The record's embedding list becomes the plan's placements (sidecars included), so the record
    a file embeds says where everything went. Shared by save_images and `provenance convert`.
    `spill` is the runtime block runtime.spill moved out of the record, if it did.
    """
    payloads = Payloads(record=record, comfy=comfy if COMFYUI in targets else [])
    if A1111 in targets:
        payloads.infotext = infotext.build(record, with_lora_tags=lora_tags)
    plan = fmt.plan(payloads, targets)
    if spill is not None:
        plan.place(runtime_merge.TARGET, runtime_merge.SIDECAR, "moved", spill.reason)
    record.provenance.embedding = plan.placements
    if C2PA in targets:
        plan.seal = signer.plan(record, plan.placements, fmt.name)
        if plan.seal is not None and not plan.seal.inline:
            plan.needs_sidecar_json = True  # the manifest signs its digest; the sidecar holds it
    _plan_sidecars(plan, targets)
    return payloads, plan


def _write_pixels(job: _Job) -> SavedFile:
    publication = files.Publication(job.path)
    publication.stage_image(job.pixels_only)
    publication.publish()
    return SavedFile(path=job.path, subfolder=job.subfolder, record=None)


def _write_one(job: _Job, record: Record) -> SavedFile:
    """Sidecars and image staged, then published together; a metadata failure falls back, never fails.

    One encode writes pixels and metadata together. (Encoding on a helper thread while the metadata
    is built was measured and lost: Pillow's JPEG encoder keeps the GIL, and the PNG encoder takes
    it back after every block, so the two threads only queue for it.)
    """
    spill = runtime_merge.spill(record, sidecar.path_for(job.path, runtime_merge.SIDECAR).name)
    try:
        tags = job.options.lora_tags
        payloads, plan = prepare(record, job.comfy, job.fmt, job.options.targets, spill, lora_tags=tags)
    except Exception as err:
        if spill is not None:
            record.runtime = spill.block  # the fallback's JSON sidecar holds it whole
        return _fallback(job, record, f"planning metadata failed: {err}")
    publication = files.Publication(job.path)
    try:
        stage(
            publication,
            record,
            payloads,
            plan,
            spill,
            lambda fp: job.fmt.encode(job.pil, payloads, plan, job.options, fp),
        )
    except Exception as err:
        publication.abandon()
        return _fallback(job, record, f"embedding metadata failed: {err}")
    written = publication.publish()
    return SavedFile(path=job.path, subfolder=job.subfolder, record=record, sidecars=written)


def stage(  # noqa: PLR0917 - the save's own state, passed on as the two save paths hold it
    publication: files.Publication,
    record: Record,
    payloads: Payloads,
    plan: Plan,
    spill: runtime_merge.Spill | None,
    encode: Callable[[BinaryIO], Any],
) -> None:
    """Stage the sidecars, then the file: encoded with every target, then signed when the plan seals it.

    A signature that fails leaves the file unsigned, never unsaved: everything is staged again with
    the record saying why (so the record, its sidecar and the file agree).
    """
    write_sidecars(publication.image, record, payloads, plan, spill, put=publication.add_sidecar)
    seal = plan.seal
    if seal is None:
        publication.stage_image(encode)
        return
    try:
        publication.stage_image(seal.wrap(encode))
    except signer.SealError as err:
        logger.warning("provenance: %s not signed: %s", publication.image.name, err)
        publication.abandon()
        seal.failed(err)
        plan.seal = None
        write_sidecars(publication.image, record, payloads, plan, spill, put=publication.add_sidecar)
        publication.stage_image(encode)


def _plan_sidecars(plan: Plan, targets: frozenset[str]) -> None:
    wanted = {
        "sidecar:txt": SIDECAR_TXT in targets or plan.needs_sidecar_txt,
        "sidecar:xmp": SIDECAR_XMP in targets or plan.needs_sidecar_xmp,
        "sidecar:json": SIDECAR_JSON in targets or plan.needs_sidecar_json,
    }
    for kind, on in wanted.items():
        if on:
            plan.place(kind.replace(":", "_"), kind)


def write_sidecars(
    path: Path,
    record: Record,
    payloads: Payloads,
    plan: Plan,
    spill: runtime_merge.Spill | None = None,
    *,
    put: Callable[[Path, bytes], None] = files.write_atomic,
) -> list[Path]:
    """The runtime block, text and XMP first, the JSON record last, so it reports how the others went.

    `put` writes one file (atomically by default; a Publication stages it instead).
    """
    written = []
    for placement in sorted(
        (p for p in plan.placements if p.target.startswith("sidecar_") or p.location == runtime_merge.SIDECAR),
        key=lambda p: p.location == "sidecar:json",
    ):
        target = sidecar.path_for(path, placement.location)
        try:
            if placement.location == runtime_merge.SIDECAR:
                if spill is None:
                    continue
                data = sidecar.json_bytes(spill.block)
            elif placement.location == "sidecar:txt":
                data = (payloads.infotext or infotext.build(record)).encode("utf-8")
            elif placement.location == "sidecar:xmp":
                data = xmp.build(record, record_json=record.to_json())
            else:
                data = sidecar.record_bytes(record)
            put(target, data)
            written.append(target)
        except Exception as err:
            logger.warning("provenance: could not write %s: %s", target.name, err)
            placement.status, placement.reason = "failed", short(str(err))
            record.warn(short(f"sidecar {target.name} not written: {err}"))
    return written


def _fallback(job: _Job, record: Record, message: str) -> SavedFile:
    """Save with what core would have written, and keep the full record in the JSON sidecar.

    Only when even the pixels cannot be written (a full disk) does the save fail, leaving nothing behind.
    """
    logger.warning("provenance: %s; saving %s with ComfyUI core's metadata only", message, job.path.name)
    record.warn(short(message))
    payloads = Payloads(record=record, comfy=job.comfy if COMFYUI in job.options.targets else [])
    publication = files.Publication(job.path)
    try:
        publication.add_sidecar(sidecar.path_for(job.path, "sidecar:json"), sidecar.record_bytes(record))
    except Exception as err:
        logger.warning("provenance: the fallback JSON sidecar failed too: %s", err)
    try:
        publication.stage_image(lambda fp: job.fmt.encode_core(job.pil, payloads, job.options, fp))
    except Exception as err:
        logger.warning("provenance: core metadata failed too (%s); saving pixels only", err)
        try:
            publication.stage_image(job.pixels_only)
        except BaseException:
            publication.abandon()
            raise
    sidecars = publication.publish()
    return SavedFile(path=job.path, subfolder=job.subfolder, record=record, sidecars=sidecars)

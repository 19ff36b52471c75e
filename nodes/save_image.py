"""What "Save Image (Provenance)" does, shared by the V3 node and its V1 fallback."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

import numpy as np

from .. import __version__, compat
from ..metadata import settings
from ..metadata.capture import SaveContext, short
from ..metadata.formats.base import DEFAULT_TARGETS, TARGETS, parse_targets
from ..metadata.hashing import hash_models, shared_background, shared_cache, wait_cap
from ..metadata.record import Model, Placement, Record
from ..metadata.save import SavedFile, SaveOptions, save_images

logger = logging.getLogger(__name__)
# The model-hash waits of the save running in this context, for run()'s debug line: a ContextVar, so two
# saves running at once (two ComfyUI instances in one process, a test's threads) never share one.
_hash_waits: ContextVar[list[float] | None] = ContextVar("provenance_hash_waits", default=None)

NODE_ID = "ProvenanceSaveImage"
DISPLAY_NAME = "Save Image (Provenance)"
CATEGORY = "image/provenance"
DESCRIPTION = (
    "Saves images like Save Image, and makes each file carry how it was made: A1111 parameters "
    "(Civitai, A1111/Forge readers), ComfyUI's prompt and workflow (drag-and-drop reloads it), "
    "EXIF, XMP/IPTC AI labels, and the full provenance record, with sidecars where a format is "
    "too small. Honours ComfyUI's --disable-metadata."
)
FORMATS = ["png", "jpeg", "webp"]
# The websocket event the web panel shows when a save could not put everything where it was asked to.
FALLBACK_EVENT = "provenance.fallback"
# How the save's fallback (metadata/save.py, metadata/media.py) words it when no metadata could be embedded.
EMBED_FAILED = ("embedding metadata failed", "planning metadata failed")
DEFAULT_TARGET_LIST = [t for t in TARGETS if t in DEFAULT_TARGETS]
DEFAULT_PREFIX = "ComfyUI"
# What an input left out of the prompt means (they are optional, so SaveImage's prompts work as they are).
DEFAULTS: dict[str, Any] = {"format": "png", "quality": 95, "lossless": False}
TOOLTIPS = {
    "images": "The images to save.",
    "filename_prefix": "Prefix for the file name, as in Save Image: may contain a subfolder and %width%, "
    "%height%, %date% tokens.",
    "format": "png keeps every byte of metadata inline; jpeg and webp are smaller; what does not fit "
    "a JPEG (64 KB segments) goes to a JSON sidecar.",
    "quality": "JPEG/WEBP quality (1-100). Ignored for PNG.",
    "lossless": "Lossless WEBP. Ignored for PNG and JPEG.",
    "targets": "Where the metadata goes: a1111 (parameters/UserComment), comfyui (prompt+workflow), "
    "record (canonical JSON, embedded), xmp (IPTC/Dublin Core), sidecar_json/sidecar_xmp/sidecar_txt "
    "(files beside the image), manifest (a line per file in the folder's manifest.jsonl, for "
    "`provenance manifest build`). A JSON sidecar is also written when something does not fit.",
    "lora_tags": "Append the LoRAs to the A1111 prompt as <lora:name:weight> tags, as A1111 writes them, so "
    "Civitai and A1111-style readers see each LoRA with its weight. The record and ComfyUI's own prompt/workflow "
    "keep the literal prompt either way.",
    "prefer_runtime": "Prefer runtime capture: merge what the executor really saw (seeds drawn at run time, "
    "switch choices, values custom nodes computed) into the record, recording where it differed from the "
    "graph. Only matters when ComfyUI was started with PROVENANCE_HOOKS=1, which installs the hooks; "
    "otherwise, or when off, the record comes from the graph alone.",
    "options": "Per-run settings as a JSON object, e.g. " + settings.OPTIONS_EXAMPLE + ". They apply to this save "
    "only and win over the inputs above of the same name. Keys: " + ", ".join(settings.PER_RUN) + ". Empty: "
    "the settings file and PROVENANCE_* variables apply.",
}


def comfyui_hasher(models: list[Model]) -> None:
    """Hash the record's models where ComfyUI loads them, cached in ComfyUI's user directory.

    The hashing runs on the background hasher, which the prompt handler usually started when the
    prompt was posted; the save waits at most the `hash_wait_s` setting for what is still missing.
    """
    cache = shared_cache(compat.hash_cache_directory())
    background, locator = shared_background(cache), compat.model_locator()
    started = time.perf_counter()
    hash_models(models, locator, cache, background=background, wait_s=wait_cap())
    waits = _hash_waits.get()
    if waits is not None:
        waits.append((time.perf_counter() - started) * 1000)


def runtime_snapshot(prompt_id: str | None) -> dict[str, Any] | None:
    """The hook session's snapshot of this prompt; None when the hooks are absent, off or have none."""
    if prompt_id is None:
        return None
    try:
        from ..hooks import session
    except ImportError:
        return None
    try:
        snapshot = session.snapshot(prompt_id)
    except Exception as err:  # runtime capture is extra: without it the record comes from the graph
        logger.warning("provenance: no runtime snapshot for prompt %s: %s", prompt_id, err)
        return None
    return snapshot if isinstance(snapshot, dict) else None


def mark_used(prompt_id: str, save_node_id: str) -> None:
    """Tell the hook session this save node is done with the prompt, so the session can be released."""
    try:
        from ..hooks import session
    except ImportError:
        return
    try:
        session.mark_used(prompt_id, save_node_id)
    except Exception as err:
        logger.warning("provenance: could not mark prompt %s's runtime capture used: %s", prompt_id, err)


def _arrays(images: Any) -> list[np.ndarray]:
    return [img.cpu().numpy() if hasattr(img, "cpu") else np.asarray(img) for img in images]


def run(
    *,
    images: Any,
    filename_prefix: str,
    format: str,
    quality: int,
    lossless: bool,
    targets: str | Iterable[str] | None,
    prompt: Mapping[str, Any] | None,
    extra_pnginfo: Mapping[str, Any] | None,
    unique_id: str | None,
    prefer_runtime: bool | None = None,
    lora_tags: bool | None = None,
    options: str | Mapping[str, Any] | None = None,
) -> list[dict[str, str]]:
    """Save the batch; returns the UI preview entries core's SaveImage returns (see with_session).

    An input left out (None) takes the settings' value; `options` overrides settings for this save."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    disabled = compat.metadata_disabled()

    def save(context: SaveContext, snapshot: Mapping[str, Any] | None) -> list[SavedFile]:
        chosen = SaveOptions(
            format=format,
            quality=quality,
            lossless=lossless,
            targets=node_targets(targets),
            disable_metadata=disabled,
            lora_tags=node_value("lora_tags", lora_tags) is not False,
        )
        return save_images(
            _arrays(images),
            context,
            compat.output_directory(),
            filename_prefix,
            chosen,
            version=__version__,
            namer=compat.save_namer(),
            hasher=comfyui_hasher,
            runtime=snapshot,
        )

    started, waits = time.perf_counter(), list[float]()
    token = _hash_waits.set(waits)
    try:
        saved = with_session(
            prompt,
            extra_pnginfo,
            unique_id,
            prefer_runtime=prefer_runtime,
            disabled=disabled,
            save=save,
            options=options,
        )
    finally:
        _hash_waits.reset(token)
    # benchmarks/first_save.py reads this line (PROVENANCE_LOG_LEVEL=DEBUG shows it in ComfyUI's log).
    logger.debug(
        "provenance: saved %d file(s) in %.1f ms (%.1f ms waiting for model hashes)",
        len(saved),
        (time.perf_counter() - started) * 1000,
        sum(waits),
    )
    return previews(saved)


def previews(saved: list[SavedFile]) -> list[dict[str, str]]:
    """The UI entries core's save nodes return, one per file."""
    return [{"filename": f.path.name, "subfolder": f.subfolder, "type": "output"} for f in saved]


def with_session(
    prompt: Mapping[str, Any] | None,
    extra_pnginfo: Mapping[str, Any] | None,
    unique_id: str | None,
    *,
    prefer_runtime: bool | None,
    disabled: bool,
    save: Callable[[SaveContext, Mapping[str, Any] | None], list[SavedFile]],
    options: str | Mapping[str, Any] | None = None,
) -> list[SavedFile]:
    """`save` with the run's context and, with `prefer_runtime` (None: the input was left out, the setting
    decides; on by default), the hook session's snapshot; the session is told afterwards that this save
    node is done with the prompt, merged or not, whatever happened.

    `options` (the node's input: a JSON object of per-run settings) is applied with settings.override
    around all of it, so it changes what this save reads and nothing else; bad JSON or an unknown key
    fails the node with a ValueError listing the allowed keys. The engine reports of the sampler nodes
    upstream (engine_reports) go into the record as it is built. With the `catalogue` setting on (and
    metadata not disabled) the saved files are queued for the catalogue's background writer. When
    something fell back (fallback_event), the browser is told through ComfyUI's websocket."""
    prompt_id = compat.current_prompt_id()
    context = SaveContext(
        prompt=prompt,
        extra_pnginfo=extra_pnginfo,
        save_node_id=str(unique_id) if unique_id is not None else None,
        prompt_id=prompt_id,
        comfyui_version=compat.comfyui_version(),
        amend=engine_reports(prompt, unique_id, prompt_id),
    )
    try:
        with settings.override(**settings.parse_overrides(options)):
            wanted = node_value("prefer_runtime", prefer_runtime) is not False
            snapshot = runtime_snapshot(prompt_id) if wanted and not disabled else None
            saved = save(context, snapshot)
            if not disabled and settings.current().catalogue:
                catalogue_saved(saved)
            notify_fallback(saved, prompt_id, context.save_node_id, disabled)
            return saved
    finally:
        if prompt_id is not None and context.save_node_id is not None:
            mark_used(prompt_id, context.save_node_id)  # the session waits for each save node


def engine_reports(
    prompt: Mapping[str, Any] | None, unique_id: str | None, prompt_id: str | None
) -> Callable[[Record], None] | None:
    """What the record gets from the reports of our sampler nodes upstream of this save (engines/report.py):
    record.extra["engines"] and their effective parameters, found even when ComfyUI served a sampler from its
    cache, hooks or not. None when there are none; never raises."""
    try:
        from ..engines import report
    except ImportError:
        return None
    return report.amender(prompt, str(unique_id) if unique_id is not None else None, prompt_id)


def catalogue_saved(saved: list[SavedFile]) -> None:
    """Hand the saved files to the catalogue's background writer (never blocks; a failure is a warning)."""
    try:
        from ..catalogue import writer

        writer.shared(writer.location(compat.user_directory())).submit([str(f.path) for f in saved])
    except Exception as err:  # the catalogue is extra: the files are saved whatever happens here
        logger.warning("provenance: saved files not queued for the catalogue: %s", err)


def notify_fallback(saved: list[SavedFile], prompt_id: str | None, node_id: str | None, disabled: bool) -> None:
    """Send FALLBACK_EVENT to the browser when something fell back (never raises: the files are saved)."""
    try:
        event = fallback_event(saved, prompt_id, node_id, disabled)
        if event is not None:
            compat.send_event(FALLBACK_EVENT, event)
    except Exception as err:
        logger.warning("provenance: the fallback event was not sent: %s", err)


def fallback_event(
    saved: list[SavedFile], prompt_id: str | None, node_id: str | None, disabled: bool
) -> dict[str, Any] | None:
    """{"prompt_id", "node_id", "files": [{filename, subfolder, type}], "reasons": [{kind, detail}]} of the
    files whose metadata did not all go where asked; None when nothing fell back."""
    files: list[dict[str, str]] = []
    reasons: list[dict[str, str]] = []
    for file in saved:
        found = [{"kind": "metadata_disabled", "detail": "ComfyUI runs with --disable-metadata: pixels only"}]
        if not disabled:
            found = record_fallbacks(file.record) if file.record is not None else []
        if found:
            files.append({"filename": file.path.name, "subfolder": file.subfolder, "type": "output"})
            reasons.extend(r for r in found if r not in reasons)
    if not files:
        return None
    return {"prompt_id": prompt_id, "node_id": node_id, "files": files, "reasons": reasons}


def record_fallbacks(record: Record) -> list[dict[str, str]]:
    """What the saved record says fell back: a target moved to a sidecar or not written, the embedding that
    failed as a whole, a model hash still pending. Each {"kind", "detail"} (one line)."""
    found = [("embed_failed", w) for w in record.provenance.warnings if w.startswith(EMBED_FAILED)]
    found.extend(r for p in record.provenance.embedding if (r := _placement_fallback(p)) is not None)
    found.extend(
        ("hash_pending", f"{m.role} {m.name}: hash still being computed when saved")
        for m in record.models
        if m.other.get("hash_pending")
    )
    return [{"kind": kind, "detail": short(" ".join(detail.split()))} for kind, detail in found]


def _placement_fallback(p: Placement) -> tuple[str, str] | None:
    why = f": {p.reason}" if p.reason else ""
    to_sidecar = p.location.startswith("sidecar:") and not p.target.startswith("sidecar_")
    if p.status == "moved" or (p.status == "written" and to_sidecar):
        return "sidecar", f"{p.target} went to {p.location}{why}"
    if p.status == "written":
        return None
    if p.status == "failed":
        return "embed_failed", f"{p.target} ({p.location}) failed{why}"
    return "other", f"{p.target} ({p.location}) {p.status}{why}"


def node_value(key: str, given: Any) -> Any:
    """A node input's value: an override naming `key` (the node's `options`) wins, then the input as the
    prompt gave it, then the settings (the input was left out of the prompt)."""
    if given is None or key in settings.overridden():
        return getattr(settings.current(), key)
    return given


def node_targets(given: str | Iterable[str] | None) -> frozenset[str]:
    """The `targets` input the same way; ValueError naming the allowed targets for an unknown one.

    An empty selection counts as left out (the settings' targets): the frontend gives a newly added
    node's multi-select no value at all (1.49.6 drops the input's default), and a save node that
    silently embeds nothing is the one failure this pack exists to prevent. Pixels only is ComfyUI's
    --disable-metadata."""
    chosen = given if given is None or isinstance(given, str) else list(given)
    if chosen is not None and not (chosen.strip() if isinstance(chosen, str) else chosen):
        logger.debug("provenance: the node's targets input is empty: the settings' targets apply")
        chosen = None
    return parse_targets(node_value("targets", chosen))

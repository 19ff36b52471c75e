"""What "Save Image (Provenance)" does, shared by the V3 node and its V1 fallback."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .. import __version__, compat
from ..metadata.capture import SaveContext
from ..metadata.formats.base import DEFAULT_TARGETS, TARGETS, parse_targets
from ..metadata.hashing import hash_models, shared_background, shared_cache, wait_cap
from ..metadata.parser.rules import set_user_rules_dir
from ..metadata.record import Model
from ..metadata.save import SavedFile, SaveOptions, save_images

logger = logging.getLogger(__name__)
# The last save's timing, for the debug line below (one save runs at a time in ComfyUI's worker).
_timing: dict[str, float] = {"hash_wait_ms": 0.0}

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
    "(files beside the image). A JSON sidecar is also written when something does not fit.",
    "lora_tags": "Append the LoRAs to the A1111 prompt as <lora:name:weight> tags, as A1111 writes them, so "
    "Civitai and A1111-style readers see each LoRA with its weight. The record and ComfyUI's own prompt/workflow "
    "keep the literal prompt either way.",
    "prefer_runtime": "Prefer runtime capture: merge what the executor really saw (seeds drawn at run time, "
    "switch choices, values custom nodes computed) into the record, recording where it differed from the "
    "graph. Only matters when ComfyUI was started with PROVENANCE_HOOKS=1, which installs the hooks; "
    "otherwise, or when off, the record comes from the graph alone.",
}


def comfyui_hasher(models: list[Model]) -> None:
    """Hash the record's models where ComfyUI loads them, cached in ComfyUI's user directory.

    The hashing runs on the background hasher, which the prompt handler usually started when the
    prompt was posted; the save waits at most PROVENANCE_HASH_WAIT_S for what is still missing.
    """
    cache = shared_cache(compat.hash_cache_directory())
    background, locator = shared_background(cache), compat.model_locator()
    started = time.perf_counter()
    hash_models(models, locator, cache, background=background, wait_s=wait_cap())
    _timing["hash_wait_ms"] = (time.perf_counter() - started) * 1000


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
    prefer_runtime: bool | None = True,
    lora_tags: bool | None = True,
) -> list[dict[str, str]]:
    """Save the batch; returns the UI preview entries core's SaveImage returns (see with_session)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    options = SaveOptions(
        format=format,
        quality=quality,
        lossless=lossless,
        targets=DEFAULT_TARGETS if targets is None else parse_targets(targets),
        disable_metadata=compat.metadata_disabled(),
        lora_tags=lora_tags is not False,
    )

    def save(context: SaveContext, snapshot: Mapping[str, Any] | None) -> list[SavedFile]:
        return save_images(
            _arrays(images),
            context,
            compat.output_directory(),
            filename_prefix,
            options,
            version=__version__,
            namer=compat.save_namer(),
            hasher=comfyui_hasher,
            runtime=snapshot,
        )

    started = time.perf_counter()
    _timing["hash_wait_ms"] = 0.0
    saved = with_session(
        prompt, extra_pnginfo, unique_id, prefer_runtime=prefer_runtime, disabled=options.disable_metadata, save=save
    )
    # benchmarks/first_save.py reads this line (PROVENANCE_LOG_LEVEL=DEBUG shows it in ComfyUI's log).
    logger.debug(
        "provenance: saved %d file(s) in %.1f ms (%.1f ms waiting for model hashes)",
        len(saved),
        (time.perf_counter() - started) * 1000,
        _timing["hash_wait_ms"],
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
) -> list[SavedFile]:
    """`save` with the run's context and, with `prefer_runtime` (None, from a prompt that predates the
    input, counts as on), the hook session's snapshot; the session is told afterwards that this save
    node is done with the prompt, merged or not, whatever happened."""
    set_user_rules_dir(compat.user_directory() / "provenance" / "rules")
    prompt_id = compat.current_prompt_id()
    context = SaveContext(
        prompt=prompt,
        extra_pnginfo=extra_pnginfo,
        save_node_id=str(unique_id) if unique_id is not None else None,
        prompt_id=prompt_id,
        comfyui_version=compat.comfyui_version(),
    )
    snapshot = runtime_snapshot(prompt_id) if prefer_runtime is not False and not disabled else None
    try:
        return save(context, snapshot)
    finally:
        if prompt_id is not None and context.save_node_id is not None:
            mark_used(prompt_id, context.save_node_id)  # the session waits for each save node

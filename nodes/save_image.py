"""What "Save Image (Provenance)" does, shared by the V3 node and its V1 fallback."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import __version__, compat
from ..metadata.capture import SaveContext
from ..metadata.formats.base import DEFAULT_TARGETS, TARGETS
from ..metadata.hashing import hash_models, shared_cache
from ..metadata.parser.rules import set_user_rules_dir
from ..metadata.record import Model
from ..metadata.save import SaveOptions, save_images

logger = logging.getLogger(__name__)

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
}


def comfyui_hasher(models: list[Model]) -> None:
    """Hash the record's models where ComfyUI loads them, cached in ComfyUI's user directory."""
    hash_models(models, compat.model_locator(), shared_cache(compat.hash_cache_directory()))


def parse_targets(value: str | Iterable[str]) -> frozenset[str]:
    """Targets from a list or a comma-separated string; unknown names raise ValueError."""
    items = value.split(",") if isinstance(value, str) else list(value)
    chosen = frozenset(t.strip() for t in items if t and t.strip())
    unknown = chosen - set(TARGETS)
    if unknown:
        raise ValueError(f"unknown targets {sorted(unknown)}; allowed: {', '.join(TARGETS)}")
    return chosen


def _arrays(images: Any) -> list[np.ndarray]:
    return [img.cpu().numpy() if hasattr(img, "cpu") else np.asarray(img) for img in images]


def run(
    *,
    images: Any,
    filename_prefix: str,
    format: str,
    quality: int,
    lossless: bool,
    targets: str | Iterable[str],
    prompt: Mapping[str, Any] | None,
    extra_pnginfo: Mapping[str, Any] | None,
    unique_id: str | None,
) -> list[dict[str, str]]:
    """Save the batch; returns the UI preview entries core's SaveImage returns."""
    set_user_rules_dir(compat.user_directory() / "provenance" / "rules")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    options = SaveOptions(
        format=format,
        quality=quality,
        lossless=lossless,
        targets=parse_targets(targets),
        disable_metadata=compat.metadata_disabled(),
    )
    context = SaveContext(
        prompt=prompt,
        extra_pnginfo=extra_pnginfo,
        save_node_id=str(unique_id) if unique_id is not None else None,
        prompt_id=compat.current_prompt_id(),
        comfyui_version=compat.comfyui_version(),
    )
    saved = save_images(
        _arrays(images),
        context,
        compat.output_directory(),
        filename_prefix,
        options,
        version=__version__,
        namer=compat.save_namer(),
        hasher=comfyui_hasher,
    )
    return [{"filename": f.path.name, "subfolder": f.subfolder, "type": "output"} for f in saved]

"""The reproduced file against the original: pixels (max and mean absolute difference) and record fields."""

from __future__ import annotations

import dataclasses
import io
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from ..metadata.errors import MetadataError
from ..metadata.read import read
from ..metadata.record import Generation, Record
from .client import ReproduceError

logger = logging.getLogger(__name__)

# Generation fields that say how the pixels were made; `other` and `api_node` are free-form.
GENERATION_FIELDS = tuple(f.name for f in dataclasses.fields(Generation) if f.name not in ("other", "api_node"))
IMAGE_FIELDS = ("format", "width", "height")


@dataclass
class Comparison:
    identical: bool
    size: tuple[int, int]
    reproduced_size: tuple[int, int]
    max_diff: int | None = None
    mean_diff: float | None = None
    notes: list[str] = field(default_factory=list)
    fields: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "size": list(self.size),
            "reproduced_size": list(self.reproduced_size),
            "max_abs_diff": self.max_diff,
            "mean_abs_diff": self.mean_diff,
            "notes": self.notes,
            "fields": self.fields,
        }


def compare(original: Path, reproduced: bytes, name: str, record: Record) -> Comparison:
    """Pixels of `original` against the reproduced file's bytes; then the two records, field by field."""
    notes: list[str] = []
    try:
        with PILImage.open(original) as mine:
            first = _first_frame(mine, "the original", notes)
        with PILImage.open(io.BytesIO(reproduced)) as theirs:
            second = _first_frame(theirs, "the reproduced file", notes)
    except (OSError, ValueError, PILImage.DecompressionBombError) as err:
        raise ReproduceError(f"cannot decode the pixels to compare: {err}") from err
    result = _pixels(first, second)
    result.notes[:0] = notes
    result.fields = fields(record, _record_of(reproduced, name, result.notes))
    return result


def _first_frame(image: PILImage.Image, what: str, notes: list[str]) -> np.ndarray:
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        notes.append(f"{what} is animated ({frames} frames): the first frames are compared")
        image.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))


def _pixels(a: np.ndarray, b: np.ndarray) -> Comparison:
    size, other = (a.shape[1], a.shape[0]), (b.shape[1], b.shape[0])
    if size != other:
        return Comparison(
            False, size, other, notes=[f"the sizes differ: {size[0]}x{size[1]} against {other[0]}x{other[1]}"]
        )
    if a.shape[2] != b.shape[2]:  # one has alpha: compare what both have, and say so
        a, b = a[:, :, :3], b[:, :, :3]
        notes = ["only one of the two has an alpha channel: the colour channels are compared"]
    else:
        notes = []
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    largest = int(diff.max()) if diff.size else 0
    mean = float(diff.mean()) if diff.size else 0.0
    return Comparison(largest == 0, size, other, max_diff=largest, mean_diff=round(mean, 6), notes=notes)


def _record_of(data: bytes, name: str, notes: list[str]) -> Record | None:
    """The record the reproduced file carries (read from a private temporary copy)."""
    with tempfile.TemporaryDirectory(prefix="provenance-reproduce-") as folder:
        path = Path(folder) / (Path(name).name or "reproduced.png")
        path.write_bytes(data)
        try:
            return read(path)
        except MetadataError as err:
            notes.append(f"the reproduced file's record does not read: {err}")
            return None


def fields(original: Record, reproduced: Record | None) -> list[dict[str, Any]]:
    """Record fields that differ: generation, models (with hashes), image size and format."""
    if reproduced is None:
        return []
    found = []
    for name in GENERATION_FIELDS:
        mine, theirs = getattr(original.generation, name), getattr(reproduced.generation, name)
        if mine != theirs:
            found.append({"field": f"generation.{name}", "original": mine, "reproduced": theirs})
    mine_models, their_models = _models(original), _models(reproduced)
    if mine_models != their_models:
        found.append({"field": "models", "original": mine_models, "reproduced": their_models})
    for name in IMAGE_FIELDS:
        mine, theirs = getattr(original.image, name), getattr(reproduced.image, name)
        if mine != theirs:
            found.append({"field": f"image.{name}", "original": mine, "reproduced": theirs})
    return found


def _models(record: Record) -> list[str]:
    return sorted(f"{m.role}:{m.name}:{m.hashes.get('sha256', '?')[:10]}" for m in record.models)

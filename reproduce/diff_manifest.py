"""What differs between two run manifests: the snapshot part by part, then the images, by index or by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..metadata.record import Model
from .diff import Change, GraphDiff, diff_graphs, diff_models, field_changes

MATCHES = ("index", "filename")
# Snapshot parts compared key by key; the timestamp always differs and says nothing about the run.
SNAPSHOT_PARTS = ("generation_params", "resolved_template", "variations")
SNAPSHOT_SKIP = frozenset({"timestamp", "runtime_info", "api_params", *SNAPSHOT_PARTS})

Indexed = tuple[int, dict[str, Any]]


@dataclass
class ManifestDiff:
    """Snapshot differences by part, the api_params graph diff, and each image pair that differs."""

    snapshot: dict[str, list[Change]] = field(default_factory=dict)
    api_params: GraphDiff = field(default_factory=GraphDiff)
    images: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not any(self.snapshot.values()) and self.api_params.identical and not self.images

    def to_dict(self, a: str, b: str) -> dict[str, Any]:
        return {
            "a": a,
            "b": b,
            "identical": self.identical,
            "snapshot": {**self.snapshot, "api_params": self.api_params.to_dict()},
            "images": self.images,
        }


def part(data: Any, key: str) -> dict[str, Any]:
    """A JSON object inside the manifest, or {} where a hand-edited one has something else there."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def runtime_models(info: dict[str, Any]) -> list[Model]:
    listed = info.get("models")
    return [
        Model(
            role=str(m.get("role") or "unknown"),
            name=str(m.get("name") or ""),
            hashes={str(k): str(v) for k, v in m["hashes"].items()} if isinstance(m.get("hashes"), dict) else {},
        )
        for m in (listed if isinstance(listed, list) else [])
        if isinstance(m, dict)
    ]


def diff_snapshots(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Change]]:
    info_a, info_b = part(a, "runtime_info"), part(b, "runtime_info")
    out = {
        "runtime_info": field_changes(info_a, info_b, skip=["models"]),
        "models": diff_models(runtime_models(info_a), runtime_models(info_b)),
    }
    for name in SNAPSHOT_PARTS:
        out[name] = field_changes(part(a, name), part(b, name))
    rest = {k: v for k, v in a.items() if k not in SNAPSHOT_SKIP}
    out["other"] = field_changes(rest, {k: v for k, v in b.items() if k not in SNAPSHOT_SKIP})
    return out


def images_of(manifest: dict[str, Any]) -> list[Indexed]:
    listed = manifest.get("images")
    items = listed if isinstance(listed, list) else []
    return [(i, item if isinstance(item, dict) else {}) for i, item in enumerate(items)]


def by_index(a: list[Indexed], b: list[Indexed]) -> list[tuple[Indexed | None, Indexed | None]]:
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(max(len(a), len(b)))]


def by_filename(a: list[Indexed], b: list[Indexed]) -> list[tuple[Indexed | None, Indexed | None]]:
    """Pairs with the same subfolder and file name (repeated names in order), in a's order, then b's extras."""

    def named(images: list[Indexed]) -> dict[tuple[str, str, int], Indexed]:
        seen: dict[tuple[str, str], int] = {}
        out = {}
        for index, item in images:
            key = (str(item.get("subfolder") or ""), str(item.get("filename") or ""))
            seen[key] = seen.get(key, 0) + 1
            out[(key[0], key[1], seen[key])] = (index, item)
        return out

    left, right = named(a), named(b)
    pairs: list[tuple[Indexed | None, Indexed | None]] = [(item, right.get(key)) for key, item in left.items()]
    pairs.extend((None, item) for key, item in right.items() if key not in left)
    return pairs


def where(side: Indexed | None) -> dict[str, Any] | None:
    if side is None:
        return None
    index, item = side
    return {"index": index, "filename": item.get("filename")}


def diff_image(a: Indexed | None, b: Indexed | None) -> dict[str, Any] | None:
    """The differences of one image pair (its fields, then its api_prompt graph), or None when there are none."""
    base = {"a": where(a), "b": where(b)}
    if a is None or b is None:
        return {**base, "change": "added" if a is None else "removed", "fields": [], "graph": GraphDiff().to_dict()}
    fields = field_changes(a[1], b[1], skip=["api_prompt"])
    graph = diff_graphs(part(a[1], "api_prompt"), part(b[1], "api_prompt"))
    if not fields and graph.identical:
        return None
    return {**base, "change": "changed", "fields": fields, "graph": graph.to_dict()}


def diff_manifests(a: dict[str, Any], b: dict[str, Any], match: str = "index") -> ManifestDiff:
    """Two V2 manifests compared; images paired by position (`index`) or by subfolder and name (`filename`)."""
    if match not in MATCHES:
        raise ValueError(f"unknown image matching {match!r}; allowed: {', '.join(MATCHES)}")
    snap_a, snap_b = part(a, "snapshot"), part(b, "snapshot")
    pair = by_filename if match == "filename" else by_index
    images = [diff_image(x, y) for x, y in pair(images_of(a), images_of(b))]
    return ManifestDiff(
        snapshot=diff_snapshots(snap_a, snap_b),
        api_params=diff_graphs(part(snap_a, "api_params"), part(snap_b, "api_params")),
        images=[image for image in images if image is not None],
    )

"""What a manifest says, built from the final record: actions, generator, models, the record itself.

- `c2pa.actions.v2`: `c2pa.created` with the record's IPTC digital source type
  (`trainedAlgorithmicMedia`, or `compositeWithTrainedAlgorithmicMedia` when input images went in,
  each then an `inputTo` ingredient with its sha256), ComfyUI as the software agent.
- claim generator: ComfyUI Provenance and its version (C2PA 2 allows one; ComfyUI's version is the
  action's software agent).
- `com.github.comfyui-provenance.models`: each model's role, name, hashes and LoRA strengths.
- `com.github.comfyui-provenance.record`: the record as JSON text (text, so no CBOR conversion can
  change a value), with its canonical sha256; over RECORD_INLINE_MAX only the digest and the name of
  the JSON sidecar holding it. The record holds nothing secret (ComfyUI's credentials are scrubbed
  before a record is built); `extra_data`'s private keys never reach it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..limits import KIB
from ..record import SCHEMA_ID, Record

NAMESPACE = "com.github.comfyui-provenance"
RECORD_LABEL = f"{NAMESPACE}.record"
MODELS_LABEL = f"{NAMESPACE}.models"
ACTIONS_LABEL = "c2pa.actions.v2"
SHA256_KEY = f"{NAMESPACE}.sha256"
# A record larger than this is signed by its digest, the whole of it kept in the JSON sidecar: every
# signed file would otherwise carry its record twice (embedded, and in the manifest).
RECORD_INLINE_MAX = 256 * KIB


def canonical_digest(data: dict[str, Any]) -> str:
    """sha256 of the record as canonical JSON (sorted keys, no spaces, ASCII): the same for any copy of it."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def fits_inline(record: Record) -> bool:
    """Whether the manifest carries the record whole (else its digest, the JSON sidecar the record)."""
    return len(record.to_json()) <= RECORD_INLINE_MAX


def record_assertion(record: Record, sidecar_name: str | None, *, inline: bool) -> dict[str, Any]:
    data = record.to_dict()
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    body: dict[str, Any] = {"schema": SCHEMA_ID, "sha256": canonical_digest(data), "bytes": len(text)}
    if inline:
        body["record"] = text
    else:
        body["sidecar"] = sidecar_name
    return body


def definition(
    record: Record, mime: str, *, inline: bool, ingredients: list[dict[str, Any]] | tuple[()] = ()
) -> dict[str, Any]:
    """The manifest definition c2pa-python's Builder takes."""
    prov = record.provenance
    created: dict[str, Any] = {"action": "c2pa.created", "digitalSourceType": prov.digital_source_type}
    agent = {"name": "ComfyUI", **({"version": prov.comfyui_version} if prov.comfyui_version else {})}
    created["softwareAgent"] = agent
    models = [
        {
            k: v
            for k, v in {
                "role": m.role,
                "name": m.name,
                "hashes": dict(m.hashes) or None,
                "strength_model": m.strength_model,
                "strength_clip": m.strength_clip,
            }.items()
            if v is not None
        }
        for m in record.models
    ]
    generator = {"name": prov.generator.name, **({"version": prov.generator.version} if prov.generator.version else {})}
    filename = record.image.filename
    manifest: dict[str, Any] = {
        "claim_generator_info": [generator],
        "title": filename or "untitled",
        "format": mime,
        "assertions": [
            {"label": ACTIONS_LABEL, "data": {"actions": [created]}},
            {"label": MODELS_LABEL, "kind": "Json", "data": {"models": models}},
            {
                "label": RECORD_LABEL,
                "kind": "Json",
                "data": record_assertion(record, _sidecar(filename), inline=inline),
            },
        ],
    }
    if ingredients:
        manifest["ingredients"] = list(ingredients)
    return manifest


def ingredient_spec(name: str, mime: str, sha256: str) -> dict[str, Any]:
    return {"title": name, "format": mime, "relationship": "inputTo", "metadata": {SHA256_KEY: sha256}}


def _sidecar(filename: str | None) -> str | None:
    from pathlib import Path

    from ..formats import sidecar

    return sidecar.path_for(Path(filename), "sidecar:json").name if filename else None


def find(manifest: dict[str, Any], label: str) -> Any:
    """The data of the assertion `label` in a manifest as c2pa-python's Reader reports it (None: absent)."""
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and assertion.get("label") == label:
            return assertion.get("data")
    return None

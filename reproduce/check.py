"""Can this server run the prompt as it ran? Node classes, model files and their hashes, versions.

Every difference that would change the result (a node class or a model file missing, a model whose
hash differs from the record's) is listed, and reproduce refuses on any; what only weakens the
proof (no hash to compare, another ComfyUI or pack version) is a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..metadata.hashing import ROLE_FOLDERS
from ..metadata.record import Model
from .client import Client, mapping
from .pin import is_link
from .target import Target

logger = logging.getLogger(__name__)

HASH_POLL_S = 0.5
SHOWN = 12  # hex digits of a hash shown in a message
HASH_KINDS = ("sha256", "autov3", "autov2")  # strongest first


@dataclass
class Checks:
    differences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    comfyui_version: str | None = None
    pack_version: str | None = None
    hashes_checked: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "differences": self.differences,
            "warnings": self.warnings,
            "server_comfyui_version": self.comfyui_version,
            "server_pack_version": self.pack_version,
            "hashes_checked": self.hashes_checked,
        }


def combo_options(spec: Any) -> list[Any] | None:
    """The choices of a COMBO input: V1 `[[...], {...}]`, V3 `["COMBO", {"options": [...]}]`; None otherwise."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    config = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    if spec[0] == "COMBO" and not config.get("multiselect") and isinstance(config.get("options"), list):
        return list(config["options"])
    return None


def input_specs(info: Any) -> dict[str, Any]:
    spec = info.get("input") if isinstance(info, Mapping) else None
    if not isinstance(spec, Mapping):
        return {}
    return {**(spec.get("required") or {}), **(spec.get("optional") or {})}


def check(
    client: Client, prompt: Mapping[str, Any], target: Target, object_info: Mapping[str, Any], *, hash_wait: float
) -> Checks:
    found = Checks()
    missing_models = _classes_and_combos(prompt, target.models, object_info, found)
    _hashes(client, target.models, missing_models, found, hash_wait)
    _versions(client, target, found)
    return found


def _model_of(models: list[Model], value: Any) -> Model | None:
    return next((m for m in models if m.name == value), None)


def _classes_and_combos(
    prompt: Mapping[str, Any], models: list[Model], object_info: Mapping[str, Any], found: Checks
) -> set[tuple[str, str]]:
    """Missing classes and combo values (model files among them); the (role, name) of models found missing."""
    missing: set[tuple[str, str]] = set()
    for node_id, node in prompt.items():
        class_type = mapping(node).get("class_type")
        if not isinstance(class_type, str) or class_type not in object_info:
            found.differences.append(f"node {node_id}: the server has no node class {class_type!r}")
            continue
        specs = input_specs(object_info[class_type])
        for name, value in (node.get("inputs") or {}).items():
            options = combo_options(specs.get(name))
            if options is None or is_link(value) or value in options:
                continue
            model = _model_of(models, value)
            where = f"node {node_id} {class_type}.{name}"
            if model is not None:
                missing.add((model.role, model.name))
                found.differences.append(f"missing model: {model.role} {model.name!r} is not on the server ({where})")
            else:
                found.differences.append(f"{where}: {value!r} is not among the server's choices")
    return missing


def _hashes(
    client: Client, models: list[Model], missing: set[tuple[str, str]], found: Checks, hash_wait: float
) -> None:
    status = client.pack_status()
    if status is None:
        found.warnings.append("the server does not run the provenance pack: model hashes cannot be checked")
        return
    found.pack_version = str(status.get("pack_version")) if status.get("pack_version") is not None else None
    deadline = time.monotonic() + hash_wait
    for model in models:
        if (model.role, model.name) in missing:
            continue
        mine = {k: v.lower() for k, v in model.hashes.items() if k in HASH_KINDS and isinstance(v, str)}
        label = f"{model.role} {model.name!r}"
        if not mine:
            found.warnings.append(f"{label}: the record has no hash for it, so it is not checked")
            continue
        answer = _server_hash(client, model, deadline)
        if isinstance(answer, str):
            if answer == "no such file":
                found.differences.append(f"missing model: {label} is not on the server")
            else:
                found.warnings.append(f"{label}: {answer}, so it is not checked")
            continue
        kind, theirs = shared_kind(mine, answer)
        if kind is None:
            found.warnings.append(f"{label}: the server and the record share no hash kind, so it is not checked")
        elif theirs != mine[kind]:
            found.differences.append(
                f"model differs: {label} on the server has {kind} {theirs[:SHOWN]}…, the record {mine[kind][:SHOWN]}…"
            )
        else:
            found.hashes_checked.append(f"{model.role}:{model.name}")


def shared_kind(mine: Mapping[str, str], answer: Mapping[str, Any]) -> tuple[str | None, str]:
    """The strongest hash both know, and the server's value of it (AutoV2 is the SHA-256's first 10 digits)."""
    for kind in HASH_KINDS:
        theirs = answer.get("sha256" if kind == "autov2" else kind)
        if kind in mine and isinstance(theirs, str) and theirs:
            return kind, theirs.lower()[:10] if kind == "autov2" else theirs.lower()
    return None, ""


def _server_hash(client: Client, model: Model, deadline: float) -> dict[str, Any] | str:
    """The server's answer for the model's file, or why there is none."""
    folders = ROLE_FOLDERS.get(model.role)
    if not folders:
        return f"the role {model.role!r} has no models folder to ask about"
    while True:
        pending = False
        for folder in folders:
            status, body = client.model_hash(folder, model.name)
            if status == 200:
                return body
            pending = pending or body.get("error") == "not hashed yet"
        if not pending:
            return "no such file"
        if time.monotonic() >= deadline:
            return "the server has not hashed it yet"
        time.sleep(HASH_POLL_S)


def _versions(client: Client, target: Target, found: Checks) -> None:
    found.comfyui_version = client.comfyui_version()
    pairs = [("ComfyUI", target.comfyui_version, found.comfyui_version)]
    if found.pack_version is not None:
        pairs.append(("the provenance pack", target.pack_version, found.pack_version))
    for what, theirs, ours in pairs:
        if theirs and ours and theirs != ours:
            found.warnings.append(f"{what} {theirs} made the file; the server runs {ours}")
        elif not theirs:
            found.warnings.append(f"the record does not say which version of {what} made it")

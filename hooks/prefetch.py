"""Hash the models a prompt uses as soon as ComfyUI accepts it, so the first save does not wait.

Uses ComfyUI's official seam, `PromptServer.instance.add_on_prompt_handler` (no runtime hooks
needed): the handler runs on the server's event loop for every posted prompt, so it only hands
the graph to a worker thread and returns it untouched. For a graph with a Provenance save node,
the worker parses what lies upstream of it with the capture rules, locates each model where
ComfyUI's loaders find them, and queues it on the background hasher
(metadata/hashing/background.py), whose results land in the hash cache the save node reads.
With the runtime hooks on, a loader that runs (a model chosen by a switch at run time, say)
queues its file too. Nothing here can fail a prompt: every error is logged once.
The `hash_prefetch` setting off (PROVENANCE_HASH_PREFETCH=0, read once at start-up) or ComfyUI's
--disable-metadata turns it off. Tested with ComfyUI 0.33.0 (commit 783545f6).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .. import compat
from ..metadata import settings
from ..metadata.hashing import shared_background, shared_cache
from ..metadata.parser.parse import WorkflowParser
from ..metadata.parser.rules import default_rules
from ..metadata.record import Model
from ..metadata.settings_keys import env_name
from ..metadata.workers import Workers

logger = logging.getLogger(__name__)

ENV = env_name("hash_prefetch")
# The nodes whose saves use the hashes (node ids are permanent contracts: nodes/save_image.py).
SAVE_NODES = frozenset({"ProvenanceSaveImage"})

_state: dict[str, Any] = {"workers": None, "registered": False, "failures": set()}
_lock = threading.Lock()


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    return (settings.current() if environ is None else settings.load(environ=environ)).hash_prefetch


def _workers() -> Workers:
    with _lock:
        if _state["workers"] is None:
            _state["workers"] = Workers(1, "provenance-prefetch")
        return _state["workers"]  # type: ignore[no-any-return]


def _once(what: str, err: BaseException) -> None:
    """Log each distinct failure once: a broken prefetch must not flood ComfyUI's console."""
    key = (what, type(err).__name__, str(err)[:200])
    with _lock:
        if key in _state["failures"]:
            return
        _state["failures"].add(key)
    logger.warning("provenance: model hash prefetch: %s failed: %s", what, err)


def queue_models(models: Iterable[Model]) -> int:
    """Queue each model's file on the background hasher; how many were found on disk."""
    cache = shared_cache(compat.hash_cache_directory())
    background = shared_background(cache)
    locator = compat.model_locator()
    found = 0
    for model in models:
        path = locator.locate(model.role, model.name)
        if path is not None:
            background.submit(path)
            found += 1
    return found


def prefetch_prompt(prompt: Mapping[str, Any]) -> int:
    """Queue the models upstream of the prompt's Provenance save nodes (none: nothing to hash for
    us); runs on the prefetch worker, which also warms what a process's first save would load."""
    saves = [str(k) for k, v in prompt.items() if isinstance(v, Mapping) and v.get("class_type") in SAVE_NODES]
    if not saves:
        return 0
    _warm()
    parser = WorkflowParser()
    models = {(m.role, m.name): m for save in saves for m in parser.parse(prompt, save).models}
    return queue_models(models.values())


def _warm() -> None:
    """Do, once, what the first save would otherwise pay for on ComfyUI's worker: Pillow's plugins,
    the A1111 label tables, and the first touch of image-sized buffers (a 1024² float image turned
    into pixels: the allocator keeps such buffers for the next save once they have been used)."""
    with _lock:
        if _state.get("warm"):
            return
        _state["warm"] = True
    import io

    import numpy as np
    from PIL import Image

    from ..metadata.infotext import sampler_label
    from ..metadata.save import to_pil

    Image.preinit()
    Image.init()
    sampler_label("euler")
    to_pil(np.zeros((1024, 1024, 3), dtype=np.float32)).resize((8, 8)).save(io.BytesIO(), format="PNG")


def _prefetch_safely(prompt: Mapping[str, Any]) -> None:
    try:
        prefetch_prompt(prompt)
    except Exception as err:
        _once("parsing the posted prompt", err)


def on_prompt(json_data: Any) -> Any:
    """ComfyUI's on-prompt handler: hand the graph to the worker, give the request back untouched."""
    try:
        prompt = json_data.get("prompt") if isinstance(json_data, Mapping) else None
        if isinstance(prompt, Mapping):
            _workers().submit(_prefetch_safely, prompt)
    except Exception as err:  # the prompt must go through whatever happens here
        _once("queueing the posted prompt", err)
    return json_data


def loader_ran(class_type: str | None, inputs: Mapping[str, Any]) -> None:
    """A node ran with these resolved inputs (runtime hooks): queue the files a loader among them loads."""
    rule = default_rules().get(class_type) if class_type else None
    if rule is None or not rule.models:
        return
    models = []
    for spec in rule.models:
        value = inputs.get(spec.name)
        name = value[0] if isinstance(value, list) and value else value
        if isinstance(name, str) and name:
            models.append(Model(role=spec.role, name=name))
    if models:
        _workers().submit(_queue_safely, models)


def _queue_safely(models: list[Model]) -> None:
    try:
        queue_models(models)
    except Exception as err:
        _once("queueing a loader's model", err)


def register() -> bool:
    """Add the on-prompt handler to ComfyUI's server, once per process; False when there is no seam
    (or nothing would use the hashes: PROVENANCE_HASH_PREFETCH=0, ComfyUI's --disable-metadata)."""
    if not enabled() or compat.metadata_disabled():
        return False
    with _lock:
        if _state["registered"]:
            return True
        if not compat.add_on_prompt_handler(on_prompt):
            return False
        _state["registered"] = True
    return True

"""The single import site of ComfyUI's modules; everything else stays importable without ComfyUI.

Each accessor imports lazily, so importing this module costs nothing, and says in one place
which ComfyUI API the pack depends on (all checked against ComfyUI 0.33.0, commit 783545f6).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .metadata.hashing import FolderLocator
from .metadata.save import Namer


def output_directory() -> Path:
    import folder_paths

    return Path(folder_paths.get_output_directory())


def file_directories() -> dict[str, Path]:
    """ComfyUI's output, input and temp folders, keyed by the `type` its GET /view names them with."""
    import folder_paths

    return {
        "output": Path(folder_paths.get_output_directory()),
        "input": Path(folder_paths.get_input_directory()),
        "temp": Path(folder_paths.get_temp_directory()),
    }


def searchable_directories() -> list[Path]:
    """ComfyUI's output, input and temp folders, in that order: the only places the pack's routes answer files from."""
    return list(file_directories().values())


def save_namer() -> Namer:
    """ComfyUI's own naming (`get_save_image_path`: %width%, %date% tokens, subfolders, counter)."""
    import folder_paths

    output_dir = folder_paths.get_output_directory()

    def name(prefix: str, width: int, height: int) -> tuple[Path, str, int, str]:
        folder, base, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, output_dir, width, height)
        return Path(folder), base, counter, subfolder

    return name


def metadata_disabled() -> bool:
    """ComfyUI's `--disable-metadata`: pixels only."""
    try:
        from comfy.cli_args import args
    except ImportError:
        return False
    return bool(getattr(args, "disable_metadata", False))


def comfyui_version() -> str | None:
    try:
        from comfyui_version import __version__
    except ImportError:
        return None
    return str(__version__)


def current_prompt_id() -> str | None:
    """The prompt being executed, from ComfyUI's executing context (None outside execution)."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:  # before 0.3.45: main.py's prompt worker sets last_prompt_id before it executes a prompt
        prompt_id = getattr(_prompt_server(), "last_prompt_id", None)
        return str(prompt_id) if prompt_id else None
    context = get_executing_context()
    return str(context.prompt_id) if context is not None and context.prompt_id else None


def v3_api() -> Any:
    """comfy_api.latest (ComfyExtension, io, ui); ImportError on a ComfyUI older than 0.3.48."""
    import comfy_api.latest

    return comfy_api.latest


def model_locator() -> FolderLocator:
    """Model files where ComfyUI's loaders find them (`folder_paths.get_full_path`, extra_model_paths included)."""
    import folder_paths

    return FolderLocator(folder_paths.get_full_path)


def hash_cache_directory() -> Path:
    """`<user directory>/provenance`: the hash cache folder (never beside the models, which may be read-only)."""
    import folder_paths

    return Path(folder_paths.get_user_directory()) / "provenance"


def frontend_settings_file() -> Path:
    """`<user directory>/default/comfy.settings.json`: where ComfyUI's /settings API keeps the frontend's
    settings (app/app_settings.py; "default" is the user of a single-user ComfyUI, the usual setup)."""
    return user_directory() / "default" / "comfy.settings.json"


def input_image_path(name: str) -> Path | None:
    """The file LoadImage reads for `name` (`folder_paths.get_annotated_filepath`: `x.png [output]` too), or None."""
    import folder_paths

    try:
        path = Path(folder_paths.get_annotated_filepath(name))
    except Exception:  # a name ComfyUI itself would not resolve: no ingredient file, never an error
        return None
    return path if path.is_file() else None


def user_directory() -> Path:
    """ComfyUI's user directory (`folder_paths.get_user_directory`); user rules live in `<it>/provenance/rules/`."""
    import folder_paths

    return Path(folder_paths.get_user_directory())


def execution_module() -> Any:
    """ComfyUI's `execution` module (PromptExecutor, execute, get_input_data, get_output_from_returns)."""
    import execution

    return execution


def loaded_execution_module() -> Any:
    """`execution` if ComfyUI's main.py already imported it (i.e. ComfyUI is running here), else None.

    Never imports it: outside ComfyUI that would drag in torch, or pick up an unrelated module.
    """
    module = sys.modules.get("execution")
    return module if hasattr(module, "PromptExecutor") and hasattr(module, "get_input_data") else None


def _prompt_server() -> Any:
    """`PromptServer.instance` when ComfyUI's server module is loaded (never imported from here), else None."""
    server = sys.modules.get("server")
    return getattr(getattr(server, "PromptServer", None), "instance", None)


def send_event(event: str, data: dict[str, Any]) -> bool:
    """`PromptServer.instance.send_sync(event, data, client_id)`: a websocket message to the client whose
    prompt runs now (all clients when none is known); thread-safe (it queues onto the server's loop).
    False when there is no server to send through."""
    instance = _prompt_server()
    send = getattr(instance, "send_sync", None)
    if not callable(send):
        return False
    send(event, data, getattr(instance, "client_id", None))
    return True


def server_url() -> str | None:
    """This ComfyUI's own HTTP API on loopback (`PromptServer.instance.address`/`.port`, the first address it
    listens on): http://127.0.0.1:PORT for 0.0.0.0, http://[::1]:PORT for :: (asyncio binds :: IPv6-only);
    https when ComfyUI serves TLS. None before the server started listening."""
    instance = _prompt_server()
    port, address = getattr(instance, "port", None), getattr(instance, "address", None)
    if isinstance(port, bool) or not isinstance(port, int):
        return None
    host = str(address or "0.0.0.0")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if _serves_tls() else 'http'}://{host}:{port}"


def _serves_tls() -> bool:
    try:
        from comfy.cli_args import args
    except ImportError:
        return False
    return bool(getattr(args, "tls_keyfile", None) and getattr(args, "tls_certfile", None))


def prompt_server_routes() -> Any:
    """`PromptServer.instance.routes` (an aiohttp RouteTableDef), or None when no server exists yet.

    Routes must be added before ComfyUI's `add_routes()`, i.e. while packs are imported.
    """
    return getattr(_prompt_server(), "routes", None)


def add_on_prompt_handler(handler: Any) -> bool:
    """`PromptServer.instance.add_on_prompt_handler(handler)`: called with each posted /prompt body
    before it is validated and queued; False when there is no server (or no such seam) yet."""
    add = getattr(_prompt_server(), "add_on_prompt_handler", None)
    if not callable(add):
        return False
    add(handler)
    return True


def node_info(class_type: str) -> dict[str, Any] | None:
    """What ComfyUI's GET /object_info answers for `class_type`, built the way server.py's nested
    `node_info` builds it (0.33.0): V3 nodes describe themselves (`GET_NODE_INFO_V1`), V1 nodes are read
    from INPUT_TYPES()/RETURN_TYPES/RETURN_NAMES/API_NODE. None outside ComfyUI or for an unknown class.

    Reads `nodes.NODE_CLASS_MAPPINGS` only when main.py already imported ComfyUI's `nodes`: importing it
    here would drag in torch, or pick up an unrelated module.
    """
    mappings = getattr(sys.modules.get("nodes"), "NODE_CLASS_MAPPINGS", None)
    obj_class = mappings.get(class_type) if isinstance(mappings, dict) else None
    if obj_class is None:
        return None
    if _is_v3_node(obj_class):
        return dict(obj_class.GET_NODE_INFO_V1())
    display_names = getattr(sys.modules["nodes"], "NODE_DISPLAY_NAME_MAPPINGS", {})
    input_types = obj_class.INPUT_TYPES()
    outputs = obj_class.RETURN_TYPES
    info: dict[str, Any] = {
        "input": input_types,
        "input_order": {key: list(value.keys()) for key, value in input_types.items()},
        "is_input_list": getattr(obj_class, "INPUT_IS_LIST", False),
        "output": outputs,
        "output_is_list": getattr(obj_class, "OUTPUT_IS_LIST", [False] * len(outputs)),
        "output_name": getattr(obj_class, "RETURN_NAMES", outputs),
        "name": class_type,
        "display_name": display_names.get(class_type, class_type),
        "description": getattr(obj_class, "DESCRIPTION", ""),
        "python_module": getattr(obj_class, "RELATIVE_PYTHON_MODULE", "nodes"),
        "category": getattr(obj_class, "CATEGORY", "sd"),
        # server.py compares with `== True` (so OUTPUT_NODE = 1 counts): kept, for the same answer.
        "output_node": getattr(obj_class, "OUTPUT_NODE", False) == True,  # noqa: E712
        "has_intermediate_output": getattr(obj_class, "HAS_INTERMEDIATE_OUTPUT", False) == True,  # noqa: E712
    }
    if hasattr(obj_class, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = obj_class.OUTPUT_TOOLTIPS
    for flag in ("deprecated", "experimental", "dev_only"):
        if getattr(obj_class, flag.upper(), False):
            info[flag] = True
    if hasattr(obj_class, "API_NODE"):
        info["api_node"] = obj_class.API_NODE
    info["search_aliases"] = getattr(obj_class, "SEARCH_ALIASES", [])
    if hasattr(obj_class, "ESSENTIALS_CATEGORY"):
        info["essentials_category"] = obj_class.ESSENTIALS_CATEGORY
    return info


def _is_v3_node(obj_class: Any) -> bool:
    """server.py's test (`issubclass(obj_class, _ComfyNodeInternal)`); before comfy_api.internal existed
    (0.3.48), every node was V1."""
    try:
        from comfy_api.internal import _ComfyNodeInternal
    except ImportError:
        return False
    return isinstance(obj_class, type) and issubclass(obj_class, _ComfyNodeInternal)


def sampler_names() -> list[str]:
    """ComfyUI's samplers (`comfy.samplers.KSampler.SAMPLERS`), read at run time: packs may extend the list."""
    import comfy.samplers

    return list(comfy.samplers.KSampler.SAMPLERS)


def scheduler_names() -> list[str]:
    """ComfyUI's schedulers (`comfy.samplers.KSampler.SCHEDULERS`), read at run time: packs may extend the list."""
    import comfy.samplers

    return list(comfy.samplers.KSampler.SCHEDULERS)


def common_ksampler(
    model: Any,
    positive: Any,
    negative: Any,
    latent: dict[str, Any],
    *,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    denoise: float = 1.0,
) -> tuple[dict[str, Any]]:
    """`nodes.common_ksampler`: exactly what core KSampler runs (0.33.0 nodes.py:1571: noise from the seed on
    the CPU, the sampler and scheduler by name, the latent's noise mask and batch index), so a latent made
    here is bit for bit KSampler's with the same parameters."""
    import importlib

    nodes: Any = importlib.import_module("nodes")  # ComfyUI's nodes.py (a name mypy cannot follow here)
    out: tuple[dict[str, Any]] = nodes.common_ksampler(
        model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise=denoise
    )
    return out


@contextmanager
def noise_timer() -> Iterator[dict[str, float | None]]:
    """Time ComfyUI's noise generation inside the block: `comfy.sample.prepare_noise`, which common_ksampler
    looks up at call time, is wrapped (same arguments, same result, exceptions untouched) and restored
    after. Yields {"ms": total ms spent in it, or None when it did not run}."""
    found: dict[str, float | None] = {"ms": None}
    try:
        from comfy import sample
    except ImportError:  # not inside ComfyUI (tests fake common_ksampler): nothing to time
        yield found
        return
    original = sample.prepare_noise

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            found["ms"] = round((found["ms"] or 0.0) + (time.perf_counter() - started) * 1000, 3)

    sample.prepare_noise = timed
    try:
        yield found
    finally:
        if sample.prepare_noise is timed:
            sample.prepare_noise = original


def split_noise(timings_ms: dict[str, float | None], stage: str, noise_ms: float | None) -> None:
    """Record `noise_ms` as the noise stage and take it out of `stage`, which timed it too."""
    if noise_ms is None:
        return
    timings_ms["noise"] = noise_ms
    whole = timings_ms.get(stage)
    if whole is not None:
        timings_ms[stage] = round(max(0.0, whole - noise_ms), 3)


def common_ksampler_advanced(
    model: Any,
    positive: Any,
    negative: Any,
    latent: dict[str, Any],
    *,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    disable_noise: bool,
    start_step: int,
    last_step: int,
    force_full_denoise: bool,
    denoise: float = 1.0,
) -> tuple[dict[str, Any]]:
    """`nodes.common_ksampler` called as core KSamplerAdvanced calls it (0.33.0 nodes.py:1650: add_noise
    "disable" → disable_noise, return_with_leftover_noise "enable" → force_full_denoise False, start_at_step →
    start_step, end_at_step → last_step), so one expert's pass is bit for bit that node's."""
    import importlib

    nodes: Any = importlib.import_module("nodes")
    out: tuple[dict[str, Any]] = nodes.common_ksampler(
        model,
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        positive,
        negative,
        latent,
        denoise=denoise,
        disable_noise=disable_noise,
        start_step=start_step,
        last_step=last_step,
        force_full_denoise=force_full_denoise,
    )
    return out


def schedule_timesteps(model: Any, scheduler: str, steps: int) -> list[float]:
    """The timestep (0..1000) at each of the `steps` + 1 sigmas of `scheduler` for `model`: its own model_sampling
    (`get_model_object`, so a ModelSamplingSD3 shift counts), `comfy.samplers.calculate_sigmas` and
    `model_sampling.timestep`, the way a WAN 2.2 expert boundary is compared."""
    import comfy.samplers

    sampling = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(sampling, scheduler, steps)
    return [float(sampling.timestep(sigma)) for sigma in sigmas]

"""Models are workflows: a template's graph, and where each request field goes in it, found by the parser.

A template is an API graph (or a UI workflow, converted with the server's /object_info) whose
bindings say which node input each request field sets: `positive`, `negative`, `seed`, `steps`,
`cfg`, `width`, `height`, `batch_size`, `denoise`, `image`, `mask`, `checkpoint`. They are found
the way the provenance parser reads a graph (its field sources name the node of each value, the
capture rules name the input), so nobody maps node ids by hand; a template file may override any of
them (`"bindings": {"positive": ["6.text"]}`). The output node is always the pack's save node: a core
SaveImage (or PreviewImage) is swapped for it, so the file on disk and the bytes returned carry the
record.

Bundled: `sd15`, `sd15-img2img`, `sd15-inpaint`, `sdxl`, `flux` (service/templates/). User templates:
`*.json` in the `openai_templates_dir` folder (default `<user>/provenance/openai/`), each either a bare
graph (its id is the file name) or `{"id", "workflow", "bindings", "family", "description"}`; a user
template with a bundled id replaces it.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ApiError, bad_request

logger = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).with_name("templates")
TEMPLATE_MAX_BYTES = 16 << 20
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
SAVE_NODE = "ProvenanceSaveImage"
OUTPUTS = ("SaveImage", "PreviewImage", SAVE_NODE)
TEXT_EXTRAS = {"CLIPTextEncodeSDXL": ("text_l",), "CLIPTextEncodeFlux": ("clip_l",)}
MASK_INPUTS = ("mask",)
FIELDS = ("positive", "negative", "seed", "steps", "cfg", "width", "height", "batch_size", "denoise")
# The sizes a family's latent allows: a multiple of this, from 64 up to the openai_max_side setting.
MULTIPLE = {"sd15": 8, "sdxl": 8, "flux": 16, "unknown": 8}
# OpenAI's named sizes mean "about this shape": a square, a landscape or a portrait at the family's scale.
QUALITY_STEPS = {"low": 0.5, "medium": 0.75}


@dataclass(frozen=True)
class Binding:
    node: str
    input: str

    def __str__(self) -> str:
        return f"{self.node}.{self.input}"


@dataclass
class Template:
    id: str
    prompt: dict[str, Any]
    bindings: dict[str, list[Binding]]
    save_node: str
    family: str = "unknown"
    description: str = ""
    source: str = "bundled"
    created: int = 0

    @property
    def kind(self) -> str:
        return "inpaint" if "mask" in self.bindings else "img2img" if "image" in self.bindings else "txt2img"

    @property
    def multiple(self) -> int:
        return MULTIPLE.get(self.family, 8)

    def value(self, name: str) -> Any:
        places = self.bindings.get(name)
        if not places:
            return None
        node = self.prompt.get(places[0].node, {})
        return node.get("inputs", {}).get(places[0].input)

    def checkpoints(self) -> list[tuple[str, str, str]]:
        """(class_type, input, file name) of each model file the template loads: its `checkpoint` bindings."""
        found = []
        for place in self.bindings.get("checkpoint", []):
            node = self.prompt[place.node]
            value = node.get("inputs", {}).get(place.input)
            if isinstance(value, str):
                found.append((str(node.get("class_type")), place.input, value))
        return found


class TemplateError(Exception):
    """A template that cannot serve: no sampler, no prompt text, no image output (one line, naming it)."""


def bind(
    prompt: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> tuple[dict[str, list[Binding]], str, str]:
    """The bindings of an API graph (found by the parser, then `overrides`), its save node and family."""
    from ..metadata.capture import SaveContext, build_record
    from ..metadata.parser.rules import default_rules

    graph = {k: v for k, v in prompt.items() if isinstance(v, dict) and "class_type" in v}
    outputs = [k for k, v in graph.items() if v.get("class_type") in OUTPUTS]
    if not outputs:
        raise TemplateError("no image output (SaveImage, PreviewImage or Save Image (Provenance))")
    save_node = next((k for k in outputs if graph[k]["class_type"] == SAVE_NODE), outputs[0])
    record = build_record(SaveContext(prompt=copy.deepcopy(graph), save_node_id=save_node), None)
    sources = record.provenance.field_sources
    rules = default_rules()
    bindings: dict[str, list[Binding]] = {}
    for name in FIELDS:
        node_id = sources.get(name)
        node = graph.get(node_id) if isinstance(node_id, str) else None
        if node is None:
            continue
        rule = rules.get(node.get("class_type"))
        fields = rule.fields if rule is not None else {}
        spec = fields.get(name) or (fields.get("text") if name in ("positive", "negative") else None)
        if spec is None or spec.input is None:
            continue
        place = _literal(graph, node_id, spec.input)  # type: ignore[arg-type]
        if place is None:  # behind a switch or an expression: a template file binds it, never a guess
            continue
        places = [place]
        if name in ("positive", "negative"):
            places += [Binding(node_id, extra) for extra in TEXT_EXTRAS.get(node["class_type"], ())]  # type: ignore[arg-type]
        bindings[name] = places
    _images(graph, rules, bindings)
    for node_id, node in graph.items():
        for key in ("ckpt_name", "unet_name"):
            if isinstance(node.get("inputs", {}).get(key), str):
                bindings.setdefault("checkpoint", []).append(Binding(node_id, key))
    for name, places in (overrides or {}).items():
        bindings[name] = [_parse_binding(name, p, graph) for p in (places if isinstance(places, list) else [places])]
    for needed in ("positive", "seed"):
        if needed not in bindings:
            raise TemplateError(f"the parser found no {needed} in the graph; bind it in the template file")
    return bindings, save_node, _family(graph, record)


def _literal(graph: Mapping[str, Any], node_id: str, name: str) -> Binding | None:
    """Where `node_id.name`'s value is typed: the input itself, or the one literal of the node it links to."""
    value = graph[node_id].get("inputs", {}).get(name)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
        return Binding(node_id, name)
    source = graph.get(value[0], {})
    literals = [k for k, v in source.get("inputs", {}).items() if not isinstance(v, list)]
    return Binding(value[0], literals[0]) if len(literals) == 1 else None


def _images(graph: Mapping[str, Any], rules: Any, bindings: dict[str, list[Binding]]) -> None:
    """The image loaders: the one feeding a `mask` input binds `mask`, the first other binds `image`."""
    masks: set[str] = set()
    for node in graph.values():
        for name in MASK_INPUTS:
            link = node.get("inputs", {}).get(name)
            if isinstance(link, list) and len(link) == 2 and str(link[0]) in graph:
                masks.add(str(link[0]))
    for node_id, node in sorted(graph.items(), key=lambda item: _order(item[0])):
        rule = rules.get(node.get("class_type"))
        if rule is None or rule.role != "image" or not isinstance(node.get("inputs", {}).get("image"), str):
            continue
        kind = "mask" if node_id in masks else "image"
        bindings.setdefault(kind, [Binding(node_id, "image")])


def _order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)


def _parse_binding(name: str, text: Any, graph: Mapping[str, Any]) -> Binding:
    node, _, input_name = str(text).partition(".")
    if node not in graph or not input_name:
        raise TemplateError(f"binding {name}: {text!r} names no node input of the graph (write NODE_ID.INPUT)")
    return Binding(node, input_name)


def _family(graph: Mapping[str, Any], record: Any) -> str:
    classes = {str(n.get("class_type")) for n in graph.values()}
    names = " ".join(str(m.name).lower() for m in record.models)
    if classes & {"FluxGuidance", "CLIPTextEncodeFlux"} or "flux" in names:
        return "flux"
    if "CLIPTextEncodeSDXL" in classes or "xl" in names:
        return "sdxl"
    if classes & {"CheckpointLoaderSimple", "CheckpointLoader"}:
        return "sd15"
    return "unknown"


def from_data(template_id: str, data: Any, *, source: str, object_info: Mapping[str, Any] | None = None) -> Template:
    """A template from a file's JSON: a bare graph (API or UI), or the wrapper object."""
    from ..reproduce.ui_workflow import is_ui, to_api

    wrapper = isinstance(data, dict) and "workflow" in data
    graph = data.get("workflow") if wrapper else data
    if not isinstance(graph, dict):
        raise TemplateError("not a workflow (a JSON object)")
    if is_ui(graph):
        if object_info is None:
            raise TemplateError("a UI workflow needs the server's /object_info to convert")
        graph = to_api(graph, object_info)
    bindings, save, family = bind(graph, data.get("bindings") if wrapper else None)
    meta = data if wrapper else {}
    tid = str(meta.get("id") or template_id)
    if not ID.match(tid):
        raise TemplateError(f"id {tid!r} is not a model id (letters, digits, . _ : -; up to 64)")
    return Template(
        id=tid,
        prompt={k: v for k, v in graph.items() if isinstance(v, dict) and "class_type" in v},
        bindings=bindings,
        save_node=save,
        family=str(meta.get("family") or family),
        description=str(meta.get("description") or ""),
        source=source,
        created=int(meta.get("created") or 0),
    )


def load_folder(folder: Path, *, source: str, object_info: Mapping[str, Any] | None = None) -> dict[str, Template]:
    """Every template in `folder`: one that does not load is a warning naming it, never a failure."""
    from ..metadata.budget import open_regular

    found: dict[str, Template] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            with open_regular(path) as fp:
                raw = fp.read(TEMPLATE_MAX_BYTES + 1)
            if len(raw) > TEMPLATE_MAX_BYTES:
                raise TemplateError(f"over {TEMPLATE_MAX_BYTES:,} bytes")
            template = from_data(path.stem, json.loads(raw), source=source, object_info=object_info)
            template.created = template.created or int(path.stat().st_mtime)
        except Exception as err:  # a broken template must not take the others down
            logger.warning("provenance openai: template %s skipped: %s", path.name, " ".join(str(err).split()))
            continue
        found[template.id] = template
    return found


def bundled() -> dict[str, Template]:
    return load_folder(BUNDLED_DIR, source="bundled")


# -- filling a template --------------------------------------------------------------------------------------------
@dataclass
class Filled:
    """A request's graph, ready to queue, and what it set."""

    prompt: dict[str, Any]
    seed: int
    batch: int
    values: dict[str, Any] = field(default_factory=dict)


def check_size(template: Template, size: tuple[int, int] | None, max_side: int) -> tuple[int, int] | None:
    """The size to render, or None for the template's own; a 400 naming `size` when the family cannot."""
    if size is None:
        return None
    if "width" not in template.bindings or "height" not in template.bindings:
        raise bad_request(f"Model '{template.id}' has a fixed size: give size 'auto'.", param="size")
    width, height = size
    step = template.multiple
    if width % step or height % step or not (64 <= width <= max_side and 64 <= height <= max_side):
        raise bad_request(
            f"Invalid value for 'size': '{width}x{height}'. Model '{template.id}' ({template.family}) takes "
            f"WIDTHxHEIGHT in multiples of {step} from 64 to {max_side}.",
            param="size",
        )
    return size


def fill(
    template: Template,
    request: Any,
    *,
    seed: int,
    batch: int,
    size: tuple[int, int] | None,
    uploads: Mapping[str, str],
    checkpoint: str | None,
    prefix: str,
) -> Filled:
    """The template's graph with the request's values set where the bindings say; the save node ours."""
    prompt = copy.deepcopy(template.prompt)
    values: dict[str, Any] = {"positive": request.prompt, "seed": seed}
    if request.negative_prompt is not None:
        values["negative"] = request.negative_prompt
    default_steps = template.value("steps")
    if request.steps is not None:
        values["steps"] = request.steps
    elif request.quality in QUALITY_STEPS and isinstance(default_steps, int):
        values["steps"] = max(1, round(default_steps * QUALITY_STEPS[request.quality]))
    if request.cfg is not None:
        values["cfg"] = request.cfg
    if size is not None:
        values["width"], values["height"] = size
    if "batch_size" in template.bindings:
        values["batch_size"] = batch
    if request.strength is not None and "denoise" in template.bindings:
        values["denoise"] = request.strength
    values.update(uploads)
    if checkpoint is not None and "checkpoint" in template.bindings:
        values["checkpoint"] = checkpoint
    for name, value in values.items():
        places = template.bindings.get(name)
        if not places:
            if name in ("image", "mask"):
                raise bad_request(f"Model '{template.id}' takes no {name}.", param=name)
            continue
        for place in places:
            prompt[place.node]["inputs"][place.input] = value
    save = prompt[template.save_node]
    images = save["inputs"].get("images")
    quality = request.output_compression if request.output_compression is not None else 95
    save["class_type"] = SAVE_NODE
    save["inputs"] = {
        "images": images,
        "filename_prefix": prefix,
        "format": request.output_format,
        "quality": max(1, quality),
        "lossless": False,
    }
    for node_id in [k for k, v in prompt.items() if v.get("class_type") in OUTPUTS and k != template.save_node]:
        del prompt[node_id]  # one output: the files returned are the save node's
    return Filled(prompt=prompt, seed=seed, batch=batch, values=values)


def require(templates: Mapping[str, Template], model: str | None, default: str | None) -> Template:
    chosen = model or default
    if chosen is None or chosen not in templates:
        listed = ", ".join(sorted(templates)) or "none"
        raise ApiError(
            404,
            f"The model '{chosen}' does not exist or you do not have access to it. Models: {listed}.",
            param="model",
            code="model_not_found",
        )
    return templates[chosen]

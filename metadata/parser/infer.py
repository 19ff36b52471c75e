"""Rules inferred from a node class's schema, for classes nobody wrote a rule for.

Data-driven defaults that rules override: each inference reads only input and output *types* and
conventional *names* (the ones ComfyUI's own nodes use), and produces a rule in the user-rules JSON
format, so `provenance rules suggest` can print it for the user to pin. The inferences are
conservative: where a schema does not say something for sure (which input a switch picks, what a
helper computes), the rule leaves it out and the value stays unresolved, never guessed.

- Outputs are followed by slot **name and type**: an output passes on the input of the same name
  and type (positive → positive, negative → negative), or the only input of its type.
- A node giving IMAGE/VIDEO/AUDIO/3D from a multiline prompt, with no model input, is a generation
  step (a cloud API node): prompt, negative, seed and size land in the record.
- Text encoders, samplers and their parts (noise, guider, sampler, sigmas), latent makers,
  encode/decode, loaders (the file-name inputs, a role by output type), LoRA loaders, model and
  latent pass-throughs, output nodes and switches are recognised by their typed inputs and outputs.
- IMAGE inputs of a node that makes conditioning are guides (a control image, a reference): the
  output's lineage does not follow them, so a sampler behind one is auxiliary, never the base pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .rules import NodeRule, RuleError, RuleSet
from .schemas import NodeSchema, SchemaSet, gather

logger = logging.getLogger(__name__)
ORIGIN = "inferred"
# The selector of a switch-shaped node whose schema does not show it: never an input, never resolved.
UNSEEN_SELECTOR = "?"
# Sources whose schemas list only some inputs (schemas.from_workflow, schemas.from_prompt).
PARTIAL = frozenset({"workflow", "prompt"})

MEDIA = frozenset({"IMAGE", "VIDEO", "AUDIO", "MESH", "FILE_3D", "VOXEL", "3D", "SVG"})
MODEL_OUTPUTS = {
    "CONTROL_NET": "controlnet",
    "UPSCALE_MODEL": "upscaler",
    "CLIP_VISION": "clip_vision",
    "STYLE_MODEL": "style_model",
    "GLIGEN": "gligen",
    "VAE": "vae",
    "CLIP": "clip",
}
PROMPT_NAMES = ("prompt", "text", "positive_prompt", "positive", "prompt_text")
NEGATIVE_NAMES = ("negative_prompt", "negative", "negative_text")
SEED_NAMES = ("seed", "noise_seed")
FRAME_NAMES = ("length", "frames", "num_frames", "video_frames", "frame_count")
SAMPLER_FIELDS = {
    "seed": SEED_NAMES,
    "steps": ("steps",),
    "cfg": ("cfg",),
    "sampler": ("sampler_name",),
    "scheduler": ("scheduler",),
    "denoise": ("denoise",),
    "start_step": ("start_at_step",),
    "end_step": ("end_at_step",),
    "add_noise": ("add_noise",),
}
API_FIELDS = {
    "seed": SEED_NAMES,
    "width": ("width",),
    "height": ("height",),
    "cfg": ("cfg", "cfg_scale", "guidance_scale"),
    "steps": ("steps", "num_inference_steps"),
    "model": ("model", "model_name"),
}
LLM_FIELDS = {"seed": SEED_NAMES, "model": ("model", "model_name"), "system_prompt": ("system_prompt",)}
VALUE_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
LATENT_FIELDS = {"width": ("width",), "height": ("height",), "batch_size": ("batch_size",), "frames": FRAME_NAMES}
FILE_NAME = ("_name", "ckpt_name", "name")
# Types that carry no value a rule could read (links), as the frontend names them.
ANY = frozenset({"*", "COMFY_MATCHTYPE_V3"})


def infer(schema: NodeSchema) -> dict[str, Any] | None:
    """A rule (user-rules JSON) for this class from its schema, or None when nothing is sure."""
    for guess in (_sampler, _part, _api, _llm, _text, _lora, _loader, _conditioning, _latent, _codec, _output,
                  _switch, _constant, _passthrough):  # fmt: skip
        rule = guess(schema)
        if rule is not None:
            return rule
    return None


def _complete(schema: NodeSchema) -> bool:
    """Every input is listed (from /object_info, live or the snapshot): an input missing from the schema
    is not there. A UI workflow lists widget inputs only where the frontend typed them."""
    return schema.source not in PARTIAL


def _outputs(schema: NodeSchema) -> list[str]:
    return [t for _, t in schema.outputs]


def _named(schema: NodeSchema, names: tuple[str, ...], *types: str) -> str | None:
    """The first input called one of `names` (of one of `types`, when given)."""
    for name in names:
        spec = schema.inputs.get(name)
        if spec is not None and (not types or spec.type in types):
            return name
    return None


def _fields(schema: NodeSchema, table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {field: name for field, names in table.items() if (name := _named(schema, names)) is not None}


def _sampler(schema: NodeSchema) -> dict[str, Any] | None:
    """KSampler-like (MODEL, positive/negative CONDITIONING, steps or cfg) or custom (its noise, guider,
    sampler and sigmas as inputs): a LATENT in and a LATENT out."""
    model = schema.inputs_of("MODEL")
    positive = _named(schema, ("positive",), "CONDITIONING")
    negative = _named(schema, ("negative",), "CONDITIONING")
    latent = schema.inputs_of("LATENT")
    parts = {role: found[0] for role, kind in PART_INPUTS.items() if (found := schema.inputs_of(kind))}
    if "LATENT" not in _outputs(schema) or not latent:
        return None
    fields = _fields(schema, SAMPLER_FIELDS)
    custom = "guider" in parts or {"sampler", "sigmas"} <= set(parts)
    if not custom and not (model and positive and {"steps", "cfg"} & set(fields)):
        return None
    if custom and not ("guider" in parts or (model and positive)):
        return None
    inputs = {"latent": latent[0], **parts}
    for role, name in (("model", model[0] if model else None), ("positive", positive), ("negative", negative)):
        if name:
            inputs[role] = name
    rule: dict[str, Any] = {"role": "sampler", "fields": fields, "inputs": inputs}
    if parts:
        rule["parts"] = sorted(parts)
    return rule


PART_INPUTS = {"noise": "NOISE", "guider": "GUIDER", "sampler": "SAMPLER", "sigmas": "SIGMAS"}


PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "SAMPLER": {"sampler": ("sampler_name",)},
    "SIGMAS": {"steps": ("steps",), "scheduler": ("scheduler",), "denoise": ("denoise",)},
    "NOISE": {"seed": SEED_NAMES},
    "GUIDER": {"cfg": ("cfg",)},
}


def _part(schema: NodeSchema) -> dict[str, Any] | None:
    """A sampler component: gives SAMPLER, SIGMAS, NOISE or GUIDER (a custom sampler's noise/guider/...)."""
    outputs = _outputs(schema)
    if len(outputs) != 1 or outputs[0] not in PARTS:
        return None
    kind = outputs[0]
    rule: dict[str, Any] = {"role": "part", "fields": _fields(schema, PARTS[kind])}
    links = {}
    if same := schema.inputs_of(kind):
        links[kind.lower()] = same[0]  # modifies one (splits, flips sigmas): the walk goes on through it
    elif kind == "SIGMAS" and "scheduler" not in rule["fields"] and _complete(schema):
        rule["fields"]["scheduler"] = {"const": schema.class_type}  # a scheduler node of its own kind
    if (model := schema.inputs_of("MODEL")) and outputs[0] in ("GUIDER", "SIGMAS"):
        links["model"] = model[0]
    if outputs[0] == "GUIDER":
        conditionings = schema.inputs_of("CONDITIONING")
        positive = _named(schema, ("positive", "conditioning"), "CONDITIONING")
        negative = _named(schema, ("negative",), "CONDITIONING")
        if positive is None and len(conditionings) == 1:
            positive = conditionings[0]
        links.update({k: v for k, v in (("positive", positive), ("negative", negative)) if v})
    if links:
        rule["inputs"] = links
    return rule


def _api(schema: NodeSchema) -> dict[str, Any] | None:
    """A generation step done elsewhere: media out, a prompt in, and no model of ours behind it."""
    if not MEDIA & set(_outputs(schema)) or schema.inputs_of("MODEL", "LATENT", "CONDITIONING"):
        return None
    prompt = _named(schema, PROMPT_NAMES, "STRING") or _nested(schema, PROMPT_NAMES, "STRING")
    if prompt is None or not (schema.inputs[prompt].multiline or schema.api_node):
        return None
    fields = {"positive": prompt}
    negative = _named(schema, NEGATIVE_NAMES, "STRING")
    if negative:
        fields["negative"] = negative
    fields.update(_fields(schema, API_FIELDS))
    if "seed" not in fields and (nested := _nested(schema, SEED_NAMES, "INT")):
        fields["seed"] = nested  # a seed among the chosen model's options (model.seed)
    rule: dict[str, Any] = {"role": "api", "fields": fields}
    images = schema.inputs_of("IMAGE")
    if images:
        rule["inputs"] = {"image": images}
    return rule


def _nested(schema: NodeSchema, names: tuple[str, ...], kind: str) -> str | None:
    """An option input of a dynamic combo (`model.seed`) called one of `names`, when only one is."""
    found = [n for n, s in schema.inputs.items() if "." in n and n.rsplit(".", 1)[1] in names and s.type == kind]
    return found[0] if len(found) == 1 else None


def _llm(schema: NodeSchema) -> dict[str, Any] | None:
    """A prompt writer: text out (STRING only), a multiline prompt in, a language model behind it (a CLIP
    or MODEL input, or a cloud service). What it writes is known only at run time."""
    outputs = _outputs(schema)
    if not outputs or set(outputs) != {"STRING"}:
        return None
    prompt = _named(schema, PROMPT_NAMES, "STRING")
    if prompt is None or not schema.inputs[prompt].multiline:
        return None
    if not (schema.api_node or schema.inputs_of("CLIP", "MODEL")):
        return None
    fields = {"instruction": prompt, **_fields(schema, LLM_FIELDS)}
    if "seed" not in fields and (nested := _nested(schema, SEED_NAMES, "INT")):
        fields["seed"] = nested
    rule: dict[str, Any] = {"role": "llm", "fields": fields}
    if clip := schema.inputs_of("CLIP"):
        rule["inputs"] = {"clip": clip[0]}
    return rule


def _constant(schema: NodeSchema) -> dict[str, Any] | None:
    """A value node: one widget in and one output, of the same type (PrimitiveInt-like). Anything that
    computes from several inputs (a sum, a resolution from a ratio) is never guessed."""
    outputs = _outputs(schema)
    if len(outputs) != 1 or outputs[0] not in VALUE_TYPES or len(schema.inputs) != 1 or not _complete(schema):
        return None
    ((name, spec),) = schema.inputs.items()
    if spec.type != outputs[0]:
        return None
    return {"role": "constant", "fields": {"value": name}}


def _text(schema: NodeSchema) -> dict[str, Any] | None:
    """A text encoder: CLIP and a prompt in, CONDITIONING (and nothing else) out."""
    outputs = _outputs(schema)
    clip = schema.inputs_of("CLIP")
    if not outputs or set(outputs) != {"CONDITIONING"} or not clip or schema.inputs_of("CONDITIONING"):
        return None
    text = _named(schema, PROMPT_NAMES, "STRING")
    if text is None:
        multiline = [n for n, s in schema.inputs.items() if s.type == "STRING" and s.multiline]
        text = multiline[0] if len(multiline) == 1 else None
    if text is None:
        return None
    return {"role": "text", "fields": {"text": text}, "inputs": {"clip": clip[0]}}


def _file_inputs(schema: NodeSchema) -> list[str]:
    """COMBO inputs that name a file: `*_name` (ckpt_name, unet_name, clip_name1, ...)."""
    return [n for n, s in schema.inputs.items() if s.type == "COMBO" and any(part in n for part in FILE_NAME)]


def _lora(schema: NodeSchema) -> dict[str, Any] | None:
    """A LoRA loader: MODEL (and CLIP) in and out, a lora file and its strengths."""
    names = [n for n in _file_inputs(schema) if "lora" in n]
    model_in, model_out = schema.inputs_of("MODEL"), "MODEL" in _outputs(schema)
    if not (names and model_in and model_out):
        return None
    spec: dict[str, Any] = {"role": "lora", "name": names[0]}
    strength = _named(schema, ("strength_model", "strength", "lora_strength", "model_strength"), "FLOAT")
    if strength:
        spec["strength_model"] = strength
    clip_strength = _named(schema, ("strength_clip", "clip_strength"), "FLOAT")
    if clip_strength:
        spec["strength_clip"] = clip_strength
    inputs = {"model": model_in[0]}
    if clip := schema.inputs_of("CLIP"):
        inputs["clip"] = clip[0]
    return {"role": "lora", "models": [spec], "inputs": inputs, "outputs": _by_name(schema)}


def _loader(schema: NodeSchema) -> dict[str, Any] | None:
    """Loads model files: a model output with no input of that type, and file-name inputs."""
    outputs = _outputs(schema)
    files = _file_inputs(schema)
    if not files or schema.inputs_of("MODEL", "CLIP", "VAE", "LATENT", "CONDITIONING", "IMAGE"):
        return None
    if {"MODEL", "VAE"} <= set(outputs):
        role = "checkpoint"  # one file gives the model and its VAE (with a CLIP, or a CLIP vision)
    elif "MODEL" in outputs:
        role = "unet"
    else:
        role = next((MODEL_OUTPUTS[t] for t in outputs if t in MODEL_OUTPUTS), "")
    if not role:
        return None
    return {"role": "loader", "models": [{"role": role, "name": name} for name in files]}


def _conditioning(schema: NodeSchema) -> dict[str, Any] | None:
    """Takes and gives CONDITIONING: each output passes on its namesake (or the only one of its type)."""
    outputs = _outputs(schema)
    conditionings = schema.inputs_of("CONDITIONING")
    if "CONDITIONING" not in outputs or not conditionings:
        return None
    routes = _by_name(schema)
    rule: dict[str, Any] = {"role": "passthrough"}
    if outputs.count("CONDITIONING") == 1 and len(conditionings) > 1 and routes[outputs.index("CONDITIONING")] is None:
        rule["combine"] = {"inputs": conditionings}  # several in, one out: their prompts are joined
    elif len(conditionings) == 1 and len(outputs) == 1:
        rule["inputs"] = {"conditioning": conditionings[0]}
    if any(routes):
        rule["outputs"] = routes
    fields = _fields(schema, {**LATENT_FIELDS, "guidance": ("guidance",), "conditioning_frame_rate": ("frame_rate",)})
    if fields:
        rule["fields"] = fields
    return rule  # IMAGE inputs here are guides: not given a link role, so no lineage follows them


def _latent(schema: NodeSchema) -> dict[str, Any] | None:
    """Makes a latent from a size: LATENT out, no LATENT, IMAGE or MODEL in, width or height."""
    if _outputs(schema) != ["LATENT"] or schema.inputs_of("LATENT", "IMAGE", "MODEL", "CONDITIONING"):
        return None
    fields = _fields(schema, LATENT_FIELDS)
    if not {"width", "height", "frames"} & set(fields):
        return None
    return {"role": "latent", "fields": fields}


def _codec(schema: NodeSchema) -> dict[str, Any] | None:
    """VAE decode (LATENT + VAE → IMAGE) or encode (IMAGE + VAE → LATENT)."""
    outputs = _outputs(schema)
    vae, latent, image = schema.inputs_of("VAE"), schema.inputs_of("LATENT"), schema.inputs_of("IMAGE")
    if not vae or len(outputs) != 1:
        return None
    if outputs == ["IMAGE"] and len(latent) == 1:
        return {"role": "decode", "inputs": {"latent": latent[0], "vae": vae[0]}}
    if outputs == ["LATENT"] and len(image) == 1 and not latent:
        return {"role": "encode", "inputs": {"image": image[0], "vae": vae[0]}}
    return None


def _output(schema: NodeSchema) -> dict[str, Any] | None:
    """Saves or assembles the output: no outputs (or a VIDEO made from IMAGEs), media in, maybe an fps."""
    outputs = _outputs(schema)
    media = [n for n, s in schema.inputs.items() if s.type in MEDIA]
    if not media or not (not outputs or (outputs == ["VIDEO"] and schema.inputs_of("IMAGE"))):
        return None
    rule: dict[str, Any] = {"role": "output", "inputs": {"image": media[0]}}
    fps = _named(schema, ("fps", "frame_rate"), "FLOAT", "INT")
    if fps:
        rule["fields"] = {"fps": fps}
    return rule


def _switch(schema: NodeSchema) -> dict[str, Any] | None:
    """Picks one of several inputs of its output's type by a selector: which one is never guessed."""
    outputs = _outputs(schema)
    if len(outputs) != 1:
        return None
    kind = outputs[0]
    choices = [n for n, s in schema.inputs.items() if s.type == kind or s.type in ANY]
    selectors = [n for n, s in schema.inputs.items() if s.type in ("BOOLEAN", "INT", "COMBO") and n not in choices]
    if len(choices) < 2 or len(selectors) > 1:
        return None
    if not selectors:
        if _complete(schema):
            return None  # several inputs of one type and nothing choosing: a merge, a blend, a batch
        # A UI workflow may leave the selector widget untyped: a switch or a merge, which input the
        # output depends on is not sure, so neither is recorded as used (its models are candidates).
        return {"role": "switch", "switch": {"selector": UNSEEN_SELECTOR}}
    switch: dict[str, Any] = {"selector": selectors[0]}
    if schema.inputs[selectors[0]].type == "BOOLEAN" and len(choices) == 2:
        # on_true/on_false, if_true/if_false, true/false: the names say which input each value picks.
        by_value = {v: [c for c in choices if c.lower().split("_")[-1] == v] for v in ("true", "false")}
        if all(len(found) == 1 for found in by_value.values()):
            switch["choices"] = {v: found[0] for v, found in by_value.items()}
    return {"role": "switch", "switch": switch}


def _passthrough(schema: NodeSchema) -> dict[str, Any] | None:
    """Passes a model, clip, latent or image on (patched, resized, filtered): the output's lineage."""
    outputs = _outputs(schema)
    if len(outputs) != 1:
        return None
    kind = outputs[0]
    same = schema.inputs_of(kind)
    if len(same) != 1:
        return None
    role = {"MODEL": "model", "CLIP": "clip", "LATENT": "latent", "IMAGE": "image"}.get(kind)
    if role is None:
        return None
    rule: dict[str, Any] = {"role": "passthrough", "inputs": {role: same[0]}, "outputs": [same[0]]}
    if kind == "MODEL" and (shift := _named(schema, ("shift",), "FLOAT")):
        rule["fields"] = {"shift": shift}
    return rule


def _by_name(schema: NodeSchema) -> list[str | None]:
    """Per output: the input it passes on, by name and type, else the only input of its type when it is
    the only output of that type, else none (which input a second CONDITIONING output carries is not
    guessed by position)."""
    routes: list[str | None] = []
    for name, kind in schema.outputs:
        namesake = schema.inputs.get(name.lower())
        if namesake is not None and namesake.type == kind:
            routes.append(name.lower())
            continue
        same = schema.inputs_of(kind)
        alone = len(same) == 1 and sum(1 for _, t in schema.outputs if t == kind) == 1
        routes.append(same[0] if alone else None)
    return routes


_parsed: dict[str, NodeRule | None] = {}
CACHE_MAX = 4096


def inferred_rule(schema: NodeSchema) -> NodeRule | None:
    """The inferred rule as the parser uses it (validated like a user's rule), cached by its JSON."""
    from .ruledata import parse_rules

    data = infer(schema)
    if data is None:
        return None
    key = json.dumps([schema.class_type, schema.source, data], sort_keys=True)
    if key not in _parsed:
        if len(_parsed) >= CACHE_MAX:  # graphs with ever new classes: the cache never grows without end
            _parsed.clear()
        try:
            _parsed[key] = parse_rules({"nodes": {schema.class_type: data}}, f"{ORIGIN}:{schema.source}")[
                schema.class_type
            ]
        except RuleError:  # an inference this module got wrong: the class stays unknown
            logger.debug("provenance: inferred rule for %s refused", schema.class_type, exc_info=True)
            _parsed[key] = None
    return _parsed[key]


@dataclass(frozen=True)
class Inference:
    """The rules a parse uses: the given ones, inferred ones for classes without, and disputed outputs."""

    rules: RuleSet
    inferred: dict[str, str]  # {class: "inferred:<schema source>"}
    disputes: list[dict[str, Any]]  # a rule and the class's schema disagree on which prompt an output carries


def with_inferred(
    rules: RuleSet, prompt: Mapping[str, Any], workflow: Mapping[str, Any] | None, schemas: SchemaSet | None
) -> Inference:
    """`rules` plus rules inferred for the graph's classes that have none, and, where a rule routes a
    conditioning output to the prompt of one polarity while the class's schema names that output the
    other, the output marked disputed: the two readings disagree, so neither is recorded."""
    classes = _classes(prompt.values())
    missing = sorted(c for c in classes if c not in rules)
    if not missing and not (classes & rules.routed):
        return Inference(rules, {}, [])
    routed = sorted(c for c in classes & rules.routed)
    if not missing and not routed:
        return Inference(rules, {}, [])
    # The running ComfyUI knows best; then what the user named; then the snapshot of core nodes (from a
    # real /object_info: every input typed); the workflow last (old frontends leave widgets untyped);
    # the prompt's values of the classes without a rule after all.
    unknown = set(missing)
    theirs = {k: n for k, n in prompt.items() if _mapping(n) and n.get("class_type") in unknown}
    known = gather([*missing, *routed], workflow, schemas, theirs)
    found: dict[str, NodeRule] = {}
    for class_type in missing:
        schema = known.get(class_type)
        rule = inferred_rule(schema) if schema is not None else None
        if rule is not None:
            found[class_type] = rule
    disputes: list[dict[str, Any]] = []
    for class_type in routed:
        rule, schema = rules.get(class_type), known.get(class_type)
        if rule is None or schema is None:
            continue
        outputs = _disputed(rule, schema)
        if outputs:
            found[class_type] = replace(rule, disputed=frozenset(outputs))
            disputes.extend(
                {"class_type": class_type, "output": i, "rule": rule.outputs[i], "schema": schema.output_name(i),
                 "schema_source": schema.source}
                for i in outputs
            )  # fmt: skip
    inferred = {c: str(r.origin) for c, r in found.items() if c in missing}
    return Inference(rules.extended(found) if found else rules, inferred, disputes)


POLARITIES = frozenset({"positive", "negative"})


def _disputed(rule: NodeRule, schema: NodeSchema) -> list[int]:
    """Outputs the rule passes on from the prompt of one polarity while the schema names them the other."""
    found = []
    for index, through in enumerate(rule.outputs):
        named = (schema.output_name(index) or "").lower()
        if through in POLARITIES and named in POLARITIES and named != through:
            found.append(index)
    return found


def _mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # a prompt's nodes are dicts: skip the ABC check


def _classes(nodes: Iterable[Any]) -> set[str]:
    found = {n.get("class_type") for n in nodes if _mapping(n)}
    return {c for c in found if type(c) is str}

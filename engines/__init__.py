"""Per-family sampling engines: detection from ComfyUI's MODEL, presets as data, strict parameters.

No ComfyUI import here: the nodes hand in the MODEL object and ComfyUI's live sampler/scheduler lists.
"""

from __future__ import annotations

from .errors import EngineError
from .families import FAMILIES, Generic, detect, family_by_engine
from .family import MODES, TASKS, Family, ModelFacts
from .modes import MODE_TABLE, Mode
from .plan import Plan, plan
from .presets import Preset, PresetStore, load_presets, parse_preset
from .samplers import a1111_table, resolve
from .specs import ParamSpec

__all__ = [
    "FAMILIES",
    "MODES",
    "MODE_TABLE",
    "TASKS",
    "EngineError",
    "Family",
    "Generic",
    "Mode",
    "ModelFacts",
    "ParamSpec",
    "Plan",
    "Preset",
    "PresetStore",
    "a1111_table",
    "detect",
    "family_by_engine",
    "load_presets",
    "parse_preset",
    "plan",
    "resolve",
]

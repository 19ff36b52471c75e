"""The V3 node and the ComfyExtension that lists it (ComfyUI ≥ 0.3.48)."""

from __future__ import annotations

from typing import Any

from .. import compat
from ..metadata.formats.base import TARGETS
from . import save_image as spec

api = compat.v3_api()
io = api.io


class ProvenanceSaveImage(io.ComfyNode):  # type: ignore[misc,name-defined]
    @classmethod
    def define_schema(cls) -> Any:
        tip = spec.TOOLTIPS
        return io.Schema(
            node_id=spec.NODE_ID,
            display_name=spec.DISPLAY_NAME,
            category=spec.CATEGORY,
            description=spec.DESCRIPTION,
            inputs=[
                io.Image.Input("images", tooltip=tip["images"]),
                io.String.Input("filename_prefix", default="ComfyUI", tooltip=tip["filename_prefix"]),
                # Everything else is optional: a prompt that only swaps SaveImage for this node (an API
                # script, a bot) validates and saves with the defaults below.
                io.Combo.Input("format", options=spec.FORMATS, default="png", optional=True, tooltip=tip["format"]),
                io.Int.Input("quality", default=95, min=1, max=100, optional=True, tooltip=tip["quality"]),
                io.Boolean.Input("lossless", default=False, optional=True, tooltip=tip["lossless"]),
                io.MultiCombo.Input(
                    "targets",
                    options=list(TARGETS),
                    default=spec.DEFAULT_TARGET_LIST,
                    optional=True,
                    tooltip=tip["targets"],
                ),
                io.Boolean.Input("prefer_runtime", default=True, optional=True, tooltip=tip["prefer_runtime"]),
                io.Boolean.Input("lora_tags", default=True, optional=True, tooltip=tip["lora_tags"]),
            ],
            outputs=[io.Image.Output(display_name="images")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo, io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
        *,
        images: Any,
        filename_prefix: str = spec.DEFAULT_PREFIX,
        format: str = spec.DEFAULTS["format"],
        quality: int = spec.DEFAULTS["quality"],
        lossless: bool = spec.DEFAULTS["lossless"],
        targets: Any = None,
        prefer_runtime: bool | None = True,
        lora_tags: bool | None = True,
    ) -> Any:
        hidden = cls.hidden
        results = spec.run(
            images=images,
            filename_prefix=filename_prefix,
            format=format,
            quality=quality,
            lossless=lossless,
            targets=targets,
            prompt=hidden.prompt,
            extra_pnginfo=hidden.extra_pnginfo,
            unique_id=hidden.unique_id,
            prefer_runtime=prefer_runtime,
            lora_tags=lora_tags,
        )
        return io.NodeOutput(images, ui={"images": results})


class ProvenanceExtension(api.ComfyExtension):  # type: ignore[misc,name-defined]
    async def get_node_list(self) -> list[type[Any]]:
        return [ProvenanceSaveImage]

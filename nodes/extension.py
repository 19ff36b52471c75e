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
                io.Combo.Input("format", options=spec.FORMATS, default="png", tooltip=tip["format"]),
                io.Int.Input("quality", default=95, min=1, max=100, tooltip=tip["quality"]),
                io.Boolean.Input("lossless", default=False, tooltip=tip["lossless"]),
                io.MultiCombo.Input(
                    "targets", options=list(TARGETS), default=spec.DEFAULT_TARGET_LIST, tooltip=tip["targets"]
                ),
                # Optional: prompts saved before this input existed still validate (absent means on).
                io.Boolean.Input("prefer_runtime", default=True, optional=True, tooltip=tip["prefer_runtime"]),
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
        filename_prefix: str,
        format: str,
        quality: int,
        lossless: bool,
        targets: Any,
        prefer_runtime: bool | None = True,
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
        )
        return io.NodeOutput(images, ui={"images": results})


class ProvenanceExtension(api.ComfyExtension):  # type: ignore[misc,name-defined]
    async def get_node_list(self) -> list[type[Any]]:
        return [ProvenanceSaveImage]

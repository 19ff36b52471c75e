"""V1 fallback for a ComfyUI without comfy_api: same node id, inputs and behaviour."""

from __future__ import annotations

from typing import Any

from . import save_image as spec


class ProvenanceSaveImageV1:
    DESCRIPTION = spec.DESCRIPTION
    CATEGORY = spec.CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        tip = spec.TOOLTIPS
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": tip["images"]}),
                "filename_prefix": ("STRING", {"default": spec.DEFAULT_PREFIX, "tooltip": tip["filename_prefix"]}),
            },
            # Optional, as in the V3 node: a prompt that only swaps SaveImage for this node saves with the defaults.
            "optional": {
                "format": (spec.FORMATS, {"default": "png", "tooltip": tip["format"]}),
                "quality": ("INT", {"default": 95, "min": 1, "max": 100, "tooltip": tip["quality"]}),
                "lossless": ("BOOLEAN", {"default": False, "tooltip": tip["lossless"]}),
                "targets": (
                    "STRING",
                    {"default": ",".join(spec.DEFAULT_TARGET_LIST), "tooltip": tip["targets"] + " Comma-separated."},
                ),
                "prefer_runtime": ("BOOLEAN", {"default": True, "tooltip": tip["prefer_runtime"]}),
                "lora_tags": ("BOOLEAN", {"default": True, "tooltip": tip["lora_tags"]}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def save(
        self,
        *,
        images: Any,
        filename_prefix: str = spec.DEFAULT_PREFIX,
        format: str = spec.DEFAULTS["format"],
        quality: int = spec.DEFAULTS["quality"],
        lossless: bool = spec.DEFAULTS["lossless"],
        targets: str | None = None,
        prefer_runtime: bool | None = True,
        lora_tags: bool | None = True,
        prompt: Any = None,
        extra_pnginfo: Any = None,
        unique_id: Any = None,
    ) -> dict[str, Any]:
        results = spec.run(
            images=images,
            filename_prefix=filename_prefix,
            format=format,
            quality=quality,
            lossless=lossless,
            targets=targets,
            prompt=prompt,
            extra_pnginfo=extra_pnginfo,
            unique_id=unique_id,
            prefer_runtime=prefer_runtime,
            lora_tags=lora_tags,
        )
        return {"ui": {"images": results}, "result": (images,)}


NODE_CLASS_MAPPINGS: dict[str, type] = {spec.NODE_ID: ProvenanceSaveImageV1}
NODE_DISPLAY_NAME_MAPPINGS = {spec.NODE_ID: spec.DISPLAY_NAME}

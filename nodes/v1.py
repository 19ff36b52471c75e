"""V1 fallbacks for a ComfyUI without comfy_api: same node ids, inputs and behaviour."""

from __future__ import annotations

from typing import Any

from ..metadata.settings import OPTIONS_EXAMPLE
from . import sampler
from . import save_image as spec
from . import save_media as media
from . import video_sampler as video


def _options_input(tooltip: str) -> tuple[str, dict[str, Any]]:
    """The `options` text box, as the V3 nodes declare it (no dynamic prompts: `{...}` is the JSON)."""
    extra = {"default": "", "multiline": True, "dynamicPrompts": False, "placeholder": OPTIONS_EXAMPLE}
    return ("STRING", {**extra, "tooltip": tooltip})


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
                "options": _options_input(tip["options"]),
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
        prefer_runtime: bool | None = None,
        lora_tags: bool | None = None,
        options: str = "",
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
            options=options,
        )
        return {"ui": {"images": results}, "result": (images,)}


def _common(tip: dict[str, str]) -> dict[str, Any]:
    return {
        "targets": (
            "STRING",
            {"default": ",".join(media.DEFAULT_TARGET_LIST), "tooltip": tip["targets"] + " Comma-separated."},
        ),
        "prefer_runtime": ("BOOLEAN", {"default": True, "tooltip": tip["prefer_runtime"]}),
        "lora_tags": ("BOOLEAN", {"default": True, "tooltip": tip["lora_tags"]}),
        "options": _options_input(tip["options"]),
    }


class ProvenanceSaveVideoV1:
    DESCRIPTION = media.VIDEO_DESCRIPTION
    CATEGORY = media.VIDEO_CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        tip = media.TOOLTIPS
        return {
            "required": {
                "filename_prefix": ("STRING", {"default": media.VIDEO_PREFIX, "tooltip": tip["filename_prefix"]}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": tip["images"]}),
                "video": ("VIDEO", {"tooltip": tip["video"]}),
                "audio": ("AUDIO", {"tooltip": tip["audio"]}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "step": 0.01, "tooltip": tip["fps"]}),
                "format": (media.VIDEO_CHOICES, {"default": "mp4", "tooltip": tip["format"]}),
                "crf": ("INT", {"default": -1, "min": -1, "max": 63, "tooltip": tip["crf"]}),
                "lossless": ("BOOLEAN", {"default": False, "tooltip": tip["lossless"]}),
                "quality": ("INT", {"default": 90, "min": 1, "max": 100, "tooltip": tip["quality"]}),
                **_common(tip),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def save(
        self,
        *,
        filename_prefix: str = media.VIDEO_PREFIX,
        images: Any = None,
        video: Any = None,
        audio: Any = None,
        fps: float = 24.0,
        format: str = "mp4",
        crf: int = -1,
        lossless: bool = False,
        quality: int = 90,
        targets: str | None = None,
        prefer_runtime: bool | None = None,
        lora_tags: bool | None = None,
        options: str = "",
        prompt: Any = None,
        extra_pnginfo: Any = None,
        unique_id: Any = None,
    ) -> dict[str, Any]:
        results = media.run_video(
            images=images,
            video=video,
            audio=audio,
            fps=fps,
            filename_prefix=filename_prefix,
            format=format,
            crf=crf,
            lossless=lossless,
            quality=quality,
            targets=targets,
            prompt=prompt,
            extra_pnginfo=extra_pnginfo,
            unique_id=unique_id,
            prefer_runtime=prefer_runtime,
            lora_tags=lora_tags,
            options=options,
        )
        return {"ui": {"images": results, "animated": (True,)}}


class ProvenanceSaveAudioV1:
    DESCRIPTION = media.AUDIO_DESCRIPTION
    CATEGORY = media.AUDIO_CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        tip = media.TOOLTIPS
        return {
            "required": {
                "audio": ("AUDIO", {"tooltip": tip["audio_in"]}),
                "filename_prefix": ("STRING", {"default": media.AUDIO_PREFIX, "tooltip": tip["filename_prefix"]}),
            },
            "optional": {
                "format": (media.AUDIO_CHOICES, {"default": "flac", "tooltip": tip["audio_format"]}),
                "bitrate": (media.BITRATES, {"default": "128k", "tooltip": tip["bitrate"]}),
                **_common(tip),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def save(
        self,
        *,
        audio: Any,
        filename_prefix: str = media.AUDIO_PREFIX,
        format: str = "flac",
        bitrate: str = "128k",
        targets: str | None = None,
        prefer_runtime: bool | None = None,
        lora_tags: bool | None = None,
        options: str = "",
        prompt: Any = None,
        extra_pnginfo: Any = None,
        unique_id: Any = None,
    ) -> dict[str, Any]:
        results = media.run_audio(
            audio=audio,
            filename_prefix=filename_prefix,
            format=format,
            bitrate=bitrate,
            targets=targets,
            prompt=prompt,
            extra_pnginfo=extra_pnginfo,
            unique_id=unique_id,
            prefer_runtime=prefer_runtime,
            lora_tags=lora_tags,
            options=options,
        )
        return {"ui": {"audio": results}}


def _sampling_inputs(tip: dict[str, str]) -> dict[str, Any]:
    """The KSampler-like inputs both samplers take after their model, in KSampler's (widget) order."""
    from .. import compat

    seed = {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}
    return {
        "positive": ("CONDITIONING", {"tooltip": tip["positive"]}),
        "negative": ("CONDITIONING", {"tooltip": tip["negative"]}),
        "latent_image": ("LATENT", {"tooltip": tip["latent_image"]}),
        "seed": ("INT", {**seed, "tooltip": tip["seed"]}),
        "steps": ("INT", {"default": 0, "min": 0, "max": 10000, "tooltip": tip["steps"]}),
        "cfg": (
            "FLOAT",
            {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": tip["cfg"]},
        ),
        "sampler_name": (sampler.sampler_options(compat.sampler_names()), {"tooltip": tip["sampler_name"]}),
        "scheduler": (sampler.scheduler_options(compat.scheduler_names()), {"tooltip": tip["scheduler"]}),
    }


def _engine_inputs(tip: dict[str, str]) -> dict[str, Any]:
    """The engine's mode and preset, optional and last on both samplers."""
    from ..engines import MODES

    return {
        "mode": (list(MODES), {"default": MODES[0], "tooltip": tip["mode"]}),
        "preset": ("STRING", {"default": "", "tooltip": tip["preset"]}),
    }


class ProvenanceSamplerV1:
    DESCRIPTION = sampler.DESCRIPTION
    CATEGORY = sampler.CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:

        tip = sampler.TOOLTIPS
        return {
            "required": {
                "model": ("MODEL", {"tooltip": tip["model"]}),
                **_sampling_inputs(tip),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": tip["denoise"]}),
            },
            "optional": {
                **_engine_inputs(tip),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    def sample(
        self,
        *,
        model: Any,
        positive: Any,
        negative: Any,
        latent_image: Any,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        denoise: float,
        mode: str = sampler.DEFAULT_MODE,
        preset: str = "",
        prompt: Any = None,
        unique_id: Any = None,
    ) -> tuple[Any]:
        return sampler.run(
            model=model,
            positive=positive,
            negative=negative,
            latent_image=latent_image,
            seed=seed,
            steps=steps,
            cfg=cfg,
            sampler_name=sampler_name,
            scheduler=scheduler,
            denoise=denoise,
            mode=mode,
            preset=preset,
            prompt=prompt,
            unique_id=unique_id,
        )


class ProvenanceVideoSamplerV1:
    DESCRIPTION = video.DESCRIPTION
    CATEGORY = video.CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:

        tip = video.TOOLTIPS
        boundary = {"default": 0.0, "min": 0.0, "max": 0.999, "step": 0.001, "tooltip": tip["boundary"]}
        return {
            "required": {
                "model": ("MODEL", {"tooltip": tip["model"]}),
                **_sampling_inputs(tip),
                "split": ("INT", {"default": 0, "min": 0, "max": 10000, "tooltip": tip["split"]}),
                "boundary": ("FLOAT", boundary),
            },
            "optional": {
                "model_low": ("MODEL", {"tooltip": tip["model_low"]}),
                **_engine_inputs(tip),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    def sample(
        self,
        *,
        model: Any,
        positive: Any,
        negative: Any,
        latent_image: Any,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        split: int,
        boundary: float,
        model_low: Any = None,
        mode: str = sampler.DEFAULT_MODE,
        preset: str = "",
        prompt: Any = None,
        unique_id: Any = None,
    ) -> tuple[Any]:
        return video.run(
            model=model,
            model_low=model_low,
            positive=positive,
            negative=negative,
            latent_image=latent_image,
            seed=seed,
            steps=steps,
            cfg=cfg,
            sampler_name=sampler_name,
            scheduler=scheduler,
            split=split,
            boundary=boundary,
            mode=mode,
            preset=preset,
            prompt=prompt,
            unique_id=unique_id,
        )


NODE_CLASS_MAPPINGS: dict[str, type] = {
    spec.NODE_ID: ProvenanceSaveImageV1,
    media.VIDEO_ID: ProvenanceSaveVideoV1,
    media.AUDIO_ID: ProvenanceSaveAudioV1,
    sampler.NODE_ID: ProvenanceSamplerV1,
    video.NODE_ID: ProvenanceVideoSamplerV1,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    spec.NODE_ID: spec.DISPLAY_NAME,
    media.VIDEO_ID: media.VIDEO_NAME,
    media.AUDIO_ID: media.AUDIO_NAME,
    sampler.NODE_ID: sampler.DISPLAY_NAME,
    video.NODE_ID: video.DISPLAY_NAME,
}

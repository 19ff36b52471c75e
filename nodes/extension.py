"""The V3 nodes and the ComfyExtension that lists them (ComfyUI ≥ 0.3.48)."""

from __future__ import annotations

from typing import Any

from .. import compat
from ..metadata.formats.base import TARGETS
from ..metadata.settings import OPTIONS_EXAMPLE
from . import sampler
from . import save_image as spec
from . import save_media as media
from . import video_sampler as video

api = compat.v3_api()
io = api.io


def _options_input(tooltip: str) -> Any:
    """The `options` text box: per-run settings as JSON (no dynamic prompts: `{...}` is the JSON, not a choice)."""
    return io.String.Input(
        "options",
        default="",
        multiline=True,
        placeholder=OPTIONS_EXAMPLE,
        dynamic_prompts=False,
        optional=True,
        tooltip=tooltip,
    )


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
                _options_input(tip["options"]),
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
        prefer_runtime: bool | None = None,
        lora_tags: bool | None = None,
        options: str = "",
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
            options=options,
        )
        return io.NodeOutput(images, ui={"images": results})


def _common_inputs(tip: dict[str, str]) -> list[Any]:
    return [
        io.MultiCombo.Input(
            "targets", options=list(TARGETS), default=media.DEFAULT_TARGET_LIST, optional=True, tooltip=tip["targets"]
        ),
        io.Boolean.Input("prefer_runtime", default=True, optional=True, tooltip=tip["prefer_runtime"]),
        io.Boolean.Input("lora_tags", default=True, optional=True, tooltip=tip["lora_tags"]),
        _options_input(tip["options"]),
    ]


class ProvenanceSaveVideo(io.ComfyNode):  # type: ignore[misc,name-defined]
    @classmethod
    def define_schema(cls) -> Any:
        tip = media.TOOLTIPS
        return io.Schema(
            node_id=media.VIDEO_ID,
            display_name=media.VIDEO_NAME,
            category=media.VIDEO_CATEGORY,
            description=media.VIDEO_DESCRIPTION,
            inputs=[
                io.String.Input("filename_prefix", default=media.VIDEO_PREFIX, tooltip=tip["filename_prefix"]),
                io.Image.Input("images", optional=True, tooltip=tip["images"]),
                io.Video.Input("video", optional=True, tooltip=tip["video"]),
                io.Audio.Input("audio", optional=True, tooltip=tip["audio"]),
                io.Float.Input("fps", default=24.0, min=0.01, max=1000.0, step=0.01, optional=True, tooltip=tip["fps"]),
                io.Combo.Input(
                    "format", options=media.VIDEO_CHOICES, default="mp4", optional=True, tooltip=tip["format"]
                ),
                io.Int.Input("crf", default=-1, min=-1, max=63, optional=True, tooltip=tip["crf"]),
                io.Boolean.Input("lossless", default=False, optional=True, tooltip=tip["lossless"]),
                io.Int.Input("quality", default=90, min=1, max=100, optional=True, tooltip=tip["quality"]),
                *_common_inputs(tip),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo, io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
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
        targets: Any = None,
        prefer_runtime: bool | None = None,
        lora_tags: bool | None = None,
        options: str = "",
    ) -> Any:
        hidden = cls.hidden
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
            prompt=hidden.prompt,
            extra_pnginfo=hidden.extra_pnginfo,
            unique_id=hidden.unique_id,
            prefer_runtime=prefer_runtime,
            lora_tags=lora_tags,
            options=options,
        )
        return io.NodeOutput(ui={"images": results, "animated": (True,)})


class ProvenanceSaveAudio(io.ComfyNode):  # type: ignore[misc,name-defined]
    @classmethod
    def define_schema(cls) -> Any:
        tip = media.TOOLTIPS
        return io.Schema(
            node_id=media.AUDIO_ID,
            display_name=media.AUDIO_NAME,
            category=media.AUDIO_CATEGORY,
            description=media.AUDIO_DESCRIPTION,
            inputs=[
                io.Audio.Input("audio", tooltip=tip["audio_in"]),
                io.String.Input("filename_prefix", default=media.AUDIO_PREFIX, tooltip=tip["filename_prefix"]),
                io.Combo.Input(
                    "format",
                    options=media.AUDIO_CHOICES,
                    default="flac",
                    optional=True,
                    tooltip=tip["audio_format"],
                ),
                io.Combo.Input(
                    "bitrate", options=media.BITRATES, default="128k", optional=True, tooltip=tip["bitrate"]
                ),
                *_common_inputs(tip),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo, io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
        *,
        audio: Any,
        filename_prefix: str = media.AUDIO_PREFIX,
        format: str = "flac",
        bitrate: str = "128k",
        targets: Any = None,
        prefer_runtime: bool | None = None,
        lora_tags: bool | None = None,
        options: str = "",
    ) -> Any:
        hidden = cls.hidden
        results = media.run_audio(
            audio=audio,
            filename_prefix=filename_prefix,
            format=format,
            bitrate=bitrate,
            targets=targets,
            prompt=hidden.prompt,
            extra_pnginfo=hidden.extra_pnginfo,
            unique_id=hidden.unique_id,
            prefer_runtime=prefer_runtime,
            lora_tags=lora_tags,
            options=options,
        )
        return io.NodeOutput(ui={"audio": results})


def _sampling_inputs(tip: dict[str, str]) -> list[Any]:
    """The KSampler-like inputs both samplers take after their model(s), in KSampler's order."""
    return [
        io.Conditioning.Input("positive", tooltip=tip["positive"]),
        io.Conditioning.Input("negative", tooltip=tip["negative"]),
        io.Latent.Input("latent_image", tooltip=tip["latent_image"]),
        io.Int.Input(
            "seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True, tooltip=tip["seed"]
        ),
        io.Int.Input("steps", default=0, min=0, max=10000, tooltip=tip["steps"]),
        io.Float.Input("cfg", default=0.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip=tip["cfg"]),
        io.Combo.Input(
            "sampler_name", options=sampler.sampler_options(compat.sampler_names()), tooltip=tip["sampler_name"]
        ),
        io.Combo.Input(
            "scheduler", options=sampler.scheduler_options(compat.scheduler_names()), tooltip=tip["scheduler"]
        ),
    ]


def _engine_inputs(tip: dict[str, str]) -> list[Any]:
    """The engine's mode and preset, last and optional on both samplers."""
    from ..engines import MODES

    return [
        io.Combo.Input("mode", options=list(MODES), default=MODES[0], optional=True, tooltip=tip["mode"]),
        io.String.Input("preset", default="", optional=True, tooltip=tip["preset"]),
    ]


class ProvenanceSampler(io.ComfyNode):  # type: ignore[misc,name-defined]
    @classmethod
    def define_schema(cls) -> Any:
        tip = sampler.TOOLTIPS
        return io.Schema(
            node_id=sampler.NODE_ID,
            display_name=sampler.DISPLAY_NAME,
            category=sampler.CATEGORY,
            description=sampler.DESCRIPTION,
            inputs=[
                io.Model.Input("model", tooltip=tip["model"]),
                *_sampling_inputs(tip),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip=tip["denoise"]),
                *_engine_inputs(tip),
            ],
            outputs=[io.Latent.Output()],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
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
    ) -> Any:
        hidden = cls.hidden
        (latent,) = sampler.run(
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
            prompt=hidden.prompt,
            unique_id=hidden.unique_id,
        )
        return io.NodeOutput(latent)


class ProvenanceVideoSampler(io.ComfyNode):  # type: ignore[misc,name-defined]
    @classmethod
    def define_schema(cls) -> Any:
        tip = video.TOOLTIPS
        return io.Schema(
            node_id=video.NODE_ID,
            display_name=video.DISPLAY_NAME,
            category=video.CATEGORY,
            description=video.DESCRIPTION,
            inputs=[
                io.Model.Input("model", tooltip=tip["model"]),
                io.Model.Input("model_low", optional=True, tooltip=tip["model_low"]),
                *_sampling_inputs(tip),
                io.Int.Input("split", default=0, min=0, max=10000, tooltip=tip["split"]),
                io.Float.Input("boundary", default=0.0, min=0.0, max=0.999, step=0.001, tooltip=tip["boundary"]),
                *_engine_inputs(tip),
            ],
            outputs=[io.Latent.Output()],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
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
    ) -> Any:
        hidden = cls.hidden
        (latent,) = video.run(
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
            prompt=hidden.prompt,
            unique_id=hidden.unique_id,
        )
        return io.NodeOutput(latent)


class ProvenanceExtension(api.ComfyExtension):  # type: ignore[misc,name-defined]
    async def get_node_list(self) -> list[type[Any]]:
        return [
            ProvenanceSaveImage,
            ProvenanceSaveVideo,
            ProvenanceSaveAudio,
            ProvenanceSampler,
            ProvenanceVideoSampler,
        ]

"""Fakes of ComfyUI 0.33's MODEL objects for the engine tests (no tests here; the contract test keeps them honest).

A MODEL is a ModelPatcher whose `.model` is the model_base; that holds `.model_config` (an instance of a
`comfy.supported_models` class, with `unet_config`), `.latent_format` (a `comfy.latent_formats` instance)
and `.model_type` (a `comfy.model_base.ModelType` member).
"""

from __future__ import annotations

import enum
from typing import Any

# comfy/model_base.py ModelType (0.33), names only: detection reads `.name`.
ModelType = enum.Enum(
    "ModelType",
    "EPS V_PREDICTION V_PREDICTION_EDM STABLE_CASCADE EDM FLOW V_PREDICTION_CONTINUOUS FLUX IMG_TO_IMG "
    "FLOW_COSMOS IMG_TO_IMG_FLOW V_PREDICTION_DDPM FLOW_AV",
)

# comfy/samplers.py KSampler.SAMPLERS and SCHEDULERS in 0.33.
COMFY_SAMPLERS = [
    "euler",
    "euler_cfg_pp",
    "euler_ancestral",
    "euler_ancestral_cfg_pp",
    "heun",
    "heunpp2",
    "exp_heun_2_x0",
    "exp_heun_2_x0_sde",
    "dpm_2",
    "dpm_2_ancestral",
    "lms",
    "dpm_fast",
    "dpm_adaptive",
    "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde",
    "dpmpp_sde_gpu",
    "dpmpp_2m",
    "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun",
    "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu",
    "ddpm",
    "lcm",
    "ipndm",
    "ipndm_v",
    "deis",
    "res_multistep",
    "res_multistep_cfg_pp",
    "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp",
    "gradient_estimation",
    "gradient_estimation_cfg_pp",
    "er_sde",
    "seeds_2",
    "seeds_3",
    "sa_solver",
    "sa_solver_pece",
    "ddim",
    "uni_pc",
    "uni_pc_bh2",
]
COMFY_SCHEDULERS = [
    "simple",
    "sgm_uniform",
    "karras",
    "exponential",
    "ddim_uniform",
    "beta",
    "normal",
    "linear_quadratic",
    "kl_optimal",
]

# family → (supported_models class, unet_config subset, latent_formats class, latent channels, ModelType name)
MODELS: dict[str, tuple[str, dict[str, Any], str, int, str]] = {
    "sd15": ("SD15", {"context_dim": 768, "in_channels": 4}, "SD15", 4, "EPS"),
    "sdxl": ("SDXL", {"context_dim": 2048, "adm_in_channels": 2816}, "SDXL", 4, "EPS"),
    "sdxl_refiner": ("SDXLRefiner", {"context_dim": 1280, "adm_in_channels": 2560}, "SDXL", 4, "EPS"),
    "flux": ("Flux", {"image_model": "flux", "guidance_embed": True}, "Flux", 16, "FLUX"),
    "flux_schnell": ("FluxSchnell", {"image_model": "flux", "guidance_embed": False}, "Flux", 16, "FLOW"),
    "wan22_5b": ("WAN22_T2V", {"image_model": "wan2.1", "model_type": "t2v", "out_dim": 48}, "Wan22", 48, "FLOW"),
    "wan21_t2v": ("WAN21_T2V", {"image_model": "wan2.1", "model_type": "t2v", "dim": 5120}, "Wan21", 16, "FLOW"),
    "wan21_i2v": ("WAN21_I2V", {"image_model": "wan2.1", "model_type": "i2v", "dim": 5120}, "Wan21", 16, "FLOW"),
    "wan21_1_3b": ("WAN21_T2V", {"image_model": "wan2.1", "model_type": "t2v", "dim": 1536}, "Wan21", 16, "FLOW"),
    "sd3": ("SD3", {"in_channels": 16, "pos_embed_scaling_factor": None}, "SD3", 16, "FLOW"),
}

# What detection reads, as attribute paths from the MODEL; the contract test checks each on a real one.
ATTRIBUTE_PATHS = (
    "model",
    "model.model_config",
    "model.model_config.unet_config",
    "model.latent_format",
    "model.latent_format.latent_channels",
    "model.model_type",
    "model.model_type.name",
)


class FakeModelBase:
    def __init__(self, config: Any, latent: Any, model_type: Any) -> None:
        self.model_config = config
        self.latent_format = latent
        self.model_type = model_type


class FakeModelPatcher:
    def __init__(self, model: FakeModelBase) -> None:
        self.model = model


def fake_model(key: str) -> FakeModelPatcher:
    """A MODEL whose classes carry ComfyUI's real names (type(x).__name__ is what detection reads)."""
    config_class, unet_config, latent_class, channels, model_type = MODELS[key]
    config = type(config_class, (), {})()
    config.unet_config = dict(unet_config)
    latent = type(latent_class, (), {"latent_channels": channels})()
    return FakeModelPatcher(FakeModelBase(config, latent, ModelType[model_type]))

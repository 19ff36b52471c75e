"""A tiny random-weight WAN 2.1 text-to-video diffusion model that ComfyUI detects as WAN21_T2V.

Pure numpy + safetensors (no torch, no ComfyUI). The keys and shapes are those of ComfyUI's
`comfy/ldm/wan/model.py` WanModel(model_type="t2v"), which `comfy/model_detection.py` recognises by
`head.modulation` (WAN 2.1 family; dim from its last axis, num_heads = dim // 128), `head.head.weight`
(out_dim * 4 patch cells), `blocks.0.ffn.0.weight` (ffn_dim), `patch_embedding.weight` (in_dim 16: t2v) and
the absence of `img_emb.*` (t2v, not i2v). text_dim stays WAN's 4096 (UMT5-XXL), so conditioning of shape
[1, tokens, 4096] feeds it. Its images are noise; it exists so the video sampler runs on CPU.

Usage: python tests/make_wan_checkpoint.py OUT.safetensors [--seed N] [--dim 128] [--layers 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

TEXT_DIM = 4096  # WanModel's default; model_detection does not read it
FREQ_DIM = 256
LATENT_CHANNELS = 16  # in_dim = out_dim = 16 for WAN 2.1 t2v (and the WAN 2.2 A14B experts)
PATCH_CELLS = 4  # patch (1, 2, 2)


def shapes(dim: int = 128, layers: int = 1, ffn_dim: int | None = None) -> dict[str, tuple[int, ...]]:
    """Every tensor of WanModel(model_type="t2v") with `dim` (a multiple of 128: one head per 128)."""
    if dim % 128:
        raise ValueError(f"dim must be a multiple of 128 (ComfyUI sets num_heads = dim // 128), got {dim}")
    ffn = ffn_dim or 2 * dim
    out: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (dim, LATENT_CHANNELS, 1, 2, 2),
        "patch_embedding.bias": (dim,),
        "text_embedding.0.weight": (dim, TEXT_DIM),
        "text_embedding.0.bias": (dim,),
        "text_embedding.2.weight": (dim, dim),
        "text_embedding.2.bias": (dim,),
        "time_embedding.0.weight": (dim, FREQ_DIM),
        "time_embedding.0.bias": (dim,),
        "time_embedding.2.weight": (dim, dim),
        "time_embedding.2.bias": (dim,),
        "time_projection.1.weight": (6 * dim, dim),
        "time_projection.1.bias": (6 * dim,),
    }
    for index in range(layers):
        block = f"blocks.{index}."
        out[block + "modulation"] = (1, 6, dim)
        for attention in ("self_attn", "cross_attn"):
            for part in ("q", "k", "v", "o"):
                out[f"{block}{attention}.{part}.weight"] = (dim, dim)
                out[f"{block}{attention}.{part}.bias"] = (dim,)
            out[f"{block}{attention}.norm_q.weight"] = (dim,)
            out[f"{block}{attention}.norm_k.weight"] = (dim,)
        out[block + "norm3.weight"] = (dim,)
        out[block + "norm3.bias"] = (dim,)
        out[block + "ffn.0.weight"] = (ffn, dim)
        out[block + "ffn.0.bias"] = (ffn,)
        out[block + "ffn.2.weight"] = (dim, ffn)
        out[block + "ffn.2.bias"] = (dim,)
    out["head.modulation"] = (1, 2, dim)
    out["head.head.weight"] = (LATENT_CHANNELS * PATCH_CELLS, dim)
    out["head.head.bias"] = (LATENT_CHANNELS * PATCH_CELLS,)
    return out


def tensors(seed: int, dim: int = 128, layers: int = 1) -> dict[str, np.ndarray]:
    """Seeded float32 weights: norm scales 1, biases 0, matrices N(0, 1/fan_in) so activations stay finite."""
    rng = np.random.default_rng(seed)
    made: dict[str, np.ndarray] = {}
    for name, shape in shapes(dim, layers).items():
        if name.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")):
            made[name] = np.ones(shape, np.float32)
        elif name.endswith(".bias"):
            made[name] = np.zeros(shape, np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            made[name] = (rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))).astype(np.float32)
    return made


def write(path: Path, seed: int, dim: int = 128, layers: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors(seed, dim, layers), str(path), metadata={"format": "pt"})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    args = parser.parse_args()
    write(args.out, args.seed, args.dim, args.layers)


if __name__ == "__main__":
    main()

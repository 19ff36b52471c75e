"""Small random-weight diffusion models that ComfyUI detects as SDXL, Flux dev and Flux schnell.

Pure numpy + safetensors (no torch, no ComfyUI); diffusion-model-only files for UNETLoader. The tensors follow
the public layouts of the Stability UNet (`input_blocks.*`, `label_emb.*`) and the BFL Flux transformer
(`double_blocks.*`, `single_blocks.*`), sized so that `comfy/model_detection.py` still picks the family:

- SDXL: ComfyUI's SDXL class matches exactly model_channels 320, linear transformers, a transformer depth of
  [0, 0, 2, 2, 10, 10] per input res block, context_dim 2048 and adm_in_channels 2816. Those cannot shrink, so
  the rest does: channel_mult [1, 1, 1], no transformers in the output blocks and a middle block of one res
  block (ComfyUI reads all three from the weights and does not match on them). About 120M parameters in fp16.
- Flux: the class is picked by `double_blocks.0.img_attn.norm.key_norm.*` plus `img_in.weight`; dev has
  `guidance_in.*`, schnell does not. num_heads = hidden_size // 128, so hidden 128 is one head; one double
  and one single block. context 4096 (T5-XXL) and vector 768 (CLIP-L pooled) as the real models.

Their images are noise; they exist so the image sampler runs on CPU.

Usage: python tests/make_family_checkpoints.py OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

Shapes = dict[str, tuple[int, ...]]

SDXL_CHANNELS = 320
SDXL_CONTEXT = 2048
SDXL_ADM = 2816  # pooled CLIP-G 1280 + six size/crop embeddings of 256
SDXL_DEPTHS = (0, 0, 2, 2, 10, 10)  # transformer blocks per input res block, as ComfyUI matches them
FLUX_HIDDEN = 128  # one head of 128 (axes 16 + 56 + 56)
FLUX_CONTEXT = 4096
FLUX_VECTOR = 768
FLUX_PATCHED = 16 * 2 * 2  # 16 latent channels in 2x2 patches


def _linear(out: Shapes, name: str, rows: int, cols: int, bias: bool = True) -> None:
    out[name + ".weight"] = (rows, cols)
    if bias:
        out[name + ".bias"] = (rows,)


def _norm(out: Shapes, name: str, width: int) -> None:
    out[name + ".weight"] = (width,)
    out[name + ".bias"] = (width,)


def _conv(out: Shapes, name: str, rows: int, cols: int, kernel: int = 3) -> None:
    out[name + ".weight"] = (rows, cols, kernel, kernel)
    out[name + ".bias"] = (rows,)


def _res_block(out: Shapes, name: str, channels_in: int, channels: int, embed: int) -> None:
    _norm(out, name + ".in_layers.0", channels_in)
    _conv(out, name + ".in_layers.2", channels, channels_in)
    _linear(out, name + ".emb_layers.1", channels, embed)
    _norm(out, name + ".out_layers.0", channels)
    _conv(out, name + ".out_layers.3", channels, channels)
    if channels_in != channels:
        _conv(out, name + ".skip_connection", channels, channels_in, kernel=1)


def _transformer(out: Shapes, name: str, width: int, depth: int, context: int) -> None:
    _norm(out, name + ".norm", width)
    _linear(out, name + ".proj_in", width, width)
    for index in range(depth):
        block = f"{name}.transformer_blocks.{index}"
        for attention, keys in (("attn1", width), ("attn2", context)):
            _linear(out, f"{block}.{attention}.to_q", width, width, bias=False)
            _linear(out, f"{block}.{attention}.to_k", width, keys, bias=False)
            _linear(out, f"{block}.{attention}.to_v", width, keys, bias=False)
            _linear(out, f"{block}.{attention}.to_out.0", width, width)
        _linear(out, f"{block}.ff.net.0.proj", 8 * width, width)  # GEGLU: two halves of 4 * width
        _linear(out, f"{block}.ff.net.2", width, 4 * width)
        for norm in ("norm1", "norm2", "norm3"):
            _norm(out, f"{block}.{norm}", width)
    _linear(out, name + ".proj_out", width, width)


def sdxl_shapes() -> Shapes:
    """An SDXL-detected UNet: three levels of 320 channels, two res blocks each, transformers on the input side."""
    width, embed = SDXL_CHANNELS, 4 * SDXL_CHANNELS
    out: Shapes = {}
    _linear(out, "time_embed.0", embed, width)
    _linear(out, "time_embed.2", embed, embed)
    _linear(out, "label_emb.0.0", embed, SDXL_ADM)
    _linear(out, "label_emb.0.2", embed, embed)
    _conv(out, "input_blocks.0.0", width, 4)
    block = 1
    for level in range(3):
        for res in range(2):
            _res_block(out, f"input_blocks.{block}.0", width, width, embed)
            depth = SDXL_DEPTHS[2 * level + res]
            if depth:
                _transformer(out, f"input_blocks.{block}.1", width, depth, SDXL_CONTEXT)
            block += 1
        if level < 2:
            _conv(out, f"input_blocks.{block}.0.op", width, width)
            block += 1
    _res_block(out, "middle_block.0", width, width, embed)
    for block in range(9):
        _res_block(out, f"output_blocks.{block}.0", 2 * width, width, embed)
        if block in (2, 5):
            _conv(out, f"output_blocks.{block}.1.conv", width, width)
    _norm(out, "out.0", width)
    _conv(out, "out.2", 4, width)
    return out


def flux_shapes(guidance: bool) -> Shapes:
    """A Flux transformer of one double and one single block; `guidance` makes it dev, without it schnell."""
    hidden, head, mlp = FLUX_HIDDEN, 128, 4 * FLUX_HIDDEN
    out: Shapes = {}
    _linear(out, "img_in", hidden, FLUX_PATCHED)
    _linear(out, "txt_in", hidden, FLUX_CONTEXT)
    embedders = {"time_in": 256, "vector_in": FLUX_VECTOR} | ({"guidance_in": 256} if guidance else {})
    for name, width in embedders.items():
        _linear(out, name + ".in_layer", hidden, width)
        _linear(out, name + ".out_layer", hidden, hidden)
    for stream in ("img", "txt"):
        block = f"double_blocks.0.{stream}"
        _linear(out, block + "_mod.lin", 6 * hidden, hidden)
        _linear(out, block + "_attn.qkv", 3 * hidden, hidden)
        out[block + "_attn.norm.query_norm.scale"] = (head,)
        out[block + "_attn.norm.key_norm.scale"] = (head,)
        _linear(out, block + "_attn.proj", hidden, hidden)
        _linear(out, block + "_mlp.0", mlp, hidden)
        _linear(out, block + "_mlp.2", hidden, mlp)
    _linear(out, "single_blocks.0.linear1", 3 * hidden + mlp, hidden)
    _linear(out, "single_blocks.0.linear2", hidden, hidden + mlp)
    out["single_blocks.0.norm.query_norm.scale"] = (head,)
    out["single_blocks.0.norm.key_norm.scale"] = (head,)
    _linear(out, "single_blocks.0.modulation.lin", 3 * hidden, hidden)
    _linear(out, "final_layer.adaLN_modulation.1", 2 * hidden, hidden)
    _linear(out, "final_layer.linear", FLUX_PATCHED, hidden)
    return out


FAMILIES: dict[str, Callable[[], Shapes]] = {
    "sdxl": sdxl_shapes,
    "flux": lambda: flux_shapes(guidance=True),
    "flux_schnell": lambda: flux_shapes(guidance=False),
}


def tensors(shapes: Shapes, seed: int, dtype: type[np.floating] = np.float16) -> dict[str, np.ndarray]:
    """Seeded weights: norm scales 1, biases 0, matrices N(0, 1/fan_in) so activations stay finite."""
    rng = np.random.default_rng(seed)
    made: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name.endswith(".bias"):
            made[name] = np.zeros(shape, dtype)
        elif len(shape) == 1:
            made[name] = np.ones(shape, dtype)
        else:
            fan_in = int(np.prod(shape[1:]))
            made[name] = (rng.standard_normal(shape, np.float32) / np.sqrt(fan_in)).astype(dtype)
    return made


def write(path: Path, family: str, seed: int = 0) -> Path:
    """Write `family`'s model (a key of FAMILIES) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors(FAMILIES[family](), seed), str(path), metadata={"format": "pt"})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for <family>_tiny_test.safetensors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", choices=list(FAMILIES), action="append")
    args = parser.parse_args()
    for family in args.family or list(FAMILIES):
        write(args.out / f"{family}_tiny_test.safetensors", family, args.seed)


if __name__ == "__main__":
    main()

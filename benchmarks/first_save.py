"""The first save after a fresh hash cache against a warm save, in a real ComfyUI with a 2.1 GB checkpoint.

Each pair runs on a fresh loopback server (tests/comfyui_harness.py) whose --base-directory, and with
it the hash cache (`<user directory>/provenance/hash-cache.sqlite`), is new and empty:
  1. first save: the server's first prompt, the SD1.5 + LoRA graph (2 steps, 64x64, then ImageScale
     to --size) into Save Image (Provenance), posted as a drop-in for SaveImage (images and
     filename_prefix only): the model load, the sampling and our save in one prompt;
  2. warm save: the same graph with only the seed changed (the loaders are cached, the hashes found
     in the hash cache).
A save's time is the node's own debug line, `provenance: saved N file(s) in X ms (Y ms waiting for
model hashes)`; the server runs with PROVENANCE_LOG_LEVEL=DEBUG and --verbose DEBUG (ComfyUI 0.33.0
filters its console at --verbose's level). Pairs rotate between three modes: the default (the
model-hash prefetch on: the prompt handler starts hashing when the prompt is posted); the same after
one EmptyImage save on the fresh server, which takes the process's own first-call costs (lazy imports,
first touch of image-sized buffers: tens of ms at 1024², nothing to do with models) out of the SD1.5
save; and PROVENANCE_HASH_PREFETCH=0 with PROVENANCE_HASH_WAIT_S long enough for the whole hash, which
is what every first save did before the background hasher. Target: first ÷ warm ≤ 1.2 with the prefetch on.
Then our hash throughput ÷ sha256sum's on the checkpoint itself (benchmarks/hash_speed.py's
comparison), and how much of the file was in the page cache (fincore) before each measurement.

    COMFYUI_PATH=... COMFYUI_PYTHON=... python benchmarks/first_save.py [--pairs 3] [--size 1024]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHECKPOINT = "random_sd15.safetensors"
LORA = "random_sd15_lora.safetensors"
TARGET_RATIO = 1.2
PROMPT_TIMEOUT_S = 600.0
# mode -> (environment, whether a cheap save of the same size runs first on the fresh server)
MODES: dict[str, tuple[dict[str, str], bool]] = {
    "prefetch on": ({}, False),
    # The same, after one save of an EmptyImage (no model): the process's own first-call costs (lazy
    # imports, the allocator's first touch of image-sized buffers) are paid there, so the SD1.5 save
    # is only the first save after the model appeared.
    "on, warmed": ({}, True),
    # Nothing hashes before the save, and the save waits for the whole hash: the old synchronous path.
    "prefetch off": ({"PROVENANCE_HASH_PREFETCH": "0", "PROVENANCE_HASH_WAIT_S": "600"}, False),
}


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def resident(path: Path) -> str:
    """How much of `path` is in the page cache, from util-linux's fincore ("?" without it)."""
    if shutil.which("fincore") is None:
        return "?"
    done = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return f"{int(done.stdout.split()[0]) / path.stat().st_size:.0%}"
    except (IndexError, ValueError):
        return "?"


def graph(seed: int, size: int) -> dict[str, Any]:
    sampler = {
        "seed": seed,
        "steps": 2,
        "cfg": 6.5,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
        "model": ["10", 0],
        "positive": ["6", 0],
        "negative": ["7", 0],
        "latent_image": ["5", 0],
    }
    lora = {"model": ["4", 0], "clip": ["4", 1], "lora_name": LORA, "strength_model": 0.8, "strength_clip": 0.6}
    prompt: dict[str, Any] = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "10": {"class_type": "LoraLoader", "inputs": lora},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff, storm", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, text", "clip": ["10", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": sampler},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    }
    pixels = ["8", 0]
    if size != 64:
        scale = {"upscale_method": "nearest-exact", "width": size, "height": size, "crop": "disabled"}
        prompt["11"] = {"class_type": "ImageScale", "inputs": {"image": pixels, **scale}}
        pixels = ["11", 0]
    prompt["9"] = {"class_type": "ProvenanceSaveImage", "inputs": {"images": pixels, "filename_prefix": "bench"}}
    return prompt


def warm_up_graph(size: int) -> dict[str, Any]:
    """A save of the same size with no model upstream (nothing to hash)."""
    image = {"width": size, "height": size, "batch_size": 1, "color": 0x336699}
    save = {"images": ["1", 0], "filename_prefix": "warm_up"}
    return {
        "1": {"class_type": "EmptyImage", "inputs": image},
        "2": {"class_type": "ProvenanceSaveImage", "inputs": save},
    }


def prompt_s(entry: dict[str, Any]) -> float:
    stamps = {event: data["timestamp"] for event, data in entry["status"]["messages"]}
    return float(stamps["execution_success"] - stamps["execution_start"]) / 1000.0


def pending(server: Any, entry: dict[str, Any]) -> bool:
    """Whether the saved record left a model hash pending (the wait cap ran out first)."""
    from comfyui_provenance.metadata.read import read

    image = entry["outputs"]["9"]["images"][0]
    record = read(server.output / image["subfolder"] / image["filename"])
    return any(m.other.get("hash_pending") for m in record.models)


def one_pair(harness: ModuleType, checkout: Path, mode: str, seed: int, size: int) -> dict[str, Any]:
    """A fresh server and hash cache: first save, then the seed changed; the saves' own times."""
    ckpt = checkout / "models" / "checkpoints" / CHECKPOINT
    with tempfile.TemporaryDirectory(prefix="provenance_first_save_") as tmp:
        extra_env, warm_up = MODES[mode]
        env = {"PROVENANCE_LOG_LEVEL": "DEBUG", **extra_env}
        server = harness.Server(checkout, Path(tmp), "--verbose", "DEBUG", env=env)
        try:
            server.wait_ready(timeout=240)
            if warm_up:
                server.run(warm_up_graph(size), timeout=PROMPT_TIMEOUT_S)
            cached = resident(ckpt)
            runs = []
            for step in (0, 1):
                _, entry = server.run(graph(seed + step, size), timeout=PROMPT_TIMEOUT_S)
                assert entry["status"]["status_str"] == "success", entry["status"]
                runs.append((prompt_s(entry), pending(server, entry)))
            timings = harness.save_timings(server.log())
            assert len(timings) == 2 + warm_up, server.log_tail()
        finally:
            server.stop()
    (_, first_ms, first_wait), (_, warm_ms, warm_wait) = timings[-2:]
    return {
        "mode": mode,
        "cached": cached,
        "first_ms": first_ms,
        "first_wait": first_wait,
        "warm_ms": warm_ms,
        "warm_wait": warm_wait,
        "prompt_s": runs[0][0],
        "warm_prompt_s": runs[1][0],
        "pending": runs[0][1],
    }


def report(mode: str, pairs: list[dict[str, Any]]) -> float:
    for p in pairs:
        print(
            f"  {mode:<13} first {p['first_ms']:9.1f} ms (waiting {p['first_wait']:8.1f})   "
            f"warm {p['warm_ms']:7.1f} ms (waiting {p['warm_wait']:5.1f})   "
            f"first/warm {p['first_ms'] / p['warm_ms']:7.2f}   "
            f"prompts {p['prompt_s']:5.1f} s / {p['warm_prompt_s']:4.1f} s   checkpoint cached {p['cached']}"
            + ("   HASH PENDING" if p["pending"] else "")
        )
    first = statistics.median(p["first_ms"] for p in pairs)
    warm = statistics.median(p["warm_ms"] for p in pairs)
    ratio = float(statistics.median(p["first_ms"] / p["warm_ms"] for p in pairs))
    wait = statistics.median(p["first_wait"] for p in pairs)
    print(
        f"  {mode:<13} median: first {first:.1f} ms (of which {wait:.1f} ms waiting for hashes), warm {warm:.1f} ms, "
        f"first/warm {ratio:.2f} (of medians {first / warm:.2f}), first less its hash wait {first - wait:.1f} ms"
    )
    return ratio


def hash_throughput(checkout: Path, rounds: int) -> None:
    hash_speed = load("hash_speed", REPO / "benchmarks" / "hash_speed.py")
    path = (checkout / "models" / "checkpoints" / CHECKPOINT).resolve()
    print(f"\nhash throughput on {path.name} ({path.stat().st_size / 2**30:.2f} GiB), {rounds} rounds, interleaved")
    print(f"  page cache before: {resident(path)} resident")
    expected = hash_speed.sha256sum(path)  # also reads the file into the page cache
    print(f"  page cache after one sha256sum: {resident(path)} resident")
    hash_speed.compare(path, rounds, {"ours: sha256 + autov3 (.safetensors)": hash_speed.ours}, expected)
    print("  (ratio = sha256sum's time ÷ ours = our throughput ÷ sha256sum's)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="pairs per mode (each on a fresh server)")
    parser.add_argument("--size", type=int, default=1024, help="pixel size of the saved image (64: no ImageScale)")
    parser.add_argument("--hash-rounds", type=int, default=3)
    parser.add_argument("--skip-hash", action="store_true", help="no throughput comparison")
    args = parser.parse_args()
    harness = load("comfyui_harness", REPO / "tests" / "comfyui_harness.py")
    checkout = harness.comfyui_path()
    if checkout is None or not (checkout / "main.py").is_file():
        print("COMFYUI_PATH not set (or not a ComfyUI checkout): nothing to measure")
        return 0
    models = [checkout / "models" / "checkpoints" / CHECKPOINT, checkout / "models" / "loras" / LORA]
    missing = [str(m) for m in models if not m.exists()]
    if missing:
        print(f"missing {', '.join(missing)}: nothing to measure")
        return 0
    version = harness.features(checkout).version
    print(
        f"ComfyUI {'.'.join(map(str, version))} at {checkout}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}, checkpoint {models[0].stat().st_size / 1e9:.2f} GB, saved image {args.size}²"
    )
    if not args.skip_hash:
        hash_throughput(checkout, args.hash_rounds)
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    order = list(MODES)
    print(f"\nfirst save vs warm save, {args.pairs} pair(s) per mode, each on a fresh server and hash cache")
    started = time.monotonic()
    for r in range(args.pairs):
        for mode in order if r % 2 == 0 else reversed(order):
            results[mode].append(one_pair(harness, checkout, mode, seed=1000 + 2 * r, size=args.size))
    ratios = {mode: report(mode, pairs) for mode, pairs in results.items()}
    print()
    for mode in ("prefetch on", "on, warmed"):
        verdict = "PASS" if ratios[mode] <= TARGET_RATIO else "MISS"
        print(f"first/warm, {mode}: {ratios[mode]:.2f} (target ≤ {TARGET_RATIO}) {verdict}")
    print(f"first/warm, prefetch off (the old behaviour): {ratios['prefetch off']:.2f}")
    print(f"({time.monotonic() - started:.0f} s; load {os.getloadavg()[0]:.2f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

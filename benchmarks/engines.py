"""What Sampler (Provenance) costs over core KSampler, and what its self-reporting costs per call.

1. in-process (always): the report path alone on the SD1.5 graph, repeated: stage timer + peak-memory probe
   (/proc/self/clear_refs and VmHWM on CPU), the digest and the store (per sampler call), and the lookup a
   save does (per save). No ComfyUI needed.
2. real ComfyUI (COMFYUI_PATH, the random SD1.5 checkpoint): one loopback server gets the same graph with core
   KSampler and with our sampler, interleaved ABBA, a new seed per round (so the sampler always runs; the model
   stays loaded); time = ComfyUI's execution_start → execution_success stamps. Target: ours ÷ core ≤ 1.01
   (median of the per-round ratios). A last run saves through Save Image (Provenance) and prints the report's
   own split: total - noise - denoise = engine detection + plan + report, in-process.
Run: python benchmarks/engines.py [--rounds 8] [--steps 4] [--size 64] [--skip-comfyui].
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
TARGET_RATIO = 1.01
CHECKPOINT = "random_sd15.safetensors"


def graph(sampler: str, seed: int, steps: int, size: int, save: str = "PreviewImage") -> dict[str, Any]:
    inputs: dict[str, Any] = {"seed": seed, "steps": steps, "cfg": 6.5, "sampler_name": "euler"}
    inputs |= {"scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0]}
    inputs |= {"negative": ["7", 0], "latent_image": ["5", 0]}
    if sampler == "ProvenanceSampler":
        inputs |= {"mode": "normal", "preset": ""}
    images = {"images": ["8", 0]} | ({"filename_prefix": "engines"} if save != "PreviewImage" else {})
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": sampler, "inputs": inputs},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": save, "inputs": images},
    }


def in_process(calls: int = 5000) -> None:
    from comfyui_provenance.engines import report

    prompt = graph("ProvenanceSampler", 1, 4, 64, save="ProvenanceSaveImage")
    entry = {"class_type": "ProvenanceSampler", "plan": {"params": {"steps": 4}}}
    report.STORE.clear()
    started = time.perf_counter()
    for _ in range(calls):
        stages = report.Stages()
        with stages.stage("denoise"):
            pass
        report.file_report(prompt, "3", entry)
    per_call = (time.perf_counter() - started) / calls * 1e6
    started = time.perf_counter()
    for _ in range(calls):
        report.find_reports(prompt, "9", "p")
    per_save = (time.perf_counter() - started) / calls * 1e6
    report.STORE.clear()
    print(f"self-reporting: {per_call:.1f} µs per sampler call (stage probe + digest + store), ", end="")
    print(f"{per_save:.1f} µs per save (lookup), in-process, {calls} calls")


def seconds(entry: dict[str, Any]) -> float:
    stamps = {m[0]: m[1]["timestamp"] for m in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000


def real_comfyui(checkout: Path, rounds: int, steps: int, size: int) -> None:
    import comfyui_harness as harness

    from comfyui_provenance.metadata.read import read

    with tempfile.TemporaryDirectory() as base:
        server = harness.Server(checkout, Path(base))
        try:
            server.wait_ready()
            for name in ("KSampler", "ProvenanceSampler"):  # warm up: model load, first-call costs
                server.run(graph(name, 0, steps, size), timeout=600)
            ratios, times = [], {"KSampler": [], "ProvenanceSampler": []}
            for round_ in range(rounds):
                order = ["KSampler", "ProvenanceSampler"]
                order = order if round_ % 2 == 0 else order[::-1]
                took = {}
                for name in order:
                    _, entry = server.run(graph(name, 1000 + round_, steps, size), timeout=600)
                    took[name] = seconds(entry)
                    times[name].append(took[name])
                ratios.append(took["ProvenanceSampler"] / took["KSampler"])
            ratio = statistics.median(ratios)
            core, ours = statistics.median(times["KSampler"]), statistics.median(times["ProvenanceSampler"])
            verdict = "meets" if ratio <= TARGET_RATIO else "misses"
            print(f"real ComfyUI, {size}x{size}, {steps} steps, {rounds} ABBA rounds: KSampler {core * 1000:.0f} ms, ")
            print(
                f"  ours {ours * 1000:.0f} ms per prompt; ours ÷ core = {ratio:.4f} (median of per-round ratios; ",
                end="",
            )
            print(f"min {min(ratios):.4f}, max {max(ratios):.4f}); {verdict} the ≤ {TARGET_RATIO} target")
            _, entry = server.run(graph("ProvenanceSampler", 7, steps, size, save="ProvenanceSaveImage"), timeout=600)
            image = entry["outputs"]["9"]["images"][0]
            timings = read(server.output / image["subfolder"] / image["filename"]).extra["engines"][0]["timings_ms"]
            noise = timings.get("noise") or 0.0
            overhead = timings["total"] - timings["denoise"] - noise
            print(
                f"  the report's own split: total {timings['total']:.1f} ms, noise {noise:.2f} ms, "
                f"denoise {timings['denoise']:.1f} ms, ",
                end="",
            )
            print(f"so detection + plan + report {overhead:.2f} ms per call")
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--skip-comfyui", action="store_true")
    args = parser.parse_args()
    in_process()
    checkout = os.environ.get("COMFYUI_PATH")
    if args.skip_comfyui or not checkout:
        print("real ComfyUI: skipped (set COMFYUI_PATH, and COMFYUI_PYTHON, to run it)")
        return
    if not (Path(checkout) / "models" / "checkpoints" / CHECKPOINT).exists():
        print(f"real ComfyUI: skipped ({CHECKPOINT} is not in {checkout}/models/checkpoints)")
        return
    real_comfyui(Path(checkout), args.rounds, args.steps, args.size)


if __name__ == "__main__":
    main()

"""Save cost with every metadata target on, against ComfyUI core's PNG save and plain Pillow saves."""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.formats.base import DEFAULT_TARGETS, TARGETS
from comfyui_provenance.metadata.save import SaveOptions, save_images

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "workflows"
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
# (format, Pillow save settings): PNG against core SaveImage, lossy against plain Pillow.
CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("png", {"compress_level": 4}),
    ("jpeg", {"quality": 95}),
    ("webp", {"quality": 90, "lossless": False}),
)
# Issue 7: every case at most this, with the default targets, and with every target (sidecars too).
TARGET_DEFAULT, TARGET_ALL = 1.05, 1.10

SaveFn = Callable[[np.ndarray, Path, str], Path]


def load_context(name: str) -> tuple[SaveContext, dict[str, Any], dict[str, Any]]:
    """A corpus workflow as the save node would see it, plus its raw API and UI graphs."""
    api = json.loads((CORPUS / f"{name}.api.json").read_text("utf-8"))
    ui = json.loads((CORPUS / f"{name}.ui.json").read_text("utf-8"))
    save_id = next(k for k, v in api.items() if v.get("class_type") in ("SaveImage", "SaveAnimatedWEBP"))
    context = SaveContext(
        prompt=api, extra_pnginfo={"workflow": ui}, save_node_id=save_id, prompt_id="bench", comfyui_version="0.33.0"
    )
    return context, api, ui


def blocky_image(size: int, seed: int = 0) -> np.ndarray:
    """A 96x64 random image upscaled nearest-neighbour: flat blocks, unrealistically cheap as PNG."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    rows, cols = np.arange(size) * 64 // size, np.arange(size) * 96 // size
    # C order, as ComfyUI's tensor.numpy() gives: fancy indexing leaves a strided array whose
    # Image.fromarray costs a 5 ms tobytes() copy on both sides of the comparison.
    return np.ascontiguousarray(small[rows][:, cols])


def textured_image(size: int, seed: int = 0) -> np.ndarray:
    """The blocky image blended 30/70 with smooth waves plus sigma-5 noise: a realistic ~1.9 MB PNG."""
    rng = np.random.default_rng(seed + 1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * (1024 / size)
    smooth = np.stack(
        [
            127.5 * (1 + np.sin(xx / 41 + yy / 67)),
            127.5 * (1 + np.sin(yy / 53 - xx / 97 + 1)),
            127.5 * (1 + np.cos((xx + yy) / 71)),
        ],
        axis=-1,
    )
    mixed = 0.3 * blocky_image(size, seed) + 0.7 * smooth + rng.normal(0.0, 5.0, (size, size, 3))
    return np.ascontiguousarray(np.clip(mixed, 0, 255).astype(np.uint8))


def core_name(folder: Path, prefix: str, ext: str) -> Path:
    """ComfyUI's get_save_image_path counter: scan the folder, take the next number."""
    pattern = re.compile(re.escape(prefix) + r"_(\d+)_")
    counters = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))]
    return folder / f"{prefix}_{max(counters, default=0) + 1:05}_.{ext}"


def core_png(api: dict[str, Any], ui: dict[str, Any]) -> SaveFn:
    """ComfyUI core SaveImage: tEXt prompt + workflow (json.dumps per save), compress_level 4."""

    def save(pixels: np.ndarray, folder: Path, prefix: str) -> Path:
        image = Image.fromarray(pixels)
        info = PngImagePlugin.PngInfo()
        info.add_text("prompt", json.dumps(api))
        info.add_text("workflow", json.dumps(ui))
        path = core_name(folder, prefix, "png")
        image.save(path, pnginfo=info, compress_level=4)
        return path

    return save


def plain(fmt: str, params: dict[str, Any]) -> SaveFn:
    """A plain Pillow save with the same encoder settings and no metadata."""

    def save(pixels: np.ndarray, folder: Path, prefix: str) -> Path:
        path = core_name(folder, prefix, EXTENSIONS[fmt])
        Image.fromarray(pixels).save(path, format=fmt.upper(), **params)
        return path

    return save


def options_for(fmt: str, params: dict[str, Any], targets: frozenset[str]) -> SaveOptions:
    return SaveOptions(
        format=fmt,
        quality=params.get("quality", 95),
        lossless=params.get("lossless", False),
        compress_level=params.get("compress_level", 4),
        targets=targets,
    )


def ours(fmt: str, params: dict[str, Any], context: SaveContext, targets: frozenset[str]) -> SaveFn:
    """Our save_images with the chosen targets (by default every one, sidecars included)."""
    options = options_for(fmt, params, targets)

    def save(pixels: np.ndarray, folder: Path, prefix: str) -> Path:
        return save_images([pixels], context, folder, prefix, options, version="bench")[0].path

    return save


@dataclass
class Case:
    label: str
    pixels: np.ndarray
    ours: SaveFn
    baseline: SaveFn
    baseline_name: str
    target: float
    ours_ms: list[float] = field(default_factory=list)
    base_ms: list[float] = field(default_factory=list)
    sizes: tuple[int, int] = (0, 0)


# wall: what a user waits; cpu: this process's user+system time, steadier on a shared machine.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(
    save: SaveFn, pixels: np.ndarray, folder: Path, prefix: str, clock: Callable[[], float]
) -> tuple[float, Path]:
    gc.collect()
    start = clock()
    path = save(pixels, folder, prefix)
    return (clock() - start) * 1000, path


def run_round(cases: list[Case], folder: Path, round_no: int, record: bool, clock: Callable[[], float]) -> None:
    """One measurement per case and side; the side that goes first alternates every round."""
    for index, case in enumerate(cases):
        sides = [("o", case.ours), ("b", case.baseline)]
        if (round_no + index) % 2:
            sides.reverse()
        for tag, save in sides:
            ms, path = timed(save, case.pixels, folder, f"r{round_no}_{index}_{tag}", clock)
            if tag == "o":
                case.sizes = (path.stat().st_size, case.sizes[1])
                if record:
                    case.ours_ms.append(ms)
            else:
                case.sizes = (case.sizes[0], path.stat().st_size)
                if record:
                    case.base_ms.append(ms)
        for entry in folder.iterdir():  # a fresh, empty folder for every measurement pair
            entry.unlink()


def build_cases(size: int, workflow: str, targets: frozenset[str]) -> list[Case]:
    context, api, ui = load_context(workflow)
    images = {"textured": textured_image(size), "blocky": blocky_image(size)}
    cases = []
    for image_name, pixels in images.items():
        for fmt, params in CASES:
            target = TARGET_DEFAULT if targets <= DEFAULT_TARGETS else TARGET_ALL
            baseline = core_png(api, ui) if fmt == "png" else plain(fmt, params)
            cases.append(
                Case(
                    label=f"{fmt} {image_name}",
                    pixels=pixels,
                    ours=ours(fmt, params, context, targets),
                    baseline=baseline,
                    baseline_name="core SaveImage" if fmt == "png" else "plain Pillow",
                    target=target,
                )
            )
    return cases


def verify(workflow: str, folder: Path, targets: frozenset[str]) -> str:
    """Outside the timing: our save writes the image and the sidecars asked for, with no warning."""
    context, _, _ = load_context(workflow)
    lines = []
    for fmt, params in CASES:
        options = options_for(fmt, params, targets)
        saved = save_images([blocky_image(64)], context, folder, f"verify_{fmt}", options, version="bench")[0]
        kinds = ",".join(sorted(p.suffix[1:] for p in saved.sidecars)) or "none"
        warnings = len(saved.record.provenance.warnings) if saved.record else "no record"
        lines.append(f"{fmt}: sidecars {kinds}, warnings {warnings}")
    for entry in folder.iterdir():
        entry.unlink()
    return "; ".join(lines)


def parse_targets(text: str) -> frozenset[str]:
    if text == "all":
        return frozenset(TARGETS)
    if text == "default":
        return DEFAULT_TARGETS
    return frozenset(t.strip() for t in text.split(",") if t.strip())


def profile(fmt: str, size: int, workflow: str, targets: frozenset[str], folder: Path, saves: int) -> None:
    """cProfile our save of the textured image; cProfile inflates pure-Python work about 2x."""
    context, _, _ = load_context(workflow)
    params = next(p for f, p in CASES if f == fmt)
    save, pixels = ours(fmt, params, context, targets), textured_image(size)
    for index in range(3):
        save(pixels, folder, f"warm{index}")
    profiler = cProfile.Profile()
    for index in range(saves):
        profiler.enable()
        save(pixels, folder, f"prof{index}")
        profiler.disable()
        for entry in folder.iterdir():
            entry.unlink()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    print(f"cProfile of {saves} saves ({fmt}, textured {size}x{size}); divide times by {saves} for one save")
    stats.sort_stats("cumulative").print_stats(30)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=31, help="timed rounds per case (default 31)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--size", type=int, default=1024, help="square image side in pixels (default 1024)")
    parser.add_argument("--workflow", default="lora", help="corpus workflow to save with (default lora)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="parent folder for the temporary output folder (default: the system temp dir)",
    )
    parser.add_argument(
        "--targets", default="all", help="'all' (default, sidecars included), 'default', or a comma-separated list"
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time (default) or process CPU time (steadier when the machine is shared)",
    )
    parser.add_argument(
        "--profile",
        choices=[f for f, _ in CASES],
        default=None,
        help="instead of timing, cProfile our save in this format and print the top calls",
    )
    args = parser.parse_args()
    targets = parse_targets(args.targets)

    folder = Path(tempfile.mkdtemp(prefix="provenance-bench-", dir=args.dir))
    try:
        print(
            f"output folder {folder}; workflow {args.workflow}; {args.size}x{args.size}; "
            f"{args.rounds} rounds + {args.warmup} warm-up; {args.clock} clock; {os.cpu_count()} CPUs"
        )
        print("targets:", ",".join(t for t in TARGETS if t in targets))
        print("check:", verify(args.workflow, folder, targets))
        if args.profile:
            profile(args.profile, args.size, args.workflow, targets, folder, args.rounds)
            return
        cases = build_cases(args.size, args.workflow, targets)
        started = time.perf_counter()
        for round_no in range(args.warmup + args.rounds):
            run_round(cases, folder, round_no, record=round_no >= args.warmup, clock=CLOCKS[args.clock])
        print(f"{time.perf_counter() - started:.1f} s of rounds\n")
        report(cases)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(cases: list[Case]) -> None:
    header = (
        f"{'case':<15} {'baseline':<15} {'ours ms':>8} {'base ms':>8} {'+ms':>5} {'ratio':>6} {'paired':>6} "
        f"{'target':>7}  {'result':<6} {'ours KB':>8} {'base KB':>8}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        ours_ms, base_ms = statistics.median(case.ours_ms), statistics.median(case.base_ms)
        ratio = ours_ms / base_ms
        paired = statistics.median(o / b for o, b in zip(case.ours_ms, case.base_ms, strict=True))
        verdict = "PASS" if ratio <= case.target else "MISS"
        print(
            f"{case.label:<15} {case.baseline_name:<15} {ours_ms:8.1f} {base_ms:8.1f} {ours_ms - base_ms:5.1f} "
            f"{ratio:6.3f} {paired:6.3f} "
            f"{'<=' + format(case.target, '.2f'):>7}  {verdict:<6} {case.sizes[0] / 1024:8.0f} "
            f"{case.sizes[1] / 1024:8.0f}"
        )
    print("\nratio = median ours / median baseline (decides PASS/MISS); paired = median of per-round ratios;")
    print("+ms = what our save adds per image (record, payloads, sidecar files), whatever the encode costs.")


if __name__ == "__main__":
    main()

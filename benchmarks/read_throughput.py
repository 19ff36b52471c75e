"""read() throughput over 500 saved PNGs against one batch `exiftool -j` run, with no pixel decoding."""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from PIL import Image, ImageFile

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.save import SaveOptions, save_images

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "workflows"
# The workflows the demo ships, taken from the test corpus: one txt2img, LoRA, hires-fix, SDXL, ...
WORKFLOWS = (
    "default",
    "lora",
    "lora_multiple",
    "hiresfix_latent_workflow",
    "embedding_example",
    "image_sdxl_simple",
    "sdxl_refiner_prompt_example",
)
PREFIX = "demo"
TARGET = 10.0


def contexts() -> list[SaveContext]:
    found = []
    for name in WORKFLOWS:
        api = json.loads((CORPUS / f"{name}.api.json").read_text("utf-8"))
        ui = json.loads((CORPUS / f"{name}.ui.json").read_text("utf-8"))
        save_id = next((k for k, v in api.items() if v.get("class_type") == "SaveImage"), None)
        found.append(
            SaveContext(
                prompt=api,
                extra_pnginfo={"workflow": ui},
                save_node_id=save_id,
                prompt_id=f"bench-{name}",
                comfyui_version="0.33.0",
            )
        )
    return found


def with_seed(context: SaveContext, seed: int) -> SaveContext:
    """The same run with every KSampler seed changed, so no two files carry the same record."""
    prompt: dict[str, Any] = json.loads(json.dumps(context.prompt))
    for node in prompt.values():
        for key in ("seed", "noise_seed"):
            if isinstance(node.get("inputs", {}).get(key), int):
                node["inputs"][key] = seed
    return SaveContext(
        prompt=prompt,
        extra_pnginfo=context.extra_pnginfo,
        save_node_id=context.save_node_id,
        prompt_id=context.prompt_id,
        comfyui_version=context.comfyui_version,
    )


def blocky_image(size: int, seed: int) -> np.ndarray:
    """96x64 random blocks upscaled nearest-neighbour: cheap to encode, so 500 files take seconds."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    rows, cols = np.arange(size) * 64 // size, np.arange(size) * 96 // size
    return small[rows][:, cols]


def corpus(folder: Path, count: int, size: int) -> list[Path]:
    """`count` PNGs saved with the default targets; reuses the ones already in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob(f"{PREFIX}_*_.png"))
    if len(existing) >= count:
        print(f"reusing {count} files in {folder}")
        return existing[:count]
    for path in folder.glob(f"{PREFIX}_*"):
        path.unlink()
    started = time.perf_counter()
    runs = contexts()
    options = SaveOptions(format="png")
    for index in range(count):
        context = with_seed(runs[index % len(runs)], 1000 + index)
        save_images([blocky_image(size, index)], context, folder, PREFIX, options, version="bench")
    print(
        f"wrote {count} PNGs ({size}x{size}, blocky image, default targets) in "
        f"{time.perf_counter() - started:.1f} s to {folder}"
    )
    return sorted(folder.glob(f"{PREFIX}_*_.png"))[:count]


@contextlib.contextmanager
def pixel_decoding_forbidden() -> Iterator[list[str]]:
    """Make every Pillow open/decode raise, and list the attempts (there should be none)."""
    attempts: list[str] = []

    def refuse(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(name)
            raise AssertionError(f"pixel decoding attempted: {name}")

        return call

    with (
        mock.patch.object(Image, "open", refuse("Image.open")),
        mock.patch.object(Image.Image, "load", refuse("Image.load")),
        mock.patch.object(ImageFile.ImageFile, "load", refuse("ImageFile.load")),
    ):
        yield attempts


def bytes_read() -> int | None:
    """Bytes this process has read through read(2) so far (Linux only)."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_ours(paths: list[Path], cpu: bool) -> float:
    clock = time.process_time if cpu else time.perf_counter
    start = clock()
    for path in paths:
        read(path)
    return clock() - start


def time_exiftool(exiftool: str, paths: list[Path], cpu: bool) -> tuple[float, int]:
    """Seconds for one `exiftool -j` over every path (wall, or the child's CPU time), and its file count."""
    start, cpu_start = time.perf_counter(), children_cpu()
    done = subprocess.run([exiftool, "-j", *map(str, paths)], capture_output=True, check=True)
    elapsed = children_cpu() - cpu_start if cpu else time.perf_counter() - start
    return elapsed, len(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500, help="number of files (default 500)")
    parser.add_argument("--size", type=int, default=1024, help="square image side in pixels (default 1024)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes of each reader, interleaved (default 5)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="keep the generated files here and reuse them next time (default: a temp dir)",
    )
    parser.add_argument("--exiftool", default="exiftool", help="exiftool executable")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (default) or CPU time of each reader (steadier on a shared machine)",
    )
    args = parser.parse_args()

    exiftool = shutil.which(args.exiftool)
    if exiftool is None:
        parser.error(f"{args.exiftool!r} not found on PATH")
    version = subprocess.run([exiftool, "-ver"], capture_output=True, text=True, check=True).stdout.strip()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="provenance-read-bench-"))
    try:
        paths = corpus(folder, args.count, args.size)
        total = sum(p.stat().st_size for p in paths)
        print(
            f"{len(paths)} files, {total / len(paths) / 1024:.0f} KB each on average; "
            f"exiftool {version}; {args.clock} clock"
        )
        for path in paths:  # page cache warm for both readers
            path.read_bytes()

        before = bytes_read()
        with pixel_decoding_forbidden() as attempts:
            records = [read(p) for p in paths]
        after = bytes_read()
        with_seed_count = sum(r.generation.seed is not None for r in records)
        print(
            f"check: {len(records)} records read ({with_seed_count} with a seed) while Pillow open/load "
            f"raised: {len(attempts)} decode attempts"
        )
        if before is not None and after is not None:
            print(
                f"check: read() pulled {(after - before) / 1024 / 1024:.1f} MiB through read(2) for "
                f"{total / 1024 / 1024:.1f} MiB of files ({(after - before) / total:.0%})"
            )

        ours_s, tool_s = [], []
        for _ in range(args.repeats):
            ours_s.append(time_ours(paths, args.clock == "cpu"))
            elapsed, found = time_exiftool(exiftool, paths, args.clock == "cpu")
            if found != len(paths):
                raise SystemExit(f"exiftool reported {found} files, expected {len(paths)}")
            tool_s.append(elapsed)
        ours_rate = len(paths) / statistics.median(ours_s)
        tool_rate = len(paths) / statistics.median(tool_s)
        ratio = ours_rate / tool_rate
        print(
            f"\nours     read()            {ours_rate:8.0f} files/s  (median of {args.repeats}: "
            f"{statistics.median(ours_s) * 1000:.0f} ms for {len(paths)} files)"
        )
        print(
            f"exiftool -j (one batch)    {tool_rate:8.0f} files/s  (median of {args.repeats}: "
            f"{statistics.median(tool_s) * 1000:.0f} ms)"
        )
        print(f"ratio {ratio:.1f}x  target >= {TARGET:.0f}x  {'PASS' if ratio >= TARGET else 'MISS'}")
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

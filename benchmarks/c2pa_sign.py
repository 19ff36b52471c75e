"""What signing a save with a C2PA manifest costs: the same save with and without the `c2pa` target.

1. png: save_images of a textured 1024x1024 image with the default targets plus `c2pa`, against the
   default targets alone (target: signed ÷ unsigned ≤ 1.15).
2. mp4: save_video of 64 textured 512x512 frames at 16 fps, signed ÷ unsigned (informational).
The signing credentials are a fresh test CA (`testca.create`) named through PROVENANCE_C2PA_CERT and
PROVENANCE_C2PA_KEY. Once, outside the timing, each signed file must verify as `valid` against that CA.
Run: python benchmarks/c2pa_sign.py [--rounds 15] [--video-rounds 7] [--clock wall|cpu].
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.credentials import testca
from comfyui_provenance.metadata.credentials.verify import VALID, verify_file
from comfyui_provenance.metadata.formats.base import DEFAULT_TARGETS, MediaOptions
from comfyui_provenance.metadata.media import clip_from, save_video
from comfyui_provenance.metadata.save import SaveOptions, save_images

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "workflows"
SIGNED_TARGETS = DEFAULT_TARGETS | {"c2pa"}
TARGET_RATIO = 1.15  # PNG: signed ÷ unsigned; mp4 is reported against it for information only
FPS = 16

SaveFn = Callable[[Path, str], Path]
# wall: what a user waits; cpu: this process's user+system time, steadier on a shared machine.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def load_context(name: str) -> SaveContext:
    """A corpus workflow as the save node would see it."""
    api: dict[str, Any] = json.loads((CORPUS / f"{name}.api.json").read_text("utf-8"))
    ui = json.loads((CORPUS / f"{name}.ui.json").read_text("utf-8"))
    save_id = next(k for k, v in api.items() if v.get("class_type") in ("SaveImage", "SaveAnimatedWEBP"))
    return SaveContext(
        prompt=api, extra_pnginfo={"workflow": ui}, save_node_id=save_id, prompt_id="bench", comfyui_version="0.33.0"
    )


def textured_image(size: int, seed: int = 0) -> np.ndarray:
    """Smooth waves, random blocks and sigma-5 noise: a realistic PNG (about 1.9 MB at 1024x1024)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    rows, cols = np.arange(size) * 64 // size, np.arange(size) * 96 // size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * (1024 / size)
    smooth = np.stack(
        [
            127.5 * (1 + np.sin(xx / 41 + yy / 67)),
            127.5 * (1 + np.sin(yy / 53 - xx / 97 + 1)),
            127.5 * (1 + np.cos((xx + yy) / 71)),
        ],
        axis=-1,
    )
    mixed = 0.3 * small[rows][:, cols] + 0.7 * smooth + rng.normal(0.0, 5.0, (size, size, 3))
    return np.ascontiguousarray(np.clip(mixed, 0, 255).astype(np.uint8))


def textured_frames(count: int, size: int, seed: int = 0) -> np.ndarray:
    """(count, size, size, 3) floats 0..1: gradients drifting frame to frame plus noise, so x264 has work."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * (512 / size)
    out = np.empty((count, size, size, 3), np.float32)
    for t in range(count):
        shift = 3.0 * t
        out[t, ..., 0] = 0.5 + 0.5 * np.sin((xx + shift) / 41 + yy / 67)
        out[t, ..., 1] = 0.5 + 0.5 * np.sin(yy / 53 - (xx - shift) / 97 + 1)
        out[t, ..., 2] = 0.5 + 0.5 * np.cos((xx + yy + 2 * shift) / 71)
        out[t] += rng.normal(0.0, 4 / 255, (size, size, 3)).astype(np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def png_save(context: SaveContext, pixels: np.ndarray, targets: frozenset[str]) -> SaveFn:
    options = SaveOptions(format="png", targets=targets)

    def save(folder: Path, prefix: str) -> Path:
        return save_images([pixels], context, folder, prefix, options, version="bench")[0].path

    return save


def mp4_save(context: SaveContext, frames: np.ndarray, targets: frozenset[str]) -> SaveFn:
    options = MediaOptions(format="mp4", targets=targets)

    def save(folder: Path, prefix: str) -> Path:
        return save_video(clip_from(frames, FPS), context, folder, prefix, options, version="bench").path

    return save


@dataclass
class Case:
    label: str
    signed: SaveFn
    unsigned: SaveFn
    rounds: int
    target: float
    informational: bool
    signed_ms: list[float] = field(default_factory=list)
    unsigned_ms: list[float] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)


def timed(save: SaveFn, folder: Path, prefix: str, clock: Callable[[], float]) -> tuple[float, Path]:
    gc.collect()
    start = clock()
    path = save(folder, prefix)
    return (clock() - start) * 1000, path


def run_case(case: Case, folder: Path, warmup: int, clock: Callable[[], float]) -> None:
    """Signed and unsigned alternate within each round; the side that goes first changes every round."""
    for round_no in range(warmup + case.rounds):
        sides = [("signed", case.signed), ("unsigned", case.unsigned)]
        if round_no % 2:
            sides.reverse()
        for tag, save in sides:
            ms, path = timed(save, folder, f"r{round_no}_{tag}", clock)
            case.sizes[tag] = path.stat().st_size
            if round_no >= warmup:
                (case.signed_ms if tag == "signed" else case.unsigned_ms).append(ms)
        for entry in folder.iterdir():  # a fresh, empty folder for every measurement pair
            if entry.is_file():
                entry.unlink()
            else:
                shutil.rmtree(entry)


def check_signed(case: Case, folder: Path, ca: Path) -> str:
    """Outside the timing: the signed save verifies as valid against the test CA; exits otherwise."""
    path = case.signed(folder, "verify")
    verdict = verify_file(path, trust=ca)
    if verdict.status != VALID:
        reasons = "; ".join(verdict.reasons) or "no reason given"
        sys.exit(f"ABORT: the signed {case.label} file {path.name} verifies as {verdict.status!r}: {reasons}")
    for entry in folder.iterdir():
        if entry.is_file():
            entry.unlink()
    return f"{case.label}: {verdict.status} (trusted {verdict.trusted}, record {verdict.record})"


def report(cases: list[Case]) -> None:
    header = (
        f"{'case':<22} {'signed ms':>9} {'plain ms':>9} {'+ms':>7} {'ratio':>6} {'paired':>6} {'target':>7}  "
        f"{'result':<13} {'signed B':>10} {'plain B':>10} {'+bytes':>8}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        signed, plain = statistics.median(case.signed_ms), statistics.median(case.unsigned_ms)
        ratio = signed / plain
        paired = statistics.median(s / u for s, u in zip(case.signed_ms, case.unsigned_ms, strict=True))
        verdict = "PASS" if ratio <= case.target else "MISS"
        if case.informational:
            verdict += " (info)"
        size_s, size_u = case.sizes["signed"], case.sizes["unsigned"]
        print(
            f"{case.label:<22} {signed:9.1f} {plain:9.1f} {signed - plain:7.1f} {ratio:6.3f} {paired:6.3f} "
            f"{'<=' + format(case.target, '.2f'):>7}  {verdict:<13} {size_s:10d} {size_u:10d} {size_s - size_u:8d}"
        )
    print("\nratio = median signed / median unsigned (decides PASS/MISS); paired = median of per-round ratios;")
    print("+ms = what signing adds per save; +bytes = the manifest's size in the file (signed - unsigned).")
    print("mp4's PASS/MISS is informational: only PNG has a target.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="timed PNG rounds (default 15)")
    parser.add_argument("--video-rounds", type=int, default=7, help="timed mp4 rounds (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first, per case (default 1)")
    parser.add_argument("--size", type=int, default=1024, help="square PNG side in pixels (default 1024)")
    parser.add_argument("--frames", type=int, default=64, help="mp4 frame count (default 64)")
    parser.add_argument("--frame-size", type=int, default=512, help="square mp4 frame side (default 512)")
    parser.add_argument("--workflow", default="default", help="corpus workflow to save with (default 'default')")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time (default) or process CPU time (steadier when the machine is shared)",
    )
    parser.add_argument("--skip", default="", help="comma-separated cases to leave out: png, mp4")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    root = Path(tempfile.mkdtemp(prefix="provenance-c2pa-bench-"))
    try:
        credentials = testca.create(root / "credentials")
        os.environ["PROVENANCE_C2PA_CERT"] = str(credentials.chain)
        os.environ["PROVENANCE_C2PA_KEY"] = str(credentials.key)
        folder = root / "out"
        folder.mkdir()
        context = load_context(args.workflow)
        cases: list[Case] = []
        if "png" not in skip:
            pixels = textured_image(args.size)
            cases.append(
                Case(
                    f"png {args.size}x{args.size}",
                    png_save(context, pixels, SIGNED_TARGETS),
                    png_save(context, pixels, DEFAULT_TARGETS),
                    args.rounds,
                    TARGET_RATIO,
                    informational=False,
                )
            )
        if "mp4" not in skip:
            frames = textured_frames(args.frames, args.frame_size)
            cases.append(
                Case(
                    f"mp4 {args.frames}x{args.frame_size}x{args.frame_size}",
                    mp4_save(context, frames, SIGNED_TARGETS),
                    mp4_save(context, frames, DEFAULT_TARGETS),
                    args.video_rounds,
                    TARGET_RATIO,
                    informational=True,
                )
            )
        print(
            f"output folder {folder}; workflow {args.workflow}; {args.clock} clock; {args.warmup} warm-up; "
            f"{os.cpu_count()} CPUs"
        )
        print("signed targets:", ",".join(sorted(SIGNED_TARGETS)), "| unsigned: the same without c2pa")
        for case in cases:
            print("check:", check_signed(case, folder, credentials.ca))
        started = time.perf_counter()
        for case in cases:
            run_case(case, folder, args.warmup, CLOCKS[args.clock])
        print(f"{time.perf_counter() - started:.1f} s of rounds\n")
        if cases:
            report(cases)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

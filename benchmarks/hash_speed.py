"""Model hashing speed: our SHA-256 (+ AutoV3) against `sha256sum` on one file, and warm-cache lookups.

Both sides read the same file from the page cache (it is read once before timing). Runs
alternate, and the side that goes first changes every round. The ratio is sha256sum's time over
ours (throughput ours ÷ sha256sum; target ≥ 0.9). `--explore` adds the alternatives tried for the
read path: other read sizes, hashlib.file_digest, mmap.

    python benchmarks/hash_speed.py [--size-mib 1024] [--rounds 7] [--dir DIR] [--explore]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from comfyui_provenance.metadata.hashing import HashCache, RootsLocator, digest, hash_models
from comfyui_provenance.metadata.hashing.header import read_header_file
from comfyui_provenance.metadata.record import Model

MIB = 1024 * 1024
TENSOR_MIB = 4


def make_safetensors(path: Path, size_mib: int) -> None:
    """A valid safetensors file of `size_mib` MiB of random U8 tensors, written without holding it in memory."""
    count = max(1, size_mib // TENSOR_MIB)
    header: dict[str, object] = {"__metadata__": {"modelspec.title": "bench", "ss_output_name": "bench"}}
    for i in range(count):
        start = i * TENSOR_MIB * MIB
        header[f"model.diffusion_model.block{i}.weight"] = {
            "dtype": "U8",
            "shape": [TENSOR_MIB * MIB],
            "data_offsets": [start, start + TENSOR_MIB * MIB],
        }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for _ in range(count):
            f.write(os.urandom(TENSOR_MIB * MIB))
    when = time.time_ns() - 3600 * 10**9  # not "racily clean": cacheable like any model file
    os.utime(path, ns=(when, when))


def sha256sum(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True).stdout
    return out.split()[0]


def ours(path: Path) -> str:
    result = HashCache(None).get(path)  # a fresh memory-only cache: every call really hashes
    assert result.sha256 is not None and result.error is None, result
    return result.sha256


def ours_whole_only(path: Path, read_size: int) -> str:
    with open(path, "rb", buffering=0) as f:
        return digest(f, None, read_size).sha256


def ours_at(read_size: int) -> Callable[[Path], str]:
    def run(path: Path) -> str:
        result = HashCache(None, read_size=read_size).get(path)
        assert result.sha256 is not None
        return result.sha256

    return run


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def mmap_digest(path: Path) -> str:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        h = hashlib.sha256()
        view = memoryview(m)
        for start in range(0, len(m), 16 * MIB):
            h.update(view[start : start + 16 * MIB])
        view.release()
        return h.hexdigest()


def timed(fn: Callable[[Path], str], path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    value = fn(path)
    return time.perf_counter() - started, value


def compare(path: Path, rounds: int, candidates: dict[str, Callable[[Path], str]], expected: str) -> None:
    size_mib = path.stat().st_size / MIB
    base: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for r in range(rounds):
        order: list[tuple[str, Callable[[Path], str]]] = [("sha256sum", sha256sum), *candidates.items()]
        if r % 2:
            order.reverse()
        for name, fn in order:
            seconds, value = timed(fn, path)
            assert value == expected, f"{name} disagrees"
            (base if name == "sha256sum" else times[name]).append(seconds)
    b = statistics.median(base)
    print(f"  {'sha256sum':<40} {b * 1000:8.0f} ms  {size_mib / b:7.0f} MiB/s")
    for name, ts in times.items():
        t = statistics.median(ts)
        per_round = statistics.median(x / y for x, y in zip(base, ts, strict=True))
        verdict = "PASS" if per_round >= 0.9 else "MISS"
        print(
            f"  {name:<40} {t * 1000:8.0f} ms  {size_mib / t:7.0f} MiB/s   "
            f"ratio {b / t:5.2f} (median per round {per_round:5.2f}) {verdict}"
        )


def warm_lookups(workdir: Path, big: Path, count: int, repeats: int) -> None:
    """hash_models on an already-hashed set: locate (stat per candidate) + realpath + stat + index."""
    models_dir = workdir / "models"
    loras = models_dir / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    (models_dir / "checkpoints").mkdir(exist_ok=True)
    link = models_dir / "checkpoints" / big.name
    if not link.exists():
        link.symlink_to(big)
    when = time.time_ns() - 3600 * 10**9
    for i in range(count):
        p = loras / f"lora_{i:04d}.safetensors"
        if not p.exists():
            p.write_bytes(struct.pack("<Q", 2) + b"{}" + os.urandom(4096))
            os.utime(p, ns=(when, when))
    models = [Model(role="checkpoint", name=big.name)]
    models += [Model(role="lora", name=f"lora_{i:04d}.safetensors") for i in range(count)]
    cache_dir = workdir / "cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    locator = RootsLocator([models_dir])
    with HashCache(cache_dir) as cache:
        hash_models(models, locator, cache)
    started = time.perf_counter()
    cache = HashCache(cache_dir)  # a new process's first open: index loaded once
    opened = time.perf_counter() - started
    samples = []
    for _ in range(repeats):
        fresh = [Model(role=m.role, name=m.name) for m in models]
        started = time.perf_counter()
        hash_models(fresh, locator, cache)
        samples.append((time.perf_counter() - started) / len(fresh))
        assert all("sha256" in m.hashes for m in fresh)
    lookup = []
    paths = [loras / f"lora_{i:04d}.safetensors" for i in range(count)]
    for _ in range(repeats):
        started = time.perf_counter()
        for p in paths:
            cache.lookup(p)
        lookup.append((time.perf_counter() - started) / len(paths))
    assert cache.stats.hashed == 0, "a warm lookup re-hashed"
    per = statistics.median(samples)
    verdict = "PASS" if per <= 1e-3 else "MISS"
    print(f"  cache open ({len(models)} entries)        {opened * 1e3:8.2f} ms")
    print(f"  hash_models, warm, per resource     {per * 1e6:8.1f} µs   (target ≤ 1000 µs) {verdict}")
    print(f"  HashCache.lookup, per path          {statistics.median(lookup) * 1e6:8.1f} µs")
    cache.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dir", type=Path, help="keep the test file here and reuse it")
    parser.add_argument("--lookups", type=int, default=500, help="files in the warm-lookup set")
    parser.add_argument("--explore", action="store_true", help="also time other read sizes, file_digest, mmap")
    args = parser.parse_args()
    if shutil.which("sha256sum") is None:
        sys.exit("sha256sum is not on PATH")
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="hash-speed-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"bench-{args.size_mib}mib.safetensors"
    try:
        if not path.exists() or path.stat().st_size < args.size_mib * MIB:
            print(f"writing {path} ...")
            make_safetensors(path, args.size_mib)
        expected = sha256sum(path)  # also pulls the file into the page cache
        assert read_header_file(path).metadata["ss_output_name"] == "bench"
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, file {path.stat().st_size / MIB:.0f} MiB")
        print("\nSHA-256 throughput (page cache warm), median of", args.rounds, "rounds")
        candidates: dict[str, Callable[[Path], str]] = {
            "ours: sha256 + autov3 (.safetensors)": ours,
            "ours: sha256 only (4 MiB reads)": lambda p: ours_whole_only(p, 4 * MIB),
        }
        if args.explore:
            for size in (256 * 1024, 1 * MIB, 16 * MIB):
                candidates[f"ours: sha256 + autov3, {size // 1024} KiB reads"] = ours_at(size)
            candidates["sha256 only, 4 KiB reads (anchors)"] = lambda p: ours_whole_only(p, 4096)
            if hasattr(hashlib, "file_digest"):
                candidates["hashlib.file_digest (sha256 only)"] = file_digest
            candidates["mmap, 16 MiB updates (sha256 only)"] = mmap_digest
        compare(path, args.rounds, candidates, expected)
        print("\nwarm cache")
        warm_lookups(workdir, path, args.lookups, repeats=20)
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Peak memory of reading the largest legal file: graphs just under the parse limit, in every carrier.

The readers refuse a ComfyUI graph over 16 MiB (READ_GRAPH_MAX) and JSON over 64 MiB; this writes
a PNG (and its JSON sidecar) through save_images with a prompt and a workflow each just under the
graph limit, made of real corpus nodes repeated, then reads it back in fresh processes: the
library's read(), `provenance read --json`, `provenance parse` and `provenance convert --out`.
Each process reports its own peak RSS (ru_maxrss); a bare interpreter's peak with the same
imports is printed for comparison. Nothing is asserted: issue 7 asks for the number.

    python benchmarks/read_memory.py [--fraction 0.97]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.limits import GRAPH_NODES_MAX, READ_GRAPH_MAX
from comfyui_provenance.metadata.save import SaveOptions, save_images

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "workflows"
# VmHWM is this process's own peak: ru_maxrss would also count the parent's size when it forked.
RUNNER = """
import json, resource, sys, time
started = time.perf_counter()
{body}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1])
print(json.dumps({{"seconds": time.perf_counter() - started, "maxrss_mb": peak / 1024}}))
"""
BODIES = {
    "imports only": "from comfyui_provenance.metadata.read import read\nfrom comfyui_provenance.cli.main import main",
    "read()": "from comfyui_provenance.metadata.read import read\nrecord = read(sys.argv[1])",
    "provenance read --json": (
        "import io, contextlib\nfrom comfyui_provenance.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['read', '--json', sys.argv[1]]) == 0"
    ),
    "provenance parse": (
        "import io, contextlib\nfrom comfyui_provenance.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['parse', sys.argv[1]]) == 0"
    ),
    "provenance convert --out": (
        "import io, contextlib, tempfile\nfrom comfyui_provenance.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['convert', '--force', '--out', tempfile.mkdtemp(), sys.argv[1]]) == 0"
    ),
}


def grown(graph: dict[str, Any], target: int, key: str) -> dict[str, Any]:
    """`graph` with its nodes (or UI `nodes` list) repeated until its JSON is just under `target` bytes,
    within the parser's node limit (each copy's title padded to make up the size)."""
    out = dict(graph)
    if key == "nodes":
        nodes = graph["nodes"]
        step = len(json.dumps(nodes))
        copies = max(1, (target - len(json.dumps(graph))) // step)
        out["nodes"] = nodes * copies
        return out
    extra = {k: v for k, v in graph.items() if v.get("class_type") != "SaveImage"}
    copies = min((GRAPH_NODES_MAX - len(graph)) // len(extra) - 1, 10_000)
    room = (target - len(json.dumps(graph))) // (copies * len(extra)) - len(json.dumps(next(iter(extra.values()))))
    for copy in range(1, copies + 1):
        for k, v in extra.items():
            out[f"{copy}{k}"] = {**v, "_meta": {"title": "n" * max(0, room - 40)}}
    return out


def build(folder: Path, fraction: float) -> Path:
    api = json.loads((CORPUS / "lora.api.json").read_text("utf-8"))
    ui = json.loads((CORPUS / "lora.ui.json").read_text("utf-8"))
    target = int(READ_GRAPH_MAX * fraction)
    prompt, workflow = grown(api, target, "api"), grown(ui, target, "nodes")
    save_id = next(k for k, v in api.items() if v.get("class_type") == "SaveImage")
    context = SaveContext(prompt=prompt, extra_pnginfo={"workflow": workflow}, save_node_id=save_id, prompt_id="big")
    pixels = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    (saved,) = save_images([pixels], context, folder, "big", SaveOptions(), version="bench")
    mib = 2**20
    print(
        f"file {saved.path.name}: {saved.path.stat().st_size / mib:.1f} MiB, "
        f"prompt {len(json.dumps(prompt)) / mib:.1f} MiB ({len(prompt):,} nodes), "
        f"workflow {len(json.dumps(workflow)) / mib:.1f} MiB; sidecars: "
        + ", ".join(f"{p.name} {p.stat().st_size / mib:.1f} MiB" for p in saved.sidecars)
    )
    return saved.path


def measure(body: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", RUNNER.format(body=body), str(path)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {"seconds": float("nan"), "maxrss_mb": float("nan"), "error": out.stderr.strip().splitlines()[-1]}
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.97, help="graph size as a fraction of the limit")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="provenance-read-memory-"))
    try:
        started = time.perf_counter()
        path = build(folder, args.fraction)
        took = time.perf_counter() - started
        print(f"written in {took:.1f} s; {os.cpu_count()} CPUs; graph limit {READ_GRAPH_MAX:,} bytes\n")
        print(f"{'entry point':<26} {'peak RSS MB':>11} {'seconds':>8}")
        for name, body in BODIES.items():
            result = measure(body, path)
            note = f"  {result['error']}" if "error" in result else ""
            print(f"{name:<26} {result['maxrss_mb']:>11.0f} {result['seconds']:>8.2f}{note}")
        print(
            f"\n(this process peaked at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB writing it)"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

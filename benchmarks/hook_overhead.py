"""What the runtime hooks cost per node: in-process on the fake and on a real ComfyUI, and end to end.

1. fake (always): tests/fake_execution.py runs a 500-node graph, hooks off and on, interleaved;
   the fake's own per-node work is tiny, so the difference is close to the hooks' pure cost.
2. in-process (COMFYUI_PATH): a real PromptExecutor in ComfyUI's Python runs the 500-node graph
   of cheap core nodes, hooks installed and uninstalled between interleaved runs.
3. end to end (COMFYUI_PATH): two loopback servers, one started with PROVENANCE_HOOKS=1, get the
   same graph alternately (ABBA), each prompt after POST /free (caches dropped, gc.collect() done
   between prompts, not inside one); time = ComfyUI's execution_start → execution_success stamps.
   Target: hooks on ÷ hooks off ≤ 1.03 (median of the per-round ratios).

The graph, as in research/anchors-measured.md §4: PrimitiveInt head + chained PrimitiveInt →
EmptyImage.color → chained ImageScale (64², nearest); PrimitiveString + chained
StringConcatenate → SaveImage.filename_prefix. Head constants change every run, so every node runs.
Run: python benchmarks/hook_overhead.py [--nodes 500] [--rounds 15] [--skip-e2e].
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.03
SETTLE_S = 0.5


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def core_graph(nodes: int, head: int) -> tuple[dict[str, Any], str]:
    """(API prompt with `nodes` cheap core nodes, output node id); `head` changes the head constants."""
    chain = max(1, (nodes - 4) // 3)
    prompt: dict[str, Any] = {"i0": {"class_type": "PrimitiveInt", "inputs": {"value": head % 0xFFFFFF}}}
    for i in range(1, chain):
        prompt[f"i{i}"] = {"class_type": "PrimitiveInt", "inputs": {"value": [f"i{i - 1}", 0]}}
    color = [f"i{chain - 1}", 0]
    prompt["img"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color}}
    previous = "img"
    for i in range(chain):
        scale = {"upscale_method": "nearest-exact", "width": 64, "height": 64, "crop": "disabled"}
        prompt[f"s{i}"] = {"class_type": "ImageScale", "inputs": {"image": [previous, 0], **scale}}
        previous = f"s{i}"
    prompt["t0"] = {"class_type": "PrimitiveString", "inputs": {"value": f"bench{head}"}}
    rest = nodes - len(prompt) - 1
    for i in range(1, rest + 1):
        inputs = {"string_a": [f"t{i - 1}", 0], "string_b": "", "delimiter": ""}
        prompt[f"t{i}"] = {"class_type": "StringConcatenate", "inputs": inputs}
    prompt["save"] = {
        "class_type": "SaveImage",
        "inputs": {"images": [previous, 0], "filename_prefix": [f"t{rest}", 0]},
    }
    return prompt, "save"


def fake_graph(nodes: int, head: int) -> dict[str, Any]:
    half = (nodes - 4) // 2
    prompt: dict[str, Any] = {"a0": {"class_type": "Int", "inputs": {"value": head}}}
    for i in range(1, half + 1):
        prompt[f"a{i}"] = {"class_type": "Add", "inputs": {"a": [f"a{i - 1}", 0], "b": 1}}
    prompt["c0"] = {"class_type": "Text", "inputs": {"text": f"h{head}"}}
    for i in range(1, nodes - half - 4 + 1):
        prompt[f"c{i}"] = {"class_type": "Concat", "inputs": {"a": [f"c{i - 1}", 0], "b": "x"}}
    last_text = f"c{nodes - half - 4}"
    sampler = {"model": ["a0", 0], "seed": [f"a{half}", 0], "frames": 1, "text": [last_text, 0]}
    prompt["k"] = {"class_type": "Sampler", "inputs": sampler}
    prompt["save"] = {"class_type": "Save", "inputs": {"images": ["k", 0], "filename_prefix": "bench"}}
    return prompt


def report(label: str, off: list[float], on: list[float], nodes: int) -> float:
    """Print medians; return the median of per-round ratios (neighbours in time: drift cancels)."""
    ratios = [b / a for a, b in zip(off, on, strict=True)]
    med_off, med_on, ratio = statistics.median(off), statistics.median(on), statistics.median(ratios)
    per_node_us = (ratio - 1.0) * med_off / nodes * 1e6
    print(
        f"{label:<13} off {med_off * 1000:9.2f} ms   on {med_on * 1000:9.2f} ms   "
        f"on/off: median ratio {ratio:6.4f} (of medians {med_on / med_off:6.4f})   "
        f"{per_node_us:+8.2f} µs/node   ({len(off)} pairs, {nodes} nodes)"
    )
    return ratio


def switch(hooks: Any, module: Any, on: bool) -> None:
    if on and not hooks.hooks_active():
        hooks.install(module)
    elif not on and hooks.installed_hooks():
        hooks.uninstall()


# --- 1. the fake --------------------------------------------------------------------------------------


def bench_fake(nodes: int, rounds: int) -> None:
    from comfyui_provenance import hooks

    fake = load("fake_execution", REPO / "tests" / "fake_execution.py")
    executor = fake.PromptExecutor(None)
    off: list[float] = []
    on: list[float] = []
    for r in range(rounds * 2):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            switch(hooks, fake, mode == "on")
            prompt = fake_graph(nodes, head=r * 2 + (mode == "on"))
            start = time.perf_counter()
            executor.execute(prompt, f"fake-{r}-{mode}", {}, ["save"])
            (on if mode == "on" else off).append(time.perf_counter() - start)
    hooks.uninstall()
    report("fake", off, on, nodes)


# --- 2. in-process, real ComfyUI ---------------------------------------------------------------------

IN_PROCESS = r"""
import asyncio, importlib.util, json, os, statistics, sys, tempfile, time
count, rounds = int(sys.argv[-2]), int(sys.argv[-1])
sys.path.insert(0, os.getcwd())
sys.argv = ["main.py", "--cpu", "--cache-classic"]
import comfy.options
comfy.options.enable_args_parsing()
import execution, nodes, folder_paths
asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
folder_paths.set_output_directory(tempfile.mkdtemp(prefix="provenance_bench_"))
repo = os.environ["PROVENANCE_REPO"]
def load(name, path, package):
    extra = {"submodule_search_locations": [os.path.dirname(path)]} if package else {}
    spec = importlib.util.spec_from_file_location(name, path, **extra)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
load("comfyui_provenance", os.path.join(repo, "__init__.py"), True)
from comfyui_provenance import hooks
bench = load("hook_overhead", os.path.join(repo, "benchmarks", "hook_overhead.py"), False)
class Server:
    client_id = None
    last_node_id = None
    last_prompt_id = None
    def send_sync(self, *args, **kwargs):
        pass
executor = execution.PromptExecutor(Server(), cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})
import gc
times = {"off": [], "on": [], "cpu_off": [], "cpu_on": []}
for r in range(rounds + 1):
    for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
        bench.switch(hooks, execution, mode == "on")
        prompt, out = bench.core_graph(count, head=1000 + r * 2 + (mode == "on"))
        gc.collect()
        start, cpu = time.perf_counter(), time.thread_time()
        executor.execute(prompt, f"inproc-{r}-{mode}", {}, [out])
        elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
        assert executor.success, executor.status_messages[-1]
        if r:  # round 0 warms up
            times[mode].append(elapsed)
            times["cpu_" + mode].append(cpu)
print(json.dumps(times))
"""


def bench_in_process(checkout: Path, harness: ModuleType, nodes: int, rounds: int) -> None:
    times = harness.run_probe(checkout, IN_PROCESS, str(nodes), str(rounds), timeout=1800)
    report("in-process", times["off"], times["on"], nodes)
    # The worker's own CPU time: what other processes on a shared machine do drops out of it.
    report("  (CPU time)", times["cpu_off"], times["cpu_on"], nodes)


# --- 3. end to end, two servers ------------------------------------------------------------------------


def settle(server: Any) -> None:
    """POST /free: the worker drops its caches and runs gc.collect() now, not inside a measured prompt."""
    request = urllib.request.Request(
        f"{server.url}/free", data=b'{"free_memory": true}', headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).close()
    time.sleep(SETTLE_S)


def server_ms(entry: dict[str, Any]) -> float:
    stamps = {event: data["timestamp"] for event, data in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0


def bench_end_to_end(checkout: Path, harness: ModuleType, nodes: int, rounds: int) -> float:
    with tempfile.TemporaryDirectory(prefix="provenance_bench_") as tmp:
        servers = {
            "off": harness.Server(checkout, Path(tmp) / "off"),
            "on": harness.Server(checkout, Path(tmp) / "on", env={"PROVENANCE_HOOKS": "1"}),
        }
        try:
            for server in servers.values():
                server.wait_ready(timeout=240)
            assert servers["on"].get("/provenance/status")["active"], "hooks did not install"
            times: dict[str, list[float]] = {"off": [], "on": []}
            for r in range(rounds + 1):
                for mode in ("off", "on", "on", "off") if r % 2 == 0 else ("on", "off", "off", "on"):
                    prompt, _ = core_graph(nodes, head=int(time.time() * 1000) % 10_000_000 + len(times[mode]))
                    settle(servers[mode])
                    _, entry = servers[mode].run(prompt, timeout=600)
                    assert entry["status"]["status_str"] == "success", entry["status"]
                    if r:
                        times[mode].append(server_ms(entry))
            return report("end to end", times["off"], times["on"], nodes)
        finally:
            for server in servers.values():
                server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--skip-e2e", action="store_true", help="only the in-process measurements")
    args = parser.parse_args()
    bench_fake(args.nodes, args.rounds)
    harness = load("comfyui_harness", REPO / "tests" / "comfyui_harness.py")
    checkout = harness.comfyui_path()
    if checkout is None or not (checkout / "main.py").is_file():
        print("COMFYUI_PATH not set (or not a ComfyUI checkout): skipping the real-ComfyUI measurements")
        return 0
    bench_in_process(checkout, harness, args.nodes, args.rounds)
    if args.skip_e2e:
        return 0
    ratio = bench_end_to_end(checkout, harness, args.nodes, args.rounds)
    print(f"end-to-end target ≤ {TARGET_RATIO}: {'PASS' if ratio <= TARGET_RATIO else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

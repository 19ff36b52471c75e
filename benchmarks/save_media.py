"""Video and audio saves against ComfyUI core's SaveVideo and SaveAudio, and `convert` on ~100 MB files.

1. video: our save_video ÷ core's SaveVideo code path (VideoFromComponents.save_to) on the same
   64 textured 512x512 float frames, mp4 H.264 at 24 fps (target ≤ 1.03).
2. audio: our save_audio ÷ core's AudioSaveHelper.save_audio, 10 s of stereo 44.1 kHz, flac (≤ 1.03).
3. convert: convert_file on a ~100 MB mp4 written in core's layout (and a ~100 MB webm), against a
   plain copy and an `ffmpeg -c copy` remux of the same file.
Parts 1-2 need torch and a ComfyUI checkout (--comfyui or COMFYUI_PATH), so run them with ComfyUI's
Python: `/path/to/comfyui-venv/bin/python benchmarks/save_media.py --comfyui /path/to/ComfyUI`.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus" / "workflows"
TARGET_RATIO = 1.03
FPS = 24
AUDIO_RATE = 44100
MB = 1_000_000


def import_package() -> None:
    """`comfyui_provenance` from the install, or else from this checkout (ComfyUI's venv has no install)."""
    if importlib.util.find_spec("comfyui_provenance") is not None:
        return
    spec = importlib.util.spec_from_file_location(
        "comfyui_provenance", REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["comfyui_provenance"] = module
    spec.loader.exec_module(module)


def import_core(checkout: str | None) -> SimpleNamespace | str:
    """ComfyUI's own save code, or why it is not available."""
    if not checkout or not (Path(checkout) / "folder_paths.py").is_file():
        return "no ComfyUI checkout (--comfyui or COMFYUI_PATH)"
    sys.path.insert(0, str(Path(checkout).resolve()))
    try:
        import folder_paths
        import torch
        from comfy_api.latest import _io
        from comfy_api.latest._input_impl.video_types import VideoFromComponents
        from comfy_api.latest._ui import AudioSaveHelper
        from comfy_api.latest._util.video_types import VideoComponents
    except ImportError as err:
        return f"cannot import ComfyUI or torch ({err}); run with ComfyUI's Python"
    return SimpleNamespace(
        torch=torch,
        folder_paths=folder_paths,
        FolderType=_io.FolderType,
        VideoFromComponents=VideoFromComponents,
        VideoComponents=VideoComponents,
        AudioSaveHelper=AudioSaveHelper,
    )


def corpus(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A corpus workflow's API prompt and UI workflow."""
    api = json.loads((CORPUS / f"{name}.api.json").read_text("utf-8"))
    return api, json.loads((CORPUS / f"{name}.ui.json").read_text("utf-8"))


def swapped_graphs(
    name: str, core_classes: tuple[str, ...], ours: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(API prompt with core's save node swapped for ours, extra_pnginfo with the UI workflow swapped too, its id)."""
    api, ui = corpus(name)
    save_id = next(k for k, v in api.items() if v.get("class_type") in core_classes)
    link_name = next(k for k in ("video", "audio") if k in api[save_id]["inputs"])
    swapped = dict(api)
    swapped[save_id] = {**ours, "inputs": {link_name: api[save_id]["inputs"][link_name], **ours["inputs"]}}
    for node in ui.get("nodes", []):
        if str(node.get("id")) == save_id:
            node["type"] = ours["class_type"]
    return swapped, {"workflow": ui}, save_id


def context_for(prompt: dict[str, Any], extra: dict[str, Any], save_id: str) -> Any:
    from comfyui_provenance.metadata.capture import SaveContext

    return SaveContext(
        prompt=prompt, extra_pnginfo=extra, save_node_id=save_id, prompt_id="bench", comfyui_version="bench"
    )


# -- inputs -----------------------------------------------------------------------------------------
def textured_frames(count: int, size: int, seed: int = 0) -> np.ndarray:
    """(count, size, size, 3) floats 0..1: smooth gradients drifting frame to frame plus sigma-4/255 noise."""
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


def stereo_waveform(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """(2, samples) floats: a few tones with a slow tremolo and some noise, so flac has work to do."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    tones = sum(np.sin(2 * np.pi * f * t) / (i + 2) for i, f in enumerate((220.0, 277.2, 329.6, 440.0)))
    left = tones * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    right = np.roll(tones, 441) * (0.6 + 0.4 * np.cos(2 * np.pi * 0.3 * t))
    noise = rng.normal(0.0, 0.02, (2, t.size))
    return np.clip(0.4 * np.stack([left, right]) + noise, -1, 1).astype(np.float32)


# -- the pairs ---------------------------------------------------------------------------------------
SaveFn = Callable[[Path], Path]


class Pair:
    """One comparison: our save and core's (and, with --bare, ours with no metadata), each into its own folder."""

    def __init__(self, label: str, ours: SaveFn, core: SaveFn, bare: SaveFn | None) -> None:
        self.label = label
        self.sides = {"ours": ours, "core": core} | ({"bare": bare} if bare is not None else {})
        self.ms: dict[str, list[float]] = {side: [] for side in self.sides}
        self.sizes: dict[str, int] = {}


def video_pair(core: SimpleNamespace, count: int, size: int, bare: bool) -> Pair:
    from comfyui_provenance.metadata.formats.base import MediaOptions
    from comfyui_provenance.metadata.media import clip_from, save_video

    frames = core.torch.from_numpy(textured_frames(count, size))
    prompt, extra, save_id = swapped_graphs(
        "hunyuan_video_text_to_video",
        ("SaveVideo",),
        {"class_type": "ProvenanceSaveVideo", "inputs": {"filename_prefix": "video/ComfyUI"}},
    )
    context = context_for(prompt, extra, save_id)
    options = MediaOptions(format="mp4")
    no_metadata = MediaOptions(format="mp4", disable_metadata=True)
    # What CreateVideo hands SaveVideo: built upstream, so not part of the save.
    video = core.VideoFromComponents(core.VideoComponents(images=frames, audio=None, frame_rate=Fraction(FPS)))

    def ours(out: Path, options: MediaOptions = options) -> Path:
        clip = clip_from(frames, FPS)  # the node converts the IMAGE batch itself
        return save_video(clip, context, out, "video/ComfyUI", options, version="bench").path

    def theirs(out: Path) -> Path:
        """SaveVideo.execute: name, metadata dict, save_to (its defaults: crf and color space None)."""
        fp = core.folder_paths
        fp.set_output_directory(str(out))
        width, height = video.get_dimensions()
        folder, filename, counter, _, _ = fp.get_save_image_path(
            "video/ComfyUI", fp.get_output_directory(), width, height
        )
        metadata = dict(extra)
        metadata["prompt"] = prompt
        path = os.path.join(folder, f"{filename}_{counter:05}_.mp4")
        video.save_to(path, format="mp4", codec="h264", metadata=metadata, crf=None, color_space=None)
        return Path(path)

    return Pair(f"video mp4 {count}x{size}²", ours, theirs, (lambda out: ours(out, no_metadata)) if bare else None)


def audio_pair(core: SimpleNamespace, seconds: float, bare: bool) -> Pair:
    from comfyui_provenance.metadata.formats.base import AudioClip, MediaOptions
    from comfyui_provenance.metadata.media import save_audio

    waveform = core.torch.from_numpy(stereo_waveform(seconds, AUDIO_RATE))[None]
    audio = {"waveform": waveform, "sample_rate": AUDIO_RATE}
    prompt, extra, save_id = swapped_graphs(
        "audio_stable_audio_example",
        ("SaveAudio", "SaveAudioAdvanced", "SaveAudioMP3", "SaveAudioOpus"),
        {"class_type": "ProvenanceSaveAudio", "inputs": {"filename_prefix": "audio/ComfyUI"}},
    )
    context = context_for(prompt, extra, save_id)
    options = MediaOptions(format="flac")
    no_metadata = MediaOptions(format="flac", disable_metadata=True)
    node = SimpleNamespace(hidden=SimpleNamespace(prompt=prompt, extra_pnginfo=extra))

    def ours(out: Path, options: MediaOptions = options) -> Path:
        clip = AudioClip(waveform=audio["waveform"][0].cpu().float().numpy(), sample_rate=AUDIO_RATE)
        return save_audio(clip, context, out, "audio/ComfyUI", options, version="bench").path

    def theirs(out: Path) -> Path:
        core.folder_paths.set_output_directory(str(out))
        saved = core.AudioSaveHelper.save_audio(audio, "audio/ComfyUI", core.FolderType.output, node, format="flac")
        return out / saved[0].subfolder / saved[0].filename

    return Pair(f"audio flac {seconds:g} s", ours, theirs, (lambda out: ours(out, no_metadata)) if bare else None)


def empty(folder: Path) -> None:
    for entry in folder.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


# wall: what a user waits; cpu: this process's CPU time, all threads (steadier when other jobs share the machine).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def run_pair(pair: Pair, root: Path, rounds: int, warmup: int, clock: Callable[[], float]) -> None:
    """Interleaved rounds, the side that goes first rotating; every save into an emptied folder."""
    folders = {side: root / side for side in pair.sides}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    for round_no in range(warmup + rounds):
        order = list(pair.sides)
        order = order[round_no % len(order) :] + order[: round_no % len(order)]
        for side in order:
            gc.collect()
            start = clock()
            path = pair.sides[side](folders[side])
            elapsed = (clock() - start) * 1000
            pair.sizes[side] = path.stat().st_size
            if round_no >= warmup:
                pair.ms[side].append(elapsed)
        if round_no == 0:
            check(pair, folders)
        for folder in folders.values():
            empty(folder)


def check(pair: Pair, folders: dict[str, Path]) -> None:
    """Outside the timing: both files exist and carry ComfyUI's prompt; ours also carries our record."""
    import av

    from comfyui_provenance.metadata.read import extract, read

    notes = []
    for side in ("ours", "core"):
        folder = folders[side]
        path = next(p for p in folder.rglob("*") if p.suffix in (".mp4", ".flac"))
        found = extract(path)
        with av.open(str(path)) as container:
            stream = container.streams[0]
            length = (
                f"{stream.frames} frames" if stream.type == "video" else f"{float(container.duration or 0) / 1e6:g} s"
            )
        notes.append(f"{side} {path.relative_to(folder)} {length} prompt={'prompt' in found.comfy}")
    record = read(next(p for p in folders["ours"].rglob("*") if p.suffix in (".mp4", ".flac")))
    print(f"  check {pair.label}: {'; '.join(notes)}; our record: {len(record.models)} models, hashes none (no hasher)")


def spread(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def report_pairs(pairs: list[Pair]) -> list[str]:
    header = (
        f"{'case':<20} {'ours ms':>8} {'(min-max)':>13} {'core ms':>8} {'(min-max)':>13} {'+ms':>7} {'ratio':>6} "
        f"{'paired':>6} {'(min-max)':>11} {'result':<6} {'ours KB':>7} {'core KB':>7}"
    )
    print(header)
    print("-" * len(header))
    summary = []
    for pair in pairs:
        ours, core = statistics.median(pair.ms["ours"]), statistics.median(pair.ms["core"])
        ratios = [o / c for o, c in zip(pair.ms["ours"], pair.ms["core"], strict=True)]
        ratio = ours / core
        verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
        print(
            f"{pair.label:<20} {ours:8.1f} {spread(pair.ms['ours'], 0):>13} "
            f"{core:8.1f} {spread(pair.ms['core'], 0):>13} {ours - core:7.1f} {ratio:6.3f} "
            f"{statistics.median(ratios):6.3f} {spread(ratios, 2):>11} {verdict:<6} "
            f"{pair.sizes['ours'] / 1024:7.0f} {pair.sizes['core'] / 1024:7.0f}"
        )
        summary.append(f"{pair.label.split()[0]} {ratio:.3f} {verdict}")
    print(
        f"ratio = median ours / median core (PASS at <= {TARGET_RATIO}); paired = median of the per-round ratios; "
        "our saves hash no models (no hasher), as core hashes none"
    )
    for pair in pairs:
        if "bare" in pair.ms:
            bare = statistics.median(pair.ms["bare"])
            paired = statistics.median(o / b for o, b in zip(pair.ms["ours"], pair.ms["bare"], strict=True))
            print(
                f"{pair.label}: ours with no metadata (same encode path) {bare:.1f} ms; the metadata adds "
                f"{statistics.median(pair.ms['ours']) - bare:+.1f} ms (paired ratio {paired:.3f})"
            )
    return summary


# -- 3. convert --------------------------------------------------------------------------------------
def seed_clip(codec: str, muxer: str, frames: int, size: int, options: dict[str, str]) -> bytes:
    """A short, large-packet clip (noise frames, near-lossless) to be repeated into a big file."""
    import av

    rng = np.random.default_rng(7)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=muxer) as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = options
        for _ in range(frames):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def big_file(path: Path, seed: bytes, target: int, tags: dict[str, str], options: dict[str, str] | None) -> int:
    """`seed`'s packets muxed again and again, timestamps shifted, until the file holds `target` bytes."""
    import av

    muxer = "mp4" if path.suffix == ".mp4" else "webm"
    written = 0
    with av.open(str(path), mode="w", format=muxer, options=options or {}) as out:
        for key, value in tags.items():
            out.metadata[key] = value
        stream = None
        offset = 0
        while written < target:
            with av.open(io.BytesIO(seed)) as src:
                source = src.streams.video[0]
                if stream is None:
                    stream = out.add_stream_from_template(source)
                span = 0
                for packet in src.demux(source):
                    if packet.dts is None:
                        continue
                    span = max(span, packet.pts + (packet.duration or 0))
                    packet.pts += offset
                    packet.dts += offset
                    packet.stream = stream
                    written += packet.size
                    out.mux(packet)
                offset += span
    return path.stat().st_size


def make_inputs(folder: Path, target: int, size: int, webm: bool, faststart: bool) -> list[tuple[str, Path]]:
    """Core's SaveVideo layout: prompt and workflow as container tags (mp4: use_metadata_tags, moov at the end
    as core writes into a buffer, or first with `faststart`, as its SaveVideo writes to a path)."""
    api, ui = corpus("hunyuan_video_text_to_video")
    tags = {"workflow": json.dumps(ui), "prompt": json.dumps(api)}  # SaveVideo: extra_pnginfo first, then prompt
    started = time.perf_counter()
    mp4 = folder / "source.mp4"
    seed = seed_clip("libx264", "mp4", 24, size, {"preset": "ultrafast", "qp": "0"})
    movflags = "use_metadata_tags+faststart" if faststart else "use_metadata_tags"
    big_file(mp4, seed, target, tags, {"movflags": movflags})
    inputs = [("mp4", mp4)]
    if webm:
        seed = seed_clip("libvpx-vp9", "webm", 12, size, {"deadline": "realtime", "cpu-used": "8", "crf": "2"})
        path = folder / "source.webm"
        big_file(path, seed, target, tags, None)
        inputs.append(("webm", path))
    sizes = ", ".join(f"{kind} {p.stat().st_size / MB:.1f} MB" for kind, p in inputs)
    layout = "moov first (faststart)" if faststart else "moov at the end"
    print(f"  inputs written in {time.perf_counter() - started:.1f} s: {sizes}; mp4 {layout}")
    return inputs


def io_counters() -> tuple[int, int]:
    """This process's (rchar, wchar) from /proc; zeros where there is none."""
    try:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    except OSError:
        return 0, 0
    return int(fields["rchar"]), int(fields["wchar"])


IoCount = tuple[int, int | None]  # bytes written, bytes read (None: not measured)


def convert_methods(kind: str) -> dict[str, Callable[[Path, Path], IoCount]]:
    """Each method works on a fresh copy `work` (and may write `out`); what it wrote and read."""
    from comfyui_provenance.metadata.convert import CONVERTED, convert_file

    def convert(work: Path, out: Path) -> IoCount:
        read_before, written_before = io_counters()
        outcome = convert_file(work)
        if outcome.status != CONVERTED:
            raise SystemExit(f"convert_file({work.name}): {outcome.status}: {outcome.reason}")
        read_after, written_after = io_counters()
        return written_after - written_before, read_after - read_before

    def copy(work: Path, out: Path) -> IoCount:
        shutil.copyfile(work, out)
        return out.stat().st_size, out.stat().st_size

    def remux(work: Path, out: Path) -> IoCount:
        flags = ["-movflags", "use_metadata_tags"] if kind == "mp4" else []
        command = ["ffmpeg", "-v", "error", "-y", "-i", str(work), "-map", "0", "-c", "copy", *flags, str(out)]
        subprocess.run(command, check=True)
        return out.stat().st_size, None

    methods = {"convert": convert, "copyfile": copy}
    if shutil.which("ffmpeg"):
        methods["ffmpeg -c copy"] = remux
    return methods


def fresh(source: Path, work: Path) -> None:
    """An untouched copy of `source` at `work`, everything else in the folder but the sources removed."""
    for path in source.parent.iterdir():
        if not path.name.startswith("source."):
            path.unlink()
    shutil.copyfile(source, work)  # in the page cache, like a file just saved


def bench_convert(folder: Path, inputs: list[tuple[str, Path]], rounds: int) -> list[str]:
    summary = []
    header = (
        f"{'file':<6} {'method':<15} {'median s':>9} {'min s':>7} {'max s':>7} {'MB/s':>7} {'MB written':>11} "
        f"{'MB read':>8} {'÷ copy':>7}"
    )
    print(header)
    print("-" * len(header))
    for kind, source in inputs:
        methods = convert_methods(kind)
        times: dict[str, list[float]] = {name: [] for name in methods}
        counts: dict[str, IoCount] = {}
        work, out = folder / f"work{source.suffix}", folder / f"out{source.suffix}"
        for round_no in range(rounds):
            names = list(methods)
            names = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in names:
                fresh(source, work)
                gc.collect()
                start = time.perf_counter()
                counts[name] = methods[name](work, out)
                times[name].append(time.perf_counter() - start)
        fresh(source, work)
        size = source.stat().st_size
        copy_s = statistics.median(times["copyfile"])
        for name, values in times.items():
            median = statistics.median(values)
            written, read = counts[name]
            print(
                f"{kind:<6} {name:<15} {median:9.3f} {min(values):7.3f} {max(values):7.3f} {size / MB / median:7.0f} "
                f"{written / MB:11.1f} {'-' if read is None else format(read / MB, '.1f'):>8} {median / copy_s:7.2f}"
            )
        convert_s = statistics.median(times["convert"])
        summary.append(f"convert {kind} {size / MB:.0f} MB {convert_s:.2f} s ({size / MB / convert_s:.0f} MB/s)")
    print(
        "MB/s = input size / median time; MB written/read: convert = this process's write()/read() bytes "
        "(/proc/self/io), others = output size; every run on a fresh copy of the input"
    )
    return summary


# -- profile -----------------------------------------------------------------------------------------
def profile(label: str, once: Callable[[], object], reset: Callable[[], None], runs: int) -> None:
    """cProfile of `once` (cProfile inflates pure-Python work about 2x, C encoders hardly at all)."""
    once()
    reset()
    profiler = cProfile.Profile()
    for _ in range(runs):
        profiler.enable()
        once()
        profiler.disable()
        reset()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    print(f"cProfile of {runs} runs ({label}); divide times by {runs} for one")
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(15)
    print(out.getvalue())


def profile_save(pair: Pair, root: Path, runs: int) -> None:
    folder = root / "ours"
    folder.mkdir(exist_ok=True)
    profile(f"our {pair.label}", lambda: pair.sides["ours"](folder), lambda: empty(folder), runs)


def profile_convert(folder: Path, inputs: list[tuple[str, Path]], runs: int) -> None:
    for kind, source in inputs:
        profile_one_convert(kind, source, folder / f"work{source.suffix}", runs)


def profile_one_convert(kind: str, source: Path, work: Path, runs: int) -> None:
    convert = convert_methods(kind)["convert"]
    fresh(source, work)
    profile(f"convert {kind}", lambda: convert(work, work), lambda: fresh(source, work), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="ComfyUI checkout (parts 1-2)")
    parser.add_argument("--rounds", type=int, default=7, help="timed video rounds (default 7)")
    parser.add_argument("--audio-rounds", type=int, default=21, help="timed audio rounds (default 21)")
    parser.add_argument("--convert-rounds", type=int, default=5, help="timed convert rounds (default 5)")
    parser.add_argument("--frames", type=int, default=64, help="video frames (default 64)")
    parser.add_argument("--size", type=int, default=512, help="video frame side (default 512)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length (default 10)")
    parser.add_argument("--convert-mb", type=float, default=100.0, help="size of the files to convert (default 100)")
    parser.add_argument("--no-webm", action="store_true", help="convert the mp4 only")
    parser.add_argument("--faststart", action="store_true", help="write the mp4 to convert with its moov first")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="for parts 1-2 (default wall)")
    parser.add_argument(
        "--bare", action="store_true", help="also time our save with disable_metadata (what the metadata alone adds)"
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: video,audio,convert")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary folder (default: system temp)")
    parser.add_argument("--profile", choices=["video", "audio", "convert"], help="cProfile ours instead of timing")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    import_package()
    core = import_core(args.comfyui)
    root = Path(tempfile.mkdtemp(prefix="provenance-media-", dir=args.dir))
    print(f"python {sys.executable}; {os.cpu_count()} CPUs; folder {root}")
    summary: list[str] = []
    try:
        if isinstance(core, str):
            print(f"video, audio: skipped: {core}")
        else:
            import av

            print(f"ComfyUI {args.comfyui}; torch {core.torch.__version__}; PyAV {av.__version__}; {args.clock} clock")
            builders = {
                "video": lambda: video_pair(core, args.frames, args.size, args.bare),
                "audio": lambda: audio_pair(core, args.seconds, args.bare),
            }
            if args.profile in builders:
                profile_save(builders[args.profile](), root, 3 if args.profile == "video" else 20)
                return
            pairs = []
            for name, rounds in (("video", args.rounds), ("audio", args.audio_rounds)):
                if name in skip or args.profile == "convert":
                    continue
                pair = builders[name]()
                started = time.perf_counter()
                run_pair(pair, root, rounds, warmup=1, clock=CLOCKS[args.clock])
                print(f"  {pair.label}: {rounds} rounds + 1 warm-up in {time.perf_counter() - started:.0f} s")
                pairs.append(pair)
            if pairs:
                print()
                summary += report_pairs(pairs)
                print()
        if "convert" not in skip and args.profile in (None, "convert"):  # --profile video|audio returned above
            folder = root / "convert"
            folder.mkdir()
            inputs = make_inputs(
                folder, int(args.convert_mb * MB), 512, webm=not args.no_webm, faststart=args.faststart
            )
            if args.profile:
                profile_convert(folder, inputs, 3)
                return
            summary += bench_convert(folder, inputs, args.convert_rounds)
        print("\nsummary: " + "; ".join(summary))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

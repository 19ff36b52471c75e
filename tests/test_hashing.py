"""Model hashing: digests against independent computations, the cache's staleness and sharing, bad files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import struct
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import deadline
from safetensors.numpy import save, save_file
from test_record import schema_errors

from comfyui_provenance import compat
from comfyui_provenance.metadata.hashing import (
    CACHE_FILENAME,
    FolderLocator,
    HashCache,
    HeaderError,
    RootsLocator,
    digest,
    hash_models,
    read_header_file,
    title_of,
)
from comfyui_provenance.metadata.hashing import cache as cache_module
from comfyui_provenance.metadata.hashing.header import HEADER_MAX, METADATA_VALUE_MAX
from comfyui_provenance.metadata.hashing.locate import safe_name
from comfyui_provenance.metadata.hashing.store import SCHEMA_VERSION
from comfyui_provenance.metadata.record import Model, Record

HOUR_NS = 3600 * 1_000_000_000

LORA_METADATA = {
    "ss_output_name": "pixel-art",
    "ss_network_module": "networks.lora",
    "ss_network_dim": "16",
    "ss_network_alpha": "8",
    "ss_base_model_version": "sdxl_base_v1-0",
    "ss_sd_model_name": "sd_xl_base_1.0.safetensors",
    "ss_tag_frequency": json.dumps({"img": {f"tag{i}": i for i in range(5000)}}),
    "ss_dataset_dirs": json.dumps({"img": {"n_repeats": 10, "img_count": 100}}),
    "modelspec.title": "Pixel Art XL",
    "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
    "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
    "modelspec.resolution": "1024x1024",
    "modelspec.thumbnail": "data:image/png;base64," + "A" * 50_000,
    "modelspec.description": "d" * (METADATA_VALUE_MAX + 100),
}


# -- helpers -----------------------------------------------------------------------------------------------


def tensors(seed: int = 0, rows: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "lora_unet_down.weight": rng.standard_normal((rows, 16)).astype(np.float16),
        "lora_unet_up.weight": rng.standard_normal((16, rows)).astype(np.float32),
        "lora_unet.alpha": np.array([8.0], dtype=np.float32),
    }


def aged(path: Path, hours: float = 1.0) -> Path:
    """Give `path` an mtime well in the past: a freshly written file is "racily clean" and not cached."""
    when = time.time_ns() - int(hours * HOUR_NS)
    os.utime(path, ns=(when, when))
    return path


def write_safetensors(path: Path, metadata: dict[str, str] | None = None, seed: int = 0, rows: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors(seed, rows), str(path), metadata=metadata)
    return aged(path)


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return aged(path)


def whole_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensor_sha256(path: Path) -> str:
    """AutoV3 computed here, independently: skip the 8-byte length and the JSON header, hash the rest."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + length :]).hexdigest()


def sshs_model_hash(tensors_: dict[str, np.ndarray]) -> str:
    """kohya's precalculate_safetensors_hashes: serialize, then A1111's addnet hash over the tensor bytes."""
    blob = save(tensors_, metadata={"ss_output_name": "x"})
    offset = int.from_bytes(blob[:8], "little") + 8
    digest_ = hashlib.sha256()
    for start in range(offset, len(blob), 1024 * 1024):
        digest_.update(blob[start : start + 1024 * 1024])
    return digest_.hexdigest()


class CountingDigest:
    """Stands in for cache.digest: counts real hashes, and can hold the first one until released."""

    def __init__(self, hold: bool = False) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
        self.started.set()
        assert self.release.wait(10), "the test never released the held hash"
        return digest(*args, **kwargs)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> CountingDigest:
    counter = CountingDigest()
    monkeypatch.setattr(cache_module, "digest", counter)
    return counter


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """A ComfyUI-style models folder: checkpoint, LoRA (with metadata), embedding, plain .pt VAE."""
    root = tmp_path / "models"
    write_safetensors(root / "checkpoints" / "sdxl" / "base.safetensors", {"modelspec.title": "Base"}, seed=1)
    write_safetensors(root / "loras" / "pixel.safetensors", LORA_METADATA, seed=2)
    write_safetensors(root / "embeddings" / "easyneg.safetensors", seed=3, rows=8)
    write_bytes(root / "vae" / "kl.pt", os.urandom(300_000))
    return root


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "user" / "provenance"


@pytest.fixture
def cache(cache_dir: Path) -> Iterator[HashCache]:
    with HashCache(cache_dir) as c:
        yield c


# -- digests -----------------------------------------------------------------------------------------------


def test_safetensors_hashes_match_independent_computations(tmp_path: Path, cache: HashCache) -> None:
    path = write_safetensors(tmp_path / "m.safetensors", LORA_METADATA)
    result = cache.get(path)
    sha = whole_sha256(path)
    assert result.error is None and result.header_error is None
    assert result.hashes() == {"sha256": sha, "autov2": sha[:10], "autov3": tensor_sha256(path)}
    assert result.autov2 == sha[:10]
    assert all(h == h.lower() and len(h) in (10, 64) for h in result.hashes().values())
    assert tensor_sha256(path) != sha


def test_autov3_is_kohyas_sshs_model_hash_and_ignores_the_header(tmp_path: Path, cache: HashCache) -> None:
    """kohya embeds sshs_model_hash over the tensor data only; any header must give the same AutoV3."""
    expected = sshs_model_hash(tensors(seed=5))
    one = write_safetensors(tmp_path / "a.safetensors", {"sshs_model_hash": expected}, seed=5)
    two = write_safetensors(tmp_path / "b.safetensors", {**LORA_METADATA, "ss_output_name": "other"}, seed=5)
    first, second = cache.get(one), cache.get(two)
    assert first.autov3 == second.autov3 == expected
    assert first.metadata["sshs_model_hash"] == expected
    assert first.sha256 != second.sha256  # the whole-file hash does include the header


def test_other_model_files_get_sha256_and_autov2_only(tmp_path: Path, cache: HashCache) -> None:
    for name in ("model.ckpt", "model.pt", "model.gguf", "model.bin"):
        path = write_bytes(tmp_path / name, os.urandom(70_000))
        result = cache.get(path)
        assert result.hashes() == {"sha256": whole_sha256(path), "autov2": whole_sha256(path)[:10]}
        assert result.metadata == {} and result.header_error is None


def test_the_sft_extension_is_safetensors(tmp_path: Path, cache: HashCache) -> None:
    path = write_safetensors(tmp_path / "flux.sft", {"modelspec.title": "F"})
    assert cache.get(path).autov3 == tensor_sha256(path)


@pytest.mark.parametrize("read_size", [1, 7, 4096, 65_536, 1 << 20])
def test_read_boundaries_do_not_change_digests(tmp_path: Path, read_size: int) -> None:
    """The header spans several reads, and the tensor data starts mid-read, at every buffer size."""
    path = write_safetensors(tmp_path / "m.safetensors", {"ss_training_comment": "x" * 10_000}, rows=2048)
    offset = 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]
    with open(path, "rb", buffering=0) as file:
        got = digest(file, offset, read_size)
    assert (got.sha256, got.autov3, got.size) == (whole_sha256(path), tensor_sha256(path), path.stat().st_size)
    with open(path, "rb", buffering=0) as file:
        assert digest(file, None, read_size).autov3 is None


def test_header_metadata_is_curated(tmp_path: Path, cache: HashCache) -> None:
    path = write_safetensors(tmp_path / "lora.safetensors", LORA_METADATA)
    meta = cache.get(path).metadata
    assert meta["ss_output_name"] == "pixel-art"
    assert meta["ss_network_dim"] == "16" and meta["ss_network_alpha"] == "8"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert meta["modelspec.resolution"] == "1024x1024"
    for dropped in ("ss_tag_frequency", "ss_dataset_dirs", "modelspec.thumbnail"):
        assert dropped not in meta
    assert len(meta["modelspec.description"]) == METADATA_VALUE_MAX
    assert meta["modelspec.description"].endswith("…")
    assert title_of(meta) == "Pixel Art XL"
    assert title_of({"ss_output_name": "pixel-art"}) == "pixel-art"
    assert len(json.dumps(meta)) < 4096
    assert read_header_file(path).metadata == meta


def test_a_safetensors_file_without_metadata(tmp_path: Path, cache: HashCache) -> None:
    path = write_safetensors(tmp_path / "bare.safetensors")
    result = cache.get(path)
    assert result.metadata == {} and result.autov3 == tensor_sha256(path)


# -- refused headers -----------------------------------------------------------------------------------------


def header_file(length: int, body: bytes) -> bytes:
    return struct.pack("<Q", length) + body


GARBAGE_HEADERS = {
    "oversized": (header_file(HEADER_MAX + 1, b"{}" + b"\0" * 100), "over the 100,000,000-byte limit"),
    "past the end": (header_file(10_000, b'{"a": 1}'), "past the end"),
    "short file": (b"\x01\x02\x03", "shorter than the 8-byte length"),
    "not json": (header_file(8, b"{notjson" + b"\0" * 64), "not UTF-8 JSON"),
    "not utf-8": (header_file(4, b"{\xff\xfe}" + b"\0" * 64), "not UTF-8 JSON"),
    "not an object": (header_file(2, b"[]" + b"\0" * 64), "does not start with '{'"),
    "random bytes": (os.urandom(4096), "safetensors header refused"),
}


@pytest.mark.parametrize("case", sorted(GARBAGE_HEADERS))
def test_a_garbage_header_is_refused_clearly_and_autov2_still_computed(
    case: str, tmp_path: Path, cache: HashCache
) -> None:
    data, message = GARBAGE_HEADERS[case]
    path = write_bytes(tmp_path / "bad.safetensors", data)
    result = cache.get(path)
    assert result.error is None
    assert result.header_error is not None and message in result.header_error
    assert result.hashes() == {"sha256": whole_sha256(path), "autov2": whole_sha256(path)[:10]}
    with pytest.raises(HeaderError, match="safetensors header refused"):
        read_header_file(path)
    model = Model(role="lora", name="bad.safetensors")
    hash_models([model], FolderLocator(lambda folder, name: path), cache)
    assert model.other["header_error"] == result.header_error and "autov2" in model.hashes
    assert "hash_error" not in model.other


# -- the cache: staleness ---------------------------------------------------------------------------------


def test_a_second_lookup_is_a_hit_without_reading(tmp_path: Path, cache: HashCache, counting: CountingDigest) -> None:
    path = write_safetensors(tmp_path / "m.safetensors")
    assert cache.lookup(path) is None
    first = cache.get(path)
    assert cache.get(path) is first and cache.lookup(path) is first
    assert counting.calls == 1 and cache.stats.hashed == 1 and cache.stats.hits == 2


def test_a_rewrite_with_the_same_size_is_hashed_again(
    tmp_path: Path, cache: HashCache, counting: CountingDigest
) -> None:
    path = write_bytes(tmp_path / "m.ckpt", b"a" * 50_000)
    old = cache.get(path)
    before = path.stat()
    path.write_bytes(b"b" * 50_000)  # same size; the write gives it a new mtime_ns
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns != before.st_mtime_ns
    new = cache.get(path)
    assert new.sha256 == whole_sha256(path) != old.sha256
    assert counting.calls == 2


def test_a_touched_file_is_hashed_again(tmp_path: Path, cache: HashCache, counting: CountingDigest) -> None:
    path = write_safetensors(tmp_path / "m.safetensors")
    first = cache.get(path)
    aged(path, hours=0.5)
    second = cache.get(path)
    assert counting.calls == 2 and second.sha256 == first.sha256 and second.mtime_ns != first.mtime_ns
    assert cache.get(path) is second and counting.calls == 2


def test_a_file_written_just_now_is_not_cached(tmp_path: Path, cache: HashCache, counting: CountingDigest) -> None:
    """Within the racy window a same-size rewrite could keep its mtime; such a result is not kept."""
    path = tmp_path / "fresh.ckpt"
    path.write_bytes(os.urandom(10_000))
    assert cache.get(path).sha256 == cache.get(path).sha256 == whole_sha256(path)
    assert counting.calls == 2
    aged(path)
    cache.get(path)
    cache.get(path)
    assert counting.calls == 3


def test_symlinks_share_the_entry_of_their_target(tmp_path: Path, cache: HashCache, counting: CountingDigest) -> None:
    target = write_safetensors(tmp_path / "store" / "m.safetensors")
    link = tmp_path / "models" / "m.safetensors"
    link.parent.mkdir()
    link.symlink_to(target)
    assert cache.get(link).sha256 == cache.get(target).sha256
    assert counting.calls == 1


def test_a_safetensors_name_linked_to_a_bare_blob_gets_autov3(tmp_path: Path, cache: HashCache) -> None:
    """Hugging Face's cache: snapshots/<rev>/model.safetensors is a link to blobs/<sha256>, no extension."""
    blob = write_safetensors(tmp_path / "blobs" / "0123abcd", {"modelspec.title": "HF"})
    link = tmp_path / "snapshots" / "main" / "model.safetensors"
    link.parent.mkdir(parents=True)
    link.symlink_to(blob)
    result = cache.get(link)
    assert result.autov3 == tensor_sha256(blob) and result.metadata == {"modelspec.title": "HF"}


# -- the cache: persistence and sharing ----------------------------------------------------------------------

CHILD = """
import json, sys
from comfyui_provenance.metadata.hashing import HashCache, cache as cache_module
def refuse(*args, **kwargs):
    raise AssertionError("the child process re-hashed a cached file")
cache_module.digest = refuse
with HashCache(sys.argv[1]) as cache:
    result = cache.get(sys.argv[2])
    print(json.dumps({"hashes": result.hashes(), "metadata": result.metadata, "error": result.error,
                      "hashed": cache.stats.hashed, "hits": cache.stats.hits}))
"""


def run_child(cache_dir: Path, model: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(cache_dir), str(model)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_cache_survives_a_new_process(tmp_path: Path, cache_dir: Path) -> None:
    path = write_safetensors(tmp_path / "lora.safetensors", LORA_METADATA)
    with HashCache(cache_dir) as cache:
        result = cache.get(path)
    assert (cache_dir / CACHE_FILENAME).is_file()
    child = run_child(cache_dir, path)
    assert child == {
        "hashes": result.hashes(),
        "metadata": result.metadata,
        "error": None,
        "hashed": 0,
        "hits": 1,
    }


def test_a_running_process_reuses_what_another_one_hashed(
    tmp_path: Path, cache: HashCache, cache_dir: Path, counting: CountingDigest
) -> None:
    """Our index was loaded before the other process hashed the file: a miss asks the file first."""
    path = write_safetensors(tmp_path / "m.safetensors")
    script = (
        "import sys; from comfyui_provenance.metadata.hashing import HashCache; "
        "print(HashCache(sys.argv[1]).get(sys.argv[2]).sha256)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(cache_dir), str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == whole_sha256(path), done.stderr
    assert cache.get(path).sha256 == whole_sha256(path)
    assert counting.calls == 0 and cache.stats.stored == 1


def test_concurrent_processes_and_threads_all_land_in_the_cache(tmp_path: Path, cache_dir: Path) -> None:
    paths = [write_bytes(tmp_path / f"m{i}.ckpt", os.urandom(20_000)) for i in range(6)]
    script = (
        "import sys; from concurrent.futures import ThreadPoolExecutor; "
        "from comfyui_provenance.metadata.hashing import HashCache; c = HashCache(sys.argv[1]); "
        "list(ThreadPoolExecutor(4).map(c.get, sys.argv[2:]))"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", script, str(cache_dir), *map(str, paths[i::2] + paths)])
        for i in range(3)
    ]
    assert all(child.wait(60) == 0 for child in children)
    with HashCache(cache_dir) as cache:
        for path in paths:
            assert cache.lookup(path) is not None and cache.get(path).sha256 == whole_sha256(path)
        assert cache.stats.hashed == 0


def test_nothing_is_written_into_a_read_only_models_folder(models_dir: Path, cache_dir: Path) -> None:
    listing = sorted(p.relative_to(models_dir) for p in models_dir.rglob("*"))
    folders = [models_dir, *(p for p in models_dir.rglob("*") if p.is_dir())]
    modes = {p: p.stat().st_mode for p in folders}
    try:
        for folder in folders:
            folder.chmod(0o555)
        models = [Model(role="checkpoint", name="sdxl/base.safetensors"), Model(role="lora", name="pixel.safetensors")]
        with HashCache(cache_dir) as cache:
            hash_models(models, RootsLocator([models_dir]), cache)
        assert all("sha256" in m.hashes and "hash_error" not in m.other for m in models)
    finally:
        for folder, mode in modes.items():
            folder.chmod(stat.S_IMODE(mode))
    assert sorted(p.relative_to(models_dir) for p in models_dir.rglob("*")) == listing
    assert (cache_dir / CACHE_FILENAME).is_file()


# -- the cache: concurrency ----------------------------------------------------------------------------------


def test_a_second_request_waits_for_the_running_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = CountingDigest(hold=True)
    monkeypatch.setattr(cache_module, "digest", held)
    path = write_safetensors(tmp_path / "m.safetensors", rows=4096)
    cache = HashCache(None)
    results: list[Any] = [None, None]

    def request(slot: int) -> None:
        results[slot] = cache.get(path)

    with deadline(20):
        first = threading.Thread(target=request, args=(0,))
        first.start()
        assert held.started.wait(10)
        second = threading.Thread(target=request, args=(1,))
        second.start()
        while cache.stats.shared == 0:  # the second request is now waiting on the first one's future
            time.sleep(0.001)
        held.release.set()
        first.join()
        second.join()
    assert held.calls == 1
    assert results[0] is results[1] and results[0].sha256 == whole_sha256(path)


def test_many_threads_hash_one_file_once(tmp_path: Path, counting: CountingDigest) -> None:
    path = write_safetensors(tmp_path / "m.safetensors", rows=8192)
    cache = HashCache(None)
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def request() -> None:
        barrier.wait()
        results.append(cache.get(path))

    with deadline(20):
        threads = [threading.Thread(target=request) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert counting.calls == 1 and len({r.sha256 for r in results}) == 1
    assert cache.stats.hashed == 1 and cache.stats.hits + cache.stats.shared == 7


def test_a_file_changing_while_hashed_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_bytes(tmp_path / "m.ckpt", os.urandom(100_000))

    def digest_while_appending(*args: Any, **kwargs: Any) -> Any:
        with open(path, "ab") as f:
            f.write(b"more")
        return digest(*args, **kwargs)

    monkeypatch.setattr(cache_module, "digest", digest_while_appending)
    cache = HashCache(None)
    result = cache.get(path)
    assert result.error == "the file changed while it was being hashed" and result.hashes() == {}
    assert cache.lookup(path) is None


# -- unknown files -------------------------------------------------------------------------------------------


def test_a_missing_file_is_unknown_not_an_exception(tmp_path: Path, cache: HashCache) -> None:
    result = cache.get(tmp_path / "nowhere.safetensors")
    assert result.error == "file not found" and result.hashes() == {}
    assert cache.lookup(tmp_path / "nowhere.safetensors") is None
    models = [Model(role="vae", name="gone.safetensors"), Model(role="checkpoint", name="x.safetensors")]
    hash_models(models[:1], RootsLocator([tmp_path]), cache)
    hash_models(models[1:], FolderLocator(lambda folder, name: tmp_path / "vanished.safetensors"), cache)
    assert [m.other["hash_error"] for m in models] == ["file not found", "file not found"]
    assert all(m.hashes == {} for m in models)


def test_a_directory_or_an_unreadable_file_is_unknown(tmp_path: Path, cache: HashCache) -> None:
    (tmp_path / "dir.safetensors").mkdir()
    assert cache.get(tmp_path / "dir.safetensors").error == "not a regular file"
    assert cache.get("bad\0name").error is not None
    if os.geteuid() == 0:
        return  # root reads a mode-000 file anyway
    path = write_bytes(tmp_path / "locked.safetensors", b"x" * 100)
    path.chmod(0)
    try:
        assert cache.get(path).error == "permission denied"
    finally:
        path.chmod(0o644)


def test_a_failing_locator_is_recorded_not_raised(cache: HashCache) -> None:
    class Broken:
        def locate(self, role: str, name: str) -> Path | None:
            raise RuntimeError("folder_paths exploded")

    model = Model(role="checkpoint", name="m.safetensors")
    hash_models([model], Broken(), cache)
    assert model.other["hash_error"] == "locating failed: RuntimeError: folder_paths exploded"


# -- the cache file: damage and odd places -----------------------------------------------------------------


def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(
    tmp_path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_safetensors(tmp_path / "m.safetensors")
    cache_dir.mkdir(parents=True)
    (cache_dir / CACHE_FILENAME).write_bytes(b"this is not a database" * 200)
    with caplog.at_level(logging.WARNING), HashCache(cache_dir) as cache:
        assert cache.get(path).sha256 == whole_sha256(path)
    assert "was unreadable" in caplog.text
    assert (cache_dir / (CACHE_FILENAME + ".corrupt")).read_bytes().startswith(b"this is not a database")
    with HashCache(cache_dir) as again:
        assert again.lookup(path) is not None  # the new file works and kept the hash


@pytest.mark.parametrize("damage", ["truncated", "first data page", "middle page", "last page"])
def test_a_damaged_cache_file_is_rebuilt(tmp_path: Path, cache_dir: Path, damage: str) -> None:
    """Damage anywhere, the path index included, is found when the cache opens (quick_check), not mid-save."""
    paths = [write_bytes(tmp_path / f"m{i}.ckpt", os.urandom(100)) for i in range(300)]
    with HashCache(cache_dir) as cache:
        for path in paths:
            cache.get(path)
    db = cache_dir / CACHE_FILENAME
    data = bytearray(db.read_bytes())
    pages = len(data) // 4096
    assert pages >= 8
    if damage == "truncated":
        data = data[:1500]
    else:
        page = {"first data page": 1, "middle page": pages // 2, "last page": pages - 1}[damage]
        data[page * 4096 : (page + 1) * 4096] = b"\xff" * 4096
    db.write_bytes(bytes(data))
    with HashCache(cache_dir) as cache:
        assert cache.get(paths[5]).sha256 == whole_sha256(paths[5])
    assert (cache_dir / (CACHE_FILENAME + ".corrupt")).is_file()
    with HashCache(cache_dir) as cache:
        assert cache.lookup(paths[5]) is not None


def test_rows_that_do_not_look_right_are_ignored(tmp_path: Path, cache_dir: Path, counting: CountingDigest) -> None:
    path = write_bytes(tmp_path / "m.ckpt", os.urandom(1000))
    with HashCache(cache_dir) as cache:
        cache.get(path)
    with sqlite3.connect(cache_dir / CACHE_FILENAME) as db:
        db.execute("UPDATE hashes SET sha256 = 'NOT-HEX'")
    db.close()
    with HashCache(cache_dir) as cache:
        assert cache.get(path).sha256 == whole_sha256(path)
    assert counting.calls == 2


def test_a_cache_from_a_newer_version_is_left_alone(tmp_path: Path, cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True)
    with sqlite3.connect(cache_dir / CACHE_FILENAME) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    path = write_bytes(tmp_path / "m.ckpt", b"x" * 1000)
    with HashCache(cache_dir) as cache:
        assert cache.get(path).sha256 == whole_sha256(path)
    with sqlite3.connect(cache_dir / CACHE_FILENAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    db.close()


def test_an_unusable_cache_folder_means_memory_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, counting: CountingDigest
) -> None:
    blocker = tmp_path / "user"
    blocker.write_text("a file where the folder should be")
    path = write_bytes(tmp_path / "m.ckpt", b"x" * 1000)
    with caplog.at_level(logging.WARNING), HashCache(blocker / "provenance") as cache:
        assert cache.get(path).sha256 == cache.get(path).sha256 == whole_sha256(path)
    assert "in memory only" in caplog.text and counting.calls == 1


# -- locators -----------------------------------------------------------------------------------------------


def test_roots_locator_follows_comfyuis_default_layout(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    files = {
        "checkpoints/x.safetensors": first,
        "loras/sub/l.safetensors": second,
        "unet/u.safetensors": first,
        "diffusion_models/d.safetensors": second,
        "clip/c.safetensors": first,
        "text_encoders/t.safetensors": second,
        "embeddings/neg.pt": first,
        "embeddings/pos.safetensors": second,
        "upscale_models/4x.pth": first,
        "controlnet/cn.safetensors": first,
        "t2i_adapter/t2i.safetensors": second,
        "clip_vision/v.safetensors": first,
        "vae/v.safetensors": second,
    }
    for rel, root in files.items():
        write_bytes(root / rel, b"x")
    locate = RootsLocator([first, second]).locate
    expected = {
        ("checkpoint", "x.safetensors"): first / "checkpoints/x.safetensors",
        ("lora", "sub/l.safetensors"): second / "loras/sub/l.safetensors",
        ("lora", "sub\\l.safetensors"): second / "loras/sub/l.safetensors",
        ("unet", "u.safetensors"): first / "unet/u.safetensors",
        ("diffusion_model", "d.safetensors"): second / "diffusion_models/d.safetensors",
        ("clip", "c.safetensors"): first / "clip/c.safetensors",
        ("clip", "t.safetensors"): second / "text_encoders/t.safetensors",
        ("embedding", "neg"): first / "embeddings/neg.pt",
        ("embedding", "pos"): second / "embeddings/pos.safetensors",
        ("embedding", "neg.pt"): first / "embeddings/neg.pt",
        ("upscaler", "4x.pth"): first / "upscale_models/4x.pth",
        ("controlnet", "t2i.safetensors"): second / "t2i_adapter/t2i.safetensors",
        ("clip_vision", "v.safetensors"): first / "clip_vision/v.safetensors",
        ("vae", "v.safetensors"): second / "vae/v.safetensors",
    }
    for (role, name), path in expected.items():
        assert locate(role, name) == path, (role, name)
    for role, name in [
        ("checkpoint", "missing.safetensors"),
        ("lora", "x.safetensors"),  # only in checkpoints/
        ("no-such-role", "x.safetensors"),
        ("checkpoint", "../a/checkpoints/x.safetensors"),
        ("checkpoint", str(first / "checkpoints/x.safetensors")),
        ("checkpoint", ""),
        ("embedding", "pos.bin"),
    ]:
        assert locate(role, name) is None, (role, name)


def test_safe_name_refuses_paths_that_leave_the_folder() -> None:
    assert safe_name("a/./b.safetensors") == os.path.join("a", "b.safetensors")
    assert safe_name("sdxl\\b.safetensors") == os.path.join("sdxl", "b.safetensors")
    for bad in ("../x", "a/../../x", "/etc/passwd", "C:\\x.safetensors", "c:x", "", " ", ".", "a\0b"):
        assert safe_name(bad) is None, bad


def test_comfyui_locator_and_cache_folder_come_from_folder_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compat against a stand-in folder_paths with ComfyUI's get_full_path contract (str or None)."""
    embedding = write_bytes(tmp_path / "embeddings" / "neg.safetensors", b"x")
    calls: list[tuple[str, str]] = []

    def get_full_path(folder: str, name: str) -> str | None:
        calls.append((folder, name))
        path = tmp_path / folder / name
        return str(path) if path.is_file() else None

    fake = types.ModuleType("folder_paths")
    fake.get_full_path = get_full_path  # type: ignore[attr-defined]
    fake.get_user_directory = lambda: str(tmp_path / "user")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    locator = compat.model_locator()
    assert locator.locate("embedding", "neg") == embedding
    assert calls == [("embeddings", "neg"), ("embeddings", "neg.safetensors")]
    assert locator.locate("unet", "u.safetensors") is None and calls[-1] == ("diffusion_models", "u.safetensors")
    assert compat.hash_cache_directory() == tmp_path / "user" / "provenance"


# -- the save path's entry point -----------------------------------------------------------------------------


def test_hash_models_fills_a_record(models_dir: Path, cache: HashCache) -> None:
    record = Record(
        models=[
            Model(role="checkpoint", name="sdxl/base.safetensors", node_id="4"),
            Model(role="vae", name="kl.pt", node_id="5"),
            Model(role="lora", name="pixel.safetensors", node_id="6", strength_model=0.8),
            Model(role="embedding", name="easyneg"),
            Model(role="lora", name="deleted.safetensors", node_id="7"),
        ]
    )
    hash_models(record.models, RootsLocator([models_dir]), cache)
    ckpt, vae, lora, emb, gone = record.models
    ckpt_path = models_dir / "checkpoints/sdxl/base.safetensors"
    assert ckpt.hashes == {
        "sha256": whole_sha256(ckpt_path),
        "autov2": whole_sha256(ckpt_path)[:10],
        "autov3": tensor_sha256(ckpt_path),
    }
    assert ckpt.other["metadata"] == {"modelspec.title": "Base"}
    assert set(vae.hashes) == {"sha256", "autov2"} and "metadata" not in vae.other
    assert lora.hashes["autov3"] == tensor_sha256(models_dir / "loras/pixel.safetensors")
    assert lora.other["metadata"]["ss_output_name"] == "pixel-art"
    assert "ss_tag_frequency" not in lora.other["metadata"]
    assert emb.hashes["sha256"] == whole_sha256(models_dir / "embeddings/easyneg.safetensors")
    assert gone.hashes == {} and gone.other == {"hash_error": "file not found"}
    data = json.loads(record.to_json())
    assert not schema_errors(data)
    assert Record.from_json(record.to_json()).to_dict() == data
    assert str(models_dir) not in record.to_json()  # no local paths in a record


def test_hash_models_only_hashes_the_models_it_is_given(models_dir: Path, counting: CountingDigest) -> None:
    cache = HashCache(None)
    hash_models([Model(role="lora", name="pixel.safetensors")], RootsLocator([models_dir]), cache)
    assert counting.calls == 1 and cache.stats.hashed == 1


def test_warm_lookups_take_well_under_a_millisecond(models_dir: Path, cache: HashCache) -> None:
    models = [Model(role="checkpoint", name="sdxl/base.safetensors"), Model(role="lora", name="pixel.safetensors")]
    locator = RootsLocator([models_dir])
    hash_models(models, locator, cache)
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        hash_models([Model(role=m.role, name=m.name) for m in models], locator, cache)
    per_resource = (time.perf_counter() - started) / (rounds * len(models))
    assert per_resource < 1e-3, f"{per_resource * 1e6:.0f} µs per resource"
    assert cache.stats.hashed == 2

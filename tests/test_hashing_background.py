"""Hashing off the save's path: the background pool, the save's time cap, pending hashes filled later."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
from conftest import context_for, pixels
from test_hashing import write_safetensors

from comfyui_provenance.metadata.convert import CONVERTED, SKIPPED, convert_file
from comfyui_provenance.metadata.hashing import (
    Background,
    HashCache,
    RootsLocator,
    hash_models,
    shared_background,
)
from comfyui_provenance.metadata.hashing import background as background_module
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Model
from comfyui_provenance.metadata.save import SaveOptions, save_images
from comfyui_provenance.metadata.workers import Workers


class Gate:
    """Holds every hash of a HashCache until opened: a stand-in for a slow disk, not for the hashing."""

    def __init__(self, cache: HashCache) -> None:
        self.opened = threading.Event()
        self.started = threading.Event()
        real = cache._hash

        def slow(path: str, safetensors: bool) -> object:
            self.started.set()
            self.opened.wait(30)
            return real(path, safetensors)

        cache._hash = slow  # type: ignore[method-assign]


def models_folder(root: Path) -> dict[str, str]:
    """The `lora` corpus workflow's checkpoint and LoRA as real safetensors files; name -> sha256."""
    paths = {
        "dreamshaper_8.safetensors": write_safetensors(root / "checkpoints" / "dreamshaper_8.safetensors", rows=512),
        "blindbox_v1_mix.safetensors": write_safetensors(root / "loras" / "blindbox_v1_mix.safetensors", seed=3),
    }
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()}


def test_a_submitted_file_is_hashed_once_on_a_daemon_thread(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "m.safetensors")
    cache = HashCache(None)
    gate = Gate(cache)
    background = Background(cache, workers=1)
    first, second = background.submit(path), background.submit(path)
    assert first is second  # queued once while it is pending
    assert gate.started.wait(10)
    worker = next(t for t in threading.enumerate() if t.name.startswith("provenance-hash"))
    assert worker.daemon  # a long hash never holds up the host's exit
    gate.opened.set()
    result = first.result(10)
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert cache.stats.hashed == 1
    again = background.submit(path)  # cached now: answered at once, nothing queued
    assert again.done() and again.result() == result and background.pending() == 0


def test_the_save_waits_only_up_to_its_cap_and_marks_the_rest_pending(tmp_path: Path) -> None:
    truth = models_folder(tmp_path / "models")
    cache = HashCache(tmp_path / "cache")
    gate = Gate(cache)
    background = Background(cache, workers=1)
    models = [
        Model(role="checkpoint", name="dreamshaper_8.safetensors"),
        Model(role="lora", name="blindbox_v1_mix.safetensors"),
    ]
    started = time.monotonic()
    hash_models(models, RootsLocator([tmp_path / "models"]), cache, background=background, wait_s=0.3)
    assert time.monotonic() - started < 5
    assert all(m.other.get("hash_pending") for m in models) and not any(m.hashes for m in models)
    gate.opened.set()  # the hashes finish in the background after the save went on
    hash_models(models, RootsLocator([tmp_path / "models"]), cache, background=background, wait_s=10)
    assert {m.name: m.hashes["sha256"] for m in models} == truth
    assert not any(m.other.get("hash_pending") for m in models)


def test_a_pending_hash_is_recorded_and_convert_fills_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = models_folder(tmp_path / "models")
    cache = HashCache(tmp_path / "cache")
    gate = Gate(cache)
    background = Background(cache, workers=1)
    locator = RootsLocator([tmp_path / "models"])

    def hasher(models: list[Model]) -> None:
        hash_models(models, locator, cache, background=background, wait_s=0.2)

    out = tmp_path / "out"
    (saved,) = save_images([pixels()], context_for("lora"), out, "ComfyUI", SaveOptions(), version="t", hasher=hasher)
    gate.opened.set()
    back = read(saved.path)
    assert [m.other.get("hash_pending") for m in back.models if m.role in ("checkpoint", "lora")] == [True, True]
    assert any("still being computed" in w for w in back.provenance.warnings)
    assert convert_file(saved.path).status == SKIPPED  # nothing to fill it with: left as it is

    def filler(models: list[Model]) -> None:
        hash_models(models, locator, HashCache(tmp_path / "cache2"))

    outcome = convert_file(saved.path, hasher=filler)
    assert outcome.status == CONVERTED, outcome
    after = read(saved.path)
    assert {m.name: m.hashes.get("sha256") for m in after.models if m.role in ("checkpoint", "lora")} == truth
    assert after.provenance.capture_mode == "parser"  # the save's own record, refilled, not a re-import
    assert convert_file(saved.path, hasher=filler).status == SKIPPED


def test_shared_background_is_one_per_cache(tmp_path: Path) -> None:
    cache = HashCache(None)
    assert shared_background(cache) is shared_background(cache)
    assert shared_background(HashCache(None)) is not shared_background(cache)


def test_the_wait_cap_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(background_module.ENV_WAIT, "0.5")
    assert background_module.wait_cap() == 0.5
    monkeypatch.setenv(background_module.ENV_WAIT, "nonsense")
    assert background_module.wait_cap() == background_module.DEFAULT_WAIT_S
    monkeypatch.setenv(background_module.ENV_WAIT, "-3")
    assert background_module.wait_cap() == 0.0


def test_a_failing_call_does_not_kill_the_worker(tmp_path: Path) -> None:
    workers = Workers(1, "provenance-test")
    boom = workers.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        boom.result(5)
    assert workers.submit(lambda: 42).result(5) == 42

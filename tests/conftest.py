"""Shared fixtures: the workflow corpus (a copy of real ComfyUI workflows) and a save helper."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images

CORPUS = Path(__file__).parent / "corpus" / "workflows"
# In CI every external reader is installed: a missing one is a failure there, a skip elsewhere.
REQUIRE_READERS = os.environ.get("PROVENANCE_REQUIRE_READERS") == "1"


def corpus_names() -> list[str]:
    return sorted(p.name[: -len(".api.json")] for p in CORPUS.glob("*.api.json"))


def load_workflow(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(API prompt, UI workflow) of a corpus workflow."""
    api = json.loads((CORPUS / f"{name}.api.json").read_text("utf-8"))
    ui = json.loads((CORPUS / f"{name}.ui.json").read_text("utf-8"))
    return api, ui


def expected(name: str) -> dict[str, Any]:
    data = json.loads((CORPUS / "expected.json").read_text("utf-8"))
    return data["workflows"][name]["expected"]  # type: ignore[no-any-return]


def save_node_of(prompt: dict[str, Any]) -> str:
    return next(k for k, v in prompt.items() if v.get("class_type") in ("SaveImage", "SaveAnimatedWEBP"))


def context_for(name: str) -> SaveContext:
    api, ui = load_workflow(name)
    return SaveContext(
        prompt=api,
        extra_pnginfo={"workflow": ui},
        save_node_id=save_node_of(api),
        prompt_id="test-prompt",
        comfyui_version="0.33.0",
    )


def pixels(width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def save(tmp_path: Path) -> Callable[..., SavedFile]:
    """save(context, **SaveOptions fields) -> the one SavedFile, written under tmp_path."""

    def _save(context: SaveContext, image: np.ndarray | None = None, prefix: str = "test", **options: Any) -> SavedFile:
        files = save_images(
            [pixels() if image is None else image], context, tmp_path, prefix, SaveOptions(**options), version="test"
        )
        return files[0]

    return _save


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging (SIGALRM; a no-op where the platform has none)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"did not finish within {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `folder`; skips where this machine cannot mount one."""
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (run as root to test ENOSPC)")
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    mounted = subprocess.run(command, capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)  # still open (a failed test): detach it

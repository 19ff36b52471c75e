"""A loopback ComfyUI for the contract and end-to-end tests: start, post, wait, probe, stop.

The server runs in its own Python (COMFYUI_PYTHON, else the checkout's sibling venv, else ours)
with a throwaway base directory whose custom_nodes/ holds only a symlink to this pack, so the
checkout's own custom nodes, output folder and database are never touched. Models still come
from the checkout (--models-directory, or an extra_model_paths.yaml where ComfyUI predates that flag).
Everything talks to 127.0.0.1 with bounded timeouts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACK_DIR_NAME = "comfyui_provenance"
START_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 180.0


def comfyui_path() -> Path | None:
    value = os.environ.get("COMFYUI_PATH")
    return Path(value).resolve() if value else None


def require_checkout(purpose: str) -> Path:
    """COMFYUI_PATH's checkout, or a pytest skip that says what it would have run."""
    import pytest

    path = comfyui_path()
    if path is None:
        pytest.skip(
            f"COMFYUI_PATH not set: point it at a ComfyUI checkout (COMFYUI_PYTHON at its Python) to run the {purpose}"
        )
    if not (path / "main.py").is_file():
        pytest.skip(f"COMFYUI_PATH={path} is not a ComfyUI checkout (no main.py)")
    return path


def comfyui_python(checkout: Path) -> str:
    """COMFYUI_PYTHON, else `<checkout>/../comfyui-venv/bin/python` when present, else this Python."""
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    sibling = checkout.parent / "comfyui-venv" / "bin" / "python"
    return str(sibling) if sibling.exists() else sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _supports(checkout: Path, flag: str) -> bool:
    cli_args = checkout / "comfy" / "cli_args.py"
    return cli_args.exists() and f'"{flag}"' in cli_args.read_text("utf-8", errors="replace")


def _source(checkout: Path, relative: str) -> str:
    path = checkout / relative
    return path.read_text("utf-8", errors="replace") if path.is_file() else ""


@dataclass(frozen=True)
class Features:
    """What a checkout offers that the tests must adapt to, read from its files (no import, no server)."""

    version: tuple[int, ...]
    v3: bool  # comfy_api/latest: the pack registers its V3 node; else its V1 fallback (before 0.3.48)
    executing_context: bool  # comfy_execution/utils.py's get_executing_context (0.3.45 on)
    queue_validates_v3_combos: bool  # COMBO/multiselect values checked when queued (0.3.48: only when run)
    console_filters_debug: bool  # the console handler keeps --verbose's level, so a DEBUG logger alone is hidden


def features(checkout: Path) -> Features:
    match = re.search(r"__version__\s*=\s*[\"']([\d.]+)", _source(checkout, "comfyui_version.py"))
    version = tuple(int(part) for part in match.group(1).split(".")) if match else ()
    return Features(
        version=version,
        v3=(checkout / "comfy_api" / "latest").is_dir(),
        executing_context="def get_executing_context" in _source(checkout, "comfy_execution/utils.py"),
        queue_validates_v3_combos="Combo.io_type" in _source(checkout, "execution.py"),
        console_filters_debug="stream_handler.setLevel" in _source(checkout, "app/logger.py"),
    )


# The save node's debug line (nodes/save_image.py), shown when ComfyUI logs the pack at DEBUG.
SAVE_LINE = re.compile(r"provenance: saved (\d+) file\(s\) in ([\d.]+) ms \(([\d.]+) ms waiting for model hashes\)")


def save_timings(log: str) -> list[tuple[int, float, float]]:
    """(files, save ms, ms waiting for model hashes) of every save the log shows, in order."""
    return [(int(m[1]), float(m[2]), float(m[3])) for m in SAVE_LINE.finditer(log)]


class Server:
    """One ComfyUI process on a free loopback port, with its own base/output folders."""

    def __init__(self, checkout: Path, base: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.checkout = checkout
        self.base = base
        self.output = base / "output"
        self.user = base / "user"  # ComfyUI's user directory under --base-directory (the hash cache lives here)
        self.log_path = base / "comfyui.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
        self.output.mkdir(exist_ok=True)
        (base / "custom_nodes" / PACK_DIR_NAME).symlink_to(REPO, target_is_directory=True)
        args = [
            comfyui_python(checkout),
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            str(base),
            "--output-directory",
            str(self.output),
            "--disable-auto-launch",
            *extra_args,
        ]
        if (checkout / "models").is_dir():
            if _supports(checkout, "--models-directory"):
                args += ["--models-directory", str(checkout / "models")]
            else:  # before --models-directory, --base-directory would hide the checkout's models
                args += ["--extra-model-paths-config", str(self._model_paths_config(checkout / "models"))]
        if _supports(checkout, "--database-url"):
            args += ["--database-url", "sqlite:///:memory:"]
        if _supports(checkout, "--disable-api-nodes"):
            args.append("--disable-api-nodes")
        self._log = self.log_path.open("wb")
        # The pack's switches (PROVENANCE_HOOKS, ...) come only from `env`: the caller's own are not inherited.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
        self.process = subprocess.Popen(
            args,
            cwd=checkout,
            env={**environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def _model_paths_config(self, models: Path) -> Path:
        """An extra_model_paths.yaml naming each folder of the checkout's models/ (ComfyUI's folder names)."""
        folders = sorted(p.name for p in models.iterdir() if p.is_dir())
        lines = ["checkout_models:", f"    base_path: {json.dumps(str(models))}"]
        lines += [f"    {name}: {json.dumps(name)}" for name in folders]
        config = self.base / "extra_model_paths.yaml"
        config.write_text("\n".join(lines) + "\n", "utf-8")
        return config

    # --- lifecycle -------------------------------------------------------------------------

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                urllib.request.urlopen(f"{self.url}/system_stats", timeout=2).close()
                return
            time.sleep(0.3)
        raise TimeoutError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()
        with contextlib.suppress(FileNotFoundError):
            (self.base / "custom_nodes" / PACK_DIR_NAME).unlink()

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # --- HTTP ------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=HTTP_TIMEOUT_S) as resp:
            return json.load(resp)

    def post_prompt(
        self, prompt: dict[str, Any], extra_data: dict[str, Any] | None = None, client_id: str = "provenance-tests"
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of POST /prompt; a 400 is returned, not raised."""
        body = {"prompt": prompt, "client_id": client_id, "extra_data": extra_data or {}}
        request = urllib.request.Request(
            f"{self.url}/prompt", data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def free(self, unload_models: bool = True) -> None:
        """POST /free: drop the loaded models (a few GB for SD1.5) and the worker's caches before its next prompt."""
        body = json.dumps({"unload_models": unload_models, "free_memory": True}).encode("utf-8")
        request = urllib.request.Request(f"{self.url}/free", data=body, headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S).close()

    def wait_history(self, prompt_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """The /history entry of a finished prompt (success or error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                return entry  # type: ignore[no-any-return]
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} not finished within {timeout:.0f} s:\n{self.log_tail()}")

    def run(
        self, prompt: dict[str, Any], extra_data: dict[str, Any] | None = None, timeout: float = 120.0
    ) -> tuple[str, dict[str, Any]]:
        """Queue a prompt that must validate; (prompt_id, history entry)."""
        status, reply = self.post_prompt(prompt, extra_data)
        if status != 200 or "prompt_id" not in reply:
            raise AssertionError(f"/prompt answered {status}: {json.dumps(reply)[:2000]}")
        return reply["prompt_id"], self.wait_history(reply["prompt_id"], timeout)


def run_probe(checkout: Path, script: str, *args: str, timeout: float = PROBE_TIMEOUT_S) -> Any:
    """Run `script` in ComfyUI's Python (cwd = checkout); its last stdout line is JSON."""
    env = {**os.environ, "PROVENANCE_REPO": str(REPO), "COMFYUI_PATH": str(checkout)}
    done = subprocess.run(
        [comfyui_python(checkout), "-c", script, *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"probe failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])

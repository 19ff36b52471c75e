"""Run one save or one in-place convert, killed outright (SIGKILL) just before its Nth write step.

    python tests/killpoints.py save FOLDER --kill-at N
    python tests/killpoints.py convert FILE --kill-at N

A write step is any call that makes a file visible or final: os.chmod (a temporary is complete),
os.link (an image published), os.replace / os.rename (a file put in place), os.unlink, os.fsync.
`--kill-at 0` runs to the end and prints {"steps": how many there were}; the crash tests then
kill at every step in turn and check that the next run completes or removes what was left.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus" / "workflows"
STEPS = ("chmod", "link", "replace", "rename", "unlink", "fsync")
TARGETS = frozenset({"a1111", "comfyui", "record", "xmp", "sidecar_json", "sidecar_txt", "sidecar_xmp"})


def arm(kill_at: int) -> list[int]:
    """Count write steps; SIGKILL this process just before step `kill_at` (0: never)."""
    count = [0]
    for name in STEPS:
        original = getattr(os, name)

        def step(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return _original(*args, **kwargs)

        setattr(os, name, step)
    return count


def save(folder: Path, workflow: str) -> None:
    from comfyui_provenance.metadata.capture import SaveContext
    from comfyui_provenance.metadata.save import SaveOptions, save_images

    api = json.loads((CORPUS / f"{workflow}.api.json").read_text("utf-8"))
    ui = json.loads((CORPUS / f"{workflow}.ui.json").read_text("utf-8"))
    node = next(k for k, v in api.items() if v.get("class_type") == "SaveImage")
    context = SaveContext(prompt=api, extra_pnginfo={"workflow": ui}, save_node_id=node, prompt_id="kill")
    pixels = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    save_images([pixels], context, folder, "ComfyUI", SaveOptions(format="png", targets=TARGETS), version="test")


def convert(path: Path) -> None:
    from comfyui_provenance.metadata.convert import FAILED, convert_file

    outcome = convert_file(path, targets=TARGETS, version="test")
    if outcome.status == FAILED:
        raise SystemExit(f"convert failed: {outcome.reason}")


def main(argv: list[str]) -> int:
    action, target, flag, number = argv
    assert flag == "--kill-at"
    count = arm(int(number))
    if action == "save":
        save(Path(target), "default")
    else:
        convert(Path(target))
    print(json.dumps({"steps": count[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

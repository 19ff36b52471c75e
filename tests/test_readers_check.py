"""The reader harness (tests/readers_check.py, vendored from shared/tools) agrees with what we write.

Each saved file is checked with `readers_check.py FILE --expect EXPECT.json`, the expectation
built from the file's record. `ignore` holds only documented reader limits and spellings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import context_for, pixels
from readers import INFOTEXT, NATIVE, cli
from test_external_readers import SOURCES

from comfyui_provenance.metadata import infotext
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import Record
from comfyui_provenance.metadata.save import SaveOptions, save_images

pytestmark = pytest.mark.readers

HARNESS = Path(__file__).with_name("readers_check.py")
WORKFLOWS = ("default", "lora", "hiresfix_latent_workflow", "2_pass_pose_worship", "sdxl_refiner_prompt_example")
FORMATS = ("png", "jpeg", "webp")
# Readers that must report every field (unless ignored), per format; readers.md §6.
MUST = {
    "png": ["exiftool", "pillow", "sd-prompt-reader", "sd-parsers", "exifreader", "comfyui-frontend"],
    "jpeg": [
        "exiftool",
        "exiv2",
        "pyexiv2",
        "python-xmp-toolkit",
        "pillow",
        "piexif",
        "sd-prompt-reader",
        "sd-parsers",
        "exifreader",
    ],
    "webp": [
        "exiftool",
        "exiv2",
        "pyexiv2",
        "pillow",
        "piexif",
        "sd-prompt-reader",
        "sd-parsers",
        "exifreader",
        "comfyui-frontend",
    ],
}
IGNORE = {
    "sd-prompt-reader": ["scheduler"],  # exposes no scheduler field
    "comfyui-frontend": ["sampler", "scheduler"],  # reads the graph: ComfyUI names, not A1111 labels
}
TIMEOUT = 120


def infotext_readers(fmt: str) -> set[str]:
    """Readers that take the prompt from the A1111 text on `fmt` (test_external_readers.SOURCES), and
    so see the LoRA tags appended to it; the others read the graph or XMP, the literal prompt."""
    harness_name = {"comfyui": "comfyui-frontend"}
    return {harness_name.get(r, r) for r, where in SOURCES.items() if where.get(fmt) in (INFOTEXT, NATIVE)}


def expectation(record: Record, fmt: str, installed: set[str], *, literal_prompt: bool = False) -> dict[str, Any]:
    """What every reader must report; the prompt as A1111 readers see it (LoRA tags appended), or with
    `literal_prompt` only the prompt, as the graph and XMP readers see it."""
    gen = record.generation
    checkpoint = record.first_model("checkpoint", "unet", "diffusion_model")
    a1111 = infotext_readers(fmt)
    if literal_prompt:
        readers = [r for r in MUST[fmt] if r not in a1111 and r in installed]
        return {"fields": {"prompt": gen.positive}, "readers": readers, "ignore": {r: ["prompt"] for r in a1111}}
    tags = infotext.lora_tags(record)
    fields = {
        "prompt": f"{gen.positive} {', '.join(tags)}" if tags else gen.positive,
        "negative_prompt": gen.negative,
        "seed": gen.seed,
        "steps": gen.steps,
        "cfg": gen.cfg,
        "sampler": infotext.sampler_label(gen.sampler) if gen.sampler else None,
        "scheduler": infotext.scheduler_label(gen.scheduler) if gen.scheduler else None,
        "model": checkpoint.name if checkpoint else None,
        "width": gen.width,
        "height": gen.height,
    }
    require_all = os.environ.get("PROVENANCE_REQUIRE_READERS") == "1"
    readers = [r for r in MUST[fmt] if require_all or r in installed]
    ignore = {reader: list(names) for reader, names in IGNORE.items()}
    classes = {node.get("class_type") for node in (record.prompt or {}).values()}
    if "ControlNetApplyAdvanced" in classes:
        # The harness's emulation walks the graph itself (the real frontend only loads the workflow)
        # and takes the first text behind ControlNetApplyAdvanced, so its negative is the positive.
        ignore["comfyui-frontend"].append("negative_prompt")
    for reader in set(MUST[fmt]) - a1111:  # checked against the literal prompt in a second run
        ignore.setdefault(reader, []).append("prompt")
    return {"fields": {k: v for k, v in fields.items() if v is not None}, "readers": readers, "ignore": ignore}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    modules = cli.exifreader_dir()
    if modules is not None:
        env["READERS_NODE_PATH"] = str(modules)
    return env


@cache
def installed_readers() -> frozenset[str]:
    out = subprocess.run(
        [sys.executable, str(HARNESS), "--versions", "--json"],
        capture_output=True,
        timeout=TIMEOUT,
        env=_env(),
        check=True,
    )
    versions: dict[str, dict[str, Any]] = json.loads(out.stdout)
    return frozenset(name for name, v in versions.items() if v["status"] == "installed")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", WORKFLOWS)
def test_readers_check_passes(tmp_path: Path, name: str, fmt: str) -> None:
    saved = save_images([pixels()], context_for(name), tmp_path, name, SaveOptions(format=fmt), version="test")[0]
    assert saved.record is not None
    for literal in (False, True):
        spec = tmp_path / "expect.json"
        spec.write_text(json.dumps(expectation(saved.record, fmt, set(installed_readers()), literal_prompt=literal)))
        out = subprocess.run(
            [sys.executable, str(HARNESS), str(saved.path), "--expect", str(spec)],
            capture_output=True,
            timeout=TIMEOUT,
            env=_env(),
            check=False,
            stdin=subprocess.DEVNULL,
        )
        report = out.stdout.decode("utf-8", errors="replace") + out.stderr.decode("utf-8", errors="replace")
        assert out.returncode == 0, f"readers_check.py exit {out.returncode}:\n{report}"


# What the second pass of each multi-pass corpus graph must add to the A1111 text.
MULTI_PASS = {
    "hiresfix_latent_workflow": ("Hires upscale: 1.5", "Hires steps: 14", "Denoising strength: 0.5"),
    "2_pass_pose_worship": (
        "Hires upscale: 1.5",
        "Hires checkpoint: japaneseStyleRealistic_v20",
        "Denoising strength: 0.5",
    ),
    "sdxl_refiner_prompt_example": ("Refiner: sd_xl_refiner_1.0", "Refiner switch at: 0.8"),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(MULTI_PASS))
def test_multi_pass_fields_reach_exiftool(tmp_path: Path, name: str, fmt: str) -> None:
    """The A1111 text as exiftool reads it from the file carries the second pass, and read() every pass."""
    if shutil.which("exiftool") is None:
        if os.environ.get("PROVENANCE_REQUIRE_READERS") == "1":
            pytest.fail("exiftool is not installed")
        pytest.skip("exiftool is not installed")
    saved = save_images([pixels()], context_for(name), tmp_path, name, SaveOptions(format=fmt), version="test")[0]
    out = subprocess.run(["exiftool", "-j", "-a", "-G1", str(saved.path)], capture_output=True, check=True, timeout=60)
    tags = json.loads(out.stdout)[0]
    text = tags.get("PNG:Parameters") or tags.get("ExifIFD:UserComment")
    assert isinstance(text, str), sorted(tags)
    for field in MULTI_PASS[name]:
        assert field in text, f"{field!r} missing from {text!r}"
    assert saved.record is not None
    assert [p.node_id for p in read(saved.path).passes] == [p.node_id for p in saved.record.passes]
    assert len(saved.record.passes) == 2


def test_sd_parsers_reads_each_file_not_the_last_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sd-parsers caches the last image's UserComment by id(image); a new image allocated at the freed
    one's address read the previous file's prompt (a flaky CI failure). The harness forgets that cache."""
    usercomment = pytest.importorskip("sd_parsers.extractors._jpeg_usercomment")
    import readers_check

    saved = save_images([pixels()], context_for("lora"), tmp_path, "lora", SaveOptions(format="jpeg"), version="t")[0]
    assert saved.record is not None
    monkeypatch.setattr(usercomment, "id", lambda _image: 7, raising=False)  # every image at one address
    monkeypatch.setattr(usercomment, "_image_id", 7)
    monkeypatch.setattr(usercomment, "_usercomment", "a stale prompt\nSteps: 1, Seed: 1, Size: 8x8")
    got = readers_check.r_sd_parsers(str(saved.path), False)
    assert str(got["fields"]["seed"]) == str(saved.record.generation.seed)
    assert got["fields"]["prompt"] != "a stale prompt"

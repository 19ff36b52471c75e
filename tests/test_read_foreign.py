"""read() on files other tools wrote: ComfyUI core (PNG, real SaveAnimatedWEBP) and A1111/Forge."""

from __future__ import annotations

import json
import math
from pathlib import Path

import piexif
import piexif.helper
import pytest
from conftest import CORPUS, expected, load_workflow, pixels
from PIL import Image, PngImagePlugin

from comfyui_provenance.metadata.read import read

IMAGES = CORPUS.parent / "images"

A1111_TEXT = (
    "masterpiece, a lighthouse, (storm:1.2)\n"
    "Negative prompt: blurry, text\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 512x768, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.45, "
    'Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1'
)


def core_png(path: Path, name: str) -> None:
    """Exactly what ComfyUI's SaveImage writes: tEXt prompt and workflow, compress_level 4."""
    api, ui = load_workflow(name)
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(api))
    info.add_text("workflow", json.dumps(ui))
    Image.fromarray(pixels()).save(path, pnginfo=info, compress_level=4)


@pytest.mark.parametrize("name", ["default", "lora_multiple", "hiresfix_latent_workflow", "image2image"])
def test_core_png_is_parsed_from_its_graph(tmp_path: Path, name: str) -> None:
    path = tmp_path / "ComfyUI_00001_.png"
    core_png(path, name)
    record = read(path)
    want = expected(name)
    gen = record.generation
    assert record.provenance.capture_mode == "imported"
    assert record.provenance.other["imported_from"] == "comfyui"
    assert (gen.positive, gen.negative) == (want["positive"], want["negative"])
    assert (gen.seed, gen.steps, gen.sampler, gen.scheduler) == (
        want["seed"],
        want["steps"],
        want["sampler"],
        want["scheduler"],
    )
    assert math.isclose(gen.cfg or 0, want["cfg"])
    assert {m.name for m in record.loras()} == {lora["name"] for lora in want["loras"]}
    assert record.workflow == load_workflow(name)[1]
    assert (record.image.format, record.image.width, record.image.height) == ("png", 96, 64)


def test_real_comfyui_animated_webp_with_utf8_exif() -> None:
    """SaveAnimatedWEBP's own layout: prompt in IFD0 Model, UTF-8 JSON in 'ASCII' tags."""
    path = IMAGES / "image_to_video_wan-1.webp"
    want = json.loads((IMAGES / "expected.json").read_text("utf-8"))[path.name]["expected_from_prompt"]
    record = read(path)
    gen = record.generation
    assert record.provenance.other["imported_from"] == "comfyui"
    assert gen.positive == want["positive"]
    assert gen.negative == want["negative"]  # Chinese text: decoded as UTF-8, not Latin-1
    assert (gen.seed, gen.steps, gen.cfg, gen.sampler, gen.scheduler) == (
        want["seed"],
        want["steps"],
        want["cfg"],
        want["sampler"],
        want["scheduler"],
    )
    assert record.first_model("unet") is not None and record.first_model("unet").name == want["unet"]
    assert record.workflow is not None and "nodes" in record.workflow
    assert record.image.format == "webp" and record.image.width == 512


def _check_a1111(path: Path) -> None:
    record = read(path)
    gen = record.generation
    assert record.provenance.other["imported_from"] == "a1111"
    assert gen.positive == "masterpiece, a lighthouse, (storm:1.2)"
    assert gen.negative == "blurry, text"
    assert (gen.seed, gen.steps, gen.cfg, gen.denoise) == (1234567890, 28, 6.5, 0.45)
    assert (gen.sampler, gen.scheduler) == ("dpmpp_2m", "karras")
    assert (gen.width, gen.height) == (512, 768)
    checkpoint = record.first_model("checkpoint")
    assert checkpoint is not None
    assert (checkpoint.name, checkpoint.hashes) == ("sd_xl_base_1.0", {"autov2": "31e35c80fc"})
    assert [(m.name, m.hashes) for m in record.loras()] == [("add_detail", {"autov3": "7c6bad76eb54"})]


def test_a1111_png(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_TEXT)
    path = tmp_path / "00001-1234567890.png"
    Image.fromarray(pixels()).save(path, pnginfo=info)
    _check_a1111(path)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_a1111_jpeg_and_webp_as_a1111_writes_them(tmp_path: Path, fmt: str) -> None:
    """A1111's images.py: save, then piexif.insert an EXIF with the UNICODE UserComment."""
    path = tmp_path / f"00001-1234567890.{fmt.lower()}"
    Image.fromarray(pixels()).save(path, format=fmt, quality=90)
    comment = piexif.helper.UserComment.dump(A1111_TEXT, encoding="unicode")
    piexif.insert(piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}}), str(path))
    _check_a1111(path)


def test_legacy_combined_sampler_label(tmp_path: Path) -> None:
    """Pre-1.9 A1111 wrote 'DPM++ 2M Karras' and no Schedule type."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 5, Size: 512x512")
    path = tmp_path / "old.png"
    Image.fromarray(pixels()).save(path, pnginfo=info)
    gen = read(path).generation
    assert (gen.sampler, gen.scheduler, gen.negative) == ("dpmpp_2m", "karras", None)

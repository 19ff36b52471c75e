"""Writes are crash-safe: a save or a convert killed at any write step leaves nothing half-written,
and the next run completes or removes what it left; a full disk fails a save cleanly.

The kills are real (SIGKILL in a child process, tests/killpoints.py), at every step in turn.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import context_for, load_workflow, pixels, small_disk
from PIL import Image, PngImagePlugin

from comfyui_provenance.metadata import files
from comfyui_provenance.metadata.convert import CONVERTED, SKIPPED, convert_file, stamp_of
from comfyui_provenance.metadata.formats import sidecar
from comfyui_provenance.metadata.read import Source, extract, read
from comfyui_provenance.metadata.save import SaveOptions, save_images

DRIVER = Path(__file__).resolve().parent / "killpoints.py"
TARGETS = frozenset({"a1111", "comfyui", "record", "xmp", "sidecar_json", "sidecar_txt", "sidecar_xmp"})


def drive(action: str, target: Path, kill_at: int) -> int | None:
    """Run the driver; the number of write steps when it finished, None when it was killed."""
    done = subprocess.run(
        [sys.executable, str(DRIVER), action, str(target), "--kill-at", str(kill_at)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode == -9:
        return None
    assert done.returncode == 0, done.stderr[-2000:]
    return int(json.loads(done.stdout)["steps"])


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".png" and not p.name.startswith("."))


def assert_whole(image: Path) -> None:
    """The image reads, as a picture and as a record, and every sidecar its record lists is there."""
    with Image.open(image) as picture:
        picture.load()
    stamp = stamp_of(Source(path=image, found=extract(image)))
    assert stamp is not None and stamp.complete, (image.name, stamp)


def core_png(path: Path) -> Path:
    api, ui = load_workflow("default")
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(api))
    info.add_text("workflow", json.dumps(ui))
    Image.fromarray(pixels()).save(path, pnginfo=info, compress_level=4)
    return path


def test_a_save_killed_at_any_step_is_completed_or_removed_by_the_next(tmp_path: Path) -> None:
    (tmp_path / "probe").mkdir()
    steps = drive("save", tmp_path / "probe", 0)
    assert steps is not None and steps >= 5  # sidecar temporaries, image temporary, link, renames, unlink
    for kill_at in range(1, steps + 1):
        folder = tmp_path / f"kill{kill_at}"
        folder.mkdir()
        assert drive("save", folder, kill_at) is None, f"step {kill_at} of {steps} was not reached"
        for image in images(folder):  # a published image is always whole, even before its sidecars
            with Image.open(image) as picture:
                picture.load()
        assert drive("save", folder, 0) is not None  # the next save in that folder (it sweeps first)
        assert not temporaries(folder), (kill_at, temporaries(folder))
        saved = images(folder)
        assert saved, kill_at
        for image in saved:
            assert_whole(image)
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            name for image in saved for name in (image.name, *(image.name + s for s in (".json", ".txt", ".xmp")))
        ), kill_at


def test_a_convert_killed_at_any_step_is_finished_by_the_next(tmp_path: Path) -> None:
    probe = core_png(tmp_path / "probe.png")
    steps = drive("convert", probe, 0)
    assert steps is not None and steps >= 4
    for kill_at in range(1, steps + 1):
        folder = tmp_path / f"kill{kill_at}"
        folder.mkdir()
        source = core_png(folder / "ComfyUI_00001_.png")
        original = source.read_bytes()
        assert drive("convert", source, kill_at) is None, f"step {kill_at} of {steps} was not reached"
        if source.read_bytes() != original:  # replaced: then it is the whole stamped image
            assert read(source).provenance.capture_mode == "imported"
        outcome = convert_file(source, targets=TARGETS, version="test")
        assert outcome.status in (CONVERTED, SKIPPED), (kill_at, outcome)
        assert not temporaries(folder), (kill_at, temporaries(folder))
        assert_whole(source)
        assert convert_file(source, targets=TARGETS).status == SKIPPED  # and now it is done


def test_sweep_leaves_a_live_writers_temporaries_alone(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    live = files.temp_path(target, files.new_token())  # this process: alive
    live.write_bytes(b"half")
    legacy = tmp_path / ".x.png.abcd1234.tmp"
    legacy.write_bytes(b"old")
    assert files.sweep(tmp_path) == []
    assert live.exists() and legacy.exists()
    os.utime(legacy, (0, 0))  # a day-old temporary of an older version: gone
    assert files.sweep(tmp_path) == ["removed .x.png.abcd1234.tmp"]
    assert live.exists()


def test_a_concurrent_claim_moves_to_the_next_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        if Path(dst).name == "ComfyUI_00001_.png" and not Path(dst).exists():
            Path(dst).write_bytes(b"someone else's")  # another process published first
        real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    (saved,) = save_images([pixels()], context_for("default"), tmp_path, "ComfyUI", SaveOptions(), version="t")
    assert saved.path.name == "ComfyUI_00002_.png"
    assert (tmp_path / "ComfyUI_00001_.png").read_bytes() == b"someone else's"
    assert read(saved.path).image.filename == "ComfyUI_00002_.png"
    assert not temporaries(tmp_path)


# -- a full disk --------------------------------------------------------------------------------------


def test_a_save_on_a_full_disk_fails_and_leaves_nothing(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "64k") as disk:
        big = pixels(512, 512)  # about 790 KB as PNG: does not fit
        with pytest.raises(OSError) as caught:
            save_images([big], context_for("default"), disk, "ComfyUI", SaveOptions(targets=TARGETS), version="t")
        assert caught.value.errno in (errno.ENOSPC, errno.EFBIG)
        assert list(disk.iterdir()) == []  # no empty claimed name, no temporaries, no sidecars


@pytest.mark.parametrize("room", [20_000, 40_000, 70_000])
def test_on_a_nearly_full_disk_the_image_is_saved_and_the_record_says_what_was_not(tmp_path: Path, room: int) -> None:
    with small_disk(tmp_path / "disk", "160k") as disk:
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(bytes(max(0, free - room)))
        (saved,) = save_images(
            [pixels(32, 32)], context_for("default"), disk, "b", SaveOptions(targets=TARGETS), version="t"
        )
        assert saved.record is not None
        back = read(saved.path)  # the image is there and carries a record (at worst core's graph, parsed)
        assert back.generation.seed == 685468484323813
        failed = [p.location for p in saved.record.provenance.embedding if p.status == "failed"]
        fell_back = any("embedding metadata failed" in w for w in saved.record.provenance.warnings)
        written = sorted(p.name for p in disk.iterdir() if p.name not in ("filler", saved.path.name))
        if not (failed or fell_back):  # everything fit after all
            assert written == sorted(saved.path.name + s for s in (".json", ".txt", ".xmp"))
        assert not temporaries(disk)


def test_convert_on_a_full_disk_leaves_the_original(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "128k") as disk:
        source = core_png(disk / "ComfyUI_00001_.png")
        original = source.read_bytes()
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(bytes(max(0, free - 8_000)))
        outcome = convert_file(source, targets=TARGETS)
        assert outcome.status == "failed" and "space" in (outcome.reason or "").lower(), outcome
        assert source.read_bytes() == original
        assert not temporaries(disk)
        assert not sidecar.path_for(source, "sidecar:json").exists()  # sidecars come after the image

"""provenance audit: files saved from the corpus claim model hashes; a models folder matches some, not others."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import context_for, pixels
from test_catalogue import core_png

from comfyui_provenance.catalogue import open_catalogue
from comfyui_provenance.catalogue.audit import GONE, MISMATCH, OK, UNVERIFIABLE, audit, claims
from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.hashing import HashCache
from comfyui_provenance.metadata.record import Model
from comfyui_provenance.metadata.save import SaveOptions, save_images


def content(name: str) -> bytes:
    """The bytes of the model file the saved records were made with: its hash is what they claim."""
    return f"model file {name}".encode()


def fake_hasher(models: list[Model]) -> None:
    for model in models:
        sha = hashlib.sha256(content(model.name)).hexdigest()
        model.hashes = {"sha256": sha, "autov2": sha[:10]}


def put(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A catalogue of saved files and a models folder: dreamshaper as it was, one LoRA in a subfolder
    as it was, the other LoRA replaced, the core file's checkpoint present; the rest gone."""
    root = tmp_path_factory.mktemp("audit")
    out = root / "out"
    for name in ("lora", "lora_multiple", "default"):
        save_images([pixels()], context_for(name), out, name, SaveOptions(), version="t", hasher=fake_hasher)
    core_png(out / "core" / "jan.png", "image_sdxl_simple", "2024-01-15T12:00:00")
    db = root / "catalogue.sqlite"
    assert main(["index", str(out), "--db", str(db)]) == 0
    models = root / "models"
    put(models, "checkpoints/dreamshaper_8.safetensors", content("dreamshaper_8.safetensors"))
    put(models, "loras/style/blindbox_v1_mix.safetensors", content("blindbox_v1_mix.safetensors"))
    put(models, "loras/MoXinV1.safetensors", b"a newer version of MoXinV1")
    put(models, "checkpoints/sd_xl_base_1.0.safetensors", b"an unhashed checkpoint")
    return {"db": db, "models": models, "cache": root / "cache"}


def claimed(setup: dict[str, Path]) -> dict[tuple[str, str], int]:
    catalogue = open_catalogue(setup["db"])
    try:
        return {(c.role, c.name): len(files) for c, files in claims(catalogue).items()}
    finally:
        catalogue.close()


def run_json(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    status = main(["audit", "--db", str(setup["db"]), "--models-dir", str(setup["models"]),
                   "--hash-cache", str(setup["cache"]), "--json"])  # fmt: skip
    return status, json.loads(capsys.readouterr().out)


def test_claims_count_the_files_naming_each_model(setup: dict[str, Path]) -> None:
    counts = claimed(setup)
    assert counts[("checkpoint", "dreamshaper_8.safetensors")] == 2
    assert counts[("lora", "blindbox_v1_mix.safetensors")] == 2


def test_statuses(setup: dict[str, Path]) -> None:
    catalogue = open_catalogue(setup["db"])
    try:
        findings = audit(catalogue, [setup["models"]], HashCache(None))
    finally:
        catalogue.close()
    by_status: dict[str, set[tuple[str, str]]] = {}
    for f in findings:
        by_status.setdefault(f.status, set()).add((f.claim.role, f.claim.name))
    assert by_status[OK] == {("checkpoint", "dreamshaper_8.safetensors"), ("lora", "blindbox_v1_mix.safetensors")}
    assert by_status[MISMATCH] == {("lora", "MoXinV1.safetensors")}
    assert ("checkpoint", "sd_xl_base_1.0.safetensors") in by_status[UNVERIFIABLE]
    assert by_status[GONE] == {("checkpoint", "v1-5-pruned-emaonly-fp16.safetensors")}
    assert findings[0].status == MISMATCH  # the worst first


def test_json_shape_and_exit_status(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    status, report = run_json(setup, capsys)
    assert status == 1
    assert set(report) == {"counts", "findings"}
    assert report["counts"][OK] == 2 and report["counts"][MISMATCH] == 1
    (mismatch,) = [f for f in report["findings"] if f["status"] == MISMATCH]
    assert mismatch["claimed"]["sha256"] == hashlib.sha256(content("MoXinV1.safetensors")).hexdigest()
    assert mismatch["local"]["sha256"] == hashlib.sha256(b"a newer version of MoXinV1").hexdigest()
    assert mismatch["path"].endswith("loras/MoXinV1.safetensors")
    assert mismatch["count"] == len(mismatch["files"]) >= 1
    assert all(Path(p).suffix == ".png" for p in mismatch["files"])
    keys = {"status", "role", "name", "claimed", "local", "path", "count", "files", "reason"}
    assert all(set(f) == keys for f in report["findings"])


def test_exit_zero_when_every_model_is_there(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, report = run_json(setup, capsys)
    models = setup["models"].parent / "complete"
    for finding in report["findings"]:
        folder = "loras" if finding["role"] == "lora" else "checkpoints"
        if finding["role"] in ("lora", "checkpoint"):
            put(models, f"{folder}/{finding['name']}", content(finding["name"]))
    complete = {**setup, "models": models}
    status, report = run_json(complete, capsys)
    statuses = {f["status"] for f in report["findings"]}
    assert statuses <= {OK, UNVERIFIABLE} and OK in statuses
    assert status == 0


def test_table_lists_problems(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["audit", "--db", str(setup["db"]), "--models-dir", str(setup["models"])])
    out, err = capsys.readouterr()
    assert status == 1
    assert "mismatch" in out and "MoXinV1.safetensors" in out and "claimed by" in out
    assert "dreamshaper_8" not in out  # ok models only with --all
    assert "1 mismatch" in err


@pytest.mark.parametrize("db", ["missing.sqlite", "mysql://host/db"])
def test_catalogue_that_cannot_be_opened(
    db: str, tmp_path: Path, setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    location = db if "://" in db else str(tmp_path / db)
    status = main(["audit", "--db", location, "--models-dir", str(setup["models"])])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("provenance: ")


def test_models_dir_is_required(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--db", str(setup["db"])]) == 2
    assert "--models-dir" in capsys.readouterr().err

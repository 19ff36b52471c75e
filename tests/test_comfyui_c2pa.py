"""Against a real ComfyUI (COMFYUI_PATH): signed saves from the SD1.5 graph verify.

The server reads its signing credentials the way a user sets them: c2pa_cert / c2pa_key in
`<user>/provenance/settings.json` (what `provenance c2pa init` writes). One save overrides them for
itself through the node's `options`; an img2img save lists the LoadImage file as an ingredient,
resolved by ComfyUI's own folder_paths, with its hash. Skipped without COMFYUI_PATH, and without
c2pa-python in ComfyUI's Python.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comfyui_harness as harness
import pytest
from PIL import Image as PILImage
from test_comfyui import (
    CHECKPOINT,
    FORMATS,
    files_of,
    outputs_of,
    require_sd,
    save_node,
    sd_graph,
    ui_workflow,
)

from comfyui_provenance.metadata.credentials import manifest, testca
from comfyui_provenance.metadata.credentials.verify import VALID, verify_file
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import COMPOSITE, TRAINED

pytestmark = pytest.mark.comfyui
c2pa = pytest.importorskip("c2pa", reason="c2pa-python is not installed here (pip install -e '.[test]')")

SD_TIMEOUT_S = 300.0
SIGNED = ["a1111", "comfyui", "record", "xmp", "c2pa"]


@pytest.fixture(scope="module")
def checkout() -> Path:
    path: Path = harness.require_checkout("signed saves on a real ComfyUI")
    python = harness.comfyui_python(path)
    if subprocess.run([python, "-c", "import c2pa"], capture_output=True, check=False).returncode != 0:
        pytest.skip(f"c2pa-python is not installed in ComfyUI's Python ({python}): pip install c2pa-python")
    return path


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, testca.TestCredentials]:
    folder = tmp_path_factory.mktemp("c2pa_creds")
    return {"studio": testca.create(folder / "studio"), "other": testca.create(folder / "other", signer_name="Other")}


@pytest.fixture(scope="module")
def server(
    checkout: Path, tmp_path_factory: pytest.TempPathFactory, creds: dict[str, testca.TestCredentials]
) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("comfyui_c2pa")
    settings_file = base / "user" / "provenance" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    studio = creds["studio"]
    settings_file.write_text(json.dumps({"c2pa_cert": str(studio.chain), "c2pa_key": str(studio.key)}))
    (base / "input").mkdir()
    PILImage.new("RGB", (64, 64), (180, 40, 40)).save(base / "input" / "photo.png")
    started = harness.Server(checkout, base, env={"PROVENANCE_LOG_LEVEL": "DEBUG"})
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def test_sd15_signed_saves_verify(
    server: Any, checkout: Path, creds: dict[str, testca.TestCredentials], feats: harness.Features
) -> None:
    require_sd(checkout)
    studio, other = creds["studio"], creds["other"]
    saves = {str(20 + i): save_node(["8", 0], f"signed_{fmt}", fmt, SIGNED, feats) for i, fmt in enumerate(FORMATS)}
    saves["30"] = save_node(["8", 0], "signed_other", "png", SIGNED, feats)
    saves["30"]["inputs"]["options"] = json.dumps({"c2pa_cert": str(other.chain), "c2pa_key": str(other.key)})
    prompt = sd_graph(424242, saves)
    try:
        _, entry = server.run(prompt, {"extra_pnginfo": {"workflow": ui_workflow(prompt)}}, timeout=SD_TIMEOUT_S)
        for node_id in saves:
            (path,) = files_of(server, outputs_of(entry, node_id))
            record = read(path)
            (placement,) = [p for p in record.provenance.embedding if p.target == "c2pa"]
            assert placement.status == "written", (path.name, placement)
            verdict = verify_file(path, (other if node_id == "30" else studio).ca)
            assert (verdict.status, verdict.record, verdict.trusted) == (VALID, "agrees", True), verdict.line()
            assert verdict.signer == ("Other" if node_id == "30" else testca.SIGNER_NAME) + " (UNTRUSTED TEST)"
            with c2pa.Reader(str(path)) as reader:
                active = reader.get_active_manifest()
            (action,) = manifest.find(active, "c2pa.actions.v2")["actions"]
            assert action["digitalSourceType"] == TRAINED
            assert action["softwareAgent"] == {"name": "ComfyUI", "version": record.provenance.comfyui_version}
            models = manifest.find(active, manifest.MODELS_LABEL)["models"]
            checkpoint = next(m for m in models if m["role"] == "checkpoint")
            assert checkpoint["name"] == CHECKPOINT and checkpoint["hashes"]["sha256"]
            assert json.loads(manifest.find(active, manifest.RECORD_LABEL)["record"]) == record.to_dict()
    finally:
        server.free()


def test_img2img_lists_its_input_image_as_an_ingredient(
    server: Any, checkout: Path, creds: dict[str, testca.TestCredentials], feats: harness.Features
) -> None:
    require_sd(checkout)
    prompt = sd_graph(7, {"20": save_node(["8", 0], "signed_img2img", "png", SIGNED, feats)})
    prompt["40"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png"}}
    prompt["41"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["40", 0], "vae": ["4", 2]}}
    prompt["3"]["inputs"].update(latent_image=["41", 0], denoise=0.6)
    try:
        _, entry = server.run(prompt, timeout=SD_TIMEOUT_S)
    finally:
        server.free()
    (path,) = files_of(server, outputs_of(entry, "20"))
    record = read(path)
    assert record.generation.input_images == ["photo.png"]
    assert verify_file(path, creds["studio"].ca).status == VALID
    with c2pa.Reader(str(path)) as reader:
        active = reader.get_active_manifest()
    (action,) = manifest.find(active, "c2pa.actions.v2")["actions"]
    assert action["digitalSourceType"] == COMPOSITE
    (ingredient,) = active["ingredients"]
    photo = server.base / "input" / "photo.png"
    assert (ingredient["title"], ingredient["relationship"]) == ("photo.png", "inputTo")
    assert ingredient["metadata"][manifest.SHA256_KEY] == hashlib.sha256(photo.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def feats(checkout: Path) -> harness.Features:
    return harness.features(checkout)

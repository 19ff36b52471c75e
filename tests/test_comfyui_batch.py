"""Against a real ComfyUI (COMFYUI_PATH): a 2x2 batch with its manifest, and the `manifest` save target's log.

Both use the random SD1.5 checkpoint and LoRA of the checkout's models/ at 64x64 and 2 steps
(tests/fake_nodes.py's sd_graph, the same graph as tests/test_comfyui.py's). Without COMFYUI_PATH
every test here is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comfyui_harness as harness
import pytest
from fake_nodes import CHECKPOINT, LORA, sd_graph

from comfyui_provenance.cli.main import main
from comfyui_provenance.metadata.manifest_log import NAME, read_log, record_digest
from comfyui_provenance.metadata.read import read
from comfyui_provenance.reproduce import manifest, ui_workflow

pytestmark = pytest.mark.comfyui

SD_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    checkout = harness.require_checkout("real-ComfyUI batch and manifest tests")
    missing = [p for p in (f"checkpoints/{CHECKPOINT}", f"loras/{LORA}") if not (checkout / "models" / p).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing from {checkout}/models: the SD1.5 batch tests need them")
    started = harness.Server(checkout, tmp_path_factory.mktemp("comfyui_batch"))
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def test_a_2x2_batch_gives_4_images_whose_records_match_the_manifest(server: harness.Server, tmp_path: Path) -> None:
    (tmp_path / "workflow.api.json").write_text(json.dumps(sd_graph(0, prefix="batch/img")), "utf-8")
    template = tmp_path / "template.yaml"
    template.write_text(
        "workflow: workflow.api.json\n"
        'prompt: "a {Subject} at dusk, oil painting"\n'
        'negative: "blurry"\n'
        "variations:\n  Subject: [lighthouse, windmill]\n"
        "seed_mode: progressive\nbase_seed: 1234\nnum_images: 2\n",
        "utf-8",
    )
    out = tmp_path / "out"
    args = ["batch", str(template), "--server", server.url, "--out", str(out), "--timeout", str(SD_TIMEOUT_S)]
    assert main(args) == 0, server.log_tail()
    data = manifest.read(out / manifest.FILE_NAME)
    images = data["images"]
    assert [(i["applied_variations"]["Subject"], i["seed"]) for i in images] == [
        ("lighthouse", 1234),
        ("lighthouse", 1235),
        ("windmill", 1234),
        ("windmill", 1235),
    ]
    for image in images:
        assert image["subfolder"] == "batch"
        record = read(out / "batch" / image["filename"])
        assert (image["seed"], image["prompt"], image["negative"]) == (
            record.generation.seed,
            record.generation.positive,
            record.generation.negative,
        )
        assert image["prompt"] == f"a {image['applied_variations']['Subject']} at dusk, oil painting"
        assert image["record_digest"] == record_digest(record) and image["api_prompt"] == record.prompt
    info = data["snapshot"]["runtime_info"]
    assert info["comfyui_version"] and info["pack_version"]
    assert {m["name"] for m in info["models"]} == {CHECKPOINT, LORA}
    assert all(len(m["hashes"].get("sha256", "")) == 64 for m in info["models"])
    # Each entry reproduces from the manifest: re-run (caches freed), same pixels as the file beside it.
    for index in range(len(images)):
        entry = f"{out / manifest.FILE_NAME}#{index}"
        assert main(["reproduce", entry, "--server", server.url, "--timeout", str(SD_TIMEOUT_S)]) == 0, entry


def test_the_manifest_target_logs_each_save_and_build_compacts_the_log(server: harness.Server) -> None:
    targets = ["a1111", "comfyui", "record", "manifest"]
    v3 = harness.features(server.checkout).v3
    saved = []
    for seed in (7, 8):
        graph = sd_graph(seed, prefix="logged/img")
        graph["9"]["inputs"]["targets"] = {"__value__": targets} if v3 else ",".join(targets)
        _, entry = server.run(graph, timeout=SD_TIMEOUT_S)
        saved += [item["filename"] for item in entry["outputs"]["9"]["images"]]
    folder = server.output / "logged"
    lines = read_log(folder / NAME).entries
    assert [line["filename"] for line in lines] == saved
    assert main(["manifest", "build", str(folder)]) == 0
    images: list[dict[str, Any]] = manifest.read(folder / manifest.FILE_NAME)["images"]
    assert [i["seed"] for i in images] == [7, 8]
    for image, line in zip(images, lines, strict=True):
        record = read(folder / image["filename"])
        assert image["record_digest"] == line["record_digest"] == record_digest(record)
        assert (image["seed"], image["prompt"]) == (record.generation.seed, record.generation.positive)
        assert image["subfolder"] == "logged" and image["api_prompt"] == record.prompt


def test_a_ui_workflow_converts_with_the_real_object_info_as_the_frontend_would(server: harness.Server) -> None:
    examples = Path(__file__).resolve().parent.parent / "metadata" / "examples"
    for name in ("default", "lora", "hiresfix_latent_workflow"):
        ui = json.loads((examples / f"{name}.ui.json").read_text("utf-8"))
        api = json.loads((examples / f"{name}.api.json").read_text("utf-8"))
        converted = ui_workflow.to_api(ui, server.get("/object_info"))
        assert {k: (v["class_type"], v["inputs"]) for k, v in converted.items()} == {
            k: (v["class_type"], v["inputs"]) for k, v in api.items()
        }, name

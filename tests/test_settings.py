"""Settings: defaults ← file ← environment, validation, and per-run overrides isolated by contextvars."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import load_workflow, pixels
from PIL import Image

from comfyui_provenance import compat, hooks
from comfyui_provenance.metadata import settings
from comfyui_provenance.metadata.formats.base import TARGETS
from comfyui_provenance.metadata.hashing import wait_cap
from comfyui_provenance.metadata.runtime import inline_budget
from comfyui_provenance.metadata.settings import Settings, SettingsError
from comfyui_provenance.metadata.settings_keys import ENV_NAMES
from comfyui_provenance.nodes import save_image, save_media, v1

BASE = Settings()


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PROVENANCE_* variable and no settings file, whatever the shell running the tests has."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(settings._Process, "file", None)


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# -- the layers --------------------------------------------------------------------------------------------------------
def test_defaults() -> None:
    got = settings.current()
    assert got == BASE and settings.load(environ={}) == BASE
    assert got.targets == ("a1111", "comfyui", "record", "xmp")
    assert (got.lora_tags, got.prefer_runtime, got.hash_prefetch, got.hooks) == (True, True, True, False)
    assert (got.hash_wait_s, got.hash_workers, got.runtime_inline_kb) == (5.0, 1, 32.0)
    assert got.rules_dir is None and got.log_level == "" and got.hooks_fault == ()
    assert wait_cap() == 5.0 and inline_budget() == 32 * 1024


def test_the_file_layer(tmp_path: Path) -> None:
    file = write(
        tmp_path / "settings.json",
        {
            "targets": ["xmp", "a1111"],
            "lora_tags": False,
            "hash_wait_s": 1,
            "rules_dir": "~/rules",
            "log_level": "info",
        },
    )
    got = settings.load(file, environ={})
    assert got.targets == ("a1111", "xmp")  # in TARGETS order, whatever order the file lists them in
    assert got.lora_tags is False and got.hash_wait_s == 1.0 and got.log_level == "INFO"
    assert got.rules_dir == Path("~/rules").expanduser()
    assert settings.load(tmp_path / "missing.json", environ={}) == BASE
    assert settings.load(write(tmp_path / "empty.json", ""), environ={}) == BASE


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    file = write(tmp_path / "settings.json", {"hash_wait_s": 2, "hash_prefetch": False, "hooks": True})
    env = {"PROVENANCE_HASH_WAIT_S": "0.5", "PROVENANCE_HASH_PREFETCH": "1", "PROVENANCE_HOOKS": "off"}
    got = settings.load(file, env)
    assert (got.hash_wait_s, got.hash_prefetch, got.hooks) == (0.5, True, False)
    empty = settings.load(file, {"PROVENANCE_HASH_WAIT_S": " ", "PROVENANCE_HOOKS": ""})  # empty sets nothing
    assert (empty.hash_wait_s, empty.hooks) == (2.0, True)


def test_current_reads_the_process_file_and_sees_it_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "user" / "provenance" / "settings.json"
    settings.set_file(file)
    assert settings.settings_file() == file and settings.current() == BASE  # named, not there yet
    write(file, {"hash_wait_s": 3})
    assert settings.current().hash_wait_s == 3.0 and wait_cap() == 3.0
    write(file, {"hash_wait_s": 4, "runtime_inline_kb": 1})
    assert settings.current().hash_wait_s == 4.0 and inline_budget() == 1024
    monkeypatch.setenv("PROVENANCE_HASH_WAIT_S", "7")
    assert settings.current().hash_wait_s == 7.0


def test_every_existing_variable_keeps_its_meaning() -> None:
    env = {
        "PROVENANCE_HASH_WAIT_S": "-3",  # clamped: no wait
        "PROVENANCE_HASH_WORKERS": "2.7",
        "PROVENANCE_RUNTIME_INLINE_KB": "0.5",
        "PROVENANCE_RULES_DIR": "~/my-rules",
        "PROVENANCE_HASH_PREFETCH": "no",
        "PROVENANCE_LOG_LEVEL": " debug ",
        "PROVENANCE_HOOKS": " Yes ",
        "PROVENANCE_HOOKS_DEBUG": "1",
        "PROVENANCE_HOOKS_FAULT": "execute.before, ,execute.after",
        "PROVENANCE_CATALOGUE_URL": " sqlite:///tmp/c.sqlite ",
        "PROVENANCE_C2PA_CERT": "~/c2pa/chain.pem",
        "PROVENANCE_C2PA_KEY": "/keys/signer.pem",
        "PROVENANCE_C2PA_TRUST": "anchors.pem",
        "PROVENANCE_C2PA_TSA_URL": " http://timestamp.example ",
        "PROVENANCE_OPENAI": "on",
        "PROVENANCE_OPENAI_KEYS": "sk-one, sk-two",
        "PROVENANCE_OPENAI_TIMEOUT_S": "900",
        "PROVENANCE_OPENAI_KEEPALIVE_S": "0",
        "PROVENANCE_OPENAI_QUEUE_LIMIT": "4",
        "PROVENANCE_OPENAI_RATE_PER_MIN": "30",
        "PROVENANCE_OPENAI_TEMPLATES_DIR": "/srv/templates",
    }
    got = settings.load(environ=env)
    assert (got.c2pa_cert, got.c2pa_key) == (Path("~/c2pa/chain.pem").expanduser(), Path("/keys/signer.pem"))
    assert (got.c2pa_trust, got.c2pa_tsa_url) == (Path("anchors.pem"), "http://timestamp.example")
    assert (got.openai, got.openai_keys, got.openai_timeout_s, got.openai_keepalive_s) == (
        True,
        ("sk-one", "sk-two"),
        900,
        0,
    )
    assert (got.openai_queue_limit, got.openai_rate_per_min) == (4, 30)
    assert got.openai_templates_dir == Path("/srv/templates")
    assert (got.hash_wait_s, got.hash_workers, got.runtime_inline_kb) == (0.0, 2, 0.5)
    assert got.rules_dir == Path("~/my-rules").expanduser() and got.hash_prefetch is False
    assert (got.log_level, got.hooks, got.hooks_debug) == ("DEBUG", True, True)
    assert got.hooks_fault == ("execute.before", "execute.after")
    assert got.catalogue_url == "sqlite:///tmp/c.sqlite" and got.catalogue is True
    assert set(ENV_NAMES) == set(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROVENANCE_HASH_WAIT_S", "soon"),
        ("PROVENANCE_RUNTIME_INLINE_KB", "-1"),
        ("PROVENANCE_HOOKS", "2"),
        ("PROVENANCE_HASH_PREFETCH", "maybe"),
        ("PROVENANCE_LOG_LEVEL", "loud"),
    ],
)
def test_an_unusable_variable_is_a_warning_and_the_layer_below_applies(
    name: str, value: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = write(tmp_path / "s.json", {"hash_wait_s": 2, "runtime_inline_kb": 8, "hooks": True, "log_level": "ERROR"})
    with caplog.at_level(logging.WARNING):
        got = settings.load(file, {name: value})
    assert got == settings.load(file, {})
    assert f"{name}={value!r} ignored" in caplog.text


# -- validation --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hash_wait_s": -1}, "hash_wait_s must be a number >= 0, got -1"),
        ({"hash_wait_s": "5"}, "hash_wait_s must be a number >= 0, got '5'"),
        ({"lora_tags": "yes"}, "lora_tags must be true or false, got 'yes'"),
        ({"hash_workers": 0}, "hash_workers must be a whole number >= 1, got 0"),
        ({"targets": ["a1111", "bogus"]}, "targets: unknown target bogus; allowed: " + ", ".join(TARGETS)),
        ({"targets": 3}, "targets must be a list of targets from " + ", ".join(TARGETS)),
        ({"log_level": "loud"}, "log_level must be one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_a_bad_value_names_the_key_and_what_it_allows(
    data: dict[str, Any], message: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = write(tmp_path / "s.json", {**data, "prefer_runtime": False})
    with pytest.raises(SettingsError) as strict:
        settings.read_file(file, strict=True)
    assert message in str(strict.value) and str(file) in str(strict.value) and "\n" not in str(strict.value)
    with caplog.at_level(logging.WARNING):
        got = settings.load(file, {})  # lenient: the bad key falls back, the rest of the file applies
    assert message in caplog.text and got == Settings(prefer_runtime=False)
    if set(data) <= set(settings.PER_RUN):  # an override is checked the same way
        with pytest.raises(SettingsError) as refused, settings.override(**data):
            pass
        assert message in str(refused.value)


def test_unknown_keys_in_the_file_are_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = write(tmp_path / "s.json", {"hash_wait_s": 1, "colour": "blue", "hooks_fault": "x.before"})
    with caplog.at_level(logging.WARNING):
        got = settings.load(file, {})
    assert got == Settings(hash_wait_s=1.0)  # a test switch (hooks_fault) comes from the environment only
    assert "unknown setting 'colour' ignored; allowed: targets" in caplog.text
    assert "unknown setting 'hooks_fault'" in caplog.text


@pytest.mark.parametrize("text", ['{"hash_wait_s": 1', "[1, 2]", '"text"', "\udcff"])
def test_a_damaged_file_is_a_warning_and_the_defaults_apply(
    text: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "settings.json"
    file.write_bytes(text.encode("utf-8", "surrogateescape"))
    settings.set_file(file)
    with caplog.at_level(logging.WARNING):
        assert settings.current() == BASE
    assert f"settings file {file}" in caplog.text and "using the defaults" in caplog.text
    with pytest.raises(SettingsError, match=str(file)):
        settings.read_file(file, strict=True)


def test_overrides_take_only_per_run_keys() -> None:
    with pytest.raises(SettingsError) as unknown, settings.override(colour="blue"):
        pass
    assert str(unknown.value) == f"unknown setting 'colour'; allowed: {', '.join(settings.PER_RUN)}"
    assert settings.PER_RUN == (
        "targets",
        "lora_tags",
        "prefer_runtime",
        "hash_wait_s",
        "runtime_inline_kb",
        "rules_dir",
        "catalogue",
        "c2pa_cert",  # a workflow may sign with its own certificate (the node's options, convert --c2pa-cert)
        "c2pa_key",
        "c2pa_trust",
        "c2pa_tsa_url",
    )
    for start_only in ("hooks", "hash_prefetch", "hash_workers", "log_level", "catalogue_url"):
        refused = pytest.raises(SettingsError, match=f"{start_only} is read once at process start")
        with refused, settings.override(**{start_only: True}):
            pass
    assert settings.current() == BASE and settings.overridden() == frozenset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"targets": ["a1111"', "options is not JSON (Expecting"),
        ("[1]", "options must be a JSON object such as"),
        ('{"colour": 1}', "options: unknown setting 'colour'; allowed: targets, lora_tags"),
        ('{"hooks": true}', "options: hooks is read once at process start"),
        ('{"hash_wait_s": -2}', "options: hash_wait_s must be a number >= 0, got -2"),
        (" " * (settings.OPTIONS_MAX_CHARS + 1), "options is longer than"),
        ("[" * 30_000 + "]" * 30_000, "options is not JSON (maximum recursion depth"),
    ],
)
def test_the_options_text_is_checked(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        settings.parse_overrides(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_empty_options_change_nothing() -> None:
    for empty in (None, "", "  \n", "{}", {}):
        assert settings.parse_overrides(empty) == {}
    assert settings.parse_overrides('{"targets": "record,a1111", "hash_wait_s": 0}') == {
        "targets": ("a1111", "record"),
        "hash_wait_s": 0.0,
    }


# -- override isolation ------------------------------------------------------------------------------------------------
def test_an_override_changes_what_code_inside_sees_and_nothing_after() -> None:
    with settings.override(targets=["a1111"], hash_wait_s=1) as inside:
        assert inside == settings.current() == Settings(targets=("a1111",), hash_wait_s=1.0)
        assert wait_cap() == 1.0 and settings.overridden() == {"targets", "hash_wait_s"}
    assert settings.current() == BASE and wait_cap() == 5.0 and settings.overridden() == frozenset()


def test_an_exception_inside_restores() -> None:
    with pytest.raises(RuntimeError, match="boom"), settings.override(runtime_inline_kb=1):
        assert inline_budget() == 1024
        raise RuntimeError("boom")
    assert settings.current() == BASE and inline_budget() == 32 * 1024


def test_overrides_nest() -> None:
    with settings.override(targets=["a1111"], hash_wait_s=1):
        with settings.override(hash_wait_s=2, lora_tags=False):
            assert settings.current() == Settings(targets=("a1111",), hash_wait_s=2.0, lora_tags=False)
            with pytest.raises(SettingsError), settings.override(hash_wait_s=-1):
                pass  # a refused override changes nothing
            assert settings.current().hash_wait_s == 2.0
        assert settings.current() == Settings(targets=("a1111",), hash_wait_s=1.0)
    assert settings.current() == BASE


def test_the_environment_stays_below_an_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANCE_HASH_WAIT_S", "9")
    with settings.override(hash_wait_s=1):
        assert wait_cap() == 1.0
    assert wait_cap() == 9.0


def test_threads_see_only_their_own_override() -> None:
    """Two threads in their own overrides at the same moment, a third with none: each sees its own."""
    together = threading.Barrier(3, timeout=10)
    seen: dict[str, Settings] = {}

    def run(name: str, values: dict[str, Any]) -> None:
        with settings.override(**values):
            together.wait()  # all three are inside now
            seen[name] = settings.current()
            together.wait()  # nobody leaves before everyone has looked

    workers = [
        threading.Thread(target=run, args=("a", {"targets": ["a1111"], "hash_wait_s": 1})),
        threading.Thread(target=run, args=("b", {"targets": ["record"], "lora_tags": False})),
        threading.Thread(target=run, args=("c", {})),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    assert seen["a"] == Settings(targets=("a1111",), hash_wait_s=1.0)
    assert seen["b"] == Settings(targets=("record",), lora_tags=False)
    assert seen["c"] == BASE and settings.current() == BASE


def test_a_thread_started_with_the_context_inherits_the_override() -> None:
    seen: list[float] = []
    with settings.override(hash_wait_s=3):
        worker = threading.Thread(target=contextvars.copy_context().run, args=(lambda: seen.append(wait_cap()),))
        worker.start()
        worker.join(timeout=10)
    assert seen == [3.0] and wait_cap() == 5.0


def test_fifty_asyncio_tasks_interleave_with_their_own_overrides() -> None:
    async def one(i: int) -> tuple[float, float]:
        targets = [TARGETS[i % 4]]
        with settings.override(hash_wait_s=i, targets=targets):
            for step in range(5):
                await asyncio.sleep(0.001 * ((i + step) % 3))  # every task yields mid-override, in a mixed order
                assert settings.current().hash_wait_s == i and settings.current().targets == tuple(targets)

            async def child() -> float:
                await asyncio.sleep(0)
                return wait_cap()

            spawned = asyncio.create_task(child())  # a task copies the context it was created in
            if i % 5 == 0:
                try:
                    with settings.override(hash_wait_s=1000 + i):
                        await asyncio.sleep(0)
                        raise KeyError(i)
                except KeyError:
                    pass
            return wait_cap(), await spawned

    async def main() -> list[tuple[float, float]]:
        results = await asyncio.gather(*(one(i) for i in range(50)))
        assert settings.current() == BASE
        return list(results)

    assert asyncio.run(main()) == [(float(i), float(i)) for i in range(50)]
    assert settings.current() == BASE


# -- the nodes ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[Path]]:
    """save_image.run with ComfyUI's side faked (tests/test_runtime_merge.py's way); returns the files written."""
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(compat, "user_directory", lambda: tmp_path / "user")
    monkeypatch.setattr(compat, "metadata_disabled", lambda: False)
    monkeypatch.setattr(compat, "current_prompt_id", lambda: None)
    monkeypatch.setattr(compat, "comfyui_version", lambda: "0.33.0")
    monkeypatch.setattr(compat, "output_directory", lambda: out)
    monkeypatch.setattr(compat, "save_namer", lambda: None)
    monkeypatch.setattr(save_image, "comfyui_hasher", lambda models: None)
    api, ui = load_workflow("default")

    def run(**inputs: Any) -> list[Path]:
        before = set(out.iterdir())
        save_image.run(
            **{
                "images": [pixels()],
                "filename_prefix": "node",
                "format": "png",
                "quality": 95,
                "lossless": False,
                "targets": None,
                "prompt": api,
                "extra_pnginfo": {"workflow": ui},
                "unique_id": "9",
                **inputs,
            }
        )
        return sorted(set(out.iterdir()) - before)

    return run


def text_keys(path: Path) -> set[str]:
    with Image.open(path) as image:
        return set(image.text)  # type: ignore[attr-defined]


def test_the_options_input_writes_only_the_a1111_text(node: Callable[..., list[Path]]) -> None:
    (plain,) = node()
    assert {"parameters", "prompt", "workflow"} <= text_keys(plain)
    (only,) = node(options='{"targets": ["a1111"]}')
    assert text_keys(only) == {"parameters"}
    (again,) = node(options="")
    assert text_keys(again) == text_keys(plain)
    assert settings.current() == BASE and settings.overridden() == frozenset()


def test_options_win_over_the_inputs_and_the_file_fills_what_was_left_out(
    node: Callable[..., list[Path]], tmp_path: Path
) -> None:
    settings.set_file(write(tmp_path / "user" / "provenance" / "settings.json", {"targets": ["comfyui"]}))
    (from_file,) = node(targets=None)
    assert text_keys(from_file) == {"prompt", "workflow"}
    (from_input,) = node(targets=["a1111"])
    assert text_keys(from_input) == {"parameters"}
    (from_options,) = node(targets=["a1111"], options={"targets": ["comfyui", "a1111"]})
    assert text_keys(from_options) == {"parameters", "prompt", "workflow"}


@pytest.mark.parametrize("options", ['{"targets": ["a1111"]', '{"colour": "blue"}', '{"targets": ["bogus"]}'])
def test_bad_options_fail_the_node_and_save_nothing(node: Callable[..., list[Path]], options: str) -> None:
    with pytest.raises(ValueError) as err:
        node(options=options)
    assert str(err.value).startswith("options")
    assert all(key in str(err.value) for key in settings.PER_RUN) or all(t in str(err.value) for t in TARGETS)
    assert node() and settings.current() == BASE


def test_the_save_reads_its_overrides_where_it_hashes_and_merges(
    node: Callable[..., list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[float, int, bool]] = []
    monkeypatch.setattr(save_image, "comfyui_hasher", lambda models: seen.append((wait_cap(), inline_budget(), True)))
    asked: list[str | None] = []
    monkeypatch.setattr(save_image, "runtime_snapshot", asked.append)
    node(options='{"hash_wait_s": 0, "runtime_inline_kb": 2, "prefer_runtime": false}', prefer_runtime=True)
    assert seen == [(0.0, 2048, True)] and asked == []  # options won over the prefer_runtime input
    node(prefer_runtime=None)
    assert seen[-1] == (5.0, 32 * 1024, True) and asked == [None]


def test_video_and_audio_nodes_apply_options_the_same_way(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(compat, "metadata_disabled", lambda: False)
    monkeypatch.setattr(compat, "current_prompt_id", lambda: None)
    monkeypatch.setattr(compat, "comfyui_version", lambda: "0.33.0")
    monkeypatch.setattr(compat, "output_directory", lambda: tmp_path)
    monkeypatch.setattr(compat, "save_namer", lambda: None)
    chosen: list[Any] = []

    def fake_save(clip: Any, context: Any, folder: Path, prefix: str, options: Any, **_: Any) -> Any:
        chosen.append((options.targets, options.lora_tags))
        return SimpleNamespace(path=tmp_path / "x", subfolder="")

    monkeypatch.setattr(save_media, "save_video", fake_save)
    monkeypatch.setattr(save_media, "save_audio", fake_save)
    common = {"filename_prefix": "m", "targets": None, "prompt": {}, "extra_pnginfo": None, "unique_id": "1"}
    frames = np.zeros((2, 16, 16, 3), dtype=np.float32)
    save_media.run_video(
        images=frames, video=None, audio=None, fps=8.0, format="mp4", crf=-1, lossless=False, quality=90, **common
    )
    options = '{"targets": ["record"], "lora_tags": false}'
    save_media.run_video(
        images=frames, video=None, audio=None, fps=8.0, format="mp4", crf=-1, lossless=False, quality=90,
        options=options, **common,
    )  # fmt: skip
    sound = {"waveform": np.zeros((1, 1, 800), dtype=np.float32), "sample_rate": 8000}
    save_media.run_audio(audio=sound, format="flac", bitrate="128k", options=options, **common)
    assert chosen == [
        (frozenset(BASE.targets), True),
        (frozenset({"record"}), False),
        (frozenset({"record"}), False),
    ]
    with pytest.raises(ValueError, match="options: unknown setting"):
        save_media.run_audio(audio=sound, format="flac", bitrate="128k", options='{"x": 1}', **common)


def test_every_v1_save_node_declares_options_last_with_an_empty_default() -> None:
    saves = [c for name, c in v1.NODE_CLASS_MAPPINGS.items() if name.startswith("ProvenanceSave")]
    assert len(saves) == 3
    for node_class in saves:  # the samplers take no per-run settings (and list ComfyUI's samplers: ComfyUI only)
        optional = node_class.INPUT_TYPES()["optional"]
        assert list(optional)[-1] == "options", node_class
        kind, spec = optional["options"]
        assert kind == "STRING" and spec["default"] == "" and spec["multiline"] is True
        assert spec["dynamicPrompts"] is False and settings.OPTIONS_EXAMPLE in spec["tooltip"]


def test_the_hooks_switch_reads_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.set_file(write(tmp_path / "settings.json", {"hooks": True, "hash_prefetch": False}))
    from comfyui_provenance.hooks import prefetch

    assert hooks.enabled_by_env() is True and prefetch.enabled() is False
    monkeypatch.setenv("PROVENANCE_HOOKS", "0")
    assert hooks.enabled_by_env() is False
    assert hooks.enabled_by_env({"PROVENANCE_HOOKS": "on"}) is True  # an explicit environment alone


def test_the_cli_takes_a_settings_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from comfyui_provenance.cli.main import main

    good = write(tmp_path / "good.json", {"rules_dir": str(tmp_path / "my-rules")})
    assert main(["rules", "list", "--settings", str(good)]) == 0
    assert f"user rules folder: {tmp_path / 'my-rules'}" in capsys.readouterr().out
    bad = write(tmp_path / "bad.json", {"hash_wait_s": "soon"})
    assert main(["--settings", str(bad), "rules", "list"]) == 2
    assert capsys.readouterr().err == f"provenance: --settings: {bad}: hash_wait_s must be a number >= 0, got 'soon'\n"

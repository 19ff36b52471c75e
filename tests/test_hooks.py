"""The hooks' safety contract on a fake of ComfyUI's execution module: install, uninstall, conflicts, errors.

tests/fake_execution.py mirrors ComfyUI 0.33's signatures; tests/test_comfyui_hooks.py keeps it honest.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from comfyui_provenance import hooks
from comfyui_provenance.hooks import comfyui as comfyui_hooks
from comfyui_provenance.hooks.safety import MARKER, Hook
from comfyui_provenance.hooks.session import REGISTRY

FAKE = Path(__file__).with_name("fake_execution.py")
TARGETS = ("execute", "get_input_data", "get_output_from_returns")


def load_fake() -> ModuleType:
    """A fresh copy of the fake module (new function objects), registered as `fake_execution`."""
    spec = importlib.util.spec_from_file_location("fake_execution", FAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_execution"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.delenv("PROVENANCE_HOOKS_FAULT", raising=False)
    module = load_fake()
    yield module
    hooks.uninstall()
    sys.modules.pop("fake_execution", None)


def originals(fake: ModuleType) -> dict[str, Any]:
    found = {name: getattr(fake, name) for name in (*TARGETS, "get_output_data")}
    found["execute_async"] = fake.PromptExecutor.execute_async
    found["PromptExecutor.execute"] = fake.PromptExecutor.execute
    return found


def hook_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return [m for m in messages if "Provenance hooks" in m]


def test_env_toggle() -> None:
    for value in ("1", "true", "TRUE", "On", "yes", " yes "):
        assert hooks.enabled_by_env({"PROVENANCE_HOOKS": value}), value
    for value in ("", "0", "false", "off", "no", "2", "enable"):
        assert not hooks.enabled_by_env({"PROVENANCE_HOOKS": value}), value
    assert not hooks.enabled_by_env({})


def test_importing_the_pack_outside_comfyui_patches_nothing(fake: ModuleType) -> None:
    """`import comfyui_provenance` with PROVENANCE_HOOKS=1 but no running ComfyUI installs nothing."""
    assert comfyui_hooks.running_execution() is None  # the fake is not `execution`
    assert hooks.installed_hooks() == []
    assert not hooks.hooks_active()
    assert hooks.snapshot("anything") is None


def test_install_wraps_each_target_once(fake: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    before = originals(fake)
    assert hooks.install(fake)
    wrapped = {name: getattr(fake, name) for name in TARGETS}
    for name in TARGETS:
        assert getattr(wrapped[name], MARKER, None) is not None
        assert wrapped[name].__wrapped__ is before[name]
    assert fake.PromptExecutor.execute_async.__wrapped__ is before["execute_async"]
    assert fake.get_output_data is before["get_output_data"]  # deliberately not hooked
    assert fake.PromptExecutor.execute is before["PromptExecutor.execute"]
    assert inspect.iscoroutinefunction(fake.execute) and inspect.iscoroutinefunction(fake.PromptExecutor.execute_async)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert hooks.install(fake)
    assert {name: getattr(fake, name) for name in TARGETS} == wrapped  # the very same wrappers: one wrap
    assert fake.PromptExecutor.execute_async.__wrapped__ is before["execute_async"]
    warnings = hook_warnings(caplog)
    assert len(warnings) == 4 and all("already hooked" in w for w in warnings), warnings


def test_uninstall_restores_the_very_same_objects(fake: ModuleType) -> None:
    before = originals(fake)
    had_own = "execute_async" in vars(fake.PromptExecutor)
    hooks.install(fake)
    assert hooks.uninstall()
    assert originals(fake) == before
    assert fake.execute is before["execute"] and fake.get_input_data is before["get_input_data"]
    assert fake.PromptExecutor.execute_async is before["execute_async"]
    assert ("execute_async" in vars(fake.PromptExecutor)) == had_own
    assert hooks.uninstall() and originals(fake) == before  # idempotent
    assert hooks.snapshot("p") is None and not hooks.hooks_active()


def test_uninstall_of_an_inherited_method_leaves_the_subclass_clean() -> None:
    class Base:
        def run(self, prompt_id: str) -> str:
            return prompt_id

    class Child(Base):
        pass

    class Probe(Hook):
        key = "probe"
        params = ("prompt_id",)

    hook = Probe(Child, "run", home_module=__name__)
    assert hook.install() and "run" in vars(Child)
    assert Child().run("x") == "x"
    assert hook.uninstall()
    assert "run" not in vars(Child) and Child.run is Base.run


def test_another_packs_wrapper_below_ours(fake: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    """Policy: wrap on top, warn once; their wrapper still runs exactly once per call; uninstall gives it back."""
    calls: list[str] = []
    original = fake.execute

    @functools.wraps(original)
    async def other_pack(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[3])
        return await original(*args, **kwargs)

    fake.execute = other_pack
    with caplog.at_level(logging.WARNING):
        hooks.install(fake)
    warnings = hook_warnings(caplog)
    assert len(warnings) == 1 and "already wrapped by" in warnings[0] and "wrapped on top" in warnings[0], warnings
    assert fake.execute.__wrapped__ is other_pack
    assert hooks.status()["hooks"]["execute"]["conflict"].startswith("already wrapped by")
    captured: list[Any] = []
    fake.ON_SAVE.append(lambda pid, uid: captured.append(hooks.snapshot(pid)))
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(), "p1")
    assert len(set(calls)) == 10 and len(calls) == 12  # once per entry: 10 staged nodes, 2 PENDING re-entries
    assert captured[0]["nodes"]["7"]["inputs"] == {"ckpt_name": "ckpt_a.safetensors"}
    hooks.uninstall()
    assert fake.execute is other_pack


def test_another_pack_wrapping_on_top_of_ours(fake: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    """Uninstall cannot remove a wrapper that is not outermost: it switches it off and says so; install re-arms it."""
    hooks.install(fake)
    ours = fake.execute

    @functools.wraps(ours)
    async def later_pack(*args: Any, **kwargs: Any) -> Any:
        return await ours(*args, **kwargs)

    fake.execute = later_pack
    with caplog.at_level(logging.WARNING):
        assert not hooks.uninstall()
    assert fake.execute is later_pack and ours.__wrapped__ is not None
    assert any("wrapped again" in w for w in hook_warnings(caplog))
    result = fake.run(fake.PromptExecutor(None), fake.sample_prompt(), "p-off")
    assert result["success"] and hooks.snapshot("p-off") is None  # ours passes straight through
    hooks.install(fake)
    assert fake.execute is later_pack  # re-activated in place, not wrapped a second time
    execute_hook = next(h for h in hooks.installed_hooks() if h.key == "execute")
    assert execute_hook.active and execute_hook.installed


def test_a_second_copy_of_the_pack_does_not_wrap_again(fake: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    hooks.install(fake)
    wrapped = {name: getattr(fake, name) for name in TARGETS}
    copy = comfyui_hooks.build(fake)  # what a second import of the pack under another name would build
    with caplog.at_level(logging.WARNING):
        assert not any(h.install() for h in copy)
    assert all("another copy of this pack" in (h.skipped or "") for h in copy)
    assert {name: getattr(fake, name) for name in TARGETS} == wrapped
    assert len(hook_warnings(caplog)) == 4


def test_unexpected_signatures_are_not_hooked(fake: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    """Shape check: a target without the parameters a hook reads (or missing) stays untouched, with the reason."""

    async def opaque(*args: Any, **kwargs: Any) -> Any:  # no __wrapped__: nothing to read names from
        return None

    fake.execute = opaque
    del fake.get_output_from_returns
    with caplog.at_level(logging.WARNING):
        hooks.install(fake)
    status = hooks.status()["hooks"]
    assert fake.execute is opaque
    assert "lacks dynprompt, current_item, executed, prompt_id" in status["execute"]["skipped"]
    assert "not found" in status["outputs"]["skipped"]
    assert status["inputs"]["installed"] and status["executor"]["installed"]
    assert len(hook_warnings(caplog)) == 2


def test_host_exceptions_pass_through_unchanged(fake: ModuleType) -> None:
    """The same exception object, raised where ComfyUI raised it; our failure counters untouched."""
    boom = LookupError("ComfyUI's own error")

    class BadPrompt(fake.DynamicPrompt):  # type: ignore[name-defined,misc]
        def get_node(self, node_id: str) -> Any:
            raise boom

    def call_execute() -> Any:
        import asyncio

        return asyncio.run(fake.execute(None, BadPrompt({}), fake.CacheSet(), "1", {}, set(), "p", None, {}, {}, {}))

    with pytest.raises(LookupError) as plain:
        call_execute()
    plain_frames = [(f.name, f.lineno) for f in traceback.extract_tb(plain.value.__traceback__)]
    hooks.install(fake)
    REGISTRY.open("p", {}, {})
    with pytest.raises(LookupError) as hooked:
        call_execute()
    assert hooked.value is boom
    frames = [(f.name, f.lineno) for f in traceback.extract_tb(hooked.value.__traceback__)]
    assert frames[-2:] == plain_frames[-2:]  # raised in get_node, called from the real execute

    fresh = KeyError("another one of ComfyUI's own")

    class Broken:
        @classmethod
        def INPUT_TYPES(cls) -> Any:
            raise fresh

    with pytest.raises(KeyError) as sync_error:
        fake.get_input_data({}, Broken, "1")
    assert sync_error.value is fresh
    assert traceback.extract_tb(sync_error.value.__traceback__)[-1].name == "INPUT_TYPES"
    assert all(h.failures == 0 for h in hooks.installed_hooks())


def test_node_errors_read_exactly_as_without_hooks(fake: ModuleType) -> None:
    """A raising node: status messages, traceback included, identical with hooks on and off."""
    prompt = {
        "1": {"class_type": "Int", "inputs": {"value": 3}},
        "2": {"class_type": "Boom", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Sampler", "inputs": {"model": ["1", 0], "seed": ["2", 0], "frames": 1, "text": "t"}},
        "4": {"class_type": "Save", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    off = fake.run(fake.PromptExecutor(None), prompt, "p-err")
    hooks.install(fake)
    on = fake.run(fake.PromptExecutor(None), prompt, "p-err")
    assert on == off
    assert not on["success"]
    error = next(data for event, data in on["messages"] if event == "execution_error")
    assert error["exception_type"] == "builtins.ValueError" and "boom 3" in error["exception_message"]
    assert not any("comfyui_provenance" in line for line in error["traceback"])


def test_results_identical_with_and_without_hooks(fake: ModuleType) -> None:
    def series() -> list[Any]:
        fake.SAVED.clear()
        executor = fake.PromptExecutor(None)
        results = [
            fake.run(executor, fake.sample_prompt(seed=1), "a"),
            fake.run(executor, fake.sample_prompt(seed=2), "b"),  # only the seed changed: upstream cached
            fake.run(executor, fake.sample_prompt(seed=2), "c"),  # identical: nothing runs
            fake.run(executor, fake.sample_prompt(seed=3, select=False, text="x" * 10_000), "d"),
        ]
        return [results, [dict(s) for s in fake.SAVED]]

    off = series()
    hooks.install(fake)
    assert series() == off


@pytest.mark.parametrize(
    "stage",
    [f"{key}.{when}" for key in ("executor", "execute", "inputs", "outputs") for when in ("before", "after")],
)
def test_injected_faults_are_contained(
    fake: ModuleType, stage: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each stage raising: prompts complete as without hooks, one log line, the hook disables itself after 3."""
    expected = [fake.run(fake.PromptExecutor(None), fake.sample_prompt(seed=s), f"p{s}") for s in (1, 2, 3)]
    monkeypatch.setenv("PROVENANCE_HOOKS_FAULT", stage)
    snapshots: list[Any] = []
    fake.ON_SAVE.append(lambda pid, uid: snapshots.append(hooks.snapshot(pid)))
    with caplog.at_level(logging.INFO):
        hooks.install(fake)
        results = [fake.run(fake.PromptExecutor(None), fake.sample_prompt(seed=s), f"p{s}") for s in (1, 2, 3)]
    assert results == expected
    key = stage.split(".", maxsplit=1)[0]
    failing = hooks.status()["hooks"][key]
    assert failing["disabled"] and not failing["active"] and failing["failures"] == 3
    assert f"in {stage.split('.')[1]}: InjectedFault" in failing["disabled_reason"]
    lines = [m for m in hook_warnings(caplog) if "failed in" in m]
    assert len(lines) == 1 and "turns itself off after 3" in lines[0], lines
    if stage != "executor.after":  # that one fails after the saves took their snapshots
        assert all(s is None or not s["complete"] for s in snapshots)
    others = [h for h in hooks.installed_hooks() if h.key != key]
    assert all(h.active and h.failures == 0 for h in others)
    assert hooks.hooks_active()
    for snap in filter(None, snapshots):  # what a faulty capture holds may be missing, never wrong
        seed = int(snap["prompt_id"][1:])
        truth = {"8": [seed], "1": [5], "2": [7], "3": [12], "9": [24], "4": ["ckpt_a.safetensors"]}
        truth["6"] = truth["4"]
        for node_id, node in snap["nodes"].items():
            assert node["outputs"] in (None, truth.get(node_id)), (node_id, node)


def test_several_faults_at_once(fake: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANCE_HOOKS_FAULT", "executor.after, inputs.before,outputs.after")
    hooks.install(fake)
    for seed in (1, 2, 3):
        assert fake.run(fake.PromptExecutor(None), fake.sample_prompt(seed=seed), f"p{seed}")["success"]
    status = hooks.status()["hooks"]
    assert [key for key, h in status.items() if h["disabled"]] == ["executor", "inputs", "outputs"]
    assert status["execute"]["active"] and status["execute"]["failures"] == 0


def test_disabled_hooks_only_call_the_original(fake: ModuleType) -> None:
    hooks.install(fake)
    for hook in hooks.installed_hooks():
        hook.disabled_reason, hook.active = "test", False
    assert not hooks.hooks_active()
    result = fake.run(fake.PromptExecutor(None), fake.sample_prompt(), "p")
    assert result["success"] and hooks.snapshot("p") is None
    assert hooks.status()["sessions"] == 0

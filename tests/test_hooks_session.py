"""HookSession: the snapshot contract, values and secrets, cached-node carry-over, release, threads, bounds."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from comfyui_provenance import hooks
from comfyui_provenance.hooks import carry, session
from comfyui_provenance.hooks.session import REGISTRY
from comfyui_provenance.hooks.values import MAX_LIST, MAX_STRING, Summarizer, secrets_of, skipped_input

FAKE = Path(__file__).with_name("fake_execution.py")
SECRETS = {"auth_token_comfy_org": "PROVENANCE-HOOK-TOKEN-1234", "api_key_comfy_org": "sk-PROVENANCE-HOOK-KEY-5678"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.delenv("PROVENANCE_HOOKS_FAULT", raising=False)
    spec = importlib.util.spec_from_file_location("fake_execution", FAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_execution"] = module
    spec.loader.exec_module(module)
    assert hooks.install(module)
    yield module
    hooks.uninstall()
    sys.modules.pop("fake_execution", None)


def snapshots_at_save(fake: ModuleType, use: bool = False) -> dict[str, dict[str, Any]]:
    """prompt_id → the snapshot a save node takes while it runs (and optionally marks used)."""
    taken: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def save(prompt_id: str, node_id: str) -> None:
        snap = hooks.snapshot(prompt_id)
        assert snap is not None
        with lock:
            taken[prompt_id] = snap
        if use:
            hooks.mark_used(prompt_id, node_id)

    fake.ON_SAVE.append(save)
    return taken


# --- the contract ---------------------------------------------------------------------------------

NODE_KEYS = {"class_type", "cached", "start_ms", "duration_ms", "inputs", "outputs", "error"}


def test_snapshot_follows_the_data_contract(fake: ModuleType) -> None:
    taken = snapshots_at_save(fake)
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(seed=42), "p1")
    snap = taken["p1"]
    json.dumps(snap, allow_nan=False)
    assert set(snap) == {"prompt_id", "started", "ended", "complete", "order", "nodes", "errors"}
    assert snap["prompt_id"] == "p1" and snap["started"].endswith("Z") and snap["ended"] is None
    assert snap["complete"] is True and snap["errors"] == []
    assert snap["order"] == ["8", "1", "2", "3", "9", "4", "6", "7", "10"]  # the save is still running
    assert set(snap["nodes"]) == {*snap["order"], "11"}  # "5" is the switch's unused lazy branch
    for node in snap["nodes"].values():
        assert set(node) == NODE_KEYS and node["cached"] is False and node["error"] is None
        assert isinstance(node["start_ms"], float) and node["start_ms"] >= 0
    nodes = snap["nodes"]
    assert nodes["6"]["inputs"] == {"select": True, "on_true": "ckpt_a.safetensors"}
    assert nodes["6"]["outputs"] == ["ckpt_a.safetensors"]
    assert nodes["7"] == {**nodes["7"], "class_type": "Loader", "inputs": {"ckpt_name": "ckpt_a.safetensors"}}
    assert nodes["7"]["outputs"] is None  # a model object: no scalar output
    assert nodes["9"]["outputs"] == [24] and nodes["3"]["outputs"] == [12]  # async node resolved on re-entry
    assert nodes["10"]["inputs"] == {"model": {"type": "Model"}, "seed": 42, "frames": 24, "text": "hello"}
    assert nodes["11"]["inputs"]["images"] == {"type": "ndarray", "shape": [24, 8, 8, 3], "dtype": "float32"}
    assert nodes["11"]["duration_ms"] is None  # still running
    # lazy and async nodes re-enter: one order entry, timed from the first entry to the last exit
    assert nodes["6"]["start_ms"] < nodes["4"]["start_ms"] and nodes["6"]["duration_ms"] > nodes["4"]["duration_ms"]
    # a fresh deep copy each time
    snap["nodes"]["6"]["inputs"]["select"] = "changed"
    assert hooks.snapshot("p1") is not None and hooks.snapshot("p1")["nodes"]["6"]["inputs"]["select"] is True  # type: ignore[index]


def test_session_after_the_prompt(fake: ModuleType) -> None:
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(), "p1")
    snap = hooks.snapshot("p1")  # nobody marked it used: kept until its TTL
    assert snap is not None and snap["ended"] is not None and snap["order"][-1] == "11"
    assert snap["nodes"]["11"]["duration_ms"] is not None
    assert hooks.snapshot(None) is None and hooks.snapshot("unknown") is None


def test_failed_node_is_recorded(fake: ModuleType) -> None:
    prompt = {
        "1": {"class_type": "Int", "inputs": {"value": 3}},
        "2": {"class_type": "Boom", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Sampler", "inputs": {"model": ["1", 0], "seed": ["2", 0], "frames": 1, "text": "t"}},
        "4": {"class_type": "Save", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    REGISTRY.retain = True  # no consumer ran: the session goes when the prompt ends
    try:
        fake.run(fake.PromptExecutor(None), prompt, "p-err")
        assert hooks.snapshot("p-err") is None
        snap = REGISTRY.retained_snapshot("p-err")
    finally:
        REGISTRY.retain = False
    assert snap is not None and snap["order"] == ["1"]
    assert snap["nodes"]["2"]["error"] == "builtins.ValueError: boom 3"
    assert snap["nodes"]["2"]["inputs"] == {"value": 3} and snap["nodes"]["2"]["cached"] is False
    assert snap["errors"] == ["node 2 (Boom): builtins.ValueError: boom 3"]


def test_hooks_active(fake: ModuleType) -> None:
    assert hooks.hooks_active()
    for hook in hooks.installed_hooks()[:-1]:
        hook.active = False
    assert hooks.hooks_active()
    hooks.installed_hooks()[-1].active = False
    assert not hooks.hooks_active()
    hooks.uninstall()
    assert not hooks.hooks_active()


# --- values and secrets -----------------------------------------------------------------------------


def test_summarizer_keeps_scalars_and_summarizes_the_rest() -> None:
    s = Summarizer()
    assert [s.summarize(v) for v in (None, True, 3, 2.5, "euler")] == [None, True, 3, 2.5, "euler"]
    assert s.summarize(np.float32(1.5)) == 1.5 and s.summarize(np.int64(4)) == 4
    assert s.summarize(np.zeros((1, 64, 64, 3), np.float32)) == {
        "type": "ndarray",
        "shape": [1, 64, 64, 3],
        "dtype": "float32",
    }
    assert s.summarize(math.nan) == {"type": "float", "repr": "nan"}
    assert s.summarize("x" * (MAX_STRING + 1)) == {"type": "str", "length": MAX_STRING + 1}
    assert s.summarize([1, 2, "a"]) == [1, 2, "a"]
    assert s.summarize(list(range(MAX_LIST + 1))) == {"type": "list", "shape": [MAX_LIST + 1]}
    assert s.summarize([[1], 2]) == {"type": "list", "shape": [2]}
    assert s.summarize({"samples": np.zeros(2)}) == {"type": "dict"}
    assert s.summarize(object()) == {"type": "object"}
    assert s.per_call(["one"]) == "one" and s.per_call([1, 2]) == [1, 2]
    small = Summarizer(budget=10)
    assert small.summarize("12345678") == "12345678" and not small.over_budget
    assert small.summarize("12345") == {"type": "str", "length": 5} and small.over_budget


def test_credential_names_and_values() -> None:
    for name in ("api_key", "openai_api_key", "auth_token", "password", "prompt", "unique_id", "api_key_comfy_org"):
        assert skipped_input(name), name
    for name in ("max_tokens", "text", "keyframes", "seed", "token_normalization"):
        assert not skipped_input(name), name
    s = Summarizer(secrets_of(SECRETS))
    assert s.summarize(SECRETS["api_key_comfy_org"]) == {"type": "str", "redacted": True}
    assert s.summarize([SECRETS["auth_token_comfy_org"]]) == [{"type": "str", "redacted": True}]
    assert s.summarize("sk-PROVENANCE-HOOK-KEY-5679") == "sk-PROVENANCE-HOOK-KEY-5679"


def test_secrets_never_stored(fake: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    prompt = {
        "1": {"class_type": "ApiNode", "inputs": {"text": "hi", "api_key": "sk-typed-into-a-widget"}},
        "2": {"class_type": "Text", "inputs": {"text": SECRETS["api_key_comfy_org"]}},  # pasted into a widget
        "3": {"class_type": "Concat", "inputs": {"a": ["1", 0], "b": "!"}},
        "4": {"class_type": "Sampler", "inputs": {"model": ["2", 0], "seed": 1, "frames": 1, "text": ["3", 0]}},
        "5": {"class_type": "Save", "inputs": {"images": ["4", 0], "filename_prefix": "x"}},
    }
    taken = snapshots_at_save(fake)
    with caplog.at_level("DEBUG"):
        fake.run(fake.PromptExecutor(None), prompt, "p-secret", {**SECRETS, "client_id": "c"})
    final = taken["p-secret"]
    text = json.dumps([taken["p-secret"], final, hooks.status()]) + caplog.text
    held = repr([vars(s) for s in REGISTRY.sessions.values()]) + repr(list(REGISTRY.store._entries.values()))
    for secret in (*SECRETS.values(), "sk-typed-into-a-widget"):
        assert secret not in text and secret not in held, secret
    assert final is not None and final["nodes"]["1"]["inputs"] == {"text": "hi"}
    redacted = {"type": "str", "redacted": True}
    assert final["nodes"]["2"]["inputs"] == {"text": redacted} and final["nodes"]["2"]["outputs"] is None
    assert final["nodes"]["3"]["inputs"] == {"a": "hi:signed-in", "b": "!"}
    assert final["nodes"]["5"]["inputs"]["filename_prefix"] == "x"
    assert set(final["nodes"]["5"]["inputs"]) == {"images", "filename_prefix"}  # no hidden inputs


# --- cached nodes ----------------------------------------------------------------------------------


def test_cached_nodes_carry_over_when_only_the_seed_changed(fake: ModuleType) -> None:
    taken = snapshots_at_save(fake, use=True)
    executor = fake.PromptExecutor(None)
    fake.run(executor, fake.sample_prompt(seed=1), "first")
    fake.run(executor, fake.sample_prompt(seed=2), "second")
    snap = taken["second"]
    assert snap["order"] == ["8", "10"]  # ComfyUI ran only the seed and the sampler
    nodes = snap["nodes"]
    assert nodes["7"]["cached"] and nodes["7"]["inputs"] == {"ckpt_name": "ckpt_a.safetensors"}  # switch-resolved
    assert nodes["9"]["cached"] and nodes["9"]["outputs"] == [24]  # the computed frame count
    assert nodes["6"]["cached"] and nodes["6"]["outputs"] == ["ckpt_a.safetensors"]
    assert nodes["10"]["inputs"]["frames"] == 24 and nodes["10"]["inputs"]["seed"] == 2
    assert nodes["7"]["start_ms"] is None and nodes["7"]["duration_ms"] is None
    assert "5" not in nodes  # never ran in any prompt
    assert snap["complete"] is True
    # a changed upstream constant: the stale values are not carried, the node re-ran
    fake.run(executor, fake.sample_prompt(seed=2, a=6), "third")
    third = taken["third"]["nodes"]
    assert not third["9"]["cached"] and third["9"]["outputs"] == [26] and third["3"]["inputs"] == {"a": 6, "b": 7}
    assert third["7"]["cached"] and third["7"]["inputs"] == {"ckpt_name": "ckpt_a.safetensors"}


def test_identical_resubmit_runs_nothing_and_releases_the_session(fake: ModuleType) -> None:
    taken = snapshots_at_save(fake, use=True)
    executor = fake.PromptExecutor(None)
    fake.run(executor, fake.sample_prompt(), "first")
    fake.run(executor, fake.sample_prompt(), "again")
    assert "again" not in taken and hooks.snapshot("again") is None  # the save was cached: nobody to wait for


def test_a_node_answered_by_another_nodes_computation(fake: ModuleType) -> None:
    """Seed 7 and the second addend 7: ComfyUI runs one Int(7) and serves the other from it, in the same prompt."""
    taken = snapshots_at_save(fake)
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(seed=7, b=7), "twins")
    snap = taken["twins"]
    assert "2" not in snap["order"] and "8" in snap["order"]
    assert snap["nodes"]["2"]["cached"] and snap["nodes"]["2"]["outputs"] == [7]
    assert snap["complete"] is True


def test_cached_upstream_without_carry_over_is_incomplete(fake: ModuleType) -> None:
    taken = snapshots_at_save(fake)
    executor = fake.PromptExecutor(None)
    fake.run(executor, fake.sample_prompt(seed=1), "first")
    REGISTRY.store.clear()  # e.g. the hooks were switched on after ComfyUI cached these nodes
    fake.run(executor, fake.sample_prompt(seed=2), "second")
    assert taken["second"]["complete"] is False
    assert "7" not in taken["second"]["nodes"]


def test_computation_keys() -> None:
    graph: dict[str, Any] = {
        "1": {"class_type": "Int", "inputs": {"value": 1}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 2}},
        "3": {"class_type": "Loop", "inputs": {"x": ["4", 0]}},
        "4": {"class_type": "Loop", "inputs": {"x": ["3", 0]}},
        "5": {"class_type": "Add", "inputs": {"a": ["9", 0], "b": 1}},
    }
    memo: dict[str, str | None] = {}
    carry.computation_keys(graph, list(graph), memo)
    assert memo["1"] and memo["2"] and memo["1"] != memo["2"]
    assert memo["3"] is None and memo["4"] is None and memo["5"] is None  # a cycle, a dangling link
    changed = json.loads(json.dumps(graph))
    changed["1"]["inputs"]["value"] = 2
    again: dict[str, str | None] = {}
    carry.computation_keys(changed, ["2"], again)
    assert again["2"] != memo["2"]  # an upstream constant is part of the key
    changed["1"]["inputs"]["value"] = 1
    changed["1"]["is_changed"] = ["abc"]
    carry.computation_keys(changed, ["2"], third := {})
    assert third["2"] != memo["2"]  # so is ComfyUI's IS_CHANGED value
    long_chain = {str(i): {"class_type": "Int", "inputs": {"v": [str(i - 1), 0]} if i else {}} for i in range(5000)}
    deep: dict[str, str | None] = {}
    carry.computation_keys(long_chain, ["4999"], deep)  # no recursion limit
    assert deep["4999"] is not None


def test_carry_store_is_bounded() -> None:
    store = carry.CarryStore(max_entries=3, max_cost=100)
    for i in range(5):
        store.put(str(i), carry.Carried("Int", {"v": i}, None, 10))
    assert len(store) == 3 and store.get("0") is None and store.get("4") is not None
    store.put("big", carry.Carried("Text", {}, None, 95))
    assert len(store) == 1 and store.cost == 95


# --- release and bounds ----------------------------------------------------------------------------


def test_session_released_once_ended_and_used(fake: ModuleType) -> None:
    taken = snapshots_at_save(fake, use=True)
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(), "p1")
    assert taken["p1"]["ended"] is None  # available while the save ran...
    assert hooks.snapshot("p1") is None  # ...released at the end, since the save used it


def test_unused_session_is_evicted_after_its_ttl(fake: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(REGISTRY, "clock", lambda: now[0])
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(), "unused")
    assert hooks.snapshot("unused") is not None
    now[0] += session.SESSION_TTL_S + 1
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(seed=9), "next")
    assert hooks.snapshot("unused") is None and hooks.snapshot("next") is not None


def test_mark_used_after_the_end_releases(fake: ModuleType) -> None:
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(), "late")
    hooks.mark_used("late", "99")  # not a consumer that ran
    assert hooks.snapshot("late") is not None
    hooks.mark_used("late", "11")
    assert hooks.snapshot("late") is None
    hooks.mark_used("never-seen", "1")  # harmless


def test_sessions_are_bounded(fake: ModuleType) -> None:
    for i in range(session.MAX_SESSIONS + 8):
        REGISTRY.open(f"open-{i}", {}, {})
    assert len(REGISTRY.sessions) == session.MAX_SESSIONS
    assert hooks.snapshot("open-0") is None and hooks.snapshot(f"open-{session.MAX_SESSIONS + 7}") is not None


def test_node_cap_marks_the_capture_incomplete(fake: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "MAX_NODES", 4)
    taken = snapshots_at_save(fake)
    fake.run(fake.PromptExecutor(None), fake.sample_prompt(), "capped")
    assert len(taken["capped"]["nodes"]) <= 4 and taken["capped"]["complete"] is False


def test_concurrent_prompts_keep_their_own_values(fake: ModuleType) -> None:
    """Many worker threads, each with its own executor and event loop: no cross-talk, bounded memory."""
    taken = snapshots_at_save(fake, use=True)
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            executor = fake.PromptExecutor(None)
            for i in range(12):
                seed = w * 1000 + i
                fake.run(executor, fake.sample_prompt(seed=seed, a=w, b=i, text=f"w{w}-{i}"), f"w{w}-p{i}")
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(taken) == 16 * 12
    for w in range(16):
        for i in range(12):
            nodes = taken[f"w{w}-p{i}"]["nodes"]
            assert nodes["10"]["inputs"]["seed"] == w * 1000 + i
            assert nodes["10"]["inputs"]["text"] == f"w{w}-{i}"
            assert nodes["10"]["inputs"]["frames"] == 2 * (w + i)
            assert nodes["3"]["outputs"] == [w + i]
            assert taken[f"w{w}-p{i}"]["complete"] is True
    assert len(REGISTRY.sessions) == 0  # every save used its session
    assert len(REGISTRY.store) <= carry.MAX_ENTRIES

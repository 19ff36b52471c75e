"""A1111 infotext: exact round trips of arbitrary prompts, and conformance with A1111's own parser."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from comfyui_provenance.metadata import infotext
from comfyui_provenance.metadata.record import Generation, Model, Record

NAMES = infotext._names()
SAMPLERS = sorted(NAMES["samplers"])
SCHEDULERS = sorted(NAMES["schedulers"])
# Samplers whose A1111 label is shared with another ComfyUI sampler (dpmpp_sde / dpmpp_sde_gpu ...):
# the label alone cannot say which one ran. test_shared_sampler_labels_round_trip covers them.
SHARED_LABEL = sorted(s for s in SAMPLERS if infotext.sampler_from_label(infotext.sampler_label(s))[0] != s)
UNAMBIGUOUS = [s for s in SAMPLERS if s not in SHARED_LABEL]

# Fragments that break naive infotext writers: line starts, separators, quotes, NUL, bidi, emoji.
TRICKY = [
    "\n",
    "\r\n",
    "\r",
    " ",
    "\t",
    "  ",
    ",",
    ":",
    ", ",
    ": ",
    '"',
    '\\"',
    "\\",
    "\x00",
    "\x85",
    "\u2028",
    "Negative prompt:",
    "Negative prompt: ",
    "\nNegative prompt: x",
    "\nnegative prompt: y",
    "Steps: 20, Sampler: Euler, CFG scale: 7",
    "\nSteps: 1, Seed: 2, Size: 3x4",
    "Exact prompt: ",
    'Exact prompt: "x"',
    "null",
    '"quoted"',
    "(masterpiece:1.2)",
    "<lora:name:0.8>",
    "embedding:foo",
    "😀",
    "👩‍👩‍👧",
    "مرحبا بالعالم",
    "שלום",
    "\u202eevil\u202c",
    "Über",
    "ß",
    "ヘ",
    "\ufeff",
    "\ufffd",
]
prompts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(TRICKY), st.text(max_size=8)), max_size=12).map("".join),
)
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
samplers = st.one_of(st.sampled_from(UNAMBIGUOUS), identifiers)
schedulers = st.one_of(st.none(), st.sampled_from(SCHEDULERS), identifiers)
seeds = st.integers(min_value=0, max_value=2**64 - 1)
steps = st.integers(min_value=0, max_value=10_000)
cfgs = st.floats(allow_nan=False, allow_infinity=False)
sizes = st.integers(min_value=1, max_value=16_384)
denoises = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0))
versions = st.one_of(
    st.none(),
    st.from_regex(r"[0-9]\.[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True),
    st.sampled_from(["0.3.48, rc: 2", "v1\nline"]),
)


def make_record(
    positive: str | None,
    negative: str | None,
    seed: int = 1,
    steps: int = 20,
    cfg: float = 7.0,
    sampler: str | None = "euler",
    scheduler: str | None = "normal",
    width: int = 512,
    height: int = 768,
    denoise: float | None = None,
    version: str | None = "0.3.60",
) -> Record:
    rec = Record(
        generation=Generation(
            positive=positive,
            negative=negative,
            seed=seed,
            steps=steps,
            cfg=cfg,
            sampler=sampler,
            scheduler=scheduler,
            width=width,
            height=height,
            denoise=denoise,
        )
    )
    rec.provenance.comfyui_version = version
    return rec


def round_trip(rec: Record) -> Record:
    return infotext.to_record(infotext.parse(infotext.build(rec)))


def assert_same_generation(rec: Record, back: Record) -> None:
    got, want = back.generation, rec.generation
    assert got.positive == (want.positive or "")
    assert got.negative == want.negative
    assert got.seed == want.seed
    assert got.steps == want.steps
    assert got.cfg == want.cfg
    assert got.sampler == want.sampler
    assert got.scheduler == want.scheduler
    assert (got.width, got.height) == (want.width, want.height)
    # A1111 writes "Denoising strength" only below 1 (a full denoise is the txt2img default).
    assert got.denoise == (want.denoise if want.denoise is not None and want.denoise < 1 else None)


def visible(text: str) -> str:
    return text.replace("\x00", "")


# -- an independent implementation of A1111's reader (readers.md §2, infotext_utils.py) ---------------

A1111_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
A1111_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")


def a1111_unquote(text: str) -> str:
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)  # type: ignore[no-any-return]
    except Exception:
        return text


def a1111_parse(x: str) -> dict[str, Any]:
    """parse_generation_parameters() of stable-diffusion-webui, minus its UI-specific post-processing."""
    res: dict[str, Any] = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False
    *lines, lastline = x.strip().split("\n")
    if len(A1111_RE_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for raw_line in lines:
        line = raw_line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt
    for k, raw_value in A1111_RE_PARAM.findall(lastline):
        v = raw_value
        if v and v[0] == '"' and v[-1] == '"':
            v = a1111_unquote(v)
        m = A1111_RE_SIZE.match(v)
        if m is not None:
            res[f"{k}-1"] = m.group(1)
            res[f"{k}-2"] = m.group(2)
        else:
            res[k] = v
    return res


# A "plain" prompt needs no exact keys: lines without edge whitespace, none starting with the
# negative marker, no NUL. Empty lines inside are fine (A1111 keeps them).
plain_line = st.text(st.characters(exclude_characters="\n\x00", exclude_categories=("Cs",)), min_size=1).filter(
    lambda s: s == s.strip() and not s.startswith("Negative prompt:")
)
plain_prompts = (
    st.lists(st.one_of(plain_line, st.just("")), min_size=1, max_size=5)
    .map("\n".join)
    .filter(lambda s: s == s.strip() and s != "")
)

with_separator = st.tuples(st.text(max_size=12), st.sampled_from([",", ":", "\n"]), st.text(max_size=12)).map("".join)


# -- round trips ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    positive=prompts,
    negative=st.one_of(st.none(), prompts),
    seed=seeds,
    steps=steps,
    cfg=cfgs,
    sampler=samplers,
    scheduler=schedulers,
    width=sizes,
    height=sizes,
    denoise=denoises,
    version=versions,
)
@example(
    positive="Negative prompt: not really\nStill positive",
    negative=None,
    seed=0,
    steps=0,
    cfg=-0.0,
    sampler="euler",
    scheduler=None,
    width=1,
    height=1,
    denoise=1.0,
    version=None,
)
@example(
    positive="",
    negative="",
    seed=2**64 - 1,
    steps=1,
    cfg=1e308,
    sampler="dpmpp_2m",
    scheduler="karras",
    width=16384,
    height=1,
    denoise=0.0,
    version="0.3.48, rc: 2",
)
@example(
    positive="  lead\n\ntrail  ",
    negative="\n",
    seed=5,
    steps=5,
    cfg=5e-324,
    sampler="lcm",
    scheduler="linear_quadratic",
    width=2,
    height=3,
    denoise=0.99,
    version="v1\nline",
)
def test_build_parse_round_trip(
    positive: str,
    negative: str | None,
    seed: int,
    steps: int,
    cfg: float,
    sampler: str,
    scheduler: str | None,
    width: int,
    height: int,
    denoise: float | None,
    version: str | None,
) -> None:
    rec = make_record(positive, negative, seed, steps, cfg, sampler, scheduler, width, height, denoise, version)
    text = infotext.build(rec)
    back = infotext.to_record(infotext.parse(text))
    assert_same_generation(rec, back)
    assert infotext.parse(text).params["Version"] == (f"ComfyUI {version}" if version else "ComfyUI")

    # A1111 conformance: the parameters line is last and starts with "Steps: ".
    head, _, last = text.rpartition("\n")
    assert last.startswith(f"Steps: {steps}, ")
    # The negative line is left out when the negative is empty or None, and starts its own line otherwise.
    if negative:
        assert head == f"{visible(positive)}\nNegative prompt: {visible(negative)}"
    else:
        assert head == visible(positive)
    # Every parameter value holding , : or a newline is JSON-quoted; unquoted ones hold none of them.
    for key, raw in A1111_RE_PARAM.findall(last):
        value = raw.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            assert isinstance(json.loads(value), str), (key, value)
        else:
            assert not any(c in value for c in ",:\n"), (key, value)


# Unpaired surrogates only: JSON (and so any JSON-based format) cannot tell "\ud800\udc00" from U+10000.
SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
lone_surrogate_text = st.text(surrogates | st.characters()).filter(lambda s: not SURROGATE_PAIR.search(s))


@settings(max_examples=100, deadline=None)
@given(positive=lone_surrogate_text, negative=st.one_of(st.none(), lone_surrogate_text))
@example(positive="\udcff bad decode \x00", negative="\ud800")
def test_round_trip_keeps_lone_surrogates(positive: str, negative: str | None) -> None:
    """Text that is not valid UTF-8 (lone surrogates from a bad decode) still round-trips in memory."""
    rec = make_record(positive, negative)
    assert_same_generation(rec, round_trip(rec))


@settings(max_examples=100, deadline=None)
@given(name=with_separator, scheduler=with_separator)
def test_values_with_separators_are_json_quoted(name: str, scheduler: str) -> None:
    rec = make_record("p", "n", sampler=name, scheduler=scheduler)
    last = infotext.build(rec).rpartition("\n")[2]
    assert f"Sampler: {json.dumps(name, ensure_ascii=False)}" in last
    assert f"Schedule type: {json.dumps(scheduler, ensure_ascii=False)}" in last
    back = round_trip(rec).generation
    assert (back.sampler, back.scheduler) == (name, scheduler)


@settings(max_examples=300, deadline=None)
@given(
    positive=plain_prompts,
    negative=st.one_of(st.none(), plain_prompts),
    seed=seeds,
    steps=steps,
    cfg=cfgs,
    sampler=samplers,
    scheduler=schedulers,
    width=sizes,
    height=sizes,
    denoise=denoises,
)
def test_a1111_reads_what_we_write(
    positive: str,
    negative: str | None,
    seed: int,
    steps: int,
    cfg: float,
    sampler: str,
    scheduler: str | None,
    width: int,
    height: int,
    denoise: float | None,
) -> None:
    """For plain prompts A1111's own rules read our text exactly, and our parser agrees with them."""
    rec = make_record(positive, negative, seed, steps, cfg, sampler, scheduler, width, height, denoise)
    text = infotext.build(rec)
    params = infotext.parse(text).params
    last_line = text.rsplit("\n", 1)[-1]
    exact_keys = [f"{key}: " for key in (infotext.EXACT_PROMPT, infotext.EXACT_NEGATIVE)]
    assert not any(k in last_line for k in exact_keys), "plain prompts need no exact keys"
    assert not {infotext.EXACT_PROMPT, infotext.EXACT_NEGATIVE} & set(params)
    theirs = a1111_parse(text)
    ours = infotext.parse(text)
    assert theirs["Prompt"] == positive
    assert theirs["Negative prompt"] == (negative or "")
    assert ours.positive == theirs["Prompt"]
    assert (ours.negative or "") == theirs["Negative prompt"]
    assert theirs["Steps"] == str(steps) and theirs["Seed"] == str(seed)
    assert (theirs["Size-1"], theirs["Size-2"]) == (str(width), str(height))
    for key, value in ours.params.items():
        if key == "Size":
            assert value == f"{theirs['Size-1']}x{theirs['Size-2']}"
        else:
            assert theirs[key] == value, key


def test_a_one_megabyte_prompt_round_trips() -> None:
    unit = 'masterpiece, (best quality:1.2), "quoted", Über 🌅 مرحبا\nNegative prompt: inside\n  '
    positive = (unit * (1024 * 1024 // len(unit) + 1))[: 1024 * 1024]
    negative = ("lowres, bad hands\n" * 60_000)[:-1]
    rec = make_record(positive, negative, seed=2**63, steps=30, cfg=6.5, sampler="dpmpp_2m", scheduler="karras")
    started = time.perf_counter()
    back = round_trip(rec)
    assert time.perf_counter() - started < 10
    assert len(back.generation.positive or "") == len(positive)
    assert_same_generation(rec, back)


# -- labels -----------------------------------------------------------------------------------------


def test_known_labels_are_written_as_a1111_does() -> None:
    rec = make_record(
        "a cat", "dog", seed=42, steps=25, cfg=6.5, sampler="dpmpp_2m", scheduler="karras", width=832, height=1216
    )
    rec.models.append(
        Model(role="checkpoint", name="sdxl/juggernaut, v9: final.safetensors", hashes={"autov2": "31e35c80fc"})
    )
    last = infotext.build(rec).rpartition("\n")[2]
    assert last.startswith("Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 42, ")
    assert "Size: 832x1216" in last
    assert "Model hash: 31e35c80fc, Model: juggernaut v9 final" in last  # no , or : in names (readers.md §7)
    back = round_trip(rec)
    assert back.models[0].name == "juggernaut v9 final"
    assert back.models[0].hashes == {"autov2": "31e35c80fc"}


@pytest.mark.parametrize(
    ("label", "sampler", "scheduler"),
    [
        ("DPM++ 2M Karras", "dpmpp_2m", "karras"),
        ("DPM++ 2M SDE Karras", "dpmpp_2m_sde", "karras"),
        ("Euler a", "euler_ancestral", None),
        ("DPM++ 2M", "dpmpp_2m", None),
        ("DPM++ SDE Exponential", "dpmpp_sde", "exponential"),
        ("My Custom Sampler", "My Custom Sampler", None),
    ],
)
def test_legacy_combined_labels_are_split(label: str, sampler: str, scheduler: str | None) -> None:
    text = f"a photo\nNegative prompt: blurry\nSteps: 20, Sampler: {label}, CFG scale: 7, Seed: 1, Size: 512x512"
    gen = infotext.to_record(infotext.parse(text)).generation
    assert (gen.sampler, gen.scheduler) == (sampler, scheduler)
    assert (gen.positive, gen.negative, gen.seed, gen.width) == ("a photo", "blurry", 1, 512)


def test_explicit_schedule_type_wins_over_a_combined_label() -> None:
    text = "p\nSteps: 20, Sampler: DPM++ 2M Karras, Schedule type: Exponential, CFG scale: 7, Seed: 1"
    gen = infotext.to_record(infotext.parse(text)).generation
    assert (gen.sampler, gen.scheduler) == ("dpmpp_2m", "exponential")


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_known_sampler_and_scheduler_round_trips(sampler: str) -> None:
    for scheduler in SCHEDULERS:
        back = round_trip(make_record("p", None, sampler=sampler, scheduler=scheduler)).generation
        assert (back.sampler, back.scheduler) == (sampler, scheduler)


def test_shared_sampler_labels_round_trip() -> None:
    """The record keeps ComfyUI's raw sampler name; an A1111-only file must not turn one sampler into another."""
    lost = {}
    for sampler in SHARED_LABEL:
        back = round_trip(make_record("p", None, sampler=sampler, scheduler="karras")).generation
        if back.sampler != sampler:
            lost[sampler] = back.sampler
    assert not lost, (
        "LIBRARY FINDING: these ComfyUI samplers share an A1111 label with another sampler, and infotext "
        f"carries no exact name, so they read back as a different sampler: {lost}"
    )


# -- parsing others' files ------------------------------------------------------------------------------


def test_parses_a1111_written_infotext() -> None:
    text = (
        "masterpiece, 1girl\nwith a second line\n"
        "Negative prompt: lowres, (bad hands:1.3)\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 512x768, "
        "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.45, "
        'Lora hashes: "add_detail: 7c6bad76eb54, film_grain: 0123456789ab", Version: v1.10.1'
    )
    rec = infotext.to_record(infotext.parse(text))
    gen = rec.generation
    assert gen.positive == "masterpiece, 1girl\nwith a second line"
    assert gen.negative == "lowres, (bad hands:1.3)"
    assert (gen.steps, gen.seed, gen.cfg, gen.denoise) == (28, 1234567890, 6.5, 0.45)
    assert (gen.sampler, gen.scheduler, gen.width, gen.height) == ("dpmpp_2m", "karras", 512, 768)
    assert [(m.role, m.name, m.hashes) for m in rec.models] == [
        ("checkpoint", "sd_xl_base_1.0", {"autov2": "31e35c80fc"}),
        ("lora", "add_detail", {"autov3": "7c6bad76eb54"}),
        ("lora", "film_grain", {"autov3": "0123456789ab"}),
    ]
    assert rec.provenance.capture_mode == "imported"
    assert a1111_parse(text)["Prompt"] == gen.positive


def test_text_without_a_parameters_line_is_all_prompt() -> None:
    info = infotext.parse("just a prompt\nNegative prompt: neg\nSteps: 20")
    assert info.positive == "just a prompt"
    assert info.negative == "neg\nSteps: 20"
    assert info.params == {}


def test_garbage_numbers_become_null_not_errors() -> None:
    gen = infotext.to_record(infotext.parse("p\nSteps: many, Seed: -x, CFG scale: seven, Size: axb")).generation
    assert (gen.steps, gen.seed, gen.cfg, gen.width, gen.height) == (None, None, None, None, None)

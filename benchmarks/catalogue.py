"""The catalogue at scale: N synthetic records on SQLite and PostgreSQL, then `index` over real files.

1. records: N records (default 1,000,000) made from the corpus workflows (parsed once), with varied prompt
   words, seeds, models and LoRAs (names and fake hashes from a pool) and dates over two years, written
   through the catalogue's own write path (`open_catalogue`, `indexer.store`, one transaction per batch)
   with fake paths, sizes and digests. Index throughput, database size per record, start-up (open + first
   query on the filled database), and p50/p95 latency of text, LoRA, model-hash, seed and date queries
   (targets on SQLite: p95 <= 50 ms for field queries, <= 150 ms for full text).
2. files: `provenance index` over a folder of real files (ours as PNG/JPEG/WEBP, core-style PNGs):
   files/s (target >= 1,000) and the same folder through `exiftool -j -r`.
Run `python benchmarks/catalogue.py --records 100000`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from comfyui_provenance.catalogue import Query, open_catalogue
from comfyui_provenance.catalogue.indexer import Examined, store
from comfyui_provenance.catalogue.rows import (
    FileRow,
    ModelRow,
    RecordRows,
    json_text,
    normalized,
    record_rows,
    seed_from_db,
    stamp,
)
from comfyui_provenance.cli.index import default_jobs
from comfyui_provenance.cli.main import main as cli_main
from comfyui_provenance.metadata.capture import SaveContext
from comfyui_provenance.metadata.parser.parse import WorkflowParser
from comfyui_provenance.metadata.save import SaveOptions, save_images

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus" / "workflows"
FIELD_TARGET_MS = 50.0
TEXT_TARGET_MS = 150.0
FILES_TARGET = 1000.0
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
DAYS = 730
KINDS = ("text", "lora", "model hash", "seed", "date range")
_WORD = re.compile(r"[a-z]{4,}")


# -- 1. synthetic records ------------------------------------------------------------------------------
def templates() -> list[RecordRows]:
    """Every corpus workflow parsed once into catalogue rows."""
    parser = WorkflowParser()
    out = []
    for path in sorted(CORPUS.glob("*.api.json")):
        out.append(record_rows(parser.parse(json.loads(path.read_text("utf-8")))))
    return out


def fake_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Synth:
    """Varied records from the templates; remembers what the queries will ask for."""

    def __init__(self, rows: list[RecordRows], seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.templates = rows
        words = sorted({w for r in rows for w in _WORD.findall((r.prompt or "").lower())})
        self.vocab = words
        self.loras = [f"loras/style_{i:04d}_v{i % 7 + 1}.safetensors" for i in range(2000)]
        self.checkpoints = [f"checkpoints/model_{i:03d}_{w}.safetensors" for i, w in enumerate(words[:300])]
        self.hashes = {name: fake_hash(name) for name in self.loras + self.checkpoints}
        self.seeds: list[int] = []

    def model(self, role: str, name: str, strength: float | None = None) -> ModelRow:
        sha = self.hashes[name]
        return ModelRow(
            role=role,
            name=name,
            norm=normalized(name),
            sha256=sha,
            autov2=sha[:10],
            autov3=sha[:12],
            strength_model=strength,
            strength_clip=strength,
        )

    def record(self, index: int) -> tuple[FileRow, RecordRows]:
        rng = self.rng
        base = self.templates[index % len(self.templates)]
        prompt = f"{base.prompt or ''} {' '.join(rng.choices(self.vocab, k=6))}"
        seed = rng.getrandbits(50)
        if index % 97 == 0:
            self.seeds.append(seed)
        checkpoint = self.model("checkpoint", rng.choice(self.checkpoints))
        loras = [self.model("lora", name, round(rng.uniform(0.3, 1.2), 2)) for name in rng.sample(self.loras, 3)]
        loras = loras[: rng.randint(0, 3)]
        models = [checkpoint, *loras, *(m for m in base.models if m.role not in ("checkpoint", "lora"))]
        when = START + timedelta(seconds=rng.randrange(DAYS * 86400))
        record = json.loads(base.record)
        record["generation"] = {**(record.get("generation") or {}), "positive": prompt, "seed": seed}
        record["models"] = [
            {"role": m.role, "name": m.name, "hashes": {"sha256": m.sha256, "autov3": m.autov3}} for m in models
        ]
        record["provenance"] = {**(record.get("provenance") or {}), "created": stamp(when)}
        rows = dataclasses.replace(
            base, prompt=prompt, seed=seed, models=models, created=stamp(when), record=json_text(record)
        )
        path = f"/bench/output/{when:%Y-%m-%d}/ComfyUI_{index:08d}_.png"
        file = FileRow(
            path=path,
            folder=os.path.dirname(path),
            size=rng.randrange(400_000, 3_000_000),
            mtime=when.timestamp(),
            digest=fake_hash(path),
            kind="image",
        )
        return file, rows

    def query(self, kind: str) -> Query:
        rng = self.rng
        if kind == "text":
            return Query(text=rng.choice(self.vocab))
        if kind == "lora":
            name = rng.choice(self.loras)
            return Query(lora=rng.choice((name, normalized(name))))
        if kind == "model hash":
            return Query(model=self.hashes[rng.choice(self.checkpoints)][:10])
        if kind == "seed":
            return Query(seed=rng.choice(self.seeds))
        day = START + timedelta(days=rng.randrange(DAYS - 7))
        return Query(since=f"{day:%Y-%m-%d}", until=f"{day + timedelta(days=6):%Y-%m-%d}")


def fill(location: str, synth: Synth, count: int, batch: int) -> tuple[float, float]:
    """Insert `count` records through the write path: (seconds in all, of which making the records)."""
    catalogue = open_catalogue(location)
    started = time.perf_counter()
    making = 0.0
    try:
        for first in range(0, count, batch):
            with catalogue.batch():
                for index in range(first, min(count, first + batch)):
                    made = time.perf_counter()
                    file, rows = synth.record(index)
                    making += time.perf_counter() - made
                    store(catalogue, Examined(file.path, file, rows))
            if first and first % (batch * 50) == 0:
                done = first + batch
                rate = done / (time.perf_counter() - started - making)
                print(f"  {done:,} records, {rate:,.0f}/s", file=sys.stderr)
    finally:
        catalogue.close()
    return time.perf_counter() - started, making


def latencies(location: str, synth: Synth, queries: int) -> tuple[float, dict[str, list[float]], dict[str, int]]:
    """Start-up (open + first query) in ms, then each kind's latencies in ms and total hits."""
    started = time.perf_counter()
    catalogue = open_catalogue(location, readonly=True)
    catalogue.search(synth.query("text"))
    startup = (time.perf_counter() - started) * 1000
    ms: dict[str, list[float]] = {kind: [] for kind in KINDS}
    hits = dict.fromkeys(KINDS, 0)
    try:
        for round_no in range(queries):
            for kind in KINDS[round_no % len(KINDS) :] + KINDS[: round_no % len(KINDS)]:
                query = synth.query(kind)
                began = time.perf_counter()
                found = catalogue.search(query)
                ms[kind].append((time.perf_counter() - began) * 1000)
                hits[kind] += len(found)
    finally:
        catalogue.close()
    return startup, ms, hits


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def sqlite_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def postgres_size(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def run_backend(
    name: str, location: str, size: Callable[[], int], args: argparse.Namespace, *, filled: bool = False
) -> list[str]:
    synth = Synth(templates())
    if filled:  # a database an earlier run filled (--sqlite-db): the same pools, seeds sampled from it
        with closing(sqlite3.connect(f"file:{location}?mode=ro", uri=True)) as db:
            records = int(db.execute("SELECT count(*) FROM files").fetchone()[0])
            sample = db.execute("SELECT seed FROM generations ORDER BY random() LIMIT 500")
            synth.seeds = [s for (v,) in sample if (s := seed_from_db(v)) is not None]
        print(f"\n{name}: {records:,} records already in {location}; queries only")
        return query_report(name, location, size, args, synth, records, None)
    print(f"\n{name}: {args.records:,} records in batches of {args.batch}")
    elapsed, making = fill(location, synth, args.records, args.batch)
    seconds = elapsed - making  # the catalogue's time: making the synthetic records is not indexing
    return query_report(name, location, size, args, synth, args.records, (seconds, making))


def query_report(
    name: str,
    location: str,
    size: Callable[[], int],
    args: argparse.Namespace,
    synth: Synth,
    records: int,
    timing: tuple[float, float] | None,
) -> list[str]:
    total = size()
    startup, ms, hits = latencies(location, synth, args.queries)
    if timing is not None:
        seconds, making = timing
        print(
            f"  index: {records / seconds:,.0f} records/s ({seconds:.1f} s writing; "
            f"{making:.1f} s more making the records)"
        )
    print(f"  size: {total / 1e6:,.1f} MB, {total / records / 1024:.2f} KiB per record")
    print(f"  start-up (open + first query): {startup:.1f} ms")
    header = f"  {'query':<11} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'hits/q':>7} {'target':>7} result"
    print(header)
    print("  " + "-" * (len(header) - 2))
    summary = [f"{name} {records / timing[0]:,.0f} rec/s" if timing else f"{name} {records:,} records"]
    for kind in KINDS:
        target = TEXT_TARGET_MS if kind == "text" else FIELD_TARGET_MS
        high = p95(ms[kind])
        verdict = ("PASS" if high <= target else "MISS") if name == "sqlite" else "-"
        print(
            f"  {kind:<11} {statistics.median(ms[kind]):8.2f} {high:8.2f} {max(ms[kind]):8.1f} "
            f"{hits[kind] / len(ms[kind]):7.1f} {target:7.0f} {verdict}"
        )
        summary.append(f"{kind} p95 {high:.1f} ms {verdict}")
    return summary


# -- 2. real files ------------------------------------------------------------------------------------
def contexts() -> list[SaveContext]:
    found = []
    for path in sorted(CORPUS.glob("*.api.json")):
        api = json.loads(path.read_text("utf-8"))
        save_id = next((k for k, v in api.items() if v.get("class_type") == "SaveImage"), None)
        if save_id is None:
            continue
        ui_path = path.with_name(path.name.replace(".api.json", ".ui.json"))
        ui = json.loads(ui_path.read_text("utf-8")) if ui_path.exists() else None
        found.append(
            SaveContext(
                prompt=api,
                extra_pnginfo={"workflow": ui} if ui else None,
                save_node_id=save_id,
                prompt_id=f"bench-{path.stem}",
                comfyui_version="0.3.60",
            )
        )
    return found


def make_files(folder: Path, count: int) -> list[Path]:
    """`count` 64x64 files: our saves as PNG, JPEG and WEBP, and every fourth one core-style (tEXt prompt/workflow)."""
    from PIL import Image, PngImagePlugin

    existing = sorted(p for p in folder.rglob("*") if p.is_file())
    if len(existing) >= count:
        print(f"reusing {len(existing)} files in {folder}")
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = contexts()
    rng = np.random.default_rng(3)
    formats = ("png", "jpeg", "webp")
    for index in range(count):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        context = runs[index % len(runs)]
        if index % 4 == 3:
            info = PngImagePlugin.PngInfo()
            info.add_text("prompt", json.dumps(context.prompt))
            if context.extra_pnginfo:
                info.add_text("workflow", json.dumps(context.extra_pnginfo["workflow"]))
            Image.fromarray(pixels).save(folder / f"core_{index:05d}_.png", pnginfo=info, compress_level=4)
        else:
            options = SaveOptions(format=formats[index % 3])
            save_images([pixels.astype(np.float32) / 255], context, folder, "ours", options, version="bench")
    print(f"wrote {count} files (64x64) in {time.perf_counter() - started:.1f} s to {folder}")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def run_files(args: argparse.Namespace, scratch: Path) -> list[str]:
    folder = Path(args.files) if args.files else scratch / "files"
    paths = make_files(folder, args.count)
    media = [p for p in paths if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")]
    print(f"\nindex: {len(media)} images ({len(paths)} files) in {folder}")
    summary = []
    for jobs in sorted({1, 2, default_jobs()}):  # the default is one process per CPU
        db = scratch / f"files-{jobs}.sqlite"
        started = time.perf_counter()
        status = cli_main(["index", str(folder), "--db", str(db), "--jobs", str(jobs)])
        seconds = time.perf_counter() - started
        rate = len(media) / seconds
        verdict = "PASS" if rate >= FILES_TARGET else "MISS"
        print(f"  provenance index --jobs {jobs}: {seconds:.2f} s, {rate:,.0f} files/s (exit {status}) {verdict}")
        summary.append(f"index --jobs {jobs} {rate:,.0f} files/s {verdict}")
    exiftool = shutil.which("exiftool")
    if exiftool:
        started = time.perf_counter()
        subprocess.run([exiftool, "-j", "-r", str(folder)], capture_output=True, check=False)
        seconds = time.perf_counter() - started
        print(f"  exiftool -j -r: {seconds:.2f} s, {len(paths) / seconds:,.0f} files/s")
        summary.append(f"exiftool {len(paths) / seconds:,.0f} files/s")
    else:
        print("  exiftool: not found, skipped")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="synthetic records (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=1000, help="records per transaction (default: %(default)s)")
    parser.add_argument("--queries", type=int, default=200, help="queries of each kind (default: %(default)s)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres (default: %(default)s)")
    parser.add_argument("--files", metavar="DIR", help="index this folder (generated and kept when absent)")
    parser.add_argument("--count", type=int, default=2000, help="files to generate (default: %(default)s)")
    parser.add_argument("--skip", default="", help="records,files")
    parser.add_argument("--sqlite-db", metavar="PATH", help="query this filled SQLite catalogue instead of filling one")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    summary: list[str] = []
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="catalogue-bench-")))
        if "records" not in skip:
            for backend in args.backends.split(","):
                if backend == "sqlite" and args.sqlite_db:
                    path = Path(args.sqlite_db)
                    summary += run_backend("sqlite", str(path), lambda p=path: sqlite_size(p), args, filled=True)
                elif backend == "sqlite":
                    path = scratch / "bench.sqlite"
                    summary += run_backend("sqlite", str(path), lambda p=path: sqlite_size(p), args)
                elif backend == "postgres":
                    summary += run_postgres(args, stack)
                else:
                    raise SystemExit(f"unknown backend {backend!r}")
        if "files" not in skip:
            summary += run_files(args, scratch)
    print("\n" + "; ".join(summary))


def run_postgres(args: argparse.Namespace, stack: ExitStack) -> list[str]:
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from pg_cluster import PgCluster
    except Exception as err:  # no binaries, no pytest: say so and go on
        print(f"\npostgres: skipped ({err})")
        return ["postgres skipped"]
    # The test cluster's settings (fsync off) with a realistic buffer pool.
    pg = stack.enter_context(PgCluster(dbname="bench", settings={"shared_buffers": "256MB"}))
    url: str = pg.url
    return run_backend("postgres", url, lambda: postgres_size(url), args)


if __name__ == "__main__":
    main()

"""Search and statistics SQL for the SQLite backend: fixed clauses, every value a `?` parameter."""

from __future__ import annotations

import sqlite3
from typing import Any

from .query import Query, model_terms
from .rows import seed_from_db, seed_to_db

# The only column names a hash filter may use, keyed by what rows.hash_kind says.
HASH_COLUMNS = {"autov2": "m.autov2", "autov3": "m.autov3", "sha256": "m.sha256"}
MAIN_ROLES = ("checkpoint", "unet", "diffusion_model", "model")

SELECT = """SELECT f.id, f.path, f.folder, f.kind, f.format, f.width, f.height, f.frames, f.made, f.size,
    f.digest, g.prompt, g.negative, g.seed, g.steps, g.cfg, g.sampler, g.scheduler
    FROM files f LEFT JOIN generations g ON g.file_id = f.id"""
COLUMNS = (
    "id", "path", "folder", "kind", "format", "width", "height", "frames", "made", "size",
    "digest", "prompt", "negative", "seed", "steps", "cfg", "sampler", "scheduler",
)  # fmt: skip


def under(root: str) -> tuple[str, str]:
    """The [low, high) text range of every path inside folder `root` ('0' sorts right after '/')."""
    prefix = root if root.endswith("/") else root + "/"
    return prefix, prefix[:-1] + "0"


def _model_clause(value: str, lora: bool) -> tuple[str, list[Any]]:
    """Files that used the model: an IN over the models' own indexes (norm, each hash column).

    A correlated EXISTS made SQLite walk every file newest first and probe its models, 1.4 s at
    100,000 files for a LoRA on 75 of them (benchmarks/catalogue.py); the IN reads the index once.
    """
    norm, kind, digest = model_terms(value)
    role = " AND m.role = 'lora'" if lora else ""
    by_name = f"SELECT m.file_id FROM models m WHERE m.norm = ?{role}"
    if kind is None:
        return f"f.id IN ({by_name})", [norm]
    column = HASH_COLUMNS[kind]
    by_hash = f"SELECT m.file_id FROM models m WHERE {column} = ?{role}"
    return f"f.id IN ({by_name} UNION {by_hash})", [norm, digest]


def where(query: Query) -> tuple[str, list[Any]]:
    """The WHERE clause (AND of every filter given) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    fts = query.fts()
    if query.text is not None and query.text.strip():
        if fts is None:  # text with no words in it matches nothing, rather than everything
            clauses.append("0")
        else:
            clauses.append("f.id IN (SELECT rowid FROM prompts WHERE prompts MATCH ?)")
            params.append(fts)
    for value, lora in ((query.lora, True), (query.model, False)):
        if value is not None:
            clause, values = _model_clause(value, lora)
            clauses.append(clause)
            params.extend(values)
    if query.seed is not None:
        clauses.append("g.seed = ?")
        params.append(seed_to_db(query.seed))
    if query.sampler is not None:
        clauses.append("g.sampler = ? COLLATE NOCASE")
        params.append(query.sampler)
    if query.since is not None:
        clauses.append("f.made >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("f.made < ?")
        params.append(query.until)
    if query.folder is not None:
        clauses.append("(f.path >= ? AND f.path < ?)")
        params.extend(under(query.folder))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


# Relative cost of sorting one full-text match against walking one file newest first (measured at
# 1,000,000 records: 1.7 us a match sorted, 4.4 us a file walked): see walk_newest_first.
SORT_OVER_WALK = 2.6
WALK_MIN_MATCHES = 2000


def walk_newest_first(db: sqlite3.Connection, query: Query) -> bool:
    """Whether a text search should walk files newest first, probing the matches, instead of sorting them.

    SQLite's plan takes every FTS match, fetches its file and sorts them all: 0.7 s for a common word
    at a million files. Walking the `made` index stops after the page is full, which is cheap when
    matches are many and costly when they are few; the matches are counted (up to the crossover,
    a few ms) to choose. Only for text alone: a model, LoRA or seed filter selects fewer rows first.
    """
    fts = query.fts()
    if fts is None or not (query.text and query.text.strip()) or query.seed is not None:
        return False
    if query.lora is not None or query.model is not None:
        return False
    files = db.execute("SELECT max(id) FROM files").fetchone()[0] or 0
    wanted = query.limit + query.offset
    crossover = max(WALK_MIN_MATCHES, int((SORT_OVER_WALK * wanted * files) ** 0.5))
    counted = db.execute(
        "SELECT count(*) FROM (SELECT rowid FROM prompts WHERE prompts MATCH ? LIMIT ?)", (fts, crossover)
    ).fetchone()[0]
    return bool(counted >= crossover)


def page_sql(clause: str, walk: bool) -> str:
    """The page's ids first, sorting only (id, made, path), then its rows: sorting whole joined rows
    (prompts and all) for a checkpoint on 3,300 of a million files took 60-130 ms, the ids alone 20."""
    source = "files f INDEXED BY files_made" if walk else "files f"
    if "g." in clause:  # a seed or sampler filter needs the generation while choosing
        source += " LEFT JOIN generations g ON g.file_id = f.id"
    order = " ORDER BY f.made DESC, f.path"
    return f"{SELECT} WHERE f.id IN (SELECT f.id FROM {source}{clause}{order} LIMIT ? OFFSET ?){order}"


def search_rows(db: sqlite3.Connection, query: Query) -> list[dict[str, Any]]:
    clause, params = where(query)
    sql = page_sql(clause, walk_newest_first(db, query))
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in db.execute(sql, [*params, query.limit, query.offset])]
    models = _models_of(db, [row["id"] for row in rows])
    for row in rows:
        mine = models.get(row.pop("id"), [])
        row["seed"] = seed_from_db(row["seed"])
        row["model"] = next((m["name"] for m in mine if m["role"] in MAIN_ROLES), None)
        row["loras"] = [
            {"name": m["name"], "strength_model": m["strength_model"], "strength_clip": m["strength_clip"]}
            for m in mine
            if m["role"] == "lora"
        ]
        row["models"] = [{k: m[k] for k in ("role", "name", "sha256", "autov2", "autov3")} for m in mine]
    return rows


def _models_of(db: sqlite3.Connection, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return out
    marks = ",".join("?" * len(ids))  # placeholders only; ids are the catalogue's own integers
    sql = (
        "SELECT file_id, role, name, sha256, autov2, autov3, strength_model, strength_clip FROM models "
        f"WHERE file_id IN ({marks}) ORDER BY file_id, rowid"
    )
    keys = ("role", "name", "sha256", "autov2", "autov3", "strength_model", "strength_clip")
    for file_id, *values in db.execute(sql, ids):
        out.setdefault(file_id, []).append(dict(zip(keys, values, strict=True)))
    return out


def stats_of(db: sqlite3.Connection, top: int) -> dict[str, Any]:
    kinds = dict(db.execute("SELECT kind, count(*) FROM files GROUP BY kind ORDER BY kind").fetchall())
    used = """SELECT min(name), count(DISTINCT file_id) AS n FROM models WHERE {role}
              GROUP BY norm ORDER BY n DESC, min(name) LIMIT ?"""
    models = db.execute(used.format(role="role <> 'lora'"), (top,)).fetchall()
    loras = db.execute(used.format(role="role = 'lora'"), (top,)).fetchall()
    samplers = db.execute(
        """SELECT sampler, count(*) AS n FROM generations WHERE sampler IS NOT NULL
           GROUP BY sampler ORDER BY n DESC, sampler LIMIT ?""",
        (top,),
    ).fetchall()
    days = db.execute(
        "SELECT substr(made, 1, 10) AS day, count(*) FROM files GROUP BY day ORDER BY day DESC LIMIT ?", (top,)
    ).fetchall()
    return {
        "files": sum(kinds.values()),
        "kinds": kinds,
        "models": [{"name": n, "files": c} for n, c in models],
        "loras": [{"name": n, "files": c} for n, c in loras],
        "samplers": [{"name": n, "files": c} for n, c in samplers],
        "days": [{"day": d, "files": c} for d, c in days],
    }

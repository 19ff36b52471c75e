"""Search, statistics and full-text terms for the PostgreSQL backend: fixed clauses, every value a parameter.

Full text: neither the `simple` nor the `english` configuration splits words as SQLite's FTS5 `unicode61`
tokenizer does (`to_tsvector` keeps `blindbox_v1_mix`-style and hyphenated compounds, URLs and paths as
extra tokens, `english` stems), so the lexemes are made here by unicode61's rules — a token is a run of
letters, digits and private-use characters, lower-cased, diacritics removed — and stored as a tsvector
(GIN-indexed). A query word is a phrase of its tokens (`<->`), all words ANDed: FTS5's matching exactly.
Text compares and sorts byte-wise (`COLLATE "C"`), as in SQLite, so rows come back in the same order.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

from .query import Query, model_terms
from .rows import seed_from_db, seed_to_db
from .sqlite_search import COLUMNS, HASH_COLUMNS, MAIN_ROLES, under

SELECT = """SELECT f.id, f.path, f.folder, f.kind, f.format, f.width, f.height, f.frames, f.made, f.size,
    f.digest, g.prompt, g.negative, g.seed, g.steps, g.cfg, g.sampler, g.scheduler
    FROM files f LEFT JOIN generations g ON g.file_id = f.id"""
MAX_POSITION = 16383  # PostgreSQL's largest lexeme position; later words share it


_ASCII_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """The words of `text` as FTS5's unicode61 tokenizer makes them."""
    if text.isascii():  # the common case: letters and digits are the only token characters
        return _ASCII_TOKEN.findall(text.lower())
    out: list[str] = []
    current: list[str] = []
    for char in text:
        if (folded := _folded(char)) is not None:
            current.append(folded)
        elif current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return [t for t in out if t]


@lru_cache(maxsize=8192)
def _folded(char: str) -> str | None:
    """A token character lower-cased without its diacritics (possibly empty), or None for a separator."""
    category = unicodedata.category(char)
    if category[0] not in "LN" and category != "Co":
        return None
    return "".join(c for c in unicodedata.normalize("NFD", char.lower()) if not unicodedata.combining(c))


def _lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector(prompt: str | None, negative: str | None) -> str | None:
    """The tsvector text of both columns; the negative starts one position past a gap, so no phrase spans both."""
    words = tokens(prompt or "")
    second = tokens(negative or "")
    if not words and not second:
        return None
    positions = [*range(1, len(words) + 1), *range(len(words) + 2, len(words) + 2 + len(second))]
    return " ".join(f"{_lexeme(w)}:{min(p, MAX_POSITION)}" for w, p in zip([*words, *second], positions, strict=True))


def tsquery(query: Query) -> str | None:
    """Every word of the query text as a phrase of its tokens, ANDed; None when no word has a token."""
    phrases = [" <-> ".join(_lexeme(t) for t in parts) for parts in map(tokens, query.words()) if parts]
    return " & ".join(f"({p})" for p in phrases) if phrases else None


def _model_clause(value: str, lora: bool) -> tuple[str, list[Any]]:
    """Files that used the model, an IN over the models' own indexes as in sqlite_search: a correlated
    EXISTS with `norm = … OR hash = …` let the planner walk files newest first probing each, 1.6 s p95
    for a checkpoint hash at a million files."""
    norm, kind, digest = model_terms(value)
    role = " AND m.role = 'lora'" if lora else ""
    by_name = f"SELECT m.file_id FROM models m WHERE m.norm = %s{role}"
    if kind is None:
        return f"f.id IN ({by_name})", [norm]
    column = HASH_COLUMNS[kind]
    return f"f.id IN ({by_name} UNION SELECT m.file_id FROM models m WHERE {column} = %s{role})", [norm, digest]


def where(query: Query) -> tuple[str, list[Any]]:
    """The WHERE clause (AND of every filter given) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.text is not None and query.text.strip():
        terms = tsquery(query)
        if terms is None:  # text with no words in it matches nothing, rather than everything
            clauses.append("FALSE")
        else:
            clauses.append("f.words @@ %s::tsquery")
            params.append(terms)
    for value, lora in ((query.lora, True), (query.model, False)):
        if value is not None:
            clause, values = _model_clause(value, lora)
            clauses.append(clause)
            params.extend(values)
    if query.seed is not None:
        clauses.append("g.seed = %s")
        params.append(seed_to_db(query.seed))
    if query.sampler is not None:  # SQLite's NOCASE folds ASCII only
        clauses.append("lower(g.sampler) = lower(%s)")
        params.append(query.sampler)
    if query.since is not None:
        clauses.append('f.made >= %s COLLATE "C"')
        params.append(query.since)
    if query.until is not None:
        clauses.append('f.made < %s COLLATE "C"')
        params.append(query.until)
    if query.folder is not None:
        clauses.append('(f.path >= %s COLLATE "C" AND f.path < %s COLLATE "C")')
        params.extend(under(query.folder))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def search_rows(db: Any, query: Query) -> list[dict[str, Any]]:
    clause, params = where(query)
    # The page's ids first (sorting id, made, path only), then its rows, as in sqlite_search.page_sql.
    source = "files f LEFT JOIN generations g ON g.file_id = f.id" if "g." in clause else "files f"
    order = ' ORDER BY f.made COLLATE "C" DESC, f.path COLLATE "C"'
    sql = f"{SELECT} WHERE f.id IN (SELECT f.id FROM {source}{clause}{order} LIMIT %s OFFSET %s){order}"
    found = db.execute(sql, [*params, query.limit, query.offset]).fetchall()
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in found]
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


def _models_of(db: Any, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return out
    sql = (
        "SELECT file_id, role, name, sha256, autov2, autov3, strength_model, strength_clip FROM models "
        "WHERE file_id = ANY(%s) ORDER BY file_id, id"
    )
    keys = ("role", "name", "sha256", "autov2", "autov3", "strength_model", "strength_clip")
    for file_id, *values in db.execute(sql, (ids,)).fetchall():
        out.setdefault(file_id, []).append(dict(zip(keys, values, strict=True)))
    return out


def stats_of(db: Any, top: int) -> dict[str, Any]:
    kinds = dict(db.execute('SELECT kind, count(*) FROM files GROUP BY kind ORDER BY kind COLLATE "C"').fetchall())
    used = """SELECT min(name COLLATE "C"), count(DISTINCT file_id) AS n FROM models WHERE {role}
              GROUP BY norm ORDER BY n DESC, min(name COLLATE "C") LIMIT %s"""
    models = db.execute(used.format(role="role <> 'lora'"), (top,)).fetchall()
    loras = db.execute(used.format(role="role = 'lora'"), (top,)).fetchall()
    samplers = db.execute(
        """SELECT sampler, count(*) AS n FROM generations WHERE sampler IS NOT NULL
           GROUP BY sampler ORDER BY n DESC, sampler COLLATE "C" LIMIT %s""",
        (top,),
    ).fetchall()
    days = db.execute(
        """SELECT substr(made, 1, 10) AS day, count(*) FROM files GROUP BY day
           ORDER BY substr(made, 1, 10) COLLATE "C" DESC LIMIT %s""",
        (top,),
    ).fetchall()
    return {
        "files": sum(kinds.values()),
        "kinds": kinds,
        "models": [{"name": n, "files": c} for n, c in models],
        "loras": [{"name": n, "files": c} for n, c in loras],
        "samplers": [{"name": n, "files": c} for n, c in samplers],
        "days": [{"day": d, "files": c} for d, c in days],
    }
